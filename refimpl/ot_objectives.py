"""The regularised-OT objectives at given potentials: density ratio and plan (eq. 11), the dual
(Lemma 4.1, eq. 12) with its gradient, the regulariser and primal (eq. 6), and the eq. 15
termination statistic. Notation and conventions: :mod:`refimpl.ot`. Re-exported by :mod:`refimpl.ot`.
"""
from __future__ import annotations

from . import validation as checks, ot_validation as chk

__all__ = ["density_ratio", "plan_from_potentials", "dual_objective", "regularizer", "primal_objective",
           "termination_statistic"]

@checks.checked(rules=chk.OT_RULES)
def density_ratio(phi, psi, C, lam, reg):
    """Density ratio ``m_ij = P_ij / (a_i b_j) = M(V_ij)`` of Lemma 4.1.

    ``M(v) = exp(v/lam - 1)`` (KL) or ``v_+/lam`` (L2), ``V_ij = phi_i - psi_j - C_ij``;
    ``phi`` (M,), ``psi`` (N,), ``C`` (M, N). Returns an (M, N) array on the inputs' device.
    Inputs: as in :func:`dual_objective`.
    """
    xp, C, lam, reg, _, _, phi, psi = chk.problem(C, lam, reg, None, None, phi, psi)
    return reg.check_finite(reg.density(phi[:, None] - psi[None, :] - C, lam), lam)


@checks.checked(rules=chk.OT_RULES)
def plan_from_potentials(phi, psi, C, lam, reg, a=None, b=None):
    """Pseudo-plan ``P_ij = a_i b_j M(phi_i - psi_j - C_ij)`` (Lemma 4.1, eq. 11).

    Parameters
    ----------
    phi, psi : arrays (M,), (N,)
        Any potentials; ``P`` is a transport plan only at the optimum.
    C : array (M, N)
        Costs. ``lam`` > 0, ``reg`` in {"kl", "l2"}; ``a`` (M,), ``b`` (N,) default uniform.

    Returns
    -------
    P : array (M, N)

    Inputs: as in :func:`dual_objective`.
    """
    xp, C, lam, reg, a, b, phi, psi = chk.problem(C, lam, reg, a, b, phi, psi)
    return reg.check_finite(a[:, None] * b[None, :] * reg.density(phi[:, None] - psi[None, :] - C, lam), lam)


def _dual_objective(phi, psi, C, lam, reg, a, b, xp):
    """:func:`dual_objective` without validation; ``a = b = None`` means uniform (no new arrays)."""
    V = phi[:, None] - psi[None, :] - C                                      # (M, N)
    m = reg.density(V, lam)
    if a is None:
        M, N = C.shape
        P = m / (M * N)
        lin = xp.mean(phi) - xp.mean(psi)
        ga, gb = 1.0 / M, 1.0 / N
    else:
        P = a[:, None] * b[None, :] * m
        lin = xp.sum(a * phi) - xp.sum(b * psi)
        ga, gb = a, b
    value = lin - reg.penalty(P, V, lam)
    return value, ga - xp.sum(P, axis=1), xp.sum(P, axis=0) - gb


@checks.checked(_dual_objective, rules=chk.OT_RULES)
def dual_objective(phi, psi, C, lam, reg, a=None, b=None):
    """Dual objective ``F(phi, psi)`` of Lemma 4.1 (eq. 12, weighted) and its gradient.

    KL: ``F = <a,phi> - <b,psi> - (lam/e) sum_ij a_i b_j exp(V_ij/lam) = <a,phi> - <b,psi> - lam sum P``;
    L2: ``F = <a,phi> - <b,psi> - sum_ij a_i b_j (V_ij)_+^2/(2 lam) = <a,phi> - <b,psi> - sum P V / 2``;
    ``V_ij = phi_i - psi_j - C_ij``, ``P`` the pseudo-plan (eq. 11). ``F`` is concave and
    is to be *maximised*; its maximum is ``d_{c,lam}``.

    Parameters
    ----------
    phi : array (M,)
    psi : array (N,)
    C : array (M, N)
    lam : float > 0
    reg : {"kl", "l2"}
    a, b : arrays (M,), (N,), optional (uniform)

    Returns
    -------
    value : 0-d array
    dphi : array (M,)
        ``dF/dphi_i = a_i - sum_j P_ij`` (Sec. 4.2).
    dpsi : array (N,)
        ``dF/dpsi_j = sum_i P_ij - b_j``.

    Raises
    ------
    TypeError, ValueError
        By the input rules below.

    For KL, ``exp`` overflows once ``V/lam`` exceeds ~709 (float64; ~88 in float32): the public
    functions of this module that evaluate it (this one, :func:`density_ratio`,
    :func:`plan_from_potentials`, :func:`termination_statistic`) then raise ``ValueError``
    naming ``lam`` instead of returning ``inf``.
    """
    xp, C, lam, reg, a, b, phi, psi = chk.problem(C, lam, reg, a, b, phi, psi)
    value, dphi, dpsi = _dual_objective(phi, psi, C, lam, reg, a, b, xp)
    return reg.check_finite(value, lam), dphi, dpsi



