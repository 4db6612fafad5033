"""Wasserstein proximal of GANs: Thm 2 / eq. 2 / Def. 6 (natural gradient), App. B eqs. 6-8 (the
semi-backward Euler step and its consistency with the flow) and Prop. 4 (the relaxed metric), on
the two-delta model where the metric tensor is G = diag(alpha, 1 - alpha), as hypothesis
properties of the library's functions (prox, sbe.potential_objective, rwp.proximal_term).

Independent pieces: POT's W2 for the metric, finite differences (numeric_grad) for the
Euclidean gradient of F_W1, a hand-written piecewise-linear potential network whose supremum
is known in closed form, a fine explicit integration of the flow ODE."""
import numpy as np
import ot
import pytest
from hypothesis import assume, given, strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.nn import MLP
from refimpl.prox import F_W1, d_W, two_delta_prox
from refimpl.rwp import proximal_term
from refimpl.sbe import potential_objective
from refimpl.testing import numeric_grad, two_delta_models


def _G(alpha):
    return np.diag([alpha, 1.0 - alpha])


def _w2sq(th1, th2, alpha):
    """POT W2^2 between alpha d_a + (1 - alpha) d_b for two parameter pairs (Theorem 1 on Theta)."""
    w = np.array([alpha, 1 - alpha])
    keep = w > 0
    p1, p2, w = th1[keep], th2[keep], w[keep]
    return float(ot.emd2(w, w, (p1[:, None] - p2[None, :]) ** 2))


# ----------------------------------------------------------------------------- Def. 6, eq. 6
@given(td=two_delta_models(), t=st.floats(1e-4, 1.0), seed=st.integers(0, 2**32 - 1))
def test_definition_6_metric_tensor_and_eq_6(xp, td, t, seed):
    """d_W(theta, theta + t v)^2 = t^2 v^T G v with G = diag(alpha, 1 - alpha) (Def. 6: the kinetic
    energy of moving each delta), equal to POT's W2^2 when both stay in Theta; eq. (6) holds with no
    O(h^2) remainder because G is constant."""
    v = np.random.default_rng(seed).standard_normal(2)
    th2 = td.theta + t * v
    got = float(to_numpy(d_W(from_host(td.theta, xp), from_host(th2, xp), td.alpha))) ** 2
    dv = th2 - td.theta                                   # the displacement as rounded
    want = dv @ _G(td.alpha) @ dv
    assert got == pytest.approx(want, rel=1e-12, abs=1e-300)
    if th2[0] < 0 < th2[1]:
        assert got == pytest.approx(_w2sq(td.theta, th2, td.alpha), rel=1e-9, abs=1e-15)
    assert got > 0 or td.alpha in (0.0, 1.0)            # moved


# ----------------------------------------------------------------------------- Thm 2, eq. 2
@given(td=two_delta_models())
def test_theorem_2_w_prox_is_a_natural_gradient_step(xp, td):
    """Away from the target (|theta - theta*| > h per coordinate) the W-prox step is exactly
    theta - h G^{-1} grad F_W1 (Thm 2's natural gradient, forward Euler of eq. 2) and the E-prox
    step is theta - h grad F_W1; grad F_W1 by finite differences of the library's F_W1."""
    assume(0.0 < td.alpha < 1.0)
    assume(np.all(np.abs(td.theta - td.theta_star) > 1.01 * td.h))
    assume(np.all(np.abs(td.theta - td.theta_star) > 1e-3))
    ts = from_host(td.theta_star, xp)
    g = numeric_grad(lambda th: F_W1(th, ts, td.alpha), from_host(td.theta, xp), h=1e-7)
    g = np.asarray(g)                                   # (2,)
    F = float(to_numpy(F_W1(from_host(td.theta, xp), ts, td.alpha)))
    fd_res = 4 * np.finfo(float).eps * (F + 1) / 1e-7 * max(1.0, np.abs(td.theta).max())   # rounding / step
    np.testing.assert_allclose(g, [td.alpha * np.sign(td.theta[0] - td.theta_star[0]),
                                   (1 - td.alpha) * np.sign(td.theta[1] - td.theta_star[1])], rtol=1e-6, atol=fd_res)
    w = to_numpy(two_delta_prox(from_host(td.theta, xp), ts, td.alpha, td.h, "wasserstein"))
    e = to_numpy(two_delta_prox(from_host(td.theta, xp), ts, td.alpha, td.h, "euclidean"))
    scale = 1e-12 * (np.abs(td.theta).max() + td.h)
    exact = np.sign(td.theta - td.theta_star) * np.array([td.alpha, 1 - td.alpha])
    np.testing.assert_allclose(w, td.theta - td.h * np.linalg.solve(_G(td.alpha), exact), rtol=1e-12, atol=scale)
    np.testing.assert_allclose(e, td.theta - td.h * exact, rtol=1e-12, atol=scale)
    # natural gradient written as G (theta - theta_W) / h = grad F (finite differences)
    np.testing.assert_allclose(_G(td.alpha) @ (td.theta - w) / td.h, g, rtol=1e-6,
                               atol=fd_res + 4 * np.finfo(float).eps * np.abs(td.theta).max() / td.h)
    if td.alpha != 0.5:
        assert np.abs(w - e).max() > 1e-3 * td.h * abs(1 - 2 * td.alpha)      # moved: geometry matters


