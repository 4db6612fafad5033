"""Array backends: one Array API namespace per input, host-side randomness, host copies.

Library code takes ``xp = namespace(*inputs)`` and calls only Array API functions on
it, so the same code runs on ``numpy``, ``array_api_strict`` and CuPy (through
``array_api_compat``). Random numbers are drawn on the host from a
``numpy.random.Generator`` and moved with :func:`from_host`, so every backend sees
the same stream.

Input rules: these functions move or describe arrays and compute nothing, so they do
not check finiteness (:func:`all_finite` is that check); dtypes follow
:mod:`refimpl.validation` (``dtype_of`` accepts float32 and float64 only: float16 raises
``TypeError``, other strings ``ValueError``).
"""
from __future__ import annotations

import numbers

import numpy as _np  # host side only: to_numpy, host random draws

BACKENDS = ("numpy", "array_api_strict", "cupy", "torch")

_INSTALL_HINT = {
    "array_api_strict": "pip install array-api-strict",
    "cupy": "pip install 'refimpl[gpu]' (cupy-cuda12x and array-api-compat)",
    "torch": "pip install torch array-api-compat",
}


def _leaves(obj):
    """Yield the array leaves of nested lists/tuples/dicts (None and scalars skipped)."""
    if obj is None or isinstance(obj, (numbers.Number, str, _np.generic)):
        return
    if isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _leaves(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _leaves(o)
    else:
        yield obj


def _namespace_of(a):
    mod = type(a).__module__.split(".")[0]
    if mod in ("cupy", "torch"):
        try:
            import array_api_compat
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                f"arrays from {mod} need array-api-compat: {_INSTALL_HINT[mod]}") from e
        return array_api_compat.array_namespace(a)
    if hasattr(a, "__array_namespace__"):
        return a.__array_namespace__()
    raise TypeError(f"not an array: object of type {type(a).__name__} has no Array API namespace")


def namespace(*arrays):
    """Array API namespace shared by ``arrays`` (nested lists/tuples/dicts allowed).

    Python scalars and ``None`` are ignored; with no arrays at all NumPy is returned.
    Raises ``TypeError`` when arrays of two different libraries are mixed.

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    found = {}
    for a in _leaves(arrays):
        xp = _namespace_of(a)
        found.setdefault(xp.__name__, (xp, type(a).__module__))
    if len(found) > 1:
        names = ", ".join(sorted(f"{n} ({m})" for n, (_, m) in found.items()))
        raise TypeError(f"arrays from different libraries were mixed: {names}; "
                        "move them to one backend first (refimpl.backend.from_host / to_numpy)")
    if not found:
        return _np
    return next(iter(found.values()))[0]


def cuda_available():
    """(ok, reason): whether CuPy is importable and sees at least one CUDA device."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA runtime
        return False, f"cupy is not installed ({type(e).__name__}: {e}); install it with {_INSTALL_HINT['cupy']}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return False, f"no CUDA device was found (cupy: {type(e).__name__}: {e})"
    if n < 1:
        return False, "no CUDA device was found (cupy reports 0 devices)"
    return True, f"{n} CUDA device(s)"


def get_namespace(name="numpy"):
    """Namespace for a backend name: ``numpy`` (default), ``array_api_strict``, ``cupy``, ``torch``.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` naming the missing
    package (and how to install it) or the missing GPU.

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    if name is None or name == "numpy":
        return _np
    if name == "array_api_strict":
        try:
            import array_api_strict
        except ImportError as e:
            raise RuntimeError(f"backend 'array_api_strict' needs the package array-api-strict: "
                               f"{_INSTALL_HINT['array_api_strict']}") from e
        return array_api_strict
    if name == "cupy":
        ok, reason = cuda_available()
        if not ok:
            raise RuntimeError(f"backend 'cupy' is unavailable: {reason}")
        try:
            import array_api_compat.cupy as cxp
        except ImportError as e:
            raise RuntimeError(f"backend 'cupy' needs array-api-compat: {_INSTALL_HINT['cupy']}") from e
        return cxp
    if name == "torch":
        try:
            import array_api_compat.torch as txp
        except ImportError as e:
            raise RuntimeError(f"backend 'torch' needs torch and array-api-compat: "
                               f"{_INSTALL_HINT['torch']}") from e
        return txp
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def backend_name(xp):
    """Short name of a namespace: 'numpy', 'array_api_strict', 'cupy' or 'torch'.

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    n = xp.__name__
    for b in BACKENDS:
        if n == b or n.endswith("." + b):
            return b
    return n


def to_numpy(x):
    """Host NumPy copy of an array from any backend (scalars pass through ``numpy.asarray``).

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    if isinstance(x, _np.ndarray):
        return x
    mod = type(x).__module__.split(".")[0]
    if mod == "cupy":
        return x.get()
    if mod == "torch":
        return x.detach().cpu().numpy()
    if mod == "array_api_strict":
        return _np.from_dlpack(x)
    return _np.asarray(x)


def dtype_of(xp, dtype):
    """Resolve 'float32'/'float64' (or a dtype object) in namespace ``xp``.

    Dtype objects pass through, except the half-precision floats (``TypeError``:
    :mod:`refimpl.validation` refuses float16 everywhere)."""
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"unsupported dtype {dtype!r}; use 'float32' or 'float64'")
        return getattr(xp, dtype)
    if str(dtype).rsplit(".", 1)[-1].strip("'>") in ("float16", "bfloat16"):
        raise TypeError(f"dtype {dtype} is refused; use float32 or float64")
    return dtype


def from_host(a, xp, dtype=None, device=None):
    """Move a host NumPy array (or scalar) to ``xp`` with the given dtype and device.

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    dt = None if dtype is None else dtype_of(xp, dtype)
    if xp is _np:
        return _np.asarray(a, dtype=dt)
    a = _np.ascontiguousarray(a)
    if device is None:
        return xp.asarray(a, dtype=dt)
    return xp.asarray(a, dtype=dt, device=device)


def device_of(x):
    """Array API device of ``x`` (``None`` for host NumPy).

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    return getattr(x, "device", None)


def synchronize(xp):
    """Wait for the device of namespace ``xp`` to finish queued work (a no-op on the CPU).

    Timing code calls this before reading the clock, since CuPy launches kernels
    asynchronously.

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    if backend_name(xp) == "cupy":
        import cupy
        cupy.cuda.Device().synchronize()


def scalar(x):
    """Python float of a one-element array (one host round trip); ``ValueError`` otherwise.

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    a = to_numpy(x)
    if getattr(a, "size", 1) != 1:
        raise ValueError(f"x must hold exactly one element, got shape {tuple(a.shape)}")
    return float(a.reshape(()) if hasattr(a, "reshape") else a)


def all_finite(x):
    """True when every element of ``x`` is finite (always for integer and bool arrays).

    Moves or describes arrays: no finiteness check (module docstring; dtypes by
    :mod:`refimpl.validation`).
    """
    if not (hasattr(x, "dtype") and hasattr(x, "shape")):
        raise TypeError(f"x must be an array, got {type(x).__name__}")
    xp = namespace(x)
    if xp.isdtype(x.dtype, ("integral", "bool")):
        return True
    return bool(xp.all(xp.isfinite(x)))
