"""WWGAN (Dukler et al., "Wasserstein of Wasserstein loss"): Thm 2 / eqs. 4-5 and Prop. 5 in their
discrete form (the Wasserstein gradient L(X) g is the Riemannian gradient for the metric L(X)^+ on
mass-preserving tangent vectors, and the 1-Lipschitz condition is g^T L g <= 1), the motivating
example with the library's L2 ground metric, and Remark 3 / eqs. 1-3 (Kantorovich duality over
the W2 ground metric between small images, POT).

Independent pieces: a dense pseudo-inverse (numpy) of the library's reference tensor, POT's exact
W2 between images over the pixel grid (refimpl.testing.image_w2) and its LP duals."""
import numpy as np
import ot
import pytest
from hypothesis import given, strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.image_metrics import image_w1
from refimpl.metrics import w1
from refimpl.testing import image_w2, images
from refimpl.wgrad import PixelGraph, laplacian_dense, wasserstein_gradient, wasserstein_norm_sq


@given(im=images(), neighbours=st.sampled_from([4, 8, "two-step"]), seed=st.integers(0, 2**32 - 1))
def test_prop_5_gradient_is_the_riesz_representer_and_eq_5(xp, im, neighbours, seed):
    """For g = grad_X f: (i) L(X) g is a tangent vector (sums to 0 per channel); (ii) it represents the
    differential in the metric L^+: <L g, sigma>_{L^+} = <g, sigma> for tangent sigma in range(L);
    (iii) eq. (5): the metric norm of the differential, sup_{sigma^T L^+ sigma <= 1} <g, sigma>, equals
    sqrt(g^T L g) = sqrt(wasserstein_norm_sq), attained at L g / sqrt(g^T L g). So f is 1-Lipschitz
    w.r.t. (X, W) exactly when g^T L g <= 1 (Prop. 5)."""
    C, H, W = im.X.shape
    graph = PixelGraph(H, W, C, neighbours)
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(im.X.shape)
    Xd, gd = from_host(im.X, xp), from_host(g[None], xp)
    grad = to_numpy(wasserstein_gradient(graph, Xd, gd))[0].ravel()
    s2 = float(to_numpy(wasserstein_norm_sq(graph, Xd, gd))[0])
    L = to_numpy(laplacian_dense(graph, Xd))
    Lp = np.linalg.pinv(L, rcond=1e-10, hermitian=True)
    scale = 1e-9 * (1 + np.abs(L).max()) * (1 + np.abs(g).max()) ** 2
    np.testing.assert_allclose(grad.reshape(C, -1).sum(1), 0.0, atol=scale * H * W)
    sigma = L @ rng.standard_normal(L.shape[0])                    # a tangent vector in range(L)
    assert grad @ Lp @ sigma == pytest.approx(g.ravel() @ sigma, rel=1e-6, abs=scale * (1 + np.abs(sigma).max()))
    assert s2 == pytest.approx(g.ravel() @ L @ g.ravel(), rel=1e-9, abs=scale)
    if s2 > scale:
        star = grad / np.sqrt(s2)
        assert star @ Lp @ star == pytest.approx(1.0, rel=1e-6)
        assert g.ravel() @ star == pytest.approx(np.sqrt(s2), rel=1e-6)
        norm = np.sqrt(max(sigma @ Lp @ sigma, 0.0))
        assert g.ravel() @ sigma <= np.sqrt(s2) * norm * (1 + 1e-6) + scale
    if im.X.max() > 0 and np.count_nonzero(im.X) > 1:
        assert np.abs(grad).max() > 0 or np.allclose(g, g.mean())          # moved


@given(H=st.integers(1, 5), W=st.integers(2, 6), data=st.data())
def test_motivating_example_w2_ground_metric_vs_library_l2(H, W, data):
    """Sec. 2.2: for one-hot images X = delta_x, Y = delta_y the W2 ground metric (POT over the pixel
    grid) is the pixel distance |x - y| (continuous in translation), while the library's L2 ground
    metric (image_metrics.image_w1 between single images, = metrics.w1) is sqrt(2) for every x != y;
    the outer W_p between Dirac measures is the ground metric itself."""
    p = data.draw(st.integers(0, H * W - 1))
    q = data.draw(st.integers(0, H * W - 1))
    X, Y = np.zeros((H, W)), np.zeros((H, W))
    X.flat[p], Y.flat[q] = 1.0, 1.0
    pos = lambda k: np.array(divmod(k, W), dtype=float)
    assert image_w2(X, Y) == pytest.approx(np.linalg.norm(pos(p) - pos(q)), abs=1e-12)
    l2 = image_w1(X[None, None], Y[None, None])
    assert l2 == pytest.approx(0.0 if p == q else np.sqrt(2.0), abs=1e-12)
    assert w1(X.reshape(1, -1), Y.reshape(1, -1)) == pytest.approx(l2, abs=1e-12)


@given(n=st.integers(1, 4), m=st.integers(1, 4), side=st.integers(2, 3), seed=st.integers(0, 2**32 - 1))
def test_remark_3_kantorovich_duality_over_the_w2_ground_metric(n, m, side, seed):
    """eqs. (1)-(3), Thm 2's first step (Remark 3): for uniform distributions over a few small images,
    W_{1, W2} (POT over POT) equals sup over f 1-Lipschitz w.r.t. the W2 ground metric of
    E_G f - E_r f, attained by the c-transform of the LP duals."""
    rng = np.random.default_rng(seed)
    G = [rng.random((side, side)) + 1e-3 for _ in range(n)]
    R = [rng.random((side, side)) + 1e-3 for _ in range(m)]
    D = np.array([[image_w2(a, b) for b in R] for a in G])
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    P, log = ot.emd(a, b, D, log=True)
    value = float(np.sum(P * D))
    allim = G + R
    Dall = np.array([[image_w2(u, v) for v in R] for u in allim])
    f = (Dall - np.asarray(log["v"])[None, :]).min(1)                # c-transform, on all images
    Dfull = np.array([[image_w2(u, v) for v in allim] for u in allim])
    assert np.all(np.abs(f[:, None] - f[None, :]) <= Dfull + 1e-9)    # 1-Lipschitz in the ground metric
    assert f[:n].mean() - f[n:].mean() == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert value > 0                                                  # moved
