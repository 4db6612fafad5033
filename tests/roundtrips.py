"""Count host round trips (device synchronisations) made by array_api_strict arrays.

On CuPy each ``bool()``, ``float()``, ``int()``, ``operator.index()``, NumPy
conversion or ``to_numpy()`` of a device array waits for the device and copies to the
host. array_api_strict runs the same library code on the CPU, so counting these calls
on its arrays counts the synchronisations a GPU run would make::

    with HostRoundTrips() as rt:
        state, logs = method.outer_step(state, rng, data)
    assert rt.total == 0, rt.report()

Counted: the ``Array`` dunders ``__bool__ __float__ __int__ __index__ __complex__
__array__ __buffer__ __dlpack__`` and :func:`refimpl.backend.to_numpy` (patched in
``refimpl.backend`` and in every loaded ``refimpl`` module that imported it by name);
one ``to_numpy`` counts once, not again for the ``__dlpack__`` it makes. Each call is
attributed to the innermost frame in ``refimpl/`` outside ``backend.py`` (``site``).
"""
from __future__ import annotations

import collections
import os
import sys
import threading

DUNDERS = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__array__", "__buffer__", "__dlpack__")
_REFIMPL = os.sep + "refimpl" + os.sep


def _site(frame):
    """``module.py:line`` of the innermost refimpl frame outside backend.py (else the caller's)."""
    first = None
    f = frame
    while f is not None:
        fn = f.f_code.co_filename
        if first is None and "array_api_strict" not in fn and "roundtrips" not in fn:
            first = f
        if _REFIMPL in fn and not fn.endswith("backend.py"):
            return f"{fn.split(_REFIMPL)[-1]}:{f.f_lineno} ({f.f_code.co_name})"
        f = f.f_back
    f = first or frame
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno} ({f.f_code.co_name})"


class HostRoundTrips:
    """Context manager counting host round trips of array_api_strict arrays (see the module docstring).

    Attributes
    ----------
    by_kind : Counter  ``{"__bool__": n, "to_numpy": n, ...}``
    by_site : Counter  ``{"ot.py:458 (sweep)": n, ...}``
    total : int
    """

    def __init__(self):
        import array_api_strict
        self._array_type = type(array_api_strict.asarray(0.0))
        self.by_kind, self.by_site = collections.Counter(), collections.Counter()
        self._saved, self._local = [], threading.local()

    @property
    def total(self):
        return sum(self.by_kind.values())

    def report(self):
        kinds = ", ".join(f"{k} {n}" for k, n in self.by_kind.most_common())
        sites = "\n  ".join(f"{n:4d}  {s}" for s, n in self.by_site.most_common())
        return f"{self.total} host round trips ({kinds or 'none'})" + (f":\n  {sites}" if sites else "")

    def _record(self, kind):
        if getattr(self._local, "inside", False):
            return False
        self.by_kind[kind] += 1
        self.by_site[_site(sys._getframe(2))] += 1
        return True

    def _wrap(self, kind, fn):
        def counted(*args, **kwargs):
            if not self._record(kind):
                return fn(*args, **kwargs)
            self._local.inside = True
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.inside = False
        counted.__name__ = getattr(fn, "__name__", kind)
        counted.__wrapped__ = fn
        return counted

    def _patch(self, owner, name, new):
        self._saved.append((owner, name, owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, new)

    def __enter__(self):
        import refimpl.backend as backend
        for name in DUNDERS:
            if name in self._array_type.__dict__:
                self._patch(self._array_type, name, self._wrap(name, self._array_type.__dict__[name]))
        original = backend.to_numpy
        counted = self._wrap("to_numpy", original)
        for mod in [m for k, m in list(sys.modules.items()) if k == "refimpl" or k.startswith("refimpl.")]:
            if getattr(mod, "to_numpy", None) is original:
                self._patch(mod, "to_numpy", counted)
        return self

    def __exit__(self, *exc):
        for owner, name, old in reversed(self._saved):
            setattr(owner, name, old)
        self._saved.clear()
        return False
