"""What a GPU run would pay, counted on the CPU: host round trips, arrays created, namespace lookups.

Library code runs unchanged on array_api_strict, so counting calls on its arrays
counts what the same code does on CuPy:

* :class:`HostRoundTrips`: every ``bool()``, ``float()``, ``int()``, ``__index__``,
  NumPy conversion (``__array__``, ``__buffer__``, ``__dlpack__``) or
  :func:`refimpl.backend.to_numpy` of an array, each one a device synchronisation
  on CuPy (issue 14, section 2);
* :class:`LaunchCounts`: arrays created (an upper bound on kernel launches: every
  operation's result, views included) and :func:`refimpl.backend.namespace` lookups
  (section 3).

Both are context managers that patch and restore; ``by_site`` attributes each call to
the innermost ``refimpl/`` frame outside ``backend.py``. They need array-api-strict
(the ``test`` extra), imported on entry only::

    with HostRoundTrips() as rt:
        state, logs = method.outer_step(state, rng, data)
    assert rt.total == 0, rt.report()
"""
from __future__ import annotations

import collections
import functools
import os
import sys
import threading

DUNDERS = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__array__", "__buffer__", "__dlpack__")
_REFIMPL = os.sep + "refimpl" + os.sep
# Array._new calls made by array_api_strict's own type-promotion helpers, not by an operation
_INTERNAL = ("_promote_scalar", "_normalize_two_args")


def _site(frame):
    """``module.py:line (function)`` of the innermost refimpl frame outside backend.py (else the caller)."""
    first, f = None, frame
    while f is not None:
        fn = f.f_code.co_filename
        if first is None and "array_api_strict" not in fn and not fn.endswith("counters.py"):
            first = f
        if _REFIMPL in fn and not fn.endswith("backend.py"):
            return f"{fn.split(_REFIMPL)[-1]}:{f.f_lineno} ({f.f_code.co_name})"
        f = f.f_back
    f = first or frame
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno} ({f.f_code.co_name})"


@functools.lru_cache(maxsize=None)
def _array_type():
    """array_api_strict's array class (made once: entering a counter creates no array)."""
    import array_api_strict
    return type(array_api_strict.asarray(0.0))


class _Counter:
    """Patch-and-restore base: ``by_kind`` and ``by_site`` Counters, ``total``, ``report()``."""

    def __init__(self):
        self.by_kind, self.by_site = collections.Counter(), collections.Counter()
        self._saved, self._local = [], threading.local()

    @property
    def total(self):
        return sum(self.by_kind.values())

    def report(self, top=None):
        kinds = ", ".join(f"{k} {n}" for k, n in self.by_kind.most_common())
        sites = "\n  ".join(f"{n:5d}  {s}" for s, n in self.by_site.most_common(top))
        return f"{self.total} ({kinds or 'none'})" + (f":\n  {sites}" if sites else "")

    def _patch(self, owner, name, new):
        old = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        self._saved.append((owner, name, old))
        setattr(owner, name, new)

    def _patch_refimpl_function(self, name, wrap):
        """Replace ``refimpl.backend.<name>`` in backend and in every loaded refimpl module bound to it."""
        import refimpl.backend as backend
        original = getattr(backend, name)
        new = wrap(original)
        for mod in [m for k, m in list(sys.modules.items()) if k == "refimpl" or k.startswith("refimpl.")]:
            if getattr(mod, name, None) is original:
                self._patch(mod, name, new)

    def __exit__(self, *exc):
        for owner, name, old in reversed(self._saved):
            setattr(owner, name, old)
        self._saved.clear()
        return False


class HostRoundTrips(_Counter):
    """Count host round trips of array_api_strict arrays (see the module docstring).

    A ``to_numpy`` counts once, not again for the ``__dlpack__`` it makes; a
    ``to_numpy`` imported by name outside ``refimpl`` is counted as its ``__dlpack__``.
    """

    def _wrap(self, kind, fn):
        def counted(*args, **kwargs):
            if getattr(self._local, "inside", False):
                return fn(*args, **kwargs)
            self.by_kind[kind] += 1
            self.by_site[_site(sys._getframe(1))] += 1
            self._local.inside = True
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.inside = False
        counted.__wrapped__ = fn
        return counted

    def __enter__(self):
        A = _array_type()
        for name in DUNDERS:
            if name in A.__dict__:
                self._patch(A, name, self._wrap(name, A.__dict__[name]))
        self._patch_refimpl_function("to_numpy", lambda fn: self._wrap("to_numpy", fn))
        return self

    def report(self, top=None):
        return super().report(top).replace(" (", " host round trips (", 1)


class LaunchCounts(_Counter):
    """Count arrays created by array_api_strict operations and ``namespace()`` lookups.

    ``by_kind``: ``arrays`` (operation results, views included), ``promotions``
    (Python scalars and 0-d operands array_api_strict wraps inside a binary
    operation: no kernel on CuPy), ``namespace`` (lookups). ``by_site`` holds the
    namespace lookups only.
    """

    def __enter__(self):
        A = _array_type()
        new = A.__dict__["_new"].__func__
        counts = self.by_kind

        def counted_new(cls, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_name
            counts["promotions" if caller in _INTERNAL else "arrays"] += 1
            return new(cls, *args, **kwargs)
        self._patch(A, "_new", classmethod(counted_new))

        def wrap(fn):
            def counted(*args):
                counts["namespace"] += 1
                self.by_site[_site(sys._getframe(1))] += 1
                return fn(*args)
            return counted
        self._patch_refimpl_function("namespace", wrap)
        return self

    @property
    def arrays(self):
        return self.by_kind["arrays"]

    @property
    def lookups(self):
        return self.by_kind["namespace"]


class HostTransfers(_Counter):
    """Count arrays made from host data by ``array_api_strict.asarray`` (NumPy arrays, lists; not
    Python scalars, which a kernel takes as arguments, nor arrays already on a device): what a
    captured CUDA graph could not replay. ``total`` and ``by_kind`` (the host object's type)."""

    def __enter__(self):
        import array_api_strict
        A, orig, kinds = _array_type(), array_api_strict.asarray, self.by_kind

        def counted(obj, *args, **kwargs):
            if not isinstance(obj, (A, bool, int, float)):
                kinds[type(obj).__name__] += 1
            return orig(obj, *args, **kwargs)
        self._patch(array_api_strict, "asarray", counted)
        return self
