"""Tests of refimpl.wgrad: the pixel-graph Wasserstein metric tensor (WWGAN, Prop. 5).

Oracles are independent of the library's stencils: a host NumPy matrix built entry by
entry from Prop. 5 with neighbours defined by coordinate differences, Remark 6's edge
sum over unordered pixel pairs, finite differences, and POT for the motivating example.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.wgrad import (PixelGraph, image_to_mass, laplacian_dense, wasserstein_gradient,
                           wasserstein_norm_sq, wasserstein_norm_sq_and_gradient)
from tests.conftest import assert_xp

PATTERNS = {  # neighbour predicates on the coordinate difference, independent of the library
    4: lambda dy, dx: np.abs(dy) + np.abs(dx) == 1,
    8: lambda dy, dx: np.maximum(np.abs(dy), np.abs(dx)) == 1,
    "two-step": lambda dy, dx: (np.abs(dy) + np.abs(dx) >= 1) & (np.abs(dy) + np.abs(dx) <= 2),
}


def oracle(H, W, C, neighbours, X, variant="paper", weight_of=None):
    """Host (L, A, adjacency) from Prop. 5 entry by entry: A_ij = w_ij theta_ij / 2 (paper)."""
    n = C * H * W
    c, y, x = (a.ravel() for a in np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij"))
    dy, dx = y[None, :] - y[:, None], x[None, :] - x[:, None]
    adj = (c[:, None] == c[None, :]) & PATTERNS[neighbours](dy, dx)
    w = np.zeros((n, n))
    for i, j in zip(*np.nonzero(adj)):
        w[i, j] = 1.0 if weight_of is None else weight_of(int(dy[i, j]), int(dx[i, j]))
    Xf = np.asarray(X, dtype=np.float64).ravel()
    if variant == "paper":
        d = w.sum(1) / w.sum()                              # d_i, total over both ends
        theta = Xf[:, None] / d[:, None] + Xf[None, :] / d[None, :]
        A = w * theta / 2
    else:                                                   # authors: w (X_i + X_j)
        A = w * (Xf[:, None] + Xf[None, :])
    L = np.diag(A.sum(1)) - A
    return L, A, adj


@st.composite
def cases(draw, variants=("paper", "authors")):
    H = draw(st.integers(1, 5))
    W = draw(st.integers(1, 5))
    assume(H * W >= 2)
    return dict(H=H, W=W, C=draw(st.integers(1, 3)), B=draw(st.integers(1, 3)),
                neighbours=draw(st.sampled_from([4, 8, "two-step"])),
                variant=draw(st.sampled_from(variants)),
                seed=draw(st.integers(0, 2**31 - 1)))


def _setup(case, weighted=True, zeros=0.0):
    rng = np.random.default_rng(case["seed"])
    H, W, C, B = case["H"], case["W"], case["C"], case["B"]
    n_off = {4: 2, 8: 4, "two-step": 6}[case["neighbours"]]
    weights = rng.uniform(0.5, 2.0, n_off) if weighted else None
    graph = PixelGraph(H, W, C, case["neighbours"], weights=weights, variant=case["variant"])
    wmap = None
    if weighted:
        table = {}
        for (oy, ox), wt in zip(graph.offsets, graph.weights):
            table[(oy, ox)] = table[(-oy, -ox)] = wt
        wmap = lambda a, b: table[(a, b)]  # noqa: E731
    X = rng.uniform(0.0, 1.0, (B, C, H, W))
    if zeros:
        X = np.where(rng.random(X.shape) < zeros, 0.0, X)
    g = rng.standard_normal((B, C, H, W))
    return graph, wmap, X, g, rng


@given(case=cases())
def test_dense_matrix_is_prop5(xp, case):
    graph, wmap, X, _, _ = _setup(case)
    L = laplacian_dense(graph, from_host(X[0], xp))
    assert_xp(L, xp, "float64")
    Lo, _, _ = oracle(case["H"], case["W"], case["C"], case["neighbours"], X[0], case["variant"], wmap)
    np.testing.assert_allclose(to_numpy(L), Lo, rtol=1e-12, atol=1e-12 * np.abs(Lo).max())


@given(case=cases())
def test_remark6_edge_sum_equals_quadratic_form(case):
    """Paper claim (Remark 6, unordered edges): g^T L g = sum_{i~j} w (g_i - g_j)^2 theta / 2."""
    graph, wmap, X, g, _ = _setup(case)
    Lo, A, adj = oracle(case["H"], case["W"], case["C"], case["neighbours"], X[0], case["variant"], wmap)
    gf = g[0].ravel()
    i, j = np.nonzero(np.triu(adj))                        # each unordered edge once
    edge_sum = np.sum(A[i, j] * (gf[i] - gf[j]) ** 2)
    np.testing.assert_allclose(gf @ Lo @ gf, edge_sum, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(wasserstein_norm_sq(graph, X[:1], g[:1])), [edge_sum], rtol=1e-11)


@given(case=cases(), alpha=st.floats(0, 3), gamma=st.sampled_from([0.0, 0.7]),
       shared=st.booleans())
def test_stencil_equals_dense(xp, case, alpha, gamma, shared):
    graph, _, X, g, _ = _setup(case)
    if shared:
        X = X[0]
    Xx, gx = from_host(X, xp), from_host(g, xp)
    s2, Lg = wasserstein_norm_sq_and_gradient(graph, Xx, gx, alpha=alpha, gamma=gamma)
    assert_xp((s2, Lg), xp, "float64")
    assert s2.shape == (case["B"],) and Lg.shape == g.shape
    s2_only = wasserstein_norm_sq(graph, Xx, gx, alpha, gamma)
    Lg_only = wasserstein_gradient(graph, Xx, gx, alpha, gamma)
    for b in range(case["B"]):
        L = to_numpy(laplacian_dense(graph, from_host(X if shared else X[b], xp), alpha, gamma))
        gf = g[b].ravel()
        scale = np.abs(L).max() * (np.abs(gf).sum() ** 2 + 1)
        np.testing.assert_allclose(to_numpy(s2)[b], gf @ L @ gf, rtol=1e-11, atol=1e-13 * scale)
        np.testing.assert_allclose(to_numpy(Lg)[b].ravel(), L @ gf, rtol=1e-11,
                                   atol=1e-13 * scale)
    np.testing.assert_array_equal(to_numpy(s2_only), to_numpy(s2))
    np.testing.assert_array_equal(to_numpy(Lg_only), to_numpy(Lg))


@given(case=cases(), zeros=st.sampled_from([0.0, 0.5, 0.9]))
def test_laplacian_symmetric_psd_constants_null_space(xp, case, zeros):
    from scipy.sparse.csgraph import connected_components
    graph, wmap, X, _, _ = _setup(case, zeros=zeros)
    X = np.where(X > 0, 0.2 + X, 0.0)                      # masses 0 or in [0.2, 1.2]
    L = to_numpy(laplacian_dense(graph, from_host(X[0], xp)))
    np.testing.assert_array_equal(L, L.T)
    _, A, _ = oracle(case["H"], case["W"], case["C"], case["neighbours"], X[0], case["variant"], wmap)
    n_comp, labels = connected_components(A > 0, directed=False)  # per channel, per component
    ev = np.linalg.eigvalsh(L)
    tol = 1e-9 * max(ev.max(), 1e-300)
    assert ev.min() >= -tol
    assert np.sum(ev <= tol) == n_comp
    for k in range(n_comp):
        one = (labels == k).astype(float)
        np.testing.assert_allclose(L @ one, 0.0, atol=1e-12 * np.abs(L).max())


@given(case=cases(), alpha=st.floats(0, 2))
def test_gradient_is_derivative_of_half_norm_sq(xp, case, alpha):
    """Central differences of 0.5*s2 along random and coordinate directions (exact for a quadratic)."""
    graph, _, X, g, rng = _setup(case)
    Xx, gx = from_host(X, xp), from_host(g, xp)
    Lg = to_numpy(wasserstein_gradient(graph, Xx, gx, alpha))
    dirs = [rng.standard_normal(g.shape) for _ in range(2)]
    e = np.zeros(g.shape)
    e[tuple(rng.integers(0, s) for s in g.shape)] = 1.0
    dirs.append(e)
    t = 1e-3
    for v in dirs:
        fp = to_numpy(wasserstein_norm_sq(graph, Xx, from_host(g + t * v, xp), alpha))
        fm = to_numpy(wasserstein_norm_sq(graph, Xx, from_host(g - t * v, xp), alpha))
        fd = (0.5 * fp - 0.5 * fm) / (2 * t)
        exact = np.sum((Lg * v).reshape(case["B"], -1), axis=1)
        np.testing.assert_allclose(fd, exact, rtol=1e-6, atol=1e-8 * (np.abs(fp).max() + 1))


def test_gradient_full_finite_differences():
    graph = PixelGraph(3, 4, 2, neighbours=8)
    rng = np.random.default_rng(1)
    X, g = rng.random((1, 2, 3, 4)), rng.standard_normal((1, 2, 3, 4))
    Lg = wasserstein_gradient(graph, X, g, alpha=0.5)
    fd = np.zeros(g.size)
    for k in range(g.size):
        e = np.zeros(g.size)
        e[k] = 1e-4
        e = e.reshape(g.shape)
        fd[k] = (wasserstein_norm_sq(graph, X, g + e, 0.5)[0] - wasserstein_norm_sq(graph, X, g - e, 0.5)[0]) / 4e-4
    np.testing.assert_allclose(fd, Lg.ravel(), rtol=1e-7)


@given(case=cases(), alpha=st.floats(0.01, 5))
def test_remark7_alpha_adds_sum_squared(xp, case, alpha):
    graph, _, X, g, _ = _setup(case)
    Xx, gx = from_host(X, xp), from_host(g, xp)
    s0, L0 = (to_numpy(a) for a in wasserstein_norm_sq_and_gradient(graph, Xx, gx))
    sa, La = (to_numpy(a) for a in wasserstein_norm_sq_and_gradient(graph, Xx, gx, alpha=alpha))
    S = g.reshape(case["B"], -1).sum(1)
    np.testing.assert_allclose(sa - s0, alpha * S**2, rtol=1e-9, atol=1e-9 * (np.abs(s0).max() + 1))
    np.testing.assert_allclose(La - L0, np.broadcast_to(alpha * S[:, None, None, None], g.shape),
                               rtol=1e-9, atol=1e-10 * (np.abs(L0).max() + 1))
    Lt = to_numpy(laplacian_dense(graph, Xx[0, ...], alpha=alpha)) - to_numpy(laplacian_dense(graph, Xx[0, ...]))
    np.testing.assert_allclose(Lt, alpha, rtol=1e-9, atol=1e-10 * np.abs(Lt).max())


@pytest.mark.parametrize("neighbours", [4, "two-step"])
def test_authors_variant_matches_their_formula(xp, neighbours):
    """Authors' code: sum over shifts of (g_i - g_j)^2 (1 + (x_i + x_j)/2) + gamma ||g||^2, x in [-1, 1]."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 3, 5, 6))
    g = rng.standard_normal(x.shape)
    gamma = 0.3
    pairs = [((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
             ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))]
    if neighbours == "two-step":
        pairs += [((slice(None), slice(2, None)), (slice(None), slice(None, -2))),
                  ((slice(2, None), slice(None)), (slice(None, -2), slice(None))),
                  ((slice(1, None), slice(1, None)), (slice(None, -1), slice(None, -1))),
                  ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None)))]
    want = gamma * np.sum(g**2, axis=(1, 2, 3))
    for a, b in pairs:
        ia, ib = (Ellipsis, *a), (Ellipsis, *b)
        want = want + np.sum((g[ia] - g[ib]) ** 2 * (1 + (x[ia] + x[ib]) / 2), axis=(1, 2, 3))
    graph = PixelGraph(5, 6, 3, neighbours, variant="authors")
    got = wasserstein_norm_sq(graph, image_to_mass(from_host(x, xp)), from_host(g, xp), gamma=gamma)
    assert_xp(got, xp, "float64")
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12)