@checks.checked(rules=chk.OT_RULES)
def regularizer(plan, reg, a=None, b=None):
    """``I(P)`` of Sec. 3: KL ``sum P log(P/(a b^T))`` (``0 log 0 = 0``) or L2 ``0.5 sum P^2/(a b^T)``.

    ``plan`` (M, N) nonnegative (any mass: the paper's ``I`` needs no normalisation);
    ``a``, ``b`` default uniform. Returns a 0-d array. Inputs: (``plan`` finite and >= 0; see :func:`dual_objective`).
    """
    xp, plan = chk.check_costs(plan, "plan")
    M, N = plan.shape
    reg = chk.check_reg(reg)
    a = None if a is None else chk.check_weights(a, M, xp, "a")
    b = None if b is None else chk.check_weights(b, N, xp, "b")
    plan, a, b = chk.promote(plan, a, b)
    a = chk.uniform(M, plan) if a is None else a
    b = chk.uniform(N, plan) if b is None else b
    return reg.divergence(plan, a, b)


@checks.checked(rules=chk.OT_RULES)
def primal_objective(plan, C, lam, reg, a=None, b=None):
    """Primal objective of eq. 6, ``<P, C> + lam I(P)`` (0-d array), for any plan ``P`` (M, N).

    Inputs: as in :func:`dual_objective`;
    ``plan`` finite, >= 0, of ``C``'s shape.
    """
    xp, C, lam, reg, a, b, _, _ = chk.problem(C, lam, reg, a, b)
    xp, plan = chk.check_costs(plan, "plan", xp=xp)
    if tuple(plan.shape) != tuple(C.shape):
        raise ValueError(f"plan must have the shape of C {tuple(C.shape)}, got {tuple(plan.shape)}")
    plan, C, a, b = checks.common_float(plan, C, a, b)
    return xp.sum(plan * C) + lam * reg.divergence(plan, a, b)


@checks.checked(rules=chk.OT_RULES)
def termination_statistic(phi, psi, C, lam, reg, a=None, b=None):
    """Termination statistic of eq. 15: the mean density ratio ``m`` (eq. 14-15).

    * ``C`` 2-D (M, N), ``phi`` (M,), ``psi`` (N,): the exact expectation under
      ``a x b``, ``sum_ij a_i b_j m_ij = sum P`` (equals 1 at the optimum).
    * ``C`` 1-D (S,), ``phi`` (S,), ``psi`` (S,): the values at S i.i.d. pairs
      ``(x_k, y_k)``, ``C[k] = c(x_k, y_k)``; returns ``(1/S) sum_k m(x_k, y_k)``
      (eq. 15; ``a``, ``b`` must be None).

    Near 1 is a necessary condition for optimality of ``(phi, psi)`` (Sec. 4.2).
    Returns a 0-d array. Inputs: as in
    :func:`dual_objective` (pairs: ``phi``, ``psi``, ``C`` of one shape (S,), no weights).
    """
    if checks.is_array(C) and C.ndim == 1:
        xp, C = chk.check_costs(C, "C", ndim=1)
        lam, reg = chk.check_lam(lam), chk.check_reg(reg)
        if a is not None or b is not None:
            raise ValueError("termination_statistic on pairs (1-D C) takes no weights a, b")
        phi = checks.array(phi, "phi", shape=tuple(C.shape), xp=xp)
        psi = checks.array(psi, "psi", shape=tuple(C.shape), xp=xp)
        phi, psi, C = checks.common_float(phi, psi, C)
        return reg.check_finite(xp.mean(reg.density(phi - psi - C, lam)), lam)
    xp, C, lam, reg, a, b, phi, psi = chk.problem(C, lam, reg, a, b, phi, psi)
    return reg.check_finite(xp.sum(a[:, None] * b[None, :] * reg.density(phi[:, None] - psi[None, :] - C, lam)),
                            lam)
