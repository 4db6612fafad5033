"""The descriptor of a checked method (:func:`refimpl.validation.checked` on a function defined in a
class body, with a core): ``obj.f`` calls the checked method, ``obj.f.unchecked`` is the core
bound to ``obj``, reached at the cost of two attribute loads. The policy is
:mod:`refimpl.validation`'s; ``tests/test_shape.py`` checks the binding, the overrides and that no
module reaches a core by its ``_`` name.
"""
from __future__ import annotations

import inspect
import types

__all__ = ["CheckedMethod", "BoundChecked"]


class CheckedMethod:
    """A method declared with ``checked(core)``: a descriptor in its class body.

    ``obj.f`` is a :class:`BoundChecked`: calling it calls the checked function with ``obj``
    first, and ``obj.f.unchecked`` is the core bound to ``obj``. The bound object is made once
    per instance and kept in the instance's ``__dict__`` (this descriptor defines no ``__set__``,
    so the instance's entry is found first from then on): ``obj.f.unchecked(...)`` on a hot path
    costs two attribute loads and a plain method call. ``Owner.f`` is this descriptor, a
    callable like the function (``Owner.f(obj, ...)``), with its ``__doc__``, ``__wrapped__``
    (so :func:`inspect.signature` sees the function's), ``input_rules`` and the unbound core
    as ``Owner.f.unchecked``; ``f.__func__`` is the function. A subclass overrides the method
    as any other (its own declaration), or only the core (its ``_`` method of the core's name).
    """

    def __init__(self, func, core):
        self.__func__ = func
        self.__wrapped__ = func
        for k in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(self, k, getattr(func, k))
        self.__dict__.update(vars(func))                   # input_rules, ...
        self.unchecked = core                              # the unbound core
        owner = func.__qualname__.rpartition(".")[0]
        #: the core is a method of the same class: looked up on the instance (a subclass may override it)
        self._core_name = core.__name__ if getattr(core, "__qualname__", None) == f"{owner}.{core.__name__}" else None
        self._attr = None

    def __set_name__(self, owner, name):
        self._attr = name

    def __get__(self, obj, cls=None):
        if obj is None:
            over = getattr(cls, self._core_name) if self._core_name and cls is not None else self.unchecked
            if over is self.unchecked:
                return self
            return CheckedMethod(self.__func__, over)      # a subclass's own core, seen from the class
        core = getattr(obj, self._core_name) if self._core_name else types.MethodType(self.unchecked, obj)
        bound = BoundChecked(self.__func__, obj, core)
        d = getattr(obj, "__dict__", None)
        if self._attr is not None and d is not None:
            d[self._attr] = bound                          # found first from now on: no descriptor call
        return bound

    def __call__(self, *args, **kwargs):
        return self.__func__(*args, **kwargs)

    def __repr__(self):
        return f"<checked method {self.__qualname__}>"


class BoundChecked:
    """``obj.f`` for a :class:`CheckedMethod` ``f``: calls ``f`` with ``obj`` first (checked);
    ``.unchecked`` is the core bound to ``obj``; ``__func__``, ``__self__`` as a bound method's,
    other attributes (``__doc__``, ``__name__``, ``input_rules``) those of the function."""
    __slots__ = ("__func__", "__self__", "unchecked")

    def __init__(self, func, obj, core):
        self.__func__, self.__self__, self.unchecked = func, obj, core

    def __call__(self, *args, **kwargs):
        return self.__func__(self.__self__, *args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name not in ("__name__", "__qualname__"):
            raise AttributeError(name)                     # protocols (copy, pickle) are this object's own
        return getattr(self.__func__, name)

    @property
    def __doc__(self):
        return self.__func__.__doc__

    @property
    def __signature__(self):
        sig = inspect.signature(self.__func__)
        return sig.replace(parameters=list(sig.parameters.values())[1:])

    def __reduce__(self):                                  # pickle/deepcopy: the attribute of the copied instance
        return getattr, (self.__self__, self.__func__.__name__)

    def __eq__(self, other):
        return isinstance(other, BoundChecked) and other.__func__ is self.__func__ and other.__self__ is self.__self__

    def __hash__(self):
        return hash((id(self.__func__), id(self.__self__)))

    def __repr__(self):
        return f"<bound checked method {self.__func__.__qualname__} of {self.__self__!r}>"
