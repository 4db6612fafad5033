"""Tests of refimpl.ot: regularised OT of SWGAN (Sanjabi et al., Secs. 3-5, Appendices A-F).

Independent oracles, all on the host in NumPy float64:
* POT (``ot.bregman.sinkhorn_log``, ``ot.smooth.smooth_ot_dual``, ``ot.emd``/``ot.emd2``)
  for the optimal values, with the constants of ``conventions.md`` converted;
* scipy (``cdist``, ``rel_entr``) for costs and the KL regulariser;
* central finite differences for the dual gradient;
* the paper's theorems in their testable forms (``conventions.md``).

Tolerance slacks are fixed a priori from the solver tolerance: problems are solved to
``tol = 1e-10`` (gap bound relative to ``|F|``), so inequalities between optimal values
get a slack of ``SLACK = 1e-8`` relative.
"""
import math
import re
import warnings

import numpy as np
import ot
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from scipy.special import rel_entr

from refimpl.backend import from_host, to_numpy
from refimpl.testing import dual_resolution, ratio_resolution
from refimpl.ot import (COSTS, REGS, cost_matrix, density_ratio, dual_objective, plan_from_potentials,
                        primal_objective, regularizer, solve_regularized, termination_statistic)
from tests.conftest import assert_xp

TOL = 1e-10
SLACK = 1e-8
SCIPY_METRIC = {"l1": "cityblock", "euclidean": "euclidean", "sqeuclidean": "sqeuclidean"}


# ----------------------------------------------------------------------------- strategies
@st.composite
def clouds(draw, max_pts=12, min_pts=1):
    """Host point clouds x (M, d), y (N, d), M != N allowed, d in 1..5 (some shared points)."""
    M, N = draw(st.integers(min_pts, max_pts)), draw(st.integers(min_pts, max_pts))
    d = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((M, d))
    y = draw(st.floats(0.3, 2.0)) * rng.standard_normal((N, d)) + draw(st.floats(0.0, 3.0))
    k = draw(st.integers(0, min(M, N)))
    y[:k] = x[:k]  # zero costs
    return x, y


@st.composite
def weights(draw, n, uniform=None):
    """Uniform or random positive weights of length n (host float64)."""
    if uniform if uniform is not None else draw(st.booleans()):
        return np.full(n, 1.0 / n)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = 0.1 + rng.random(n)
    return w / w.sum()


def _setup(xp, x, y, cost, lam_exp):
    """(C on xp, host C, lam = median(C) * 10**lam_exp)."""
    C = cost_matrix(from_host(x, xp), from_host(y, xp), cost)
    Ch = to_numpy(C)
    med = float(np.median(Ch))
    return C, Ch, (med if med > 0 else 1.0) * 10.0 ** lam_exp


def _solve(xp, C, lam, reg, a=None, b=None, **kw):
    dev = lambda w: None if w is None else from_host(w, xp)
    kw.setdefault("tol", TOL)
    res = solve_regularized(C, lam, reg, a=dev(a), b=dev(b), **kw)
    assert res.converged
    return res


def _f(v):
    return float(to_numpy(v))


def _entropy(w):
    return float(-np.sum(w * np.log(w)))


# ----------------------------------------------------------------------------- costs
@given(data=clouds(), cost=st.sampled_from(COSTS))
def test_cost_matrix_matches_scipy(xp, data, cost):
    x, y = data
    C = cost_matrix(from_host(x, xp), from_host(y, xp), cost)
    assert_xp(C, xp, "float64")
    assert C.shape == (x.shape[0], y.shape[0])
    np.testing.assert_allclose(to_numpy(C), cdist(x, y, SCIPY_METRIC[cost]), rtol=1e-12, atol=1e-12)