# ----------------------------------------------------------------------------- App. B eq. 8
def _flow(theta, target, t, dt):
    """Explicit Euler of the natural-gradient flow d theta/dt = -G^{-1} grad F_W1 = -sign(theta - target)
    (per coordinate with mass), with step dt and a stop within dt of the target."""
    th = np.array(theta, dtype=float)
    for _ in range(int(round(t / dt))):
        d = th - target
        th = np.where(np.abs(d) <= dt, target, th - dt * np.sign(d))
    return th


@given(td=two_delta_models(h=(1e-2, 3.0)))
def test_eq_8_semi_backward_step_solves_the_implicit_equation_and_follows_the_flow(xp, td):
    """The W-prox step theta_1 solves theta_1 = theta_0 - h G^{-1} dF(theta_1) (eq. 8, with a
    subgradient at the kink), and equals the flow of eq. 2 at time h (local error 0 <= O(h^2): the
    field is piecewise constant); the E-prox step, which follows the Euclidean flow, does not."""
    assume(0.0 < td.alpha < 1.0)
    w = to_numpy(two_delta_prox(from_host(td.theta, xp), from_host(td.theta_star, xp), td.alpha, td.h))
    step = (td.theta - w) / td.h
    for k in range(2):
        if w[k] != td.theta_star[k]:
            assert step[k] == pytest.approx(np.sign(w[k] - td.theta_star[k]), rel=1e-9)
        else:
            assert abs(step[k]) <= 1 + 1e-12
    dt = td.h / 2000
    flow = _flow(td.theta, td.theta_star, td.h, dt)
    np.testing.assert_allclose(w, flow, atol=2 * dt + 1e-12 * np.abs(td.theta).max())
    e = to_numpy(two_delta_prox(from_host(td.theta, xp), from_host(td.theta_star, xp), td.alpha, td.h, "euclidean"))
    far = np.abs(td.theta - td.theta_star) > td.h
    if far.all() and td.alpha != 0.5:
        assert np.abs(e - flow).max() > td.h * abs(1 - 2 * td.alpha) / 2 - 2 * dt       # moved


# ----------------------------------------------------------------------------- App. B eq. 7 / Prop. 3
def _pl_potential(xp, s_a, s_b, c=0.0):
    """Phi(x) = s_a (x - c) for x < c, s_b (x - c) for x > c as a (1, 2, 1) ReLU MLP."""
    net = MLP((1, 2, 1), "relu", "linear")
    P = [(np.array([[-1.0, 1.0]]), np.array([c, -c])), (np.array([[-s_a], [s_b]]), np.array([0.0]))]
    return net, [(from_host(W, xp), from_host(b, xp)) for W, b in P]


