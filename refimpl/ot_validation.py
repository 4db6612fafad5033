"""Input checks of the regularised-OT functions (:mod:`refimpl.ot`, :mod:`refimpl.ot_objectives`),
at their public boundary only, by the rules of :mod:`refimpl.validation`; and the cost and
regulariser names they accept.
"""
from __future__ import annotations

import math

from . import validation as checks
from .backend import namespace
from .regularizers import REGULARIZERS, get_regularizer

COSTS = ("l1", "euclidean", "sqeuclidean")
REGS = tuple(REGULARIZERS)


check_reg = get_regularizer


def check_cost_name(cost):
    return checks.choice(cost, "cost", COSTS)


def check_lam(lam):
    return checks.real(lam, "lam", gt=0.0)


def check_costs(C, name="C", ndim=2, xp=None):
    """``C`` by the input rules, and nonnegative (one more reduction)."""
    C = checks.array(C, name, ndim=ndim, xp=xp)
    xp = namespace(C)
    if not bool(xp.all(C >= 0)):
        raise ValueError(f"{name} has negative entries; it must be >= 0")
    return xp, C


def promote(*arrays):
    """The dtype rule for mixed float32/float64 inputs of one call (``None`` entries pass)."""
    present = [x for x in arrays if x is not None]
    it = iter(checks.common_float(*present))
    return tuple(None if x is None else next(it) for x in arrays)


def uniform(n, like):
    """Uniform weights ``1/n`` (n,) in ``like``'s namespace, dtype and device."""
    return namespace(like).full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


def check_weights(w, n, xp, name):
    """Weights ``w`` (n,): finite, > 0, summing to 1 within sqrt(eps) of *their own* dtype.

    The mass is checked before any promotion: float32 weights summing to 1 in float32
    are not refused because another argument of the call promotes them to float64.
    """
    w = checks.array(w, name, shape=(n,), xp=xp)
    if not bool(xp.all(w > 0)):
        raise ValueError(f"{name} must be > 0 (negative or zero weights; drop zero-weight points)")
    s = float(xp.sum(w))
    if abs(s - 1.0) > math.sqrt(float(xp.finfo(w.dtype).eps)):
        raise ValueError(f"{name} must sum to 1, got sum {s!r}")
    return w


def problem(C, lam, reg, a, b, phi=None, psi=None):
    """Validate one problem (costs, lam, reg, weights, potentials); promote; uniform weights on C's device."""
    xp, C = check_costs(C)
    M, N = C.shape
    lam, reg = check_lam(lam), check_reg(reg)
    a = None if a is None else check_weights(a, M, xp, "a")
    b = None if b is None else check_weights(b, N, xp, "b")
    if phi is not None:
        phi = checks.array(phi, "phi", shape=(M,), xp=xp)
        psi = checks.array(psi, "psi", shape=(N,), xp=xp)
    C, a, b, phi, psi = promote(C, a, b, phi, psi)
    a = uniform(M, C) if a is None else a
    b = uniform(N, C) if b is None else b
    return xp, C, lam, reg, a, b, phi, psi


#: the OT problem's own input rules, written by :func:`refimpl.validation.checked` into the public docstrings
OT_RULES = """OT inputs: costs >= 0, weights > 0 summing to 1, ``lam`` finite > 0, ``reg`` in {"kl", "l2"}
    (any case) or a regulariser object of :mod:`refimpl.regularizers`; scalars may be Python or NumPy
    numbers (NumPy bools for ``anneal``, 0-d NumPy arrays for reals), converted to Python numbers at entry."""