def test_cost_matrix_chunks_long_features(xp):
    """d larger than one chunk (the feature axis is summed in chunks)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((1500, 3)), rng.standard_normal((1400, 3))  # chunks of 1 feature
    C = cost_matrix(from_host(x, xp), from_host(y, xp), "l1")
    np.testing.assert_allclose(to_numpy(C), cdist(x, y, "cityblock"), rtol=1e-12)


# ----------------------------------------------------------------------------- POT oracle
@given(data=clouds(), cost=st.sampled_from(COSTS), lam_exp=st.floats(-1.0, 2.0), wdata=st.data())
def test_kl_primal_matches_pot_sinkhorn(xp, data, cost, lam_exp, wdata):
    """KL: our primal = POT's entropic objective + lam (H(a) + H(b)) (conventions); plans agree.

    POT's entropic objective is <G, C> + lam sum G log G; ours is <P, C> + lam KL(P | a b^T),
    and KL(P | a b^T) = sum P log P + H(a) + H(b) on Pi(a, b). lam in [0.1, 100] median(C),
    where POT's log-domain Sinkhorn converges to stopThr = 1e-11 in a few hundred iterations.
    """
    x, y = data
    C, Ch, lam = _setup(xp, x, y, cost, lam_exp)
    a, b = wdata.draw(weights(x.shape[0])), wdata.draw(weights(y.shape[0]))
    res = _solve(xp, C, lam, "kl", a, b)
    assert abs(_f(res.gap)) <= 1e-8 * abs(_f(res.primal))
    G = ot.bregman.sinkhorn_log(a, b, Ch, lam, stopThr=1e-11, numItermax=20000)
    # POT is an oracle only where its Sinkhorn converged (found at 500 examples: a case where it
    # does not reach its threshold even at 1e5 iterations, while refimpl's certificate holds to 5e-15)
    assume(np.abs(G.sum(1) - a).sum() + np.abs(G.sum(0) - b).sum() <= 1e-9)
    pot = float(np.sum(G * Ch) - lam * np.sum(-rel_entr(G, 1.0)) + lam * (_entropy(a) + _entropy(b)))
    assert _f(res.primal) == pytest.approx(pot, rel=1e-6)
    assert abs(_f(res.gap)) <= 1e-8 * abs(_f(res.primal))
    np.testing.assert_allclose(to_numpy(res.plan), G, atol=1e-7)


@pytest.mark.filterwarnings("ignore:scipy.optimize:DeprecationWarning")  # raised inside POT
@given(data=clouds(), cost=st.sampled_from(COSTS), lam_exp=st.floats(-2.0, 1.0))
def test_l2_primal_matches_pot_smooth_dual(xp, data, cost, lam_exp):
    """L2 (uniform weights): our primal = POT's optimum of <G, C> + gamma/2 |G|^2, gamma = lam M N.

    With a_i b_j = 1/(MN), lam/2 sum P^2/(a_i b_j) = (lam M N)/2 |P|^2. POT's optimal value
    is read from its L-BFGS dual objective (``-res.fun``): its plan is a pseudo-plan of
    limited accuracy, its dual value is second-order accurate.
    """
    x, y = data
    M, N = x.shape[0], y.shape[0]
    C, Ch, lam = _setup(xp, x, y, cost, lam_exp)
    res = _solve(xp, C, lam, "l2")
    if M == 1 or N == 1:
        # one feasible plan, P = a b^T: the optimum is the closed form mean(C) + lam/2. POT's
        # L-BFGS dual is not an oracle here (found by hypothesis: M = N = 1, lam = 0.01 C, POT
        # stops at 0.0452 against the exact 0.0668).
        assert _f(res.primal) == pytest.approx(float(np.mean(Ch)) + lam / 2, rel=1e-9)
        return
    a, b = np.full(M, 1.0 / M), np.full(N, 1.0 / N)
    _, log = ot.smooth.smooth_ot_dual(a, b, Ch, lam * M * N, reg_type="l2", stopThr=1e-10,
                                      numItermax=20000, log=True)
    assert _f(res.primal) == pytest.approx(-log["res"].fun, rel=1e-6)
    assert abs(_f(res.gap)) <= 1e-8 * abs(_f(res.primal))


def test_l2_infeasible_pseudo_plan_with_zero_gap_is_not_accepted(xp):
    """Regression (found by hypothesis): a start with constant psi and exact rows has gap 0 but
    column sums (2/3, 1/3); the solver must still reach POT's and scipy's (SLSQP) optimum."""
    x = np.array([[0.12573022], [-0.13210486], [0.64042265]])
    C = cost_matrix(from_host(x, xp), from_host(x[:2].copy(), xp), "l1")
    Ch = to_numpy(C)
    lam = 0.1 * float(np.median(Ch))
    res = _solve(xp, C, lam, "l2")
    np.testing.assert_allclose(to_numpy(res.plan).sum(0), [0.5, 0.5], atol=1e-12)
    a, b = np.full(3, 1 / 3), np.full(2, 1 / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _, log = ot.smooth.smooth_ot_dual(a, b, Ch, lam * 6, reg_type="l2", stopThr=1e-10, log=True)
    assert _f(res.primal) == pytest.approx(-log["res"].fun, rel=1e-6)
    from scipy.optimize import minimize
    qp = minimize(lambda p: p @ Ch.ravel() + lam * 3 * (p @ p), np.full(6, 1 / 6), method="SLSQP",
                  bounds=[(0, None)] * 6, options={"ftol": 1e-15, "maxiter": 1000},
                  constraints=[{"type": "eq", "fun": lambda p: p.reshape(3, 2).sum(1) - a},
                               {"type": "eq", "fun": lambda p: p.reshape(3, 2).sum(0)[:1] - b[:1]}])
    assert _f(res.primal) == pytest.approx(qp.fun, rel=1e-8)


# ----------------------------------------------------------------------------- objectives
@given(data=clouds(), reg=st.sampled_from(REGS), wdata=st.data())
def test_regularizer_and_objectives_independent_forms(xp, data, reg, wdata):
    """I(P) against scipy's rel_entr / a direct NumPy sum; F against eq. 12 written out."""
    x, y = data
    M, N = x.shape[0], y.shape[0]
    rng = np.random.default_rng(wdata.draw(st.integers(0, 2**32 - 1)))
    a, b = wdata.draw(weights(M)), wdata.draw(weights(N))
    P = rng.random((M, N)) * (rng.random((M, N)) < 0.7)
    P /= max(P.sum(), 1e-300)
    ab = np.outer(a, b)
    want = rel_entr(P, ab).sum() if reg == "kl" else 0.5 * np.sum(P ** 2 / ab)
    got = regularizer(from_host(P, xp), reg, from_host(a, xp), from_host(b, xp))
    assert _f(got) == pytest.approx(want, rel=1e-12, abs=1e-15)
    C = cdist(x, y)
    lam = 0.3
    assert _f(primal_objective(from_host(P, xp), from_host(C, xp), lam, reg, from_host(a, xp), from_host(b, xp))) \
        == pytest.approx(np.sum(P * C) + lam * want, rel=1e-12, abs=1e-15)
    phi, psi = rng.standard_normal(M), rng.standard_normal(N)
    V = phi[:, None] - psi[None, :] - C
    pen = (lam / math.e) * np.exp(V / lam) if reg == "kl" else np.maximum(V, 0) ** 2 / (2 * lam)
    F = a @ phi - b @ psi - np.sum(ab * pen)
    val, _, _ = dual_objective(from_host(phi, xp), from_host(psi, xp), from_host(C, xp), lam, reg,
                               from_host(a, xp), from_host(b, xp))
    assert _f(val) == pytest.approx(F, rel=1e-12, abs=1e-14)
    m = np.exp(V / lam - 1) if reg == "kl" else np.maximum(V, 0) / lam
    np.testing.assert_allclose(to_numpy(density_ratio(from_host(phi, xp), from_host(psi, xp), from_host(C, xp),
                                                      lam, reg)), m, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(to_numpy(plan_from_potentials(from_host(phi, xp), from_host(psi, xp),
                                                             from_host(C, xp), lam, reg, from_host(a, xp),
                                                             from_host(b, xp))), ab * m, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("reg", REGS)
@pytest.mark.parametrize("where", ["optimum", "random"])
def test_dual_gradient_matches_central_differences(xp, reg, where):
    """dF/dphi, dF/dpsi against central differences (float64, h = 1e-5).

    Truncation: O(h^2) where F is smooth; at a kink of v_+^2 (L2) the central difference
    errs by at most h * max(a) * max(b) / lam, which is added to the tolerance.
    """
    rng = np.random.default_rng(1)
    M, N = 7, 5
    x, y = rng.standard_normal((M, 2)), rng.standard_normal((N, 2))
    C = cdist(x, y)
    a, b = rng.random(M) + 0.2, rng.random(N) + 0.2
    a, b = a / a.sum(), b / b.sum()
    lam = 0.2
    if where == "optimum":
        res = _solve(xp, from_host(C, xp), lam, reg, a, b)
        phi, psi = to_numpy(res.phi) + 0.05 * rng.standard_normal(M), to_numpy(res.psi) + 0.05 * rng.standard_normal(N)
    else:
        phi, psi = rng.standard_normal(M), rng.standard_normal(N)
    F = lambda p, q: _f(dual_objective(from_host(p, xp), from_host(q, xp), from_host(C, xp), lam, reg,
                                       from_host(a, xp), from_host(b, xp))[0])
    _, gphi, gpsi = dual_objective(from_host(phi, xp), from_host(psi, xp), from_host(C, xp), lam, reg,
                                   from_host(a, xp), from_host(b, xp))
    h = 1e-5
    fd_phi = np.array([(F(phi + h * e, psi) - F(phi - h * e, psi)) / (2 * h) for e in np.eye(M)])
    fd_psi = np.array([(F(phi, psi + h * e) - F(phi, psi - h * e)) / (2 * h) for e in np.eye(N)])
    atol = 1e-8 + (h * a.max() * b.max() / lam if reg == "l2" else 0.0)
    np.testing.assert_allclose(to_numpy(gphi), fd_phi, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(to_numpy(gpsi), fd_psi, rtol=1e-6, atol=atol)


# ----------------------------------------------------------------------------- solver properties
@given(data=clouds(), reg=st.sampled_from(REGS), cost=st.sampled_from(COSTS), lam_exp=st.floats(-2.0, 1.0),
       wdata=st.data())
def test_solution_marginals_gap_and_consistency(xp, data, reg, cost, lam_exp, wdata):
    """Plan marginals = (a, b); gap ~ 0; primal/dual = the public objective functions; plan = eq. 11."""
    x, y = data
    C, Ch, lam = _setup(xp, x, y, cost, lam_exp)
    a, b = wdata.draw(weights(x.shape[0])), wdata.draw(weights(y.shape[0]))
    res = _solve(xp, C, lam, reg, a, b)
    P = to_numpy(res.plan)
    np.testing.assert_allclose(P.sum(1), a, atol=1e-9)
    np.testing.assert_allclose(P.sum(0), b, atol=1e-9)
    assert _f(res.marginal_error) <= 1e-9
    assert abs(_f(res.gap)) <= 1e-8 * abs(_f(res.primal))
    A, B = from_host(a, xp), from_host(b, xp)
    assert _f(res.primal) == pytest.approx(_f(primal_objective(res.plan, C, lam, reg, A, B)), rel=1e-12)
    assert _f(res.dual) == pytest.approx(_f(dual_objective(res.phi, res.psi, C, lam, reg, A, B)[0]), rel=1e-12)
    np.testing.assert_allclose(to_numpy(plan_from_potentials(res.phi, res.psi, C, lam, reg, A, B)), P,
                               rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("reg", REGS)
def test_small_lambda_is_stable(xp, reg):
    """lam = 1e-3 median(C) with a wide cost range (sqeuclidean): finite, converged, exact.

    No floating-point warning (overflow, invalid) may be raised on the way.
    """
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((12, 2)) * 3, rng.standard_normal((10, 2)) * 3 + 2
    C, Ch, lam = _setup(xp, x, y, "sqeuclidean", -3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _solve(xp, C, lam, reg)
    for v in (res.plan, res.phi, res.psi, res.primal, res.dual):
        assert np.all(np.isfinite(to_numpy(v)))
    assert _f(res.marginal_error) <= 1e-9
    assert abs(_f(res.gap)) <= 1e-8 * abs(_f(res.primal))
    dc = ot.emd2(np.full(12, 1 / 12), np.full(10, 1 / 10), Ch)
    K = 10
    bound = math.log(K) if reg == "kl" else K / 2
    assert dc * (1 - SLACK) <= _f(res.primal) <= dc + lam * bound + SLACK * dc


def test_warm_start_and_float32(xp):
    """init=(phi*, psi*) returns the same solution at once; float32 keeps its dtype."""
    rng = np.random.default_rng(5)
    C = from_host(cdist(rng.standard_normal((8, 3)), rng.standard_normal((6, 3)), "cityblock"), xp)
    for reg in REGS:
        res = _solve(xp, C, 0.5, reg)
        warm = _solve(xp, C, 0.5, reg, init=(res.phi, res.psi))
        assert warm.iterations <= 2
        assert _f(warm.primal) == pytest.approx(_f(res.primal), rel=1e-9)
        r32 = solve_regularized(xp.astype(C, xp.float32), 0.5, reg)
        assert r32.converged
        assert_xp((r32.plan, r32.phi, r32.psi, r32.primal, r32.dual, r32.gap, r32.marginal_error), xp, "float32")
        assert _f(r32.primal) == pytest.approx(_f(res.primal), rel=1e-4)


def test_max_iter_warns(xp):
    rng = np.random.default_rng(6)
    C = from_host(cdist(rng.standard_normal((9, 2)), rng.standard_normal((7, 2))), xp)
    for reg in REGS:
        with pytest.warns(RuntimeWarning, match="did not converge"):
            res = solve_regularized(C, 0.01, reg, max_iter=1)
        assert res.converged is False and res.iterations == 1


def test_outputs_live_in_input_namespace(xp):
    rng = np.random.default_rng(7)
    x, y = from_host(rng.standard_normal((5, 2)), xp), from_host(rng.standard_normal((4, 2)), xp)
    C = cost_matrix(x, y)
    a = from_host(np.full(5, 0.2), xp)
    for reg in REGS:
        res = solve_regularized(C, 0.3, reg, a=a)
        assert_xp((res.plan, res.phi, res.psi, res.primal, res.dual, res.gap, res.marginal_error), xp, "float64")
        assert isinstance(res.iterations, int) and isinstance(res.converged, bool)
        assert_xp(dual_objective(res.phi, res.psi, C, 0.3, reg), xp, "float64")
        assert_xp((plan_from_potentials(res.phi, res.psi, C, 0.3, reg), density_ratio(res.phi, res.psi, C, 0.3, reg),
                   termination_statistic(res.phi, res.psi, C, 0.3, reg), regularizer(res.plan, reg, a),
                   primal_objective(res.plan, C, 0.3, reg, a)), xp, "float64")
        C32 = xp.astype(C, xp.float32)
        p32, q32 = xp.astype(res.phi, xp.float32), xp.astype(res.psi, xp.float32)
        assert_xp(dual_objective(p32, q32, C32, 0.3, reg), xp, "float32")
        assert_xp(plan_from_potentials(p32, q32, C32, 0.3, reg), xp, "float32")
    assert_xp(cost_matrix(xp.astype(x, xp.float32), xp.astype(y, xp.float32), "l1"), xp, "float32")


# ----------------------------------------------------------------------------- Lemma 3.2 / Cor. 3.2.1
@given(data=clouds(), reg=st.sampled_from(REGS), cost=st.sampled_from(COSTS), lam_exp=st.floats(-2.0, 1.0))
def test_lemma_3_2_bounds_against_emd(xp, data, reg, cost, lam_exp):
    """d_c <= d_{c,lam} <= d_c + lam I(pi_emd) <= d_c + lam {log K | K/2} (uniform weights).

    ``d_c = ot.emd2``. I* (eq. 8) is the least I over optimal plans, so
    ``d_{c,lam} <= d_c + lam I* <= d_c + lam I(pi_emd)``; Cor. 3.2.1 bounds I of any
    coupling. Sharper (conventions): L2 has I >= 1/2 (Cauchy-Schwarz), so
    ``d_{c,lam} >= d_c + lam/2``.
    """
    x, y = data
    M, N = x.shape[0], y.shape[0]
    K = min(M, N)
    C, Ch, lam = _setup(xp, x, y, cost, lam_exp)
    res = _solve(xp, C, lam, reg)
    a, b = np.full(M, 1.0 / M), np.full(N, 1.0 / N)
    dc = float(ot.emd2(a, b, Ch))
    I_emd = _f(regularizer(from_host(ot.emd(a, b, Ch), xp), reg))
    d = _f(res.primal)
    tol = SLACK * max(abs(dc), lam)
    assert dc - tol <= d <= dc + lam * I_emd + tol
    assert I_emd <= (math.log(K) if reg == "kl" else K / 2) + 1e-12
    if reg == "l2":
        assert d >= dc + lam / 2 - tol
        assert _f(regularizer(res.plan, "l2")) >= 0.5 - 1e-9


# ----------------------------------------------------------------------------- Thm 3.3 / D.1
@given(data=clouds(), cost=st.sampled_from(COSTS), lam_exp=st.floats(-1.5, 1.0), size=st.floats(-3.0, 0.0),
       seed=st.integers(0, 2**32 - 1))
def test_plan_stability_theorem_3_3_and_d_1(xp, data, cost, lam_exp, size, seed):
    """Two cost matrices C1, C2 (points moved by 10**size): KL ||P1 - P2||_1 <= ||C1 - C2||_inf / lam,
    L2 (uniform) ||P1 - P2||_2 <= ||C1 - C2||_2 / (lam M N)."""
    x, y = data
    M, N = x.shape[0], y.shape[0]
    C1, Ch1, lam = _setup(xp, x, y, cost, lam_exp)
    x2 = x + 10.0 ** size * np.random.default_rng(seed).standard_normal(x.shape)
    C2 = cost_matrix(from_host(x2, xp), from_host(y, xp), cost)
    dC = Ch1 - to_numpy(C2)
    P = {reg: [to_numpy(_solve(xp, C, lam, reg).plan) for C in (C1, C2)] for reg in REGS}
    # solver error of each plan: marginal error <= 1e-9 per entry sum, added once per plan
    assert np.abs(P["kl"][0] - P["kl"][1]).sum() <= np.abs(dC).max() / lam + 2e-9
    assert np.sqrt(((P["l2"][0] - P["l2"][1]) ** 2).sum()) <= np.sqrt((dC ** 2).sum()) / (lam * M * N) + 2e-9


# ----------------------------------------------------------------------------- Thm 5.1
@given(data=clouds(min_pts=2), cost=st.sampled_from(COSTS), lam_exp=st.floats(-1.5, 1.0),
       size=st.floats(-3.0, 0.0), seed=st.integers(0, 2**32 - 1))
def test_theorem_5_1_ratio_error(xp, data, cost, lam_exp, size, seed):
    """L2: eps = F* - F(phi, psi) >= 0 and ||m - m*||_2^2 <= 2 M N eps / lam (eq. 32).

    KL (Appendix F, eq. 36 with the square root restored):
    ||m - m*||_2 <= 2 sqrt(m_max M N eps / lam), m_max the largest ratio of either.
    Perturbations of the optimal potentials of size 10**size * lam.
    """
    x, y = data
    M, N = x.shape[0], y.shape[0]
    C, Ch, lam = _setup(xp, x, y, cost, lam_exp)
    rng = np.random.default_rng(seed)
    for reg in REGS:
        res = _solve(xp, C, lam, reg, tol=1e-12)
        phi = res.phi + from_host(10.0 ** size * lam * rng.standard_normal(M), xp)
        psi = res.psi + from_host(10.0 ** size * lam * rng.standard_normal(N), xp)
        eps = _f(res.dual) - _f(dual_objective(phi, psi, C, lam, reg)[0])
        # Absolute terms from float64 resolution (refimpl.testing): d_eps bounds the rounding of
        # the two evaluations of F, d_m that of the two ratio matrices. Where the L2 bound is an
        # equality (all V > 0) eps is dominated by rounding and the relative term alone fails.
        d_eps = dual_resolution(phi, psi, C, lam, reg) + dual_resolution(res.phi, res.psi, C, lam, reg)
        d_m = np.sqrt(((ratio_resolution(phi, psi, C, lam, reg) + ratio_resolution(res.phi, res.psi, C, lam, reg))
                       ** 2).sum())
        assert eps >= -1e-13 * abs(_f(res.dual)) - d_eps
        eps = max(eps, 0.0) + d_eps
        m, ms = to_numpy(density_ratio(phi, psi, C, lam, reg)), to_numpy(density_ratio(res.phi, res.psi, C, lam, reg))
        err = max(np.sqrt(((m - ms) ** 2).sum()) - d_m, 0.0)
        if reg == "l2":
            assert err ** 2 <= 2 * M * N * eps / lam * (1 + 1e-9)
        else:
            mmax = max(m.max(), ms.max())
            assert err <= 2 * np.sqrt(mmax * M * N * eps / lam) * (1 + 1e-9)


def test_theorem_5_1_kl_printed_bound_drops_a_square_root(xp):
    """Appendix F prints ||m - m*||_2 <= 2 sqrt(m_max M N) eps/lam (linear in eps): false for small
    eps, where ||m - m*|| ~ sqrt(eps). The corrected form (previous test) holds."""
    rng = np.random.default_rng(8)
    C = from_host(cdist(rng.standard_normal((6, 2)), rng.standard_normal((5, 2))), xp)
    lam = 0.5
    res = _solve(xp, C, lam, "kl", tol=1e-12)
    phi = res.phi + from_host(1e-4 * rng.standard_normal(6), xp)
    eps = _f(res.dual) - _f(dual_objective(phi, res.psi, C, lam, "kl")[0])
    m, ms = to_numpy(density_ratio(phi, res.psi, C, lam, "kl")), to_numpy(density_ratio(res.phi, res.psi, C, lam, "kl"))
    err, mmax = np.sqrt(((m - ms) ** 2).sum()), max(m.max(), ms.max())
    assert err > 2 * np.sqrt(mmax * 30) * eps / lam                  # printed form violated
    assert err <= 2 * np.sqrt(mmax * 30 * eps / lam)                 # corrected form


# ----------------------------------------------------------------------------- Thm 3.1
@st.composite
def triples(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d = draw(st.integers(1, 5))
    sizes = [draw(st.integers(1, 8)) for _ in range(3)]
    return [draw(st.floats(0.0, 2.0)) + rng.standard_normal((n, d)) for n in sizes]


@given(pts=triples(), lam=st.floats(0.05, 5.0))
def test_theorem_3_1_symmetry_and_triangle_inequality(xp, pts, lam):
    """KL, Euclidean cost: d(X, Y) = d(Y, X), d(X, Y) <= d(X, Z) + d(Z, Y), d(X, X) > 0 (M > 1)."""
    X, Y, Z = (from_host(p, xp) for p in pts)
    d = lambda P, Q: _f(_solve(xp, cost_matrix(P, Q, "euclidean"), lam, "kl").primal)
    dxy, dyx = d(X, Y), d(Y, X)
    assert dxy == pytest.approx(dyx, rel=1e-8, abs=1e-12)
    assert dxy <= d(X, Z) + d(Z, Y) + SLACK * (dxy + lam)
    if pts[0].shape[0] > 1 and np.unique(pts[0], axis=0).shape[0] > 1:
        assert d(X, X) > 0


# ----------------------------------------------------------------------------- eq. 15
@pytest.mark.parametrize("reg", REGS)
def test_termination_statistic_eq_15(xp, reg):
    """Exactly 1 at the optimum (sum of the plan); the i.i.d.-pairs estimate of eq. 15 is within
    5 standard errors of 1; it moves away from 1 for perturbed potentials."""
    rng = np.random.default_rng(9)
    M, N = 11, 9
    C = from_host(cdist(rng.standard_normal((M, 2)), rng.standard_normal((N, 2)), "cityblock"), xp)
    lam = 0.3
    res = _solve(xp, C, lam, reg)
    assert _f(termination_statistic(res.phi, res.psi, C, lam, reg)) == pytest.approx(1.0, abs=1e-9)
    # eq. 15 on S i.i.d. pairs (x_k, y_k) ~ q x p
    S = 4000
    i, j = rng.integers(0, M, S), rng.integers(0, N, S)
    phi_h, psi_h, C_h = to_numpy(res.phi), to_numpy(res.psi), to_numpy(C)
    pairs = [from_host(v, xp) for v in (phi_h[i], psi_h[j], C_h[i, j])]
    s = _f(termination_statistic(*pairs, lam, reg))
    m = to_numpy(density_ratio(res.phi, res.psi, C, lam, reg))[i, j]
    assert abs(s - 1.0) <= 5 * m.std() / math.sqrt(S)
    # constant shifts of phi: KL exactly exp(delta/lam); L2 strictly increasing
    stat = lambda dphi: _f(termination_statistic(res.phi + dphi, res.psi, C, lam, reg))
    up, down = stat(0.1 * lam), stat(-0.1 * lam)
    assert down < 1.0 < up
    if reg == "kl":
        assert up == pytest.approx(math.exp(0.1), rel=1e-9)
        # a-weighted zero-mean, non-constant perturbation: > 1 by Jensen (rows of P sum to a)
        e = rng.standard_normal(M)
        e -= e.mean()
        assert stat(from_host(0.5 * lam * e, xp)) > 1.0 + 1e-3


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise(xp):
    """Every error names the offending argument (issue 12, items 2-3)."""
    rng = np.random.default_rng(10)
    Ch = cdist(rng.standard_normal((4, 2)), rng.standard_normal((3, 2)))
    C = from_host(Ch, xp)
    h = lambda v: from_host(np.asarray(v, dtype=float), xp)
    z4, z3 = h(np.zeros(4)), h(np.zeros(3))
    nan4 = h([0.0, np.nan, 0.0, 0.0])
    cases = [
        (lambda: solve_regularized(h(Ch - 5), 1.0), "C has negative"),
        (lambda: solve_regularized(h(np.where(Ch > 1, np.nan, Ch)), 1.0), "C has non-finite"),
        (lambda: solve_regularized(h(np.where(Ch > 1, np.inf, Ch)), 1.0), "C has non-finite"),
        (lambda: solve_regularized(C, 0.0), "lam must be > 0"),
        (lambda: solve_regularized(C, -1.0), "lam must be > 0"),
        (lambda: solve_regularized(C, float("nan")), "lam must be finite"),
        (lambda: solve_regularized(C, float("inf")), "lam must be finite"),
        (lambda: solve_regularized(C, 1.0, "entropy"), "reg must be one of"),
        (lambda: solve_regularized(C, 1.0, a=h([0.5, 0.5, 0.5, -0.5])), "a must be > 0"),
        (lambda: solve_regularized(C, 1.0, a=h([0.5, 0.5, np.nan, 0.0])), "a has non-finite"),
        (lambda: solve_regularized(C, 1.0, b=h([0.5, 0.5, 0.5])), "b must sum to 1"),
        (lambda: solve_regularized(C, 1.0, b=h([0.5, 0.5])), "b must have shape"),
        (lambda: solve_regularized(h(Ch[0]), 1.0), "C must have 2 dimensions"),
        (lambda: solve_regularized(h(np.zeros((0, 3))), 1.0), "C must be non-empty"),
        (lambda: solve_regularized(C, 1.0, tol=0.0), "tol must be > 0"),
        (lambda: solve_regularized(C, 1.0, tol=float("nan")), "tol must be finite"),
        (lambda: solve_regularized(C, 1.0, max_iter=0), "max_iter must be >= 1"),
        (lambda: solve_regularized(C, 1.0, max_seconds=0.0), "max_seconds must be > 0"),
        (lambda: solve_regularized(C, 1.0, max_seconds=float("nan")), "max_seconds must be finite"),
        (lambda: solve_regularized(C, 1.0, init=(z3, z3)), "phi must have shape"),
        (lambda: solve_regularized(C, 1.0, init=(nan4, z3)), "phi has non-finite"),
        (lambda: cost_matrix(h(np.zeros((3, 2))), h(np.zeros((2, 3)))), "different dimensions"),
        (lambda: cost_matrix(h(np.zeros((3, 2))), h(np.zeros((2, 2))), "cosine"), "cost must be one of"),
        (lambda: cost_matrix(h(np.full((3, 2), np.inf)), h(np.zeros((2, 2)))), "x has non-finite"),
        (lambda: cost_matrix(h(np.zeros((3, 2))), h(np.full((2, 2), np.nan))), "y has non-finite"),
        (lambda: dual_objective(z3, z3, C, 1.0, "kl"), "phi must have shape"),
        (lambda: dual_objective(z4, z3, C, 1.0, "l3"), "reg must be one of"),
        (lambda: plan_from_potentials(z4, h(np.zeros(2)), C, 1.0, "l2"), "psi must have shape"),
        (lambda: density_ratio(z4, h([np.inf, 0.0, 0.0]), C, 1.0, "l2"), "psi has non-finite"),
        (lambda: termination_statistic(z4, z3, C, -1.0, "kl"), "lam must be > 0"),
        (lambda: termination_statistic(z3, nan4[:3], h(Ch[0]), 1.0, "kl"), "psi has non-finite"),
        (lambda: termination_statistic(z3, z3, h(Ch[0]), 1.0, "kl", a=z3), "takes no weights"),
        (lambda: regularizer(h(-np.ones((2, 2)) / 4), "kl"), "plan has negative"),
        (lambda: regularizer(h(np.full((2, 2), np.nan)), "kl"), "plan has non-finite"),
        (lambda: primal_objective(h(np.ones((2, 2)) / 4), C, 1.0, "kl"), "plan must have the shape"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


def test_dual_objective_with_nan_potentials_raises(xp):
    """Issue 12 item 2: NaN potentials returned NaN; now ValueError naming phi / psi."""
    C = from_host(np.ones((3, 2)), xp)
    ok, bad = from_host(np.zeros(3), xp), from_host(np.array([0.0, np.nan, 1.0]), xp)
    for reg in REGS:
        with pytest.raises(ValueError, match="phi has non-finite"):
            dual_objective(bad, from_host(np.zeros(2), xp), C, 1.0, reg)
        with pytest.raises(ValueError, match="psi has non-finite"):
            dual_objective(ok, bad[:2], C, 1.0, reg)
        value = dual_objective(ok, from_host(np.zeros(2), xp), C, 1.0, reg)[0]
        assert math.isfinite(_f(value))                    # the check moves: finite inputs pass


def test_cost_matrix_overflow_raises_without_warning(xp):
    """Issue 12 item 2: coordinates near 1e200 gave inf with only a RuntimeWarning; now a ValueError."""
    x = from_host(np.array([[1e200, 0.0], [0.0, 1.0]]), xp)
    y = from_host(np.array([[-1e200, 0.0]]), xp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cost in ("euclidean", "sqeuclidean"):
            with pytest.raises(ValueError, match="overflowed"):
                cost_matrix(x, y, cost)
        C = cost_matrix(x, y, "l1")                        # 2e200 is representable: no error
        assert _f(C[0, 0]) == pytest.approx(2e200)


def test_dtype_rule(xp):
    """Issue 12 item 1: float16 refused (the KL solve claimed convergence after 1 iteration);
    integers promoted to float64; float32 with float64 computes in float64; lists refused."""
    rng = np.random.default_rng(12)
    Ch = cdist(rng.standard_normal((5, 2)), rng.standard_normal((4, 2)))
    if hasattr(xp, "float16"):
        for reg in REGS:
            with pytest.raises(TypeError, match="C has dtype float16"):
                solve_regularized(xp.astype(from_host(Ch, xp), xp.float16), 1.0, reg)
    Ci = from_host(np.round(10 * Ch).astype(np.int64), xp)
    for reg in REGS:
        r_int = _solve(xp, Ci, 2.0, reg)
        assert_xp((r_int.plan, r_int.primal), xp, "float64")
        r_flt = _solve(xp, from_host(np.round(10 * Ch), xp), 2.0, reg)
        assert _f(r_int.primal) == _f(r_flt.primal)
        mixed = _solve(xp, from_host(Ch, xp, "float32"), 1.0, reg, a=np.full(5, 0.2))
        assert_xp((mixed.plan, mixed.phi, mixed.primal), xp, "float64")
    with pytest.raises(TypeError, match="a must be an array"):
        solve_regularized(from_host(Ch, xp), 1.0, a=[0.2] * 5)       # issue 12 item 3: list-valued weights
    with pytest.raises(TypeError, match="b must be an array"):
        dual_objective(from_host(np.zeros(5), xp), from_host(np.zeros(4), xp), from_host(Ch, xp), 1.0, "kl",
                       b=(0.25,) * 4)
    with pytest.raises(TypeError, match="C must be an array"):
        solve_regularized(Ch.tolist(), 1.0)
    with pytest.raises(TypeError, match="lam must be a real number"):
        solve_regularized(from_host(Ch, xp), True)
    if xp is not np:
        with pytest.raises(TypeError, match="plan lives in numpy"):
            primal_objective(np.full((5, 4), 0.05), from_host(Ch, xp), 1.0, "kl")
    with pytest.raises(TypeError, match="init must be a pair"):
        solve_regularized(from_host(Ch, xp), 1.0, init=from_host(np.zeros(5), xp))
    with pytest.raises(TypeError, match="reg must be a string"):
        solve_regularized(from_host(Ch, xp), 1.0, reg=2)


def test_huge_lambda_is_not_claimed_converged(xp):
    """Issue 12 item 3: lam=1e12 (KL) reported converged with a primal above its limit mean(C).
    Now: never converged with primal > mean(C) (the plan a b^T is feasible and I(a b^T) = 0); at
    this lam float64 cannot certify the gap, and the solver says so. L2 at 1e12 is exact."""
    C = from_host(np.random.default_rng(0).uniform(0, 1, (10, 12)), xp)
    mean = _f(xp.mean(C))
    with pytest.warns(RuntimeWarning, match="beyond the resolution of float64"):
        r = solve_regularized(C, 1e12, "kl")
    assert not r.converged and r.status == "resolution"
    for lam in (1e3, 1e5):                     # here eps*lam << tol*|F|: converged, below its limit
        r = _solve(xp, C, lam, "kl", tol=1e-9)
        assert _f(r.primal) <= mean * (1 + 1e-12)
        assert _f(r.primal) >= ot.emd2(np.full(10, 0.1), np.full(12, 1 / 12), to_numpy(C))
    r = _solve(xp, C, 1e12, "l2")              # L2: d in [d_c + lam/2, mean(C) + lam/2]
    assert _f(r.primal) - 0.5e12 <= mean + 1e-3 and _f(r.primal) - 0.5e12 >= 0.0


def _l1_marginal_error(res, a, b):
    P = to_numpy(res.plan).astype(np.float64)
    return np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()


def test_float32_convergence_is_checked_on_the_returned_plan(xp):
    """Issue 12 item 4: 32x32 costs from U(500, 600), lam=1, float32 KL claimed convergence with a
    marginal error 1.3e-4 above tol 1.19e-4 (1e3 eps). A claim is now true of the plan returned."""
    rng = np.random.default_rng(0)
    C = from_host(rng.uniform(500, 600, (32, 32)), xp, "float32")
    tol32 = 1e3 * float(np.finfo(np.float32).eps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = solve_regularized(C, 1.0, "kl")
    assert res.status in ("converged", "stalled")
    if res.converged:
        assert _l1_marginal_error(res, np.full(32, 1 / 32), np.full(32, 1 / 32)) <= 1.01 * tol32


def _image_costs(rng, scale_to=580.0, n=128, d=784):
    x, y = rng.uniform(-1, 1, (n, d)), rng.uniform(-1, 1, (n, d))
    C = cdist(x, y, "cityblock")
    return C * (scale_to / np.median(C))


def test_float32_image_costs_fail_fast_and_say_what_to_change():
    """Issue 12 item 4: 128x128 costs, median 580, lam 0.01, float32 KL ran all 10,000 iterations
    (510 s) before warning. float32 cannot resolve this problem (C/lam ~ 6e4): the solver stops
    when its stopping measure stalls, quickly, and the warning names float64 and a larger lam;
    float64 converges. (Iteration counts, not times, keep this independent of machine speed.)"""
    C = _image_costs(np.random.default_rng(1))
    with pytest.warns(RuntimeWarning, match="(?s)stalled.*use float64 costs.*a larger lam"):
        r32 = solve_regularized(C.astype(np.float32), 0.01, "kl")
    assert not r32.converged and r32.iterations < 2000
    r64 = _solve(np, C, 0.01, "kl", tol=1e-9)
    assert _l1_marginal_error(r64, np.full(128, 1 / 128), np.full(128, 1 / 128)) <= 1e-9
    r32 = solve_regularized(C.astype(np.float32), 0.01, "l2")      # L2 resolves it in float32
    assert r32.converged
    tol32 = 1e3 * float(np.finfo(np.float32).eps)
    for lam in (0.1, 1.0, 5.0):          # a convergence claim is true of the returned plan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r32 = solve_regularized(C.astype(np.float32), lam, "kl")
        err = _l1_marginal_error(r32, np.full(128, 1 / 128), np.full(128, 1 / 128))
        assert r32.converged or (lam < 1.0 and r32.status == "stalled")
        if r32.converged:
            assert err <= 1.01 * tol32


@pytest.mark.parametrize("reg", REGS)
def test_tiny_lambda_converges_by_epsilon_scaling(xp, reg):
    """Issue 12 item 4: 50x60, lam = 1e-6 x median cost: the KL solve ran > 400 s inside the dense
    Newton solve, the L2 one > 60 s. With epsilon-scaling both converge (checked against the exact
    OT cost: d_c <= d_{c,lam} <= d_c + lam I*, Lemma 3.2) in a few hundred iterations."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 2)), rng.standard_normal((60, 2)) + 1.0
    Ch = cdist(x, y)
    lam = 1e-6 * float(np.median(Ch))
    res = _solve(xp, from_host(Ch, xp), lam, reg, tol=1e-9)
    assert res.iterations < (2000 if reg == "kl" else 200)
    a, b = np.full(50, 1 / 50), np.full(60, 1 / 60)
    assert _l1_marginal_error(res, a, b) <= 1e-9
    emd = ot.emd2(a, b, Ch)
    Istar = math.log(50) if reg == "kl" else 25.0
    assert emd * (1 - SLACK) <= _f(res.primal) <= emd + lam * Istar + SLACK * emd
    with warnings.catch_warnings():              # without annealing: not converged in the same iterations
        warnings.simplefilter("ignore", RuntimeWarning)
        cold = solve_regularized(from_host(Ch, xp), lam, reg, tol=1e-9, anneal=False,
                                 max_iter=max(res.iterations, 1), max_seconds=30.0)
    assert not cold.converged


def test_float32_tiny_lambda_returns_promptly_with_advice():
    rng = np.random.default_rng(0)
    C = cdist(rng.standard_normal((50, 2)), rng.standard_normal((60, 2)) + 1.0).astype(np.float32)
    for reg in REGS:
        with pytest.warns(RuntimeWarning, match="use float64 costs"):
            r = solve_regularized(C, 1e-6 * float(np.median(C)), reg)
        assert not r.converged and r.status == "stalled"


def test_time_budget(xp):
    """max_seconds stops the solver with converged=False, status "max_seconds" and a warning that
    says where it stopped (the epsilon-scaling stage) and what to change."""
    rng = np.random.default_rng(0)
    C = from_host(cdist(rng.standard_normal((50, 2)), rng.standard_normal((60, 2)) + 1.0), xp)
    for reg in REGS:
        with pytest.warns(RuntimeWarning, match="(?s)max_seconds=1e-09 spent.*stage 1 of .*a larger max_seconds"):
            r = solve_regularized(C, 1e-6, reg, max_seconds=1e-9)
        assert r.status == "max_seconds" and not r.converged
        assert r.plan.shape == (50, 60) and np.all(np.isfinite(to_numpy(r.plan)))


def test_epsilon_scaling_schedule():
    from refimpl.ot_solver import _schedule
    assert _schedule(1.0, 1.0) == [1.0]                       # large lam: one stage
    s = _schedule(1e-6, 1.0)
    assert s[-1] == 1e-6 and all(p / q == pytest.approx(10.0) for p, q in zip(s, s[1:]))
    assert s[0] == pytest.approx(0.1)                                   # starts at 0.1 (max C - min C)
    assert _schedule(0.011, 1.0) == [0.011]                     # within a factor 10 of the start


def test_newton_only_when_cheaper_than_sinkhorn():
    """The Sinkhorn-to-Newton handover follows the flop model: a dense (M+N)^3 solve is worth it
    only against many predicted Sinkhorn iterations, more of them the larger M+N is."""
    from refimpl.ot_solver import _newton_after
    assert _newton_after(50, 60) < _newton_after(200, 250) < _newton_after(290, 300)
    assert _newton_after(50, 60) >= 50


@pytest.mark.parametrize("reg", REGS)
def test_outputs_stay_on_a_non_default_device(reg, monkeypatch):
    """Issue 14 item 1: _weights' xp.full, _Dual's zero scalar and the Newton step's zeros/eye had
    no device=; inputs on array_api_strict's "device1" now give outputs on "device1" (all public
    functions; the solve takes the Newton path: small lam)."""
    aas = pytest.importorskip("array_api_strict")
    dev = aas.Device("device1")
    rng = np.random.default_rng(3)
    put = lambda v: from_host(np.asarray(v, dtype=float), aas, "float64", dev)
    x, y = put(rng.standard_normal((6, 2))), put(rng.standard_normal((5, 2)))
    C = cost_matrix(x, y)
    phi, psi = put(rng.standard_normal(6)), put(rng.standard_normal(5))
    from refimpl.ot_solver import _Dual
    calls, direction = [], _Dual.newton_direction
    monkeypatch.setattr(_Dual, "newton_direction", lambda self, *a: calls.append(1) or direction(self, *a))
    res = solve_regularized(C, 1e-3, reg, tol=1e-9, anneal=False)
    assert res.converged and len(calls) > 0          # the dense Newton step ran on device1
    outs = [C, res.plan, res.phi, res.psi, res.primal, res.dual, res.gap, res.marginal_error,
            *dual_objective(phi, psi, C, 0.5, reg), plan_from_potentials(phi, psi, C, 0.5, reg),
            density_ratio(phi, psi, C, 0.5, reg), termination_statistic(phi, psi, C, 0.5, reg),
            termination_statistic(phi[:5], psi, C[0, :], 0.5, reg),
            regularizer(res.plan, reg), primal_objective(res.plan, C, 0.5, reg)]
    for o in outs:
        assert o.device == dev, f"output on {o.device}"


def test_l2_block_roots_are_exact(xp):
    """The exact L2 block update (fallback sweep) against a sorting oracle: for each row, the
    root s of sum_q w_q (s - T_q)_+ = lam lies on the piece where the k smallest T are active."""
    from refimpl.ot_solver import _dual
    from refimpl.regularizers import L2
    rng = np.random.default_rng(11)
    T, w = rng.random((6, 9)), rng.random(9) + 0.1
    w /= w.sum()
    lam = 0.05
    D = _dual(from_host(rng.random((9, 6)), xp), lam, L2, from_host(np.full(9, 1 / 9), xp),
              from_host(np.full(6, 1 / 6), xp), xp)
    got = to_numpy(D.root(from_host(T, xp), from_host(w, xp)))
    for i in range(6):
        o = np.argsort(T[i])
        t, ww = T[i][o], w[o]
        for k in range(1, 10):
            s = (lam + ww[:k] @ t[:k]) / ww[:k].sum()
            if s > t[k - 1] and (k == 9 or s <= t[k]):
                break
        assert got[i] == pytest.approx(s, rel=1e-13, abs=1e-15)


# ----------------------------------------------------------------------------- issue 13 findings (solver)
def test_tolerance_below_float64_resolution_returns_fast_and_says_so(xp):
    """KL at lam = 1e-4 x median cost (10 x 10, squared Euclidean) with tol = 1e-12: the plan's
    entries exp(V/lam) carry relative rounding up to eps (|phi| + |psi| + max C)/lam ~ 2e-11, and
    its marginals stall near 1e-12, so tol = 1e-12 is not reachable. The solver stops at the stall
    (a few hundred iterations, not max_iter), says converged=False, names the reachable tol, and a
    rerun at the advised tol converges (tol = 1e-10 converges as before)."""
    rng = np.random.default_rng(0)
    Ch = cdist(rng.standard_normal((10, 2)), rng.standard_normal((10, 2)), "sqeuclidean")
    C, lam = from_host(Ch, xp), 1e-4 * float(np.median(Ch))
    with pytest.warns(RuntimeWarning, match=r"(?s)stalled.*tol=1e-12 is below what float64 resolves at this lam"
                                            r".*To converge: .*tol >= ([0-9.e-]+)") as rec:
        res = solve_regularized(C, lam, "kl", tol=1e-12)
    assert not res.converged and res.status == "stalled" and res.iterations < 1000
    advised = float(re.search(r"tol >= ([0-9.e+-]+) \(ten times", str(rec[0].message)).group(1))
    assert 1e-12 < advised < 1e-9
    assert _solve(xp, C, lam, "kl", tol=advised).iterations < 1000
    assert _solve(xp, C, lam, "kl", tol=1e-10).iterations < 1000


def test_newton_system_with_a_vanishing_gradient_is_not_singular(xp):
    """Found by hypothesis: N = 1, lam = 1e-4 x median, tol = 1e-12. Near the rounding floor the
    Levenberg-Marquardt damping mu ~ 1e-2 |grad F|_1 ~ 3e-17 vanished next to the Laplacian's
    diagonal and the dense LU hit an exact zero pivot (LinAlgError); mu >= 4 (M+N) eps now."""
    C = np.array([[0.0], [0.47603395], [0.01514712], [1.64874142]])
    a = np.array([9.98214457e-01, 8.26872046e-04, 4.09293034e-04, 5.49377464e-04])
    a /= a.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = solve_regularized(from_host(C, xp), 4.760339514363724e-05, "kl", a=from_host(a, xp),
                                b=from_host(np.ones(1), xp), tol=1e-12)
    assert res.status in ("converged", "stalled")
    assert _l1_marginal_error(res, a, np.ones(1)) <= 1e-12


def test_numpy_scalar_parameters(xp):
    """NumPy scalars (and 0-d NumPy arrays for reals) are reals, integers and bools by the rules of
    refimpl.validation; every scalar parameter of refimpl.ot is converted to a Python number at
    entry, so none reaches array_api_strict arithmetic (which refuses NumPy scalars with
    TypeError), and each call returns what it returns for the Python scalar."""
    rng = np.random.default_rng(3)
    Ch = rng.random((4, 5))
    C = from_host(Ch, xp)
    phi, psi = from_host(rng.standard_normal(4) * 0.1, xp), from_host(rng.standard_normal(5) * 0.1, xp)
    P = from_host(np.full((4, 5), 0.05), xp)
    calls = [
        lambda lam, reg: solve_regularized(C, lam, reg).plan,
        lambda lam, reg: dual_objective(phi, psi, C, lam, reg)[0],
        lambda lam, reg: plan_from_potentials(phi, psi, C, lam, reg),
        lambda lam, reg: density_ratio(phi, psi, C, lam, reg),
        lambda lam, reg: primal_objective(P, C, lam, reg),
        lambda lam, reg: termination_statistic(phi, psi, C, lam, reg),
        lambda lam, reg: termination_statistic(phi, phi, C[:, 0], lam, reg),
    ]
    for reg in REGS:
        for f in calls:
            want = to_numpy(f(0.5, reg))
            for lam in (np.float64(0.5), np.float32(0.5), np.asarray(0.5)):
                got = f(lam, np.str_(reg))
                assert_xp(got, xp, "float64")
                np.testing.assert_array_equal(to_numpy(got), want)
    ref = solve_regularized(C, 0.5, "kl", tol=1e-9, max_iter=500, max_seconds=10.0, anneal=True)
    res = solve_regularized(C, np.float64(0.5), "kl", tol=np.float64(1e-9), max_iter=np.int64(500),
                            max_seconds=np.float32(10.0), anneal=np.True_)
    assert res.converged and res.iterations == ref.iterations
    np.testing.assert_array_equal(to_numpy(res.plan), to_numpy(ref.plan))
    assert solve_regularized(C, 0.5, "l2", anneal=np.False_).converged
    assert_xp(cost_matrix(from_host(rng.random((3, 2)), xp), from_host(rng.random((2, 2)), xp), np.str_("l1")), xp)
    with pytest.raises(TypeError, match="anneal"):
        solve_regularized(C, 0.5, anneal=1)
