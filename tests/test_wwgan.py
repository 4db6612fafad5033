"""WWGAN penalty: whole critic loss against finite differences (float64, smooth nets, tiny
images), the penalty against dense and hand-built metric tensors, and the method."""
import numpy as np
import pytest

from refimpl.backend import from_host, to_numpy
from refimpl.nn import MLP
from refimpl.objectives import gradient_penalty
from refimpl.train import ArrayData, GANConfig, GANMethod, train
from refimpl.wgrad import PixelGraph, laplacian_dense
from refimpl.wwgan import WWGANMethod, wasserstein_penalty, wwgan_critic_grads
from tests.conftest import assert_xp
from tests.test_nn import _fd_params

SHAPES = [(1, 3, 3), (2, 3, 4)]


def _setup(xp, shape, seed, B=5):
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    critic = MLP((d, 7, 5, 1), "softplus")
    cp = critic.init(rng, xp=xp)
    cp = [(W * 3.0, b + 0.1) for W, b in cp]          # so that s_b is O(1), away from 0 and 1
    real = from_host(rng.uniform(-1, 1, (B, d)), xp, "float64")
    fake = from_host(rng.uniform(-1, 1, (B, d)), xp, "float64")
    return critic, cp, real, fake


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant,alpha,gamma", [("paper", 0.0, 0.0), ("paper", 0.7, 0.0), ("authors", 0.0, 0.3)])
def test_critic_loss_gradient_matches_finite_differences(xp, shape, variant, alpha, gamma):
    C, H, W = shape
    graph = PixelGraph(H, W, channels=C, variant=variant)
    critic, cp, real, fake = _setup(xp, shape, seed=11 * C + W)
    lam = 3.0

    def loss(p):    # fixed penalty points: same rng seed every call
        return float(to_numpy(wwgan_critic_grads(critic, p, real, fake, np.random.default_rng(5), lam, graph,
                                                 alpha, gamma)[0]))

    value, grads, logs = wwgan_critic_grads(critic, cp, real, fake, np.random.default_rng(5), lam, graph,
                                            alpha, gamma)
    assert_xp((value, grads, logs), xp, "float64")
    assert float(to_numpy(logs["penalty"])) > 1e-3          # the penalty term is really exercised
    for (l, k, idx), fd in _fd_params(loss, cp, xp, np.random.default_rng(1), n_checks=12):
        assert to_numpy(grads[l][k])[idx] == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("shape", SHAPES)
def test_penalty_matches_dense_tensor_per_sample(xp, shape):
    """s_b^2 = g_b^T L~(X_b) g_b with L~ from laplacian_dense, and the double-backward seed
    lam * 2 (s-1)/s * L~ g / B built densely gives the same parameter gradients."""
    C, H, W = shape
    graph = PixelGraph(H, W, channels=C)
    critic, cp, real, fake = _setup(xp, shape, seed=3)
    x_hat = 0.3 * real + 0.7 * fake
    lam, alpha = 2.5, 0.4
    pen, grads, s = wasserstein_penalty(critic, cp, x_hat, lam, graph, alpha=alpha)
    g, tape = critic.input_gradient(cp, x_hat)
    gh, xh = to_numpy(g), to_numpy(x_hat)
    B = xh.shape[0]
    s_dense, u = np.zeros(B), np.zeros_like(gh)
    for b in range(B):
        Xb = from_host(((xh[b] + 1) / 2).reshape(shape), xp, "float64")
        L = to_numpy(laplacian_dense(graph, Xb, alpha=alpha))
        s_dense[b] = np.sqrt(gh[b] @ L @ gh[b])
        u[b] = lam * 2 * (s_dense[b] - 1) / s_dense[b] * (L @ gh[b]) / B
    np.testing.assert_allclose(to_numpy(s), s_dense, rtol=1e-12)
    assert float(to_numpy(pen)) == pytest.approx(lam * np.mean((s_dense - 1) ** 2), rel=1e-12)
    _, want = critic.input_gradient_vjp(cp, tape, from_host(u, xp, "float64"), need_dx=False)
    for (gW, gb), (wW, wb) in zip(grads, want):
        np.testing.assert_allclose(to_numpy(gW), to_numpy(wW), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(to_numpy(gb), to_numpy(wb), rtol=1e-10, atol=1e-14)


def _hand_laplacian(C, H, W, m, alpha):
    """Prop. 5 built pixel by pixel: 4-neighbour grid, unit weights, constant mass m."""
    deg = np.zeros((H, W))
    for y in range(H):
        for x in range(W):
            deg[y, x] = sum(0 <= y + dy < H and 0 <= x + dx < W for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)))
    d = deg / (C * deg.sum())                       # normalised degree, total over all channels
    n = C * H * W
    L = np.full((n, n), float(alpha))
    for c in range(C):
        for y in range(H):
            for x in range(W):
                for dy, dx in ((0, 1), (1, 0)):
                    y2, x2 = y + dy, x + dx
                    if y2 < H and x2 < W:
                        i, j = c * H * W + y * W + x, c * H * W + y2 * W + x2
                        a = 0.5 * (m / d[y, x] + m / d[y2, x2])
                        L[i, j] -= a
                        L[j, i] -= a
                        L[i, i] += a
                        L[j, j] += a
    return L


