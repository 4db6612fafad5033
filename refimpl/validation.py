"""Input validation at the public API boundary: one policy for every public function.

The rules (stated once here, and written into every public docstring by :func:`checked`
as :data:`RULES_NOTE`):

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

Every public function that takes arrays or scalars is declared with :func:`checked`, which
writes the rules into its docstring (no docstring restates them). Functions called inside a
training step skip these checks on arrays that are already validated: where a hot path
needs a public function, that function is a thin checked layer over an unchecked core,
``f.unchecked``, which never validates (and so never synchronises a device). Methods too:
``net.forward.unchecked(params, x)`` is the core bound to ``net`` (:class:`CheckedMethod`),
``MLP.forward.unchecked`` the unbound one. A core is private to its module (a ``_`` function
or method); other modules reach it through ``.unchecked`` only, and no module imports
another's ``_`` names or calls another class's ``_`` methods. Modules of training-step
internals (``steps``, ``kernels``, ``flat``, ``graph``, ``swgan_steps``, ``ot_solver``,
``host_ot``) hold unchecked functions under plain names, and say so in their docstrings.
"""
from __future__ import annotations

import math
import numbers
import textwrap

from .backend import namespace
from .checked_method import BoundChecked, CheckedMethod  # noqa: F401 (re-exported)

_FLOAT_OK = ("float32", "float64")

#: the sentence :func:`checked` appends to a public docstring (the policy is this module's docstring)
RULES_NOTE = ("Input rules of :mod:`refimpl.validation`: arrays of one Array API namespace, float32 or "
              "float64 (integers and bools promoted to float64, float16 refused), finite, of the shapes "
              "above; scalars in their stated domains; ``TypeError``/``ValueError`` naming the argument.")
#: the phrase only :func:`checked` writes (lower case); a docstring that contains it restates the rules
RESTATED = "input rules of"


def checked(core=None, *, rules=None):
    """Declare the decorated public function a checked entry point, and write its input rules.

    The function validates its arguments once, at entry, by the rules of this module. With
    ``core`` it is a thin layer that then calls ``core`` with the same arguments: ``core`` never
    validates, and is ``f.unchecked``, what other modules' hot paths call. Without ``core`` the
    function validates in its own body (no hot path calls it).

    The rules are written here, once, into the docstring (as scipy's ``xp_capabilities`` writes
    its table): :data:`RULES_NOTE`, then ``rules`` (str: the function's own domain rules, e.g.
    the OT problem's) and, with a core, a line naming ``f.unchecked``. ``f.input_rules`` is the
    text written. Returns the function itself; a method (a function defined in a class body)
    with a core is returned as a :class:`CheckedMethod`, so that ``obj.f.unchecked`` is the core
    bound to ``obj``. Such a core is a function of the same arguments, ``self`` first: a
    module-level ``_`` function, or a ``_`` method defined earlier in the class body, which a
    subclass may override (``obj.f.unchecked`` is then the override, as ``self._core(...)``
    in the body finds it).

    Raises
    ------
    TypeError
        ``core`` given and not callable, or ``rules`` not a str.
    ValueError
        The docstring restates the rules (they are written by this decorator only).
    """
    if core is not None and not callable(core):
        raise TypeError(f"core must be callable, got {type(core).__name__}")
    if rules is not None and not isinstance(rules, str):
        raise TypeError(f"rules must be a str, got {type(rules).__name__}")

    def declare(f):
        doc = f.__doc__ or ""
        if RESTATED in doc.lower():
            raise ValueError(f"{f.__qualname__}'s docstring restates the input rules; checked writes them")
        notes = [RULES_NOTE] + ([" ".join(rules.split())] if rules else [])
        method = core is not None and _in_class_body(f)
        if core is not None:
            f.unchecked = core
            notes.append(f"Unchecked core: ``{f.__name__}.unchecked`` ("
                         + ("bound to the instance; " if method else "")
                         + "the same arguments, validated by the caller).")
        body = [ln for ln in doc.splitlines()[1:] if ln.strip()]
        indent = " " * min((len(ln) - len(ln.lstrip()) for ln in body), default=0)
        f.input_rules = "\n".join(notes)
        f.__doc__ = doc.rstrip() + "\n\n" + "\n".join(
            textwrap.fill(n, 92, initial_indent=indent, subsequent_indent=indent) for n in notes) + "\n"
        return CheckedMethod(f, core) if method else f
    return declare