@given(td=two_delta_models(h=(1e-2, 3.0)), k=st.integers(0, 12), seed=st.integers(0, 2**32 - 1))
def test_eq_7_sbe_supremum_is_half_the_metric(xp, td, k, seed):
    """sup_Phi E[Phi(g_theta) - Phi(g_theta_k) - |grad Phi(g_theta_k)|^2 / 2] = d_W(theta, theta_k)^2 / 2
    on the two-delta model (B = 12 samples, k of them at a: alpha = k/12). The library's SBE objective
    (1/h times it, with its double backward) is evaluated with a piecewise-linear potential: at slopes
    (delta_a, delta_b) it equals d_W^2/(2h) and is stationary in the slopes; other slopes give less."""
    alpha = k / 12
    rng = np.random.default_rng(seed)
    th1 = td.theta + 0.5 * td.h * rng.standard_normal(2)
    assume(th1[0] < 0 < th1[1])
    x_prev = np.where(np.arange(12) < k, td.theta[0], td.theta[1])[:, None]
    x_new = np.where(np.arange(12) < k, th1[0], th1[1])[:, None]
    da, db = th1 - td.theta
    net, P = _pl_potential(xp, da, db)
    J, grads, _ = potential_objective(net, P, from_host(x_new, xp), from_host(x_prev, xp), td.h)
    dw2 = float(to_numpy(d_W(from_host(th1, xp), from_host(td.theta, xp), alpha))) ** 2
    assert float(to_numpy(J)) == pytest.approx(dw2 / (2 * td.h), rel=1e-10, abs=1e-14 * (1 + abs(da) + abs(db)) / td.h)
    assert np.abs(to_numpy(grads[1][0])).max() <= 1e-10 * (1 + abs(da) + abs(db)) / td.h   # stationary in slopes
    s = rng.standard_normal(2)
    net2, P2 = _pl_potential(xp, da + s[0], db + s[1])
    J2 = float(to_numpy(potential_objective(net2, P2, from_host(x_new, xp), from_host(x_prev, xp), td.h)[0]))
    assert J2 <= float(to_numpy(J)) + 1e-12 * (1 + abs(J2))
    if 0 < k < 12:
        assert J2 < float(to_numpy(J))          # moved: the supremum is attained only at the displacement


# ----------------------------------------------------------------------------- Prop. 4 (eqs. 9-13), eq. 4
@given(td=two_delta_models(), k=st.integers(0, 10), seed=st.integers(0, 2**32 - 1))
def test_prop_4_relaxed_metric_is_d_W_on_two_deltas(xp, td, k, seed):
    """eq. (4)'s proximal term on stratified two-delta samples (k of 10 at a) equals d_W^2/(2h) (the
    relaxed metric coincides with the constrained one: n = 1, the gradient constraint holds)."""
    alpha = k / 10
    th1 = td.theta + np.random.default_rng(seed).standard_normal(2)
    x0 = np.where(np.arange(10) < k, td.theta[0], td.theta[1])[:, None]
    x1 = np.where(np.arange(10) < k, th1[0], th1[1])[:, None]
    val, _ = proximal_term(from_host(x1, xp), from_host(x0, xp), td.h)
    dw = float(to_numpy(d_W(from_host(th1, xp), from_host(td.theta, xp), alpha)))
    assert float(to_numpy(val)) == pytest.approx(dw * dw / (2 * td.h), rel=1e-12, abs=1e-300)


@given(n=st.integers(2, 30), seed=st.integers(0, 2**32 - 1), h=st.floats(1e-2, 10.0))
def test_prop_4_one_dimensional_monotone_generators_attain_W2(xp, n, seed, h):
    """n = 1 sample space: for generators monotone in z on the same sorted z, 2h * proximal term = W2^2 of
    the two sample sets (POT); in 2-D a rotation of a symmetric set has W2 = 0 but a positive proximal
    term (the relaxed metric is not the Wasserstein one, Sec. 2.2)."""
    rng = np.random.default_rng(seed)
    z = np.sort(rng.standard_normal(n))
    g0 = (rng.standard_normal() + np.exp(rng.standard_normal()) * z)[:, None]
    g1 = (rng.standard_normal() + np.exp(rng.standard_normal()) * z + 0.1 * z ** 3)[:, None]
    val = float(to_numpy(proximal_term(from_host(g1, xp), from_host(g0, xp), h)[0]))
    w = np.full(n, 1.0 / n)
    w2 = float(ot.emd2(w, w, (g1 - g0.T) ** 2))
    assert 2 * h * val == pytest.approx(w2, rel=1e-9, abs=1e-12)
    ang = 2 * np.pi * np.arange(n) / n
    pts = np.stack([np.cos(ang), np.sin(ang)], 1)
    rot = np.stack([np.cos(ang + 2 * np.pi / n), np.sin(ang + 2 * np.pi / n)], 1)
    v2 = float(to_numpy(proximal_term(from_host(rot, xp), from_host(pts, xp), h)[0]))
    assert v2 > 0.1 / (h * n * n) and ot.emd2(w, w, ((rot[:, None] - pts[None]) ** 2).sum(-1)) < 1e-12