def test_degrees():
    graph = PixelGraph(3, 3, channels=2, neighbours=4)
    assert graph.total_weight == 2 * 24                    # 12 edges per channel, both ends
    np.testing.assert_allclose(graph.degree, np.array([[2, 3, 2], [3, 4, 3], [2, 3, 2]]) / 48)
    assert graph.channels * graph.degree.sum() == pytest.approx(1.0)
    assert PixelGraph(4, 4, neighbours="two-step").degree.max() * PixelGraph(4, 4, neighbours="two-step").total_weight == 10


def test_custom_offsets_match_oracle():
    rng = np.random.default_rng(5)
    graph = PixelGraph(4, 5, 2, neighbours=[(0, -1), (-1, 0)], weights=[0.5, 2.0])  # = 4-pattern
    assert graph.offsets == ((0, 1), (1, 0))
    X = rng.random((2, 4, 5))
    Lo, _, _ = oracle(4, 5, 2, 4, X, weight_of=lambda dy, dx: 0.5 if dy == 0 else 2.0)
    np.testing.assert_allclose(laplacian_dense(graph, X), Lo, rtol=1e-12)


def test_motivating_example_w2_vs_l2():
    """Sec. 2.2: for one-hot images W2 over the pixel grid is the pixel distance; L2 is constant."""
    ot = pytest.importorskip("ot")
    H, W = 4, 5
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    P = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    M = ((P[:, None, :] - P[None, :, :]) ** 2).sum(-1)     # squared Euclidean pixel cost
    l2 = set()
    for p in range(H * W):
        for q in range(H * W):
            a, b = np.eye(H * W)[p], np.eye(H * W)[q]
            w2 = np.sqrt(ot.emd2(a, b, M))
            assert w2 == pytest.approx(np.linalg.norm(P[p] - P[q]), abs=1e-12)
            if p != q:
                l2.add(round(float(np.linalg.norm(a - b)), 12))
    assert l2 == {round(np.sqrt(2.0), 12)}