def _in_class_body(f):
    """``f`` was defined in a class body (``Owner.f``, not ``outer.<locals>.f`` or a module's ``f``)."""
    scope = f.__qualname__.split(".")[:-1]
    return bool(scope) and scope[-1] != "<locals>"


#: the sentence :func:`training_step` writes into a training step's docstring
STEP_NOTE = ("A training step (:mod:`refimpl.validation`): its arguments (the state from ``init_state``, a "
             "``numpy.random.Generator``, a data source, the step's own arrays) are not validated and only "
             "unchecked cores are called, so it makes no host round trip.")


def training_step(f):
    """Declare ``f`` a training step, which validates nothing, and write :data:`STEP_NOTE` into its
    docstring (the counterpart of :func:`checked`). Sets ``f.training_step = True``; returns ``f``.
    ``ValueError`` if the docstring already states the step policy."""
    doc = f.__doc__ or ""
    if "policy of :mod:`refimpl.validation`" in doc or "is not validated; it calls" in doc:
        raise ValueError(f"{f.__qualname__}'s docstring restates the training-step policy; training_step writes it")
    body = [ln for ln in doc.splitlines()[1:] if ln.strip()]
    indent = " " * min((len(ln) - len(ln.lstrip()) for ln in body), default=8)
    f.training_step = True
    f.__doc__ = doc.rstrip() + "\n\n" + textwrap.fill(STEP_NOTE, 92, initial_indent=indent,
                                                      subsequent_indent=indent) + "\n"
    return f


def dtype_name(dt):
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
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
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
        if dtype_name(dt) not in _FLOAT_OK:
            raise TypeError(f"{name} has dtype {dtype_name(dt)}; use float32 or float64 "
                            f"(half precision is refused: its resolution breaks the solvers' tolerances)")
        return x
    if xp.isdtype(dt, "integral") or xp.isdtype(dt, "bool"):
        return xp.astype(x, xp.float64)
    raise TypeError(f"{name} has dtype {dtype_name(dt)}; use a real float32 or float64 array")


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


# ----------------------------------------------------------------------------- added for issue 12 (modules)

def finite_all(arrays, names):
    """Raise ``ValueError`` naming the first non-finite array of ``arrays``.

    One reduction over all of them (one host round trip); only on failure is each
    array looked at again to name it. Empty arrays count as finite.
    """
    arrays = [a for a in arrays]
    if not arrays:
        return
    xp = namespace(*arrays)
    flags = [xp.all(xp.isfinite(a)) for a in arrays]
    if len(flags) == 1:
        ok = bool(flags[0])
    else:
        ok = bool(xp.all(xp.stack(flags)))
    if ok:
        return
    for a, n, f in zip(arrays, names, flags):
        if not bool(f):
            raise ValueError(f"{n} has non-finite entries (NaN or inf)")


