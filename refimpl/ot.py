"""Regularised discrete optimal transport: the smoothed OT of SWGAN, solved exactly.

Paper: "Solving Approximate Wasserstein GANs to Stationarity" (Sanjabi et al.),
Sec. 3 (eq. 6, the two regularisers ``I``), Sec. 4 (Lemma 4.1, eqs. 11-15),
Sec. 5 (Theorem 5.1); conventions in ``conventions.md`` ("Smoothed OT (SWGAN)").

Notation (one index convention for the whole module). Rows ``i = 1..M`` are the
generated points with weights ``a`` (the paper's ``q``), columns ``j = 1..N`` the
data with weights ``b`` (the paper's ``p``); ``C[i, j] = c(x_i, y_j) >= 0``.

* Primal (eq. 6): ``d_{c,lam} = min_{P in Pi(a, b)} <P, C> + lam * I(P)`` with
  KL: ``I(P) = sum P log(P / (a b^T))``;  L2: ``I(P) = 0.5 * sum P^2 / (a b^T)``.
* Dual (Lemma 4.1, eq. 12, weighted form), ``V_ij = phi_i - psi_j - C_ij``:
  KL: ``F = <a, phi> - <b, psi> - (lam/e) sum_ij a_i b_j exp(V_ij/lam)``;
  L2: ``F = <a, phi> - <b, psi> - sum_ij a_i b_j (V_ij)_+^2 / (2 lam)``.
* Pseudo-plan (eq. 11): ``P_ij = a_i b_j m_ij`` with the density ratio
  ``m = exp(V/lam - 1)`` (KL) or ``m = V_+/lam`` (L2).
* Gradient of ``F``: ``dF/dphi = a - P 1``, ``dF/dpsi = P^T 1 - b`` (Sec. 4.2).

The critic sign of the project (large on data) is ``-psi`` on the data side and
``-phi`` on generated points; this module keeps the paper's ``phi``/``psi``.

Solvers (``solve_regularized``; the engine lives in :mod:`refimpl.ot_solver`):

* KL: Sinkhorn in the log domain (exact block maximisation of ``F`` over ``psi``
  then ``phi``, eqs. 25-26), stabilised by absorption: between log-domain sweeps the
  iterations run as matrix-vector scalings of the current pseudo-plan, and the
  scalings are absorbed into ``(phi, psi)`` before they leave ``[e^-B, e^B]``
  (``B = 0.15 log(1/tiny)``), so nothing overflows or becomes NaN at small ``lam``.
  Sinkhorn converges linearly and slowly for small ``lam``: when its measured rate
  predicts more further iterations than a Newton finish costs (flop model
  ``ot_solver._newton_after``: ~10 steps of a dense ``(M+N)^3/3`` solve or of CG against ``4 M N``
  per iteration), Newton steps on the same dual finish (Sinkhorn-Newton).
* L2: semi-smooth Newton on ``F``. The generalised Hessian of ``-F`` is a weighted
  bipartite graph Laplacian on the support of ``P``; the Newton system, regularised
  by ``mu diag(a, b)/lam`` (``mu`` proportional to the marginal error), is solved
  densely (``M + N <= 600``) or by Jacobi-preconditioned conjugate gradients; Armijo
  line search, extended when the step is regularisation-limited. Start: one block
  sweep's start points; fallback when a line search fails: an exact block sweep, each
  potential the root of the piecewise-linear ``sum_j b_j (phi_i - psi_j - C_ij)_+ = lam``
  found by Newton's method from the right (monotone, finite).

Both run inside an epsilon-scaling loop (``solve_regularized(anneal=True)``): for ``lam``
small against the cost range, the stages ``lam * 10**k`` are solved from large to the
target, each warm-starting the next. A wall-clock budget (``max_seconds``) and a stall
test (Newton steps that stop reducing the stopping measure: the dtype's rounding floor)
bound the time; a solve that stops unconverged says why and what to change.

Stopping rule: with ``r = P 1``, ``c = P^T 1`` one has exactly
``gap = primal(P) - F = <phi, r - a> - <psi, c - b>`` for the pseudo-plan of any
potentials. The solvers stop when the Hoelder bound of that expression,
``range(phi)/2 |r - a|_1 + range(psi)/2 |c - b|_1 + |mid(phi) - mid(psi)| |sum P - 1|``,
is at most ``tol * |F|`` *and* the marginal error ``|r - a|_1 + |c - b|_1`` is at most
``tol``: the gap alone can vanish for an infeasible pseudo-plan (constant ``psi``,
exact rows). Weights must be strictly positive. The rule is evaluated on the plan that
is returned, together with its computed ``primal - dual``. One absolute term: for the
only problem of value 0 (KL with ``C = 0``), ``|F|`` is replaced by the size of the terms
that cancel in ``F``, ``lam + max|phi| + max|psi|`` (``ot_solver.value_scale`` says why
this is sound there and nowhere else). A ``tol`` below what the dtype resolves at this
``lam`` (marginal errors near ``eps (max|phi| + max|psi| + max C)/lam``) ends in status
``"stalled"`` within ~20 Newton steps, with a warning naming the reachable ``tol``.

Public functions validate once at entry (:mod:`refimpl.validation`; the OT problem's
checks are :mod:`refimpl.ot_validation`) and call unchecked cores (``cost_matrix.unchecked`` here,
``dual_objective.unchecked`` in :mod:`refimpl.ot_objectives`; :func:`refimpl.validation.checked`)
that never validate; training steps
(:mod:`refimpl.swgan_steps`) call only those. The objectives at given potentials live in
:mod:`refimpl.ot_objectives` and are re-exported here. Every array the module creates is
placed on the inputs' device.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

from refimpl import validation as checks
from refimpl.backend import namespace
from refimpl.ot_solver import anneal, measure, value_scale
from refimpl import ot_validation as chk
from refimpl.ot_validation import COSTS, REGS
from refimpl.ot_objectives import (density_ratio, dual_objective, plan_from_potentials, primal_objective,
                                   regularizer, termination_statistic)

__all__ = ["COSTS", "REGS", "OTResult", "cost_matrix", "solve_regularized", "dual_objective",
           "plan_from_potentials", "density_ratio", "primal_objective", "regularizer",
           "termination_statistic"]


@dataclass(frozen=True)
class OTResult:
    """Solution of a regularised OT problem (all arrays in the namespace/dtype of ``C``).

    Attributes
    ----------
    plan : array (M, N)
        Pseudo-plan (eq. 11) of the returned potentials.
    phi, psi : arrays (M,), (N,)
        Dual potentials (Lemma 4.1); ``V = phi_i - psi_j - C_ij``.
    primal, dual, gap : 0-d arrays
        ``<plan, C> + lam I(plan)``, the dual objective ``F(phi, psi)``, their difference.
    marginal_error : 0-d array
        ``max(max_i |r_i - a_i|, max_j |c_j - b_j|)`` of ``plan``.
    iterations : int
        Sinkhorn iterations (KL: one ``psi`` and one ``phi`` update) plus Newton steps,
        summed over the epsilon-scaling stages.
    converged : bool
        Whether the returned plan meets the stopping rule (module docstring).
    status : str
        "converged", "max_iter", "max_seconds" (time budget spent), "stalled" (the
        stopping measure stopped decreasing: the dtype's rounding floor at this ``lam``) or
        "resolution" (the stopping rule holds but the computed ``primal - dual`` exceeds
        ``tol |F|``: ``lam`` so large that rounding errors ``~eps lam`` dominate).
    """

    plan: Any
    phi: Any
    psi: Any
    primal: Any
    dual: Any
    gap: Any
    marginal_error: Any
    iterations: int
    converged: bool
    status: str = "converged"


# ----------------------------------------------------------------------------- costs
def _cost_matrix(x, y, cost, xp):
    """:func:`cost_matrix` without validation (training steps)."""
    M, N, d = x.shape[0], y.shape[0], x.shape[1]
    acc = None
    if d <= 16:
        # one (M, N) difference per coordinate: reductions over a short last axis are ~10x slower
        for k in range(d):
            diff = x[:, k:k + 1] - y[:, k][None, :]                           # (M, N)
            term = xp.abs(diff) if cost == "l1" else diff * diff
            acc = term if acc is None else acc + term
    else:
        chunk = max(1, (1 << 22) // max(1, M * N))
        for s in range(0, d, chunk):
            e = min(s + chunk, d)
            diff = x[:, None, s:e] - y[None, :, s:e]                          # (M, N, k)
            term = xp.sum(xp.abs(diff) if cost == "l1" else diff * diff, axis=-1)
            acc = term if acc is None else acc + term
    return xp.sqrt(acc) if cost == "euclidean" else acc


@checks.checked(_cost_matrix)
def cost_matrix(x, y, cost="euclidean"):
    """Pairwise ground costs ``C[i, j] = c(x_i, y_j)``.

    Parameters
    ----------
    x : array (M, d)
        Generated points (rows).
    y : array (N, d)
        Data points (columns).
    cost : {"l1", "euclidean", "sqeuclidean"}
        ``sum_k |x_ik - y_jk|``, ``||x_i - y_j||_2`` or ``||x_i - y_j||_2^2``
        (the ``c(x, y)`` of Sec. 2; the paper's experiments use ``l1``, Table 1).

    Returns
    -------
    C : array (M, N)
        In the namespace and device of the inputs. Differences are formed explicitly (no
        ``|x|^2 + |y|^2 - 2 x.y`` cancellation): per coordinate for ``d <= 16``, else in
        chunks of the feature axis.

    Raises
    ------
    TypeError, ValueError
        By the input rules below, naming ``x`` or ``y``; empty point sets refused.
    ValueError
        When a cost overflows to inf (coordinates near the dtype's largest value):
        rescale the points.
    """
    x = checks.array(x, "x", ndim=2)
    y = checks.array(y, "y", ndim=2, xp=namespace(x))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y have different dimensions: {x.shape[1]} != {y.shape[1]}")
    cost = chk.check_cost_name(cost)
    x, y = checks.common_float(x, y)
    xp = namespace(x)
    with warnings.catch_warnings():      # NumPy warns on overflow; the check below raises instead
        warnings.simplefilter("ignore", RuntimeWarning)
        C = _cost_matrix(x, y, cost, xp)
    if not bool(xp.all(xp.isfinite(C))):
        raise ValueError(f"cost_matrix overflowed to inf for cost={cost!r}: coordinates of x or y are too large "
                         f"for {checks.dtype_name(C.dtype)} (max |x| = {float(xp.max(xp.abs(x))):.3g}, "
                         f"max |y| = {float(xp.max(xp.abs(y))):.3g}); rescale the points")
    return C


@checks.checked(rules=chk.OT_RULES)
def solve_regularized(C, lam, reg="kl", a=None, b=None, tol=1e-9, max_iter=None, init=None,
                      max_seconds=10.0, anneal=True):
    """Solve the regularised OT problem (eq. 6) exactly through its dual (Lemma 4.1).

    Parameters
    ----------
    C : array (M, N)
        Nonnegative finite costs (rows: generated points, columns: data).
    lam : float > 0
        Regularisation weight ``lambda`` (finite). The solver is accurate while the
        potentials' size ``~ lam + max C`` times the dtype's eps stays below ``tol |F|``;
        beyond (e.g. ``lam = 1e12`` with costs ~1 in float64) it reports
        ``converged=False`` rather than a value it cannot certify.
    reg : {"kl", "l2"}
        ``I`` of Sec. 3 (KL to ``a x b`` or ``0.5 sum P^2/(a b)``); any case.
    a, b : arrays (M,), (N,), optional
        Strictly positive weights summing to 1 (default uniform, on ``C``'s device).
    tol : float > 0
        Stop when the bound on ``|gap|`` (module docstring) is ``<= tol * |F|`` and the
        marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1 <= tol``, both evaluated on the plan
        actually returned; values below ``1e3 * eps`` of the dtype are raised to it. For
        KL with ``C = 0`` (value exactly 0, where ``tol |F|`` is rounding noise) ``|F|`` is
        replaced by ``lam + max|phi| + max|psi|``, the size of the terms that cancel in
        ``F``. A ``tol`` below the dtype's resolution at this ``lam`` (the plan's entries
        carry relative rounding up to ``eps (max|phi| + max|psi| + max C)/lam``) returns
        ``converged=False``, status ``"stalled"``, with a warning naming the reachable ``tol``.
    max_iter : int >= 1, optional
        Iterations over all stages: Sinkhorn iterations plus Newton steps (KL, default
        10000) or Newton steps (L2, default 500).
    init : (phi0, psi0), optional
        Warm start (Appendix H), arrays (M,), (N,); disables epsilon-scaling. KL: Sinkhorn
        starts from ``phi0`` (its first sweep recomputes ``psi``); L2: Newton starts at
        ``(phi0, psi0)``. Default: KL from ``phi = 0``; L2 from the start point of one
        sweep (``ot_solver._Dual.root`` with no step).
    max_seconds : float > 0 or inf
        Wall-clock budget (default 10 s), checked every 10 Sinkhorn iterations and every
        Newton step.
    anneal : bool
        Epsilon-scaling (default True): when ``lam`` is below ``0.01 (max C - min C)``,
        solve first for ``lam`` times powers of 10 from ``0.1 (max C - min C)`` down,
        each stage to tolerance 1e-3 and warm-starting the next.

    Returns
    -------
    OTResult
        ``plan`` (eq. 11), ``phi``, ``psi``, ``primal = <plan, C> + lam I(plan)``,
        ``dual = F(phi, psi)``, ``gap = primal - dual``, ``marginal_error``,
        ``iterations``, ``converged``, ``status``.

    Raises
    ------
    TypeError, ValueError
        By the input rules below.
    RuntimeWarning
        (a warning, not raised) when not converged: it says why (``max_iter``,
        ``max_seconds``, or stalled at the dtype's rounding floor), how far it got
        (marginal error, gap, annealing stage) and what to change (float64, a larger
        ``lam``, a larger budget).

    Notes
    -----
    KL: stabilised log-domain Sinkhorn; when its estimated linear rate predicts more
    further iterations than a Newton finish costs (flop model, ``ot_solver._newton_after``:
    dense ``O((M+N)^3)`` solves only pay off for slow Sinkhorn), Newton steps on the same
    dual finish (Sinkhorn-Newton). L2: one exact sweep, then semi-smooth Newton. Both
    inside the epsilon-scaling loop. The returned plan is re-checked against the stopping
    rule: ``converged`` is never claimed for a plan that does not meet it.
    """
    if init is not None and (not isinstance(init, (tuple, list)) or len(init) != 2):
        raise TypeError("init must be a pair (phi0, psi0)")
    xp, C, lam, reg, a, b, phi0, psi0 = chk.problem(C, lam, reg, a, b, *(init if init is not None else (None, None)))
    tol = checks.real(tol, "tol", gt=0.0)
    max_iter = reg.default_max_iter if max_iter is None else checks.integer(max_iter, "max_iter", ge=1)
    max_seconds = checks.real(max_seconds, "max_seconds", gt=0.0, allow_inf=True)
    anneal = checks.boolean(anneal, "anneal")
    return _solve(C, lam, reg, a, b, tol, max_iter, phi0, psi0, max_seconds, anneal, xp)



def _solve(C, lam, reg, a, b, tol, max_iter, phi, psi, max_seconds, use_stages, xp):
    """:func:`solve_regularized` on validated inputs."""
    t0 = time.perf_counter()
    eps = float(xp.finfo(C.dtype).eps)
    tol_eff = max(tol, 1e3 * eps)
    cmax = float(xp.max(C))
    spread = cmax - float(xp.min(C))
    D, st, iters, status, stages, done = anneal(C, lam, reg, a, b, tol_eff, max_iter, phi, psi,
                                                t0 + max_seconds, use_stages, xp, cmax, spread)
    plan = reg.plan(st.X, a, b, lam)
    primal = xp.sum(plan * C) + lam * reg.divergence(plan, a, b)
    dual = xp.asarray(st.F, dtype=C.dtype, device=C.device)
    merr = xp.maximum(xp.max(xp.abs(st.r - a)), xp.max(xp.abs(st.c - b)))
    # the stopping rule on the returned plan, plus its computed gap: where rounding errors
    # ~eps*lam of F and the primal exceed tol*|F| (huge lam), the solution is not certified
    q, merr_l1 = measure(D, st, tol_eff)
    gap = float(primal) - st.F
    size = value_scale(D, float(xp.max(xp.abs(st.phi))), float(xp.max(xp.abs(st.psi))), st.F)
    gap_ok = abs(gap) <= max(tol_eff * size, 64 * eps * (cmax + size))
    ok = q <= 1.0 and gap_ok
    if ok:
        status = "converged"
    elif q <= 1.0:
        status = "resolution"
    elif status == "converged":
        status = "stalled"
    if not ok:
        phi_max, psi_max = float(xp.max(xp.abs(st.phi))), float(xp.max(xp.abs(st.psi)))
        reach = max(q * tol_eff, abs(gap) / size if size > 0 else 0.0)     # smallest tol this plan meets
        floor = eps * (phi_max + psi_max + cmax) / lam                      # relative rounding of the plan
        _warn_not_converged(reg, lam, C, xp, status, iters, max_iter, max_seconds, time.perf_counter() - t0,
                            stages, done, merr_l1, gap, tol_eff, spread, reach, floor)
    return OTResult(plan=plan, phi=st.phi, psi=st.psi, primal=primal, dual=dual, gap=primal - dual,
                    marginal_error=merr, iterations=iters, converged=ok, status=status)


def _warn_not_converged(reg, lam, C, xp, status, iters, max_iter, max_seconds, seconds, stages, done,
                        merr_l1, gap, tol, spread, reach, floor):
    """The warning of an unconverged solve: why, how far it got, what to change.

    ``reach``: the smallest ``tol`` the returned plan meets; ``floor``: the bound
    ``eps (max|phi| + max|psi| + max C) / lam`` on the relative rounding of the pseudo-plan's
    entries (``exp(V/lam)`` or ``V_+/lam`` with ``V`` rounded to ``eps`` times the potentials'
    size). Its marginals, sums of these entries, average the rounding and stall somewhat below
    it (10 x 10, ``lam = 1e-4`` x median: bound ~2e-11, L1 marginal error ~1e-13 to 1e-12).
    """
    dt = checks.dtype_name(C.dtype)
    why = {"max_iter": f"max_iter={max_iter} reached",
           "max_seconds": f"time budget max_seconds={max_seconds:g} spent",
           "stalled": f"stalled: the stopping measure stopped decreasing; the returned plan meets the stopping "
                      f"rule for tol >= {reach:.2g}" + (
                          f" and tol={tol:.3g} is below what {dt} resolves at this lam (the plan's entries "
                          f"exp(V/lam) or V_+/lam carry relative rounding up to eps (max|phi| + max|psi| + max C)/lam"
                          f" = {floor:.2g}; its marginals and gap, sums of them, stop improving near that)"
                          if reach <= 10 * floor else ""),
           "resolution": f"lam={lam:g} is beyond the resolution of {checks.dtype_name(C.dtype)}: the "
                         f"potentials are ~lam, so F and the primal carry rounding errors ~eps*lam, above "
                         f"tol*|F| (the plan is a b^T to working precision)"}.get(status, status)
    where = "" if done == len(stages) else (f"; epsilon-scaling stopped at stage {done} of {len(stages)} "
                                            f"(lam={stages[done - 1]:.3g} of target {lam:.3g})")
    advice = []
    if C.dtype == xp.float32:
        advice.append("use float64 costs")
    if status == "resolution":
        advice.append("a smaller lam, or a larger tol")
    elif spread > 0:
        advice.append(f"a larger lam (lam/(max C - min C) = {lam / spread:.2g})")
    if status == "max_seconds":
        advice.append("a larger max_seconds")
    if status == "max_iter":
        advice.append("a larger max_iter")
    if status == "stalled" and 10 * reach <= 1e-2:
        advice.append(f"tol >= {10 * reach:.2g} (ten times what this plan meets, above {dt}'s rounding floor)")
    warnings.warn(f"solve_regularized(reg={reg.name!r}, lam={lam:g}) did not converge: {why} after {iters} "
                  f"iterations in {seconds:.2f} s{where}; the returned plan has marginal error {merr_l1:.3e} "
                  f"(L1; tol={tol:.3g}) and gap {gap:.3e}. To converge: " + "; or ".join(advice) + ".",
                  RuntimeWarning, stacklevel=4)