def test_bad_input(xp):
    with pytest.raises(ValueError, match="isolated"):
        PixelGraph(1, 1)
    with pytest.raises(ValueError, match="isolated"):
        PixelGraph(3, 3, neighbours=[(2, 0)])
    for nb in (6, "six", [], [(0, 0)], [(0, 1), (0, -1)], True):
        with pytest.raises(ValueError):
            PixelGraph(3, 3, neighbours=nb)
    for bad in (dict(height=0, width=3), dict(height=3, width=2.5), dict(height=3, width=3, channels=0),
                dict(height=3, width=3, weights=[1.0, -1.0]), dict(height=3, width=3, weights=[1.0]),
                dict(height=3, width=3, variant="torch")):
        with pytest.raises(ValueError):
            PixelGraph(**bad)
    graph = PixelGraph(3, 4, 2)
    X, g = from_host(np.ones((2, 2, 3, 4)), xp), from_host(np.ones((2, 2, 3, 4)), xp)
    with pytest.raises(ValueError, match="nonnegative"):
        wasserstein_norm_sq(graph, X - 2, g)
    with pytest.raises(ValueError, match="X has non-finite"):
        laplacian_dense(graph, from_host(np.full((2, 3, 4), np.nan), xp))
    with pytest.raises(ValueError, match="shape"):
        wasserstein_norm_sq(graph, X, from_host(np.ones((2, 1, 3, 4)), xp))
    with pytest.raises(ValueError, match="shape"):
        wasserstein_gradient(graph, from_host(np.ones((2, 2, 4, 3)), xp), g)
    with pytest.raises(ValueError, match="shape"):
        wasserstein_gradient(graph, X, g[0, ...])
    with pytest.raises(ValueError, match="batch"):
        wasserstein_norm_sq(graph, from_host(np.ones((3, 2, 3, 4)), xp), g)
    with pytest.raises(ValueError, match="shape"):
        laplacian_dense(graph, X)
    # integer mass is promoted to float64 (refimpl.validation), not refused
    Li = laplacian_dense(graph, from_host(np.ones((2, 3, 4), dtype=np.int64), xp))
    assert Li.dtype == xp.float64
    assert np.array_equal(to_numpy(Li), to_numpy(laplacian_dense(graph, from_host(np.ones((2, 3, 4)), xp))))


