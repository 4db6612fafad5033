"""Image metrics: exact W1 closed forms, Frechet distance against Gaussian closed forms and
scipy, softmax cross-entropy against finite differences, classifier training and its cache."""
import numpy as np
import pytest
import scipy.linalg
import scipy.special

from refimpl.backend import from_host, to_numpy
from refimpl.image_metrics import (ClassifierFrechet, classifier_accuracy, classifier_features,
                                   frechet_distance, frechet_distance_gaussians, image_w1,
                                   softmax_cross_entropy, sqrtm_psd, train_classifier)
from tests.conftest import assert_xp


def _spd(rng, d, rank=None):
    A = rng.standard_normal((d, rank or d))
    return A @ A.T + (0 if rank else 0.1 * np.eye(d))


# ----------------------------------------------------------------------------- W1
def test_w1_of_a_translated_set_is_the_shift_length(xp):
    """W1(mu, mu + v) = ||v|| exactly (coupling x -> x + v; lower bound by the mean shift)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (7, 2, 3, 3))
    v = rng.standard_normal((2, 3, 3)) * 0.2
    got = image_w1(from_host(x, xp, "float64"), from_host(x[::-1] + v, xp, "float64"))
    assert got == pytest.approx(np.linalg.norm(v), rel=1e-10)


def test_w1_single_images_and_assignment():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((1, 1, 4, 4)), rng.standard_normal((1, 1, 4, 4))
    assert image_w1(a, b) == pytest.approx(np.linalg.norm(a - b), rel=1e-12)
    # two images each: the optimal plan is the better of the two assignments (brute force)
    x, y = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    d = np.linalg.norm(x[:, None] - y[None], axis=2)
    assert image_w1(x, y) == pytest.approx(min(d[0, 0] + d[1, 1], d[0, 1] + d[1, 0]) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="y has 5 coordinates"):
        image_w1(np.zeros((2, 4)), np.zeros((2, 5)))


# ----------------------------------------------------------------------------- Frechet
def test_sqrtm_psd_squares_back():
    rng = np.random.default_rng(2)
    for S in (_spd(rng, 5), _spd(rng, 6, rank=2)):
        A = sqrtm_psd(S)
        np.testing.assert_allclose(A, A.T, atol=1e-12)
        np.testing.assert_allclose(A @ A, S, atol=1e-10)
        assert np.linalg.eigvalsh(A).min() > -1e-10


def test_frechet_one_dimensional_closed_form():
    assert frechet_distance_gaussians(np.array([1.0]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]])) == pytest.approx(1.5 ** 2 + 1.5 ** 2)


def test_frechet_commuting_covariances_closed_form():
    a, b = np.array([1.0, 2.0, 0.5]), np.array([0.3, 2.0, 4.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance_gaussians(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_frechet_two_by_two_closed_form(seed):
    """For 2x2 PSD M: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); with M = S1^1/2 S2 S1^1/2,
    tr M = tr(S1 S2) and det M = det S1 det S2 (no matrix square root needed)."""
    rng = np.random.default_rng(seed)
    S1, S2 = _spd(rng, 2), _spd(rng, 2)
    mu1, mu2 = rng.standard_normal(2), rng.standard_normal(2)
    tr_sqrt = np.sqrt(np.trace(S1 @ S2) + 2 * np.sqrt(np.linalg.det(S1) * np.linalg.det(S2)))
    want = np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * tr_sqrt
    assert frechet_distance_gaussians(mu1, S1, mu2, S2) == pytest.approx(want, rel=1e-10)


def test_frechet_matches_scipy_sqrtm_and_is_a_squared_metric():
    rng = np.random.default_rng(4)
    S1, S2 = _spd(rng, 6), _spd(rng, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    tr = np.real(np.trace(scipy.linalg.sqrtm(S1 @ S2)))          # Schur method, not an eigh
    want = np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * tr
    got = frechet_distance_gaussians(mu1, S1, mu2, S2)
    assert got == pytest.approx(want, rel=1e-9)
    assert frechet_distance_gaussians(mu2, S2, mu1, S1) == pytest.approx(got, rel=1e-9)
    assert frechet_distance_gaussians(mu1, S1, mu1, S1) == pytest.approx(0.0, abs=1e-9)
    R = _spd(rng, 6, rank=2)                                        # singular covariance
    assert frechet_distance_gaussians(mu1, R, mu1, R) == pytest.approx(0.0, abs=1e-7)


def test_frechet_from_features_uses_sample_moments(xp):
    rng = np.random.default_rng(5)
    f1, f2 = rng.standard_normal((40, 3)), rng.standard_normal((30, 3)) * 2 + 1
    want = frechet_distance_gaussians(f1.mean(0), np.cov(f1.T), f2.mean(0), np.cov(f2.T))
    assert frechet_distance(from_host(f1, xp, "float64"), from_host(f2, xp, "float64")) == pytest.approx(want)


# ----------------------------------------------------------------------------- classifier
def test_softmax_cross_entropy_matches_scipy_and_finite_differences(xp):
    rng = np.random.default_rng(6)
    z = rng.standard_normal((5, 4)) * 3
    y = rng.integers(0, 4, 5)
    zx, yx = from_host(z, xp, "float64"), from_host(y, xp)
    loss, dz = softmax_cross_entropy(zx, yx)
    assert_xp((loss, dz), xp, "float64")
    want = -np.mean(scipy.special.log_softmax(z, axis=1)[np.arange(5), y])
    assert float(to_numpy(loss)) == pytest.approx(want, rel=1e-12)
    h = 1e-6
    fd = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        e = np.zeros_like(z)
        e[idx] = h
        lp = float(to_numpy(softmax_cross_entropy(from_host(z + e, xp, "float64"), yx)[0]))
        lm = float(to_numpy(softmax_cross_entropy(from_host(z - e, xp, "float64"), yx)[0]))
        fd[idx] = (lp - lm) / (2 * h)
    np.testing.assert_allclose(to_numpy(dz), fd, rtol=1e-6, atol=1e-9)
    # huge logits do not overflow
    big, dbig = softmax_cross_entropy(from_host(np.array([[1000.0, -1000.0]]), xp, "float64"),
                                      from_host(np.array([1]), xp))
    assert float(to_numpy(big)) == pytest.approx(2000.0)
    assert np.all(np.isfinite(to_numpy(dbig)))


def _blobs(rng, n=120):
    """Three separable classes of 1x3x3 images."""
    y = rng.integers(0, 3, n)
    centres = rng.uniform(-1, 1, (3, 9))
    x = centres[y] + 0.1 * rng.standard_normal((n, 9))
    return x.reshape(n, 1, 3, 3), y


def test_classifier_trains_caches_and_scores(xp, tmp_path):
    rng = np.random.default_rng(7)
    x, y = _blobs(rng)
    xx, yx = from_host(x, xp, "float32"), from_host(y, xp)
    kw = dict(hidden=(16, 8), steps=150, batch_size=32, lr=1e-2, seed=3, cache_dir=tmp_path, tag="blobs")
    mlp, params, info = train_classifier(xx, yx, **kw)
    assert not info["cached"] and (tmp_path / pathlib_name(info["path"])).exists()
    assert classifier_accuracy(mlp, params, xx, yx) > 0.95
    mlp2, params2, info2 = train_classifier(xx, yx, **kw)
    assert info2["cached"]
    assert_xp(params2, xp, "float32")
    for (W, b), (W2, b2) in zip(params, params2):
        np.testing.assert_array_equal(to_numpy(W), to_numpy(W2))
    # another setting is another cache entry
    _, _, info3 = train_classifier(xx, yx, **{**kw, "steps": 5})
    assert not info3["cached"] and info3["path"] != info["path"]
    feats = classifier_features(mlp, params, xx)
    assert feats.shape == (120, 8)
    fd = ClassifierFrechet(mlp, params, xx)
    assert fd.score(xx) == pytest.approx(0.0, abs=1e-6)
    assert fd.score(from_host(x[y == 0], xp, "float32")) > 0.1


def pathlib_name(p):
    import pathlib
    return pathlib.Path(p).name
