"""The two regularisers of smoothed OT as objects: :data:`KL` and :data:`L2`.

Paper: "Solving Approximate Wasserstein GANs to Stationarity" (Sanjabi et al.), Sec. 3
(eq. 6, the regulariser ``I``) and Lemma 4.1 (eqs. 11-12, the dual and its pseudo-plan);
notation of :mod:`refimpl.ot` (``V_ij = phi_i - psi_j - C_ij``, weights ``a``, ``b``).

=====  ===============================  ======================  ===========================
reg    ``I(P)``                         density ``M(V)``        dual penalty
=====  ===============================  ======================  ===========================
KL     ``sum P log(P / (a b^T))``       ``exp(V/lam - 1)``      ``lam sum P``
L2     ``0.5 sum P^2 / (a b^T)``        ``V_+ / lam``           ``0.5 sum P V_+``
=====  ===============================  ======================  ===========================

with ``P = a b^T M(V)`` and the dual ``F = <a, phi> - <b, psi> - penalty`` (both forms equal
``lam`` times the convex conjugate of ``I`` at ``V/lam``, summed under ``a b^T``). As in POT's
``ot.smooth`` (``NegEntropy``, ``SquaredL2``), each regulariser is one object holding its
formulas, so the solvers (:mod:`refimpl.ot`, :mod:`refimpl.ot_solver`, :mod:`refimpl.swgan`)
have no branch on a regulariser's name. The methods compute on arrays already validated
(by the public functions that take ``reg``, :mod:`refimpl.validation`);
:func:`get_regularizer` is the check of a ``reg`` argument.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

from . import validation as checks
from .backend import namespace

__all__ = ["Regularizer", "KL", "L2", "REGULARIZERS", "get_regularizer"]


class Regularizer(ABC):
    """A regulariser ``I`` of eq. 6 (module docstring): its name, density, dual penalty, ``I(P)``."""
    name = ""
    #: the default iteration budget of :func:`refimpl.ot.solve_regularized`
    default_max_iter = 0

    def __repr__(self):
        return f"refimpl.regularizers.{self.name.upper()}"

    @abstractmethod
    def density(self, V, lam):
        """``M(V)`` (same shape as ``V``) at ``lam > 0``."""

    @abstractmethod
    def uniform_plan(self, V, lam):
        """The pseudo-plan of uniform weights, ``M(V) / (M N)`` for ``V`` (M, N)."""

    @abstractmethod
    def penalty(self, P, V, lam):
        """The dual's penalty term (0-d) from the pseudo-plan ``P`` and ``V``."""

    @abstractmethod
    def divergence(self, plan, a, b):
        """``I(plan)`` (0-d) against ``a b^T``; ``plan`` (M, N) >= 0, ``a`` (M,), ``b`` (N,) > 0."""

    @abstractmethod
    def plan(self, X, a, b, lam):
        """The plan from a solver state's matrix ``X`` (:mod:`refimpl.ot_solver`: the plan itself
        for KL, ``V_+`` for L2)."""

    def check_finite(self, out, lam):
        """``out`` unchanged, or ``ValueError`` naming ``lam`` where the density overflowed."""
        return out


class _KL(Regularizer):
    name = "kl"
    default_max_iter = 10_000

    def density(self, V, lam):
        return namespace(V).exp(V / lam - 1.0)

    def uniform_plan(self, V, lam):
        M, N = V.shape
        return namespace(V).exp(V / lam - 1.0) / (M * N)

    def penalty(self, P, V, lam):
        return lam * namespace(P).sum(P)

    def divergence(self, plan, a, b):
        xp = namespace(plan)
        R = plan / (a[:, None] * b[None, :])
        pos = plan > 0
        return xp.sum(xp.where(pos, plan * xp.log(xp.where(pos, R, xp.ones_like(R))), xp.zeros_like(R)))

    def plan(self, X, a, b, lam):
        return X

    def check_finite(self, out, lam):
        xp = namespace(out)
        if not bool(xp.all(xp.isfinite(out))):
            raise ValueError(f"lam={lam:g} is too small for these potentials in {checks.dtype_name(out.dtype)}: "
                             f"exp((phi_i - psi_j - C_ij)/lam) overflows (beyond ~"
                             f"{math.log(xp.finfo(out.dtype).max):.0f} lam); use float64, a larger lam, or "
                             f"potentials with smaller phi_i - psi_j - C_ij")
        return out


class _L2(Regularizer):
    name = "l2"
    default_max_iter = 500

    def density(self, V, lam):
        return namespace(V).clip(V, min=0.0) / lam

    def uniform_plan(self, V, lam):
        M, N = V.shape
        return namespace(V).clip(V, min=0.0) * (1.0 / (lam * M * N))

    def penalty(self, P, V, lam):
        xp = namespace(P)
        return 0.5 * xp.sum(P * xp.clip(V, min=0.0))

    def divergence(self, plan, a, b):
        return 0.5 * namespace(plan).sum(plan * (plan / (a[:, None] * b[None, :])))

    def plan(self, X, a, b, lam):
        return (a / lam)[:, None] * X * b[None, :]


#: the entropic (Kullback-Leibler) regulariser
KL = _KL()
#: the quadratic regulariser
L2 = _L2()
#: name -> regulariser
REGULARIZERS = {r.name: r for r in (KL, L2)}


@checks.checked()
def get_regularizer(reg):
    """The regulariser ``reg``: a :class:`Regularizer`, or its name ``"kl"`` / ``"l2"`` in any case.

    Raises ``TypeError`` for another type and ``ValueError`` for another name, each naming
    ``reg``.
    """
    if isinstance(reg, Regularizer):
        return reg
    if not isinstance(reg, str):
        raise TypeError(f"reg must be a string, one of {', '.join(map(repr, REGULARIZERS))}, or a "
                        f"refimpl.regularizers.Regularizer; got {type(reg).__name__}")
    return REGULARIZERS[checks.choice(reg.lower(), "reg", tuple(REGULARIZERS))]