@pytest.mark.parametrize("shape", SHAPES)
def test_constant_mass_linear_critic_closed_form(xp, shape):
    """Linear critic f(x) = <w, x> + c at constant images: g = w for every sample, so
    P = lam (s - 1)^2 with s^2 = w^T L~ w, dP/dw = lam 2 (s-1)/s L~ w, dP/dc = 0; L~ built by
    hand and also by laplacian_dense."""
    C, H, W = shape
    n = C * H * W
    rng = np.random.default_rng(7)
    w = rng.standard_normal(n) * 0.3
    critic = MLP((n, 1), "relu", "linear")
    cp = [(from_host(w[:, None], xp, "float64"), from_host(np.array([0.2]), xp, "float64"))]
    v, lam, alpha = 0.3, 4.0, 0.25
    x_hat = from_host(np.full((6, n), v), xp, "float64")
    graph = PixelGraph(H, W, channels=C)
    L = _hand_laplacian(C, H, W, (v + 1) / 2, alpha)
    Ld = to_numpy(laplacian_dense(graph, from_host(np.full(shape, (v + 1) / 2), xp, "float64"), alpha=alpha))
    np.testing.assert_allclose(Ld, L, rtol=1e-12, atol=1e-12)
    s = np.sqrt(w @ L @ w)
    pen, grads, norms = wasserstein_penalty(critic, cp, x_hat, lam, graph, alpha=alpha)
    np.testing.assert_allclose(to_numpy(norms), np.full(6, s), rtol=1e-12)
    assert float(to_numpy(pen)) == pytest.approx(lam * (s - 1) ** 2, rel=1e-12)
    np.testing.assert_allclose(to_numpy(grads[0][0])[:, 0], lam * 2 * (s - 1) / s * (L @ w), rtol=1e-10)
    np.testing.assert_allclose(to_numpy(grads[0][1]), [0.0], atol=1e-14)
    # the whole critic loss at real = fake = constant: only the penalty remains
    loss, g2, _ = wwgan_critic_grads(critic, cp, x_hat, x_hat, np.random.default_rng(0), lam, graph, alpha)
    assert float(to_numpy(loss)) == pytest.approx(lam * (s - 1) ** 2, rel=1e-12)
    np.testing.assert_allclose(to_numpy(g2[0][0])[:, 0], lam * 2 * (s - 1) / s * (L @ w), rtol=1e-10)