def test_dtypes_and_namespace(xp):
    graph = PixelGraph(3, 4, 2, neighbours=8)
    rng = np.random.default_rng(0)
    X32 = from_host(rng.random((2, 2, 3, 4)), xp, "float32")
    g32 = from_host(rng.standard_normal((2, 2, 3, 4)), xp, "float32")
    s2, Lg = wasserstein_norm_sq_and_gradient(graph, X32, g32, alpha=0.1)
    assert_xp((s2, Lg, laplacian_dense(graph, X32[0, ...]), wasserstein_norm_sq(graph, X32, g32),
               wasserstein_gradient(graph, X32, g32), image_to_mass(g32)), xp, "float32")
    s64 = wasserstein_norm_sq(graph, X32, from_host(to_numpy(g32), xp, "float64"))
    assert_xp(s64, xp, "float64")
    np.testing.assert_allclose(to_numpy(s2), to_numpy(wasserstein_norm_sq(
        graph, from_host(to_numpy(X32), xp, "float64"), from_host(to_numpy(g32), xp, "float64"), 0.1)), rtol=1e-5)


def test_image_to_mass(xp):
    x = from_host(np.array([-1.0, 0.0, 1.0, -1.5]), xp)
    np.testing.assert_array_equal(to_numpy(image_to_mass(x)), [0.0, 0.5, 1.0, -0.25])
    np.testing.assert_array_equal(to_numpy(image_to_mass(x, clip=True)), [0.0, 0.5, 1.0, 0.0])


@pytest.mark.parametrize("neighbours", [4, 8, "two-step"])
def test_torch_algorithm2_peer_agrees(neighbours):
    """The benchmark's conv2d Algorithm 2 (with the fix W = H*H*V) equals the stencil."""
    torch = pytest.importorskip("torch")
    from toy.bench_wgrad import torch_algorithm2
    rng = np.random.default_rng(7)
    graph = PixelGraph(5, 6, 2, neighbours, weights=rng.uniform(0.5, 2, {4: 2, 8: 4, "two-step": 6}[neighbours]))
    X, g = rng.random((3, 2, 5, 6)), rng.standard_normal((3, 2, 5, 6))
    alg2 = torch_algorithm2(torch, torch.from_numpy(g), torch.from_numpy(X), graph.offsets, graph.weights)
    np.testing.assert_allclose(alg2(torch.from_numpy(g), torch.from_numpy(X)).numpy(),
                               wasserstein_norm_sq(graph, X, g), rtol=1e-12)