def params(p, name, *, xp=None, shapes=None, dtype=None, finite=True):
    """Validate a parameter list ``[(W, b), ...]``; return it as a list of tuples.

    Parameters
    ----------
    p : list of (W, b)
    name : str
    shapes : list of ((fan_in, fan_out), (fan_out,)), optional
        Expected shapes per layer.
    dtype : dtype, optional
        Every leaf must have it (``TypeError`` otherwise); else all leaves share one
        float32/float64 dtype. Integer leaves are refused (parameters are never
        promoted: an optimiser would silently change their dtype).
    finite : bool
        One reduction over all leaves (one host round trip).
    """
    layout = getattr(p, "layout", None)                   # flat parameters: their layout is fixed when made
    if layout is not None and (shapes is None or [tuple(map(tuple, Wb)) for Wb in shapes] == layout) \
            and (dtype is None or p.buffer.dtype == dtype) and (xp is None or namespace(p.buffer) is xp):
        if finite and not p.finite:
            try:
                finite_all([p.buffer], [name])
            except ValueError:
                finite_all([a for Wb in p for a in Wb], [f"{name}[{l}][{k}]" for l, Wb in enumerate(p)
                                                           for k in range(len(Wb))])
            p.finite = True                               # known finite until the next unchecked update
        return list(p)
    if not isinstance(p, (list, tuple)) or (shapes is None and len(p) == 0):
        raise TypeError(f"{name} must be a list of (W, b) pairs, got {type(p).__name__}")
    if shapes is not None and len(p) != len(shapes):
        raise ValueError(f"{name} has {len(p)} layers, expected {len(shapes)}")
    out, leaves, names = [], [], []
    for l, Wb in enumerate(p):
        if not isinstance(Wb, (list, tuple)) or len(Wb) != 2:
            raise TypeError(f"{name}[{l}] must be a (W, b) pair, got {type(Wb).__name__}")
        pair = []
        for k, a in enumerate(Wb):
            nm = f"{name}[{l}][{k}]"
            if not is_array(a):
                raise TypeError(f"{nm} must be an array, got {type(a).__name__}")
            ns = namespace(a)
            if xp is None:
                xp = ns
            elif ns is not xp:
                raise TypeError(f"{nm} lives in {ns.__name__}, the other inputs in {xp.__name__}")
            if not (xp.isdtype(a.dtype, "real floating") and dtype_name(a.dtype) in _FLOAT_OK):
                raise TypeError(f"{nm} has dtype {dtype_name(a.dtype)}; parameters must be float32 or float64")
            if dtype is None:
                dtype = a.dtype
            elif a.dtype != dtype:
                raise TypeError(f"{nm} has dtype {dtype_name(a.dtype)}, expected {dtype_name(dtype)}")
            if shapes is not None and tuple(a.shape) != tuple(shapes[l][k]):
                raise ValueError(f"{nm} must have shape {tuple(shapes[l][k])}, got {tuple(a.shape)}")
            pair.append(a)
            leaves.append(a)
            names.append(nm)
        out.append(tuple(pair))
    if finite:
        finite_all(leaves, names)
    return out


def boolean(v, name):
    """A Python/NumPy bool; ``TypeError`` otherwise (0/1 are not accepted)."""
    if isinstance(v, bool) or type(v).__name__ in ("bool_", "bool"):   # numpy.bool is named "bool" in NumPy 2
        return bool(v)
    raise TypeError(f"{name} must be True or False, got {type(v).__name__} {v!r}")


def random_generator(rng, name="rng"):
    """``rng`` itself if it is a ``numpy.random.Generator``; ``TypeError`` naming ``name`` otherwise."""
    import numpy as np
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def network(net, name):
    """``net`` itself if it is a network of :data:`refimpl.architectures.NETWORKS` with a scalar
    output (a critic or potential); ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    from .architectures import NETWORKS
    if not isinstance(net, NETWORKS):
        raise TypeError(f"{name} must be a refimpl.nn.MLP or a refimpl.cnn.flat.FlatIO, got {type(net).__name__}")
    if net.sizes[-1] != 1:
        raise ValueError(f"{name} must have a scalar output, it has {net.sizes[-1]}")
    return net


def generator_inputs(gen, gparams, z, *nets):
    """The validated ``(gparams, z)`` of a generator-gradient function: ``gen`` a network of
    :data:`refimpl.architectures.NETWORKS` whose output size every network of ``nets`` takes,
    ``gparams`` of its layout, ``z`` (B >= 1, latent) finite."""
    from .architectures import NETWORKS
    if not isinstance(gen, NETWORKS):
        raise TypeError(f"gen must be a refimpl.nn.MLP or a refimpl.cnn.flat.FlatIO, got {type(gen).__name__}")
    for net in nets:
        if gen.sizes[-1] != net.sizes[0]:
            raise ValueError(f"gen outputs {gen.sizes[-1]} coordinates but the networks take "
                             f"{', '.join(str(n.sizes[0]) for n in nets)}")
    gparams, z = gen.validate(gparams, ("z", z, (None, gen.sizes[0])), pname="gparams")
    if z.shape[0] == 0:
        raise ValueError(f"z must be non-empty, got shape {tuple(z.shape)}")
    return gparams, z