def test_zero_mass_with_gamma_is_the_wgan_gp_penalty(xp):
    """At mass 0 (images all -1) L(X) = 0, so with gamma = 1, alpha = 0 the tensor is I and the
    WWGAN penalty equals the WGAN-GP penalty of refimpl.objectives (value and gradients)."""
    shape = (2, 3, 4)
    critic, cp, _, _ = _setup(xp, shape, seed=9)
    x_hat = from_host(-np.ones((5, 24)), xp, "float64")
    graph = PixelGraph(3, 4, channels=2)
    pen, grads, s = wasserstein_penalty(critic, cp, x_hat, 3.0, graph, alpha=0.0, gamma=1.0)
    pen2, grads2, norms2 = gradient_penalty(critic, cp, x_hat, 3.0)
    assert float(to_numpy(pen)) == pytest.approx(float(to_numpy(pen2)), rel=1e-12)
    np.testing.assert_allclose(to_numpy(s), to_numpy(norms2), rtol=1e-12)
    for (a, b), (c, d) in zip(grads, grads2):
        np.testing.assert_allclose(to_numpy(a), to_numpy(c), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(to_numpy(b), to_numpy(d), rtol=1e-10, atol=1e-14)


def test_finite_at_zero_gradient(xp):
    """g = 0 (all-zero critic): P = lam and the (sub)gradient used is finite (0 from the penalty)."""
    critic = MLP((9, 4, 1), "tanh")
    cp = [(W * 0.0, b * 0.0) for W, b in critic.init(np.random.default_rng(0), xp=xp)]
    x_hat = from_host(np.random.default_rng(1).uniform(-1, 1, (4, 9)), xp, "float64")
    pen, grads, s = wasserstein_penalty(critic, cp, x_hat, 10.0, PixelGraph(3, 3), alpha=0.5)
    assert float(to_numpy(pen)) == 10.0
    assert np.all(to_numpy(s) == 0)
    for W, b in grads:
        assert np.all(np.isfinite(to_numpy(W))) and np.all(np.isfinite(to_numpy(b)))
        assert np.all(to_numpy(W) == 0) and np.all(to_numpy(b) == 0)


def _cfg(d=9):
    return GANConfig(objective="wgan-gp", data_dim=d, latent_dim=3, gen_hidden=(8,), critic_hidden=(8,),
                     gen_output="tanh", critic_activation="leaky_relu", batch_size=6, n_critic=2)


def test_method_trains_and_shares_random_streams_with_wgan_gp(xp):
    data = ArrayData(from_host(np.random.default_rng(0).uniform(-1, 1, (20, 9)), xp, "float32"))
    m = WWGANMethod(_cfg(), (1, 3, 3), alpha=0.5)
    res = train(m, data, xp=xp, iters=3, progress=False)
    assert all(np.all(np.isfinite(to_numpy(W))) for W, _ in res.state["critic"])
    cfg = m.config()
    assert cfg["penalty"] == "wasserstein" and cfg["alpha"] == 0.5 and cfg["image_shape"] == [1, 3, 3]
    # one critic step of each method from the same state consumes the same draws
    base = GANMethod(_cfg())
    state = base.init_state(np.random.default_rng(1), xp, "float32")
    r1, r2 = np.random.default_rng(2), np.random.default_rng(2)
    s1, logs = m.critic_step(state, r1, data)
    base.critic_step(state, r2, data)
    assert r1.bit_generator.state == r2.bit_generator.state
    assert set(logs) == {"critic_loss", "penalty", "w_norm"}
    assert_xp(s1["critic"], xp, "float32")


def test_method_rejects_bad_settings():
    with pytest.raises(ValueError, match="vertices"):
        WWGANMethod(_cfg(d=10), (1, 3, 3))
    with pytest.raises(ValueError, match="objective"):
        WWGANMethod(GANConfig(objective="wgan", data_dim=9), (1, 3, 3))
    with pytest.raises(ValueError, match="alpha"):
        WWGANMethod(_cfg(), (1, 3, 3), alpha=-1.0)
