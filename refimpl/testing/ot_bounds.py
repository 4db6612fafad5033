"""Predicates for the regularised-OT statements of SWGAN (Sanjabi et al.): each returns the
measured quantity and its bound (:class:`refimpl.testing.Bound`), with a slack derived from
float64 resolution and the solver's certified suboptimality."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as _np

from ..backend import to_numpy

from .common import EPS64, Bound, regularizer_host, import_pot, density_ratio_host, solve_host, weights_host, dual_resolution, ratio_resolution

__all__ = ["SmoothingBounds", "RatioError", "Conjugacy", "DualStability", "smoothing_bounds", "plan_stability",
           "feasible_rounding", "solver_suboptimality", "ratio_error", "gradient_error", "dual_gradient_norm",
           "composed_plan", "information_inequality", "conjugacy_residuals", "dual_stability"]


class SmoothingBounds(NamedTuple):
    d_c: float            # exact OT cost (POT emd2)
    d_c_lam: float        # regularised OT value (solve_regularized)
    I_emd: float          # I of POT's optimal plan (>= I*)
    lower: Bound          # d_c <= d_{c,lam}
    upper: Bound          # d_{c,lam} <= d_c + lam I_emd  (Lemma 3.2, with I* <= I_emd)
    cap: Bound            # I_emd <= log K (KL) or K/2 (L2), uniform weights (Cor. 3.2.1); nan bound otherwise
    floor: Bound          # L2: d_c + lam/2 <= d_{c,lam}; KL: trivial (value = bound = 0)


def smoothing_bounds(C, lam, reg="kl", a=None, b=None, tol=1e-10):
    """SWGAN Lemma 3.2 and Cor. 3.2.1 for one problem: ``d_c <= d_{c,lam} <= d_c + lam I*``.

    ``d_c`` is POT's exact ``emd`` cost; ``d_{c,lam}`` the dual value of
    :func:`refimpl.ot.solve_regularized` (certified within :func:`solver_suboptimality`); ``I*`` is replaced by ``I(pi_emd) >= I*`` (what
    Cor. 3.2.1 bounds: ``log K`` for KL, ``K/2`` for L2, ``K = min(M, N)``, uniform weights).
    L2 also has ``I(pi) >= 1/2`` for every feasible plan (Cauchy-Schwarz), hence the floor
    ``d_c + lam/2 <= d_{c,lam}``. Slacks: the solver's certified suboptimality plus float64 resolution.

    Parameters
    ----------
    C : array (M, N), any backend; a, b : weights or None (uniform); lam > 0; reg in {"kl", "l2"}

    Returns
    -------
    SmoothingBounds
    """
    ot = import_pot()
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = weights_host(a, M), weights_host(b, N)
    res = solve_host(C, lam, reg, a, b, tol)
    dcl = float(to_numpy(res.dual))
    es = solver_suboptimality(res, Ch, lam, reg, ah, bh)      # d_{c,lam} lies in [dcl, dcl + es]
    P0 = ot.emd(ah, bh, Ch, numItermax=max(10**6, 50 * M * N))
    dc = float(_np.sum(P0 * Ch))
    Iemd = regularizer_host(P0, ah, bh, reg)
    K = min(M, N)
    cmax = float(Ch.max()) if Ch.size else 0.0
    slack = es + 8 * (M * N) * EPS64 * (cmax + abs(dcl) + lam * Iemd)
    uniform = _np.allclose(ah, 1.0 / M, rtol=0, atol=1e-15) and _np.allclose(bh, 1.0 / N, rtol=0, atol=1e-15)
    capv = (math.log(K) if reg == "kl" else K / 2) if uniform else math.nan
    return SmoothingBounds(dc, dcl, Iemd, Bound(dc, dcl, slack), Bound(dcl, dc + lam * Iemd, slack),
                           Bound(Iemd, capv, 8 * M * N * EPS64 * (1 + Iemd)),
                           Bound(dc + lam / 2, dcl, slack) if reg == "l2" else Bound(0.0, 0.0))


def _plan_error(res, C, lam, reg, a=None, b=None):
    """Bounds on ``(||P_res - P*||_1, ||P_res - P*||_2)`` from the solver's certified
    suboptimality ``es`` (Thm 5.1 applied to the solver's own potentials):
    ``sum a b |m - m*| <= sqrt(coef es)`` (Cauchy-Schwarz, weights summing to 1) and
    ``||P - P*||_2 <= sqrt(max a b) sqrt(coef es)``."""
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = weights_host(a, M), weights_host(b, N)
    es = solver_suboptimality(res, Ch, lam, reg, ah, bh)
    m = density_ratio_host(_np.asarray(to_numpy(res.phi), float), _np.asarray(to_numpy(res.psi), float), Ch, lam, reg)
    coef = 2.0 / lam if reg == "l2" else 4.0 * (float(m.max()) + 1.0) / lam
    e = math.sqrt(coef * es)
    return e, math.sqrt(float(ah.max() * bh.max())) * e


def plan_stability(C1, C2, lam, reg, tol=1e-10):
    """SWGAN Thm 3.3 / D.1 in the cost form of ``conventions.md`` (uniform weights).

    KL: ``||P1 - P2||_1 <= ||C1 - C2||_inf / lam``;
    L2: ``||P1 - P2||_2 <= ||C1 - C2||_2 / (lam M N)``. Plans from
    :func:`refimpl.ot.solve_regularized`; the slack is each plan's certified distance to the
    exact plan (from :func:`solver_suboptimality`) plus float64 resolution.

    Returns
    -------
    Bound
    """
    r1, r2 = solve_host(C1, lam, reg, None, None, tol), solve_host(C2, lam, reg, None, None, tol)
    P1, P2 = (_np.asarray(to_numpy(r.plan), float) for r in (r1, r2))
    dC = _np.asarray(to_numpy(C1), float) - _np.asarray(to_numpy(C2), float)
    M, N = dC.shape
    slack = sum(_plan_error(r, C, lam, reg)[0 if reg == "kl" else 1] for r, C in ((r1, C1), (r2, C2))) \
        + 8 * M * N * EPS64
    if reg == "kl":
        return Bound(float(_np.abs(P1 - P2).sum()), float(_np.abs(dC).max()) / lam, slack)
    return Bound(float(_np.sqrt(((P1 - P2) ** 2).sum())), float(_np.sqrt((dC ** 2).sum())) / (lam * M * N), slack)


def feasible_rounding(P, a, b):
    """Round a nonnegative (pseudo-)plan onto ``Pi(a, b)`` (Altschuler, Weed, Rigollet 2017, Alg. 2):
    scale rows down to at most ``a``, then columns down to at most ``b``, then add
    ``e_r e_c^T / |e_r|_1`` for the remaining deficits. Host (M, N)."""
    P = _np.array(to_numpy(P), dtype=float)
    a, b = _np.asarray(a, float), _np.asarray(b, float)
    r = P.sum(1)
    P *= _np.where(r > a, a / _np.where(r > 0, r, 1.0), 1.0)[:, None]
    c = P.sum(0)
    P *= _np.where(c > b, b / _np.where(c > 0, c, 1.0), 1.0)[None, :]
    er, ec = _np.maximum(a - P.sum(1), 0.0), _np.maximum(b - P.sum(0), 0.0)
    if er.sum() > 0:
        P += _np.outer(er, ec) / er.sum()
    return P


def solver_suboptimality(res, C, lam, reg, a=None, b=None):
    """A certified upper bound on ``F* - F(res.phi, res.psi)`` for a result of
    :func:`refimpl.ot.solve_regularized`: the primal value of the rounded feasible plan
    (:func:`feasible_rounding`, ``>= F*`` by weak duality) minus the dual value, plus the
    float64 resolution of both. Host float."""
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = weights_host(a, M), weights_host(b, N)
    P = feasible_rounding(res.plan, ah, bh)
    primal = float(_np.sum(P * Ch)) + lam * regularizer_host(P, ah, bh, reg)
    F = float(to_numpy(res.dual))
    res_f = dual_resolution(res.phi, res.psi, Ch, lam, reg, ah, bh)
    return max(primal - F, 0.0) + res_f + 4 * M * N * EPS64 * (abs(primal) + lam)


class RatioError(NamedTuple):
    eps: float           # F(solver) - F(phi, psi), clipped at 0 (the statement's eps up to the solver's)
    eps_slack: float     # float64 resolution of eps plus the solver's certified suboptimality
    ratio: Bound         # ||m - m*|| weighted form vs its bound (Thm 5.1, eq. 32 / 36)


def ratio_error(phi, psi, C, lam, reg, a=None, b=None, tol=1e-10):
    """SWGAN Thm 5.1 (Appendix F) at the level of density ratios, for given potentials.

    With ``eps = F* - F(phi, psi)`` and ``m``, ``m*`` the ratios of the pseudo-plans of
    ``(phi, psi)`` and of the optimum, the weighted forms (equal to the paper's with uniform
    weights, ``a_i b_j = 1/(M N)``):

    * L2 (eq. 32): ``sum a_i b_j (m - m*)^2 <= 2 eps / lam``;
    * KL (eq. 36 with its square root restored): ``sum a_i b_j (m - m*)^2 <= 4 m_max eps / lam``,
      ``m_max`` the largest entry of ``m`` and ``m*``.

    The :class:`Bound` compares the square roots; its slack is the float64 resolution of
    ``eps`` (two :func:`dual_resolution`) propagated through the square root, plus the
    resolution of ``m``.

    Returns
    -------
    RatioError
    """
    from ..ot import dual_objective
    res = solve_host(C, lam, reg, a, b, tol)
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    phs, pss = _np.asarray(to_numpy(res.phi), float), _np.asarray(to_numpy(res.psi), float)
    M, N = Ch.shape
    ah, bh = weights_host(a, M), weights_host(b, N)
    Fs = float(to_numpy(res.dual))
    F = float(to_numpy(dual_objective(phi, psi, C, lam, reg, a=a, b=b)[0]))
    dF = dual_resolution(ph, ps, Ch, lam, reg, ah, bh) + dual_resolution(phs, pss, Ch, lam, reg, ah, bh)
    es = solver_suboptimality(res, Ch, lam, reg, ah, bh)
    eps = max(Fs - F, 0.0)
    m, ms = density_ratio_host(ph, ps, Ch, lam, reg), density_ratio_host(phs, pss, Ch, lam, reg)
    w = ah[:, None] * bh[None, :]
    value = float(_np.sqrt(_np.sum(w * (m - ms) ** 2)))
    coef = 2.0 / lam if reg == "l2" else 4.0 * max(float(m.max()), float(ms.max())) / lam
    bound = math.sqrt(coef * eps)
    dm = ratio_resolution(ph, ps, Ch, lam, reg) + ratio_resolution(phs, pss, Ch, lam, reg)
    # the solver's optimum is es-suboptimal: eps is short by at most es and m* is off by at most
    # sqrt(coef es) (the theorem applied to the solver's own potentials)
    slack = (math.sqrt(coef * (eps + es + dF)) - bound) + math.sqrt(coef * es) \
        + float(_np.sqrt(_np.sum(w * dm * dm))) + 4 * EPS64 * value
    return RatioError(eps, dF + es, Bound(value, bound, slack))


def gradient_error(phi, psi, C, dC, lam, reg, a=None, b=None, tol=1e-10):
    """SWGAN Thm 5.1 at the gradient level: ``||G - grad h_lam|| <= l0 * eps_bound``.

    ``G = sum a_i b_j m_ij dC_ij`` (Algorithm 1's direction from the potentials) and
    ``grad h_lam = sum a_i b_j m*_ij dC_ij`` (the envelope formula, eq. 33), where
    ``dC_ij = grad_theta c(G_theta(x_i), y_j)``. By Cauchy-Schwarz (eq. 34, weighted form)
    ``l0 = sqrt(sum a_i b_j |dC_ij|^2)`` and the ratio bound of :func:`ratio_error`.

    Parameters
    ----------
    dC : array (M, N, p), host or any backend: per-pair parameter gradients of the cost.

    Returns
    -------
    Bound
    """
    r = ratio_error(phi, psi, C, lam, reg, a, b, tol)
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    res = solve_host(C, lam, reg, a, b, tol)
    ms = density_ratio_host(_np.asarray(to_numpy(res.phi), float), _np.asarray(to_numpy(res.psi), float), Ch, lam, reg)
    m = density_ratio_host(ph, ps, Ch, lam, reg)
    D = _np.asarray(to_numpy(dC), float)
    M, N = Ch.shape
    w = weights_host(a, M)[:, None] * weights_host(b, N)[None, :]
    G = _np.einsum("ij,ijp->p", w * m, D)
    Gs = _np.einsum("ij,ijp->p", w * ms, D)
    l0 = float(_np.sqrt(_np.sum(w * (D ** 2).sum(-1))))
    return Bound(float(_np.linalg.norm(G - Gs)), l0 * r.ratio.bound, l0 * r.ratio.slack + 8 * EPS64 * l0 * float(_np.abs(m).max() + 1))


def dual_gradient_norm(phi, psi, C, lam, reg, a=None, b=None, tol=1e-10):
    """SWGAN Sec. 4.2: ``||grad F(phi, psi)||^2 <= 2 L_F eps``, ``eps = F* - F``.

    ``L_F`` bounds the curvature of ``-F`` on the segment from ``(phi, psi)`` along the
    gradient step ``grad F / L_F`` (the standard descent-lemma argument needs no more). The
    Hessian of ``-F`` is ``(1/lam) sum_ij w_ij (e_i - e_j)(e_i - e_j)^T`` with
    ``w = a_i b_j 1[V > 0]`` (L2) or the pseudo-plan ``P`` (KL); Gershgorin gives
    ``||H|| <= (2/lam) max(max row weight sum, max column weight sum)``: ``2 max(a, b)/lam`` for
    L2; for KL the plan's row/column sums, convex along the segment, so their maximum over
    both end points (``L_F`` is doubled until it covers the step it defines).

    Returns
    -------
    Bound
        ``value = ||grad F||^2``, ``bound = 2 L_F eps``.
    """
    from ..ot import dual_objective
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = weights_host(a, M), weights_host(b, N)
    ph, ps = _np.asarray(to_numpy(phi), float), _np.asarray(to_numpy(psi), float)
    F, gphi, gpsi = dual_objective(ph, ps, Ch, lam, reg, a=ah, b=bh)
    g2 = float(_np.sum(to_numpy(gphi) ** 2) + _np.sum(to_numpy(gpsi) ** 2))
    gp, gq = _np.asarray(to_numpy(gphi), float), _np.asarray(to_numpy(gpsi), float)

    def curvature(p, q):
        if reg == "l2":
            return 2.0 * max(ah.max(), bh.max()) / lam
        P = ah[:, None] * bh[None, :] * density_ratio_host(p, q, Ch, lam, "kl")
        return 2.0 * max(P.sum(1).max(), P.sum(0).max()) / lam

    L = curvature(ph, ps)
    for _ in range(200):
        need = max(curvature(ph, ps), curvature(ph + gp / L, ps + gq / L))
        if need <= L:
            break
        L = 2 * need
    r = ratio_error(ph, ps, Ch, lam, reg, ah, bh, tol)
    return Bound(g2, 2 * L * r.eps, 2 * L * r.eps_slack + 8 * EPS64 * g2)


def composed_plan(P1, P2):
    """Glue ``P1 in Pi(a, r)`` (M, K) and ``P2 in Pi(b, r)`` (N, K) along ``r``:
    ``P_xy = P1 diag(1/r) P2^T`` (SWGAN Appendix A, proof of Thm 3.1). Returns (M, N)."""
    P1, P2 = _np.asarray(to_numpy(P1), float), _np.asarray(to_numpy(P2), float)
    r = P1.sum(0)
    return (P1 / r[None, :]) @ P2.T


def information_inequality(P1, P2):
    """SWGAN Appendix A data-processing step: ``I(P_xy) <= min(I(P1), I(P2))`` for the glued
    plan of :func:`composed_plan` (``I`` the KL mutual information, computed with
    :func:`refimpl.ot.regularizer` relative to each plan's marginals).

    Returns
    -------
    Bound
        ``value = I(P_xy)``, ``bound = min(I(P1), I(P2))``.
    """
    from ..ot import regularizer
    P1, P2 = _np.asarray(to_numpy(P1), float), _np.asarray(to_numpy(P2), float)
    P = composed_plan(P1, P2)
    I = lambda Q: float(to_numpy(regularizer(Q, "kl", Q.sum(1), Q.sum(0))))
    vals = [I(P), I(P1), I(P2)]
    n = P.size + P1.size + P2.size
    # a plan whose total mass is 1 - d (solver marginal error) shifts its I by about d (1 + |log R|)
    mass = sum(abs(1.0 - float(Q.sum())) for Q in (P, P1, P2))
    big = 1 + max(abs(v) for v in vals)
    return Bound(vals[0], min(vals[1:]), 16 * n * EPS64 * big + 4 * mass * (big + math.log(n)))


class Conjugacy(NamedTuple):
    r_phi: _np.ndarray    # phi_i - min_j (psi_j + C_ij), shape (M,)
    r_psi: _np.ndarray    # max_i (phi_i - C_ij) - psi_j, shape (N,)
    lower: float          # lam
    upper: float          # lam (1 + log(1/min w)) (KL) or lam / min w (L2)


def conjugacy_residuals(phi, psi, C, lam, reg, a=None, b=None):
    """SWGAN eq. (4) / Lemma 2.1 at finite ``lam``: how far optimal regularised potentials
    are from being c-conjugate.

    At the optimum every row and column of the plan has its marginal's mass, which gives,
    for every ``i`` and ``j``, ``lam <= r_phi_i <= lam (1 + log(1/min b))`` (KL) or
    ``lam <= r_phi_i <= lam / min b`` (L2), and the same for ``r_psi_j`` with ``a``:
    the residuals vanish like ``lam`` (c-conjugacy, eq. 4, in the limit).

    Returns
    -------
    Conjugacy
        ``upper`` uses ``min(min a, min b)``.
    """
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    M, N = Ch.shape
    wmin = min(weights_host(a, M).min(), weights_host(b, N).min())
    r_phi = ph - (ps[None, :] + Ch).min(1)
    r_psi = (ph[:, None] - Ch).max(0) - ps
    up = lam * (1 + math.log(1 / wmin)) if reg == "kl" else lam / wmin
    return Conjugacy(r_phi, r_psi, lam, up)


class DualStability(NamedTuple):
    distance: float         # distance from (Phi, Psi) to the optimal set of C2 (a line)
    corrected: Bound        # distance <= (M N + 1/pi_min) delta / sqrt(min(M, N))
    printed: Bound          # distance <= (1 + pi_min M N) delta / (pi_min sqrt(M + N))  (eq. 43-44)
    pi_min: float
    delta: float            # ||C1 - C2||_inf, the role of L0 |theta - theta'|


def dual_stability(C1, C2, lam, tol=1e-10):
    """SWGAN Thm H.1 (KL, uniform weights) in cost form.

    With ``(Phi, Psi)`` optimal for ``C1``, the optimal potentials of ``C2`` form the line
    ``(Phi2 + t, Psi2 + t)``; the distance of ``(Phi, Psi)`` to it is computed exactly
    (``t = -mean of the difference``). Bounds with ``delta = ||C1 - C2||_inf`` and ``pi_min``
    the smallest entry of both plans: the proof's residual is
    ``|d_ij| <= delta + lam |P1 - P2|_ij / pi_min`` (``log`` is ``1/pi_min``-Lipschitz), so
    ``||d||_2 <= M N delta + delta / pi_min`` (with Thm 3.3), and the projection onto the
    solutions of ``phi_i - psi_j = rhs_ij`` divides by the smallest *nonzero* singular value
    of that system, ``sqrt(min(M, N))``: the ``corrected`` bound. The ``printed`` bound
    (eq. 43) divides by the largest, ``sqrt(M + N)``.
    """
    r1, r2 = solve_host(C1, lam, "kl", None, None, tol), solve_host(C2, lam, "kl", None, None, tol)
    p1, q1, p2, q2 = (_np.asarray(to_numpy(v), float) for v in (r1.phi, r1.psi, r2.phi, r2.psi))
    D = _np.concatenate([p2 - p1, q2 - q1])
    dist = float(_np.linalg.norm(D - D.mean()))
    P1, P2 = _np.asarray(to_numpy(r1.plan), float), _np.asarray(to_numpy(r2.plan), float)
    M, N = P1.shape
    pmin = float(min(P1.min(), P2.min()))
    delta = float(_np.abs(_np.asarray(to_numpy(C1), float) - _np.asarray(to_numpy(C2), float)).max())
    scale = float(_np.abs(D).max() + _np.abs(p1).max() + _np.abs(q1).max())
    # a marginal error e_i of a solver plan moves its potential by about lam e_i / a_i
    merr = float(to_numpy(r1.marginal_error)) + float(to_numpy(r2.marginal_error))
    slack = 2 * math.sqrt(M + N) * lam * merr * max(M, N) + 64 * (M + N) * EPS64 * (scale + lam)
    corrected = Bound(dist, (M * N + 1 / pmin) * delta / math.sqrt(min(M, N)), slack)
    printed = Bound(dist, (1 + pmin * M * N) * delta / (pmin * math.sqrt(M + N)), slack)
    return DualStability(dist, corrected, printed, pmin, delta)


# ---------------------------------------------------------------- SWGAN Thm 5.2 (Algorithm 1 with an oracle)
