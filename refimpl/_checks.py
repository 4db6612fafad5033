"""Input validation at the public API boundary: one policy for every public function.

The rules (stated once here; every public docstring refers to them as "the input
rules of :mod:`refimpl._checks`"):

* **Arrays** must be arrays of an Array API namespace (NumPy, CuPy, array_api_strict,
  ...). Lists, tuples and Python scalars where an array is expected raise
  ``TypeError`` naming the argument; convert them with ``xp.asarray`` first, so the
  namespace and device are the caller's choice, never a silent default.
* **Dtypes.** float32 and float64 are computed in. Integer and bool arrays are
  promoted to float64 (exact up to 2**53). float16, bfloat16 and complex arrays raise
  ``TypeError``. Mixed float32/float64 inputs of one call are promoted to float64 (the
  Array API's promotion rule), except where parameters fix the dtype (an MLP's
  inputs must match its parameters' dtype).
* **Finiteness.** Every floating input is checked once, at entry, with one reduction
  per array (``all(isfinite(x))``, one host round trip); NaN or inf raises
  ``ValueError`` naming the argument.
* **Scalars** have a documented domain checked at entry (:func:`real`,
  :func:`integer`); bool is never a number; NaN and inf are refused unless the
  domain says otherwise.

Functions called inside a training step skip these checks on arrays that are
already validated: public functions validate, then call private ``_``-prefixed
implementations, which never validate (and so never synchronise a device).
"""
from __future__ import annotations

import math
import numbers

from .backend import namespace

_FLOAT_OK = ("float32", "float64")


def _dtype_name(dt):
    return str(dt).rsplit(".", 1)[-1].strip("'>")


def is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (numbers.Number, str, bytes))


def array(x, name, *, ndim=None, shape=None, nonempty=True, finite=True, xp=None):
    """Validate one array argument; return it as float32/float64 (integers and bool promoted to float64).

    Parameters
    ----------
    x : array
    name : str
        The argument's name, used in every error message.
    ndim : int or tuple of int, optional
        Allowed number(s) of dimensions.
    shape : tuple, optional
        Expected shape; ``None`` entries match any size.
    nonempty : bool
        Refuse arrays with a zero-length axis.
    finite : bool
        Refuse NaN and inf (one reduction, one host round trip).
    xp : namespace, optional
        When given, ``x`` must live in it (``TypeError`` otherwise).

    Raises
    ------
    TypeError
        Not an array, another namespace than ``xp``, or a refused dtype.
    ValueError
        Wrong ``ndim``/``shape``, empty, or non-finite entries.
    """
    if not is_array(x):
        raise TypeError(f"{name} must be an array (numpy, cupy, array_api_strict, ...), got {type(x).__name__}; "
                        f"convert it with xp.asarray first")
    ns = namespace(x)
    if xp is not None and ns is not xp:
        raise TypeError(f"{name} lives in {ns.__name__}, the other inputs in {xp.__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {tuple(x.shape)}")
    if shape is not None:
        if len(shape) != x.ndim or any(s is not None and s != t for s, t in zip(shape, x.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if nonempty and any(s == 0 for s in x.shape):
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    x = floating(x, name, ns)
    if finite and x.size != 0 and not bool(ns.all(ns.isfinite(x))):
        raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    return x


def floating(x, name, xp=None):
    """``x`` in float32/float64 by the dtype rule: integers and bool -> float64; others -> ``TypeError``."""
    xp = xp or namespace(x)
    dt = x.dtype
    if xp.isdtype(dt, "real floating"):
        if _dtype_name(dt) not in _FLOAT_OK:
            raise TypeError(f"{name} has dtype {_dtype_name(dt)}; use float32 or float64 "
                            f"(half precision is refused: its resolution breaks the solvers' tolerances)")
        return x
    if xp.isdtype(dt, "integral") or xp.isdtype(dt, "bool"):
        return xp.astype(x, xp.float64)
    raise TypeError(f"{name} has dtype {_dtype_name(dt)}; use a real float32 or float64 array")


def common_float(*arrays):
    """Promote already-floating arrays of one call to their common dtype (float64 if any is float64)."""
    xp = namespace(*arrays)
    if any(a.dtype == xp.float64 for a in arrays):
        return tuple(a if a.dtype == xp.float64 else xp.astype(a, xp.float64) for a in arrays)
    return arrays


def real(v, name, *, gt=None, ge=None, lt=None, le=None, allow_inf=False):
    """A real scalar (Python number, NumPy scalar or 0-d array) in its domain; returns a Python float.

    Raises ``TypeError`` for non-numbers and bool, ``ValueError`` for NaN, inf (unless
    ``allow_inf``) or a value outside ``(gt, lt)`` / ``[ge, le]``.
    """
    if isinstance(v, bool) or not (isinstance(v, numbers.Real) or getattr(v, "shape", None) == ()):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    f = float(v)
    if math.isnan(f) or (math.isinf(f) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {f}")
    _domain(f, name, gt, ge, lt, le)
    return f


def integer(v, name, *, ge=None, le=None):
    """An integer scalar (``int`` or NumPy integer; not bool, not 2.0) in ``[ge, le]``; returns ``int``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__} {v!r}")
    i = int(v)
    _domain(i, name, None, ge, None, le)
    return i


def choice(v, name, options):
    """``v`` if it is one of ``options``, else ``ValueError`` listing them."""
    if v not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {v!r}")
    return v


def _domain(f, name, gt, ge, lt, le):
    if gt is not None and not f > gt:
        raise ValueError(f"{name} must be > {gt}, got {f}")
    if ge is not None and not f >= ge:
        raise ValueError(f"{name} must be >= {ge}, got {f}")
    if lt is not None and not f < lt:
        raise ValueError(f"{name} must be < {lt}, got {f}")
    if le is not None and not f <= le:
        raise ValueError(f"{name} must be <= {le}, got {f}")
