"""Toy metrics: mode coverage, exact W1/W2 (POT), sliced W1 (conventions.md, "2-D mixture protocol")."""
import math

import numpy as np
import pytest

ot = pytest.importorskip("ot")
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance

from refimpl.backend import from_host, to_numpy
from refimpl.datasets import get_dataset, sample
from refimpl.metrics import evaluate, mode_stats, sliced_w1, w1, w2


# ----------------------------------------------------------------------------- mode_stats

def test_every_grid_mode_exactly(xp):
    spec = get_dataset("grid25")
    x = from_host(np.repeat(spec.centers, 100, axis=0), xp)               # 2,500 samples
    r = mode_stats(x, spec.centers, spec.std)
    assert r["modes"] == 25 and r["high_quality"] == 1.0 and r["counts"] == [100] * 25 and r["n"] == 2500


def test_all_at_one_mode(xp):
    spec = get_dataset("ring8")
    x = from_host(np.tile(spec.centers[3], (2500, 1)), xp, "float32")
    r = mode_stats(x, spec.centers, spec.std)
    assert r["modes"] == 1 and r["high_quality"] == 1.0
    assert r["counts"] == [0, 0, 0, 2500, 0, 0, 0, 0]


def test_three_std_threshold(xp):
    spec = get_dataset("grid25")
    s = spec.std
    c = spec.centers[7]
    u = np.array([0.6, 0.8])                                               # unit vector
    pts = np.stack([c + 3.5 * s * u, c + 2.5 * s * u, c - 3.1 * s * u, c + 2.9 * s * u[::-1]])
    r = mode_stats(from_host(pts, xp), spec.centers, s)
    assert r["high_quality"] == 0.5 and r["modes"] == 1 and r["counts"][7] == 2
    r1 = mode_stats(from_host(pts[:1], xp), spec.centers, s)               # 3.5 std alone
    assert r1["modes"] == 0 and r1["high_quality"] == 0.0


def test_mode_stats_matches_bruteforce(xp):
    """Against scipy cdist + a Python loop on random points around the grid."""
    spec = get_dataset("grid25")
    rng = np.random.default_rng(5)
    pts = rng.uniform(-5, 5, size=(3000, 2))
    pts[:1000] = spec.centers[rng.integers(0, 25, 1000)] + 0.08 * rng.standard_normal((1000, 2))
    D = cdist(pts, spec.centers)
    counts = [0] * 25
    for i in range(len(pts)):
        k = int(np.argmin(D[i]))
        if D[i, k] <= 3 * spec.std:
            counts[k] += 1
    r = mode_stats(from_host(pts, xp), spec.centers, spec.std)
    assert r["counts"] == counts
    assert r["modes"] == sum(c > 0 for c in counts)
    assert r["high_quality"] == sum(counts) / len(pts)


def test_true_data_high_quality_fraction():
    """For data from the mixture, P(|N(0, s^2 I_2)| > 3 s) = exp(-9/2) (Rayleigh tail)."""
    n = 20_000
    x = sample("ring8", n, np.random.default_rng(11))
    spec = get_dataset("ring8")
    r = mode_stats(x, spec.centers, spec.std)
    p = math.exp(-4.5)
    assert abs((1 - r["high_quality"]) - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert r["modes"] == 8


# ----------------------------------------------------------------------------- exact W1 / W2

def test_w1_w2_match_pot():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((27, 3)) + 0.3
    a, b = np.full(40, 1 / 40), np.full(27, 1 / 27)
    assert w1(x, y) == pytest.approx(ot.emd2(a, b, ot.dist(x, y, metric="euclidean")), rel=1e-9)
    assert w2(x, y) == pytest.approx(math.sqrt(ot.emd2(a, b, ot.dist(x, y))), rel=1e-9)


def test_w1_w2_one_dim_closed_form(xp):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(60), 2 * rng.standard_normal(60) + 1
    sx, sy = np.sort(x), np.sort(y)
    X, Y = from_host(x[:, None], xp), from_host(y[:, None], xp)
    assert w1(X, Y) == pytest.approx(np.mean(np.abs(sx - sy)), rel=1e-12)
    assert w2(X, Y) == pytest.approx(math.sqrt(np.mean((sx - sy) ** 2)), rel=1e-12)
    z = rng.standard_normal(23)                                            # unequal sizes
    assert w1(x, z) == pytest.approx(wasserstein_distance(x, z), rel=1e-10)


def test_translated_cloud(xp):
    """W1 = W2 = |s| for y = x + s: >= by the 1-Lipschitz test function <s/|s|, .>, <= by the shift."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 2))
    s = np.array([0.3, -1.2])
    X, Y = from_host(x, xp), from_host(x + s, xp)
    assert w1(X, Y) == pytest.approx(np.linalg.norm(s), rel=1e-12)
    assert w2(X, Y) == pytest.approx(np.linalg.norm(s), rel=1e-12)


def test_w2_at_least_w1():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((50, 2)), rng.uniform(-1, 1, (70, 2))
    assert w2(x, y) >= w1(x, y) * (1 - 1e-12)


def test_solver_warning_is_an_error():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((60, 2)), rng.standard_normal((60, 2))
    with pytest.raises(RuntimeError, match="result_code"):
        w1(x, y, num_itermax=2)


def test_shape_errors():
    with pytest.raises(ValueError):
        w1(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        w2(np.zeros((0, 2)), np.zeros((3, 2)))


# ----------------------------------------------------------------------------- sliced W1

@pytest.mark.parametrize("m", [40, 40 * 3, 29, 1])
def test_sliced_equals_exact_in_1d(xp, m):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal(40), rng.exponential(size=m)
    got = sliced_w1(from_host(x[:, None], xp), from_host(y[:, None], xp), 7, rng=0)
    assert got == pytest.approx(wasserstein_distance(x, y), rel=1e-12)


@pytest.mark.parametrize("m", [50, 33])
def test_sliced_per_direction_2d(xp, m):
    """Same directions (same seed) -> mean of scipy's exact 1-D W1 of the projections."""
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((50, 2)), rng.uniform(-2, 2, (m, 2))
    P = 40
    g = np.random.default_rng(9).standard_normal((P, 2))
    th = g / np.linalg.norm(g, axis=1, keepdims=True)
    want = np.mean([wasserstein_distance(x @ t, y @ t) for t in th])
    got = sliced_w1(from_host(x, xp), from_host(y, xp), P, rng=np.random.default_rng(9))
    assert got == pytest.approx(want, rel=1e-12)


def test_sliced_at_most_w1():
    """Every 1-D term is <= W1 (projections are 1-Lipschitz), so the estimate is too."""
    rng = np.random.default_rng(10)
    for n, m in [(30, 30), (30, 45), (80, 13)]:
        x, y = rng.standard_normal((n, 2)), rng.standard_normal((m, 2)) * [2.0, 0.5] + [0.5, 0.0]
        exact = w1(x, y)
        for seed in range(5):
            assert sliced_w1(x, y, 3, rng=seed) <= exact * (1 + 1e-12)


def test_sliced_translation_closed_form(xp):
    """y = x + s: per direction W1 = |<theta, s>|, mean over the circle = 2|s|/pi.

    Terms lie in [0, |s|]; Hoeffding with P = 4000, delta = 1e-6 bounds the
    Monte-Carlo error by |s| sqrt(log(2/delta)/(2P)) = 0.043 |s|.
    """
    rng = np.random.default_rng(12)
    x = rng.standard_normal((200, 2))
    s = np.array([1.0, 2.0])
    L = np.linalg.norm(s)
    P = 4000
    got = sliced_w1(from_host(x, xp), from_host(x + s, xp), P, rng=13)
    assert abs(got - 2 * L / math.pi) <= L * math.sqrt(math.log(2 / 1e-6) / (2 * P))


def test_sliced_float32(xp):
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal((64, 2)), rng.standard_normal((64, 2)) + 1
    a = sliced_w1(from_host(x, xp, "float32"), from_host(y, xp, "float32"), 50, rng=1)
    b = sliced_w1(x, y, 50, rng=1)
    assert a == pytest.approx(b, rel=1e-5)


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_keys_and_types(xp):
    rng = np.random.default_rng(15)
    s = sample("grid25", 400, rng, xp)
    r = evaluate(s, "grid25", np.random.default_rng(16), n_target=400)
    assert set(r) == {"modes", "high_quality", "w1", "w2", "sliced_w1"}
    assert type(r["modes"]) is int and r["modes"] == 25
    for k in ("high_quality", "w1", "w2", "sliced_w1"):
        assert type(r[k]) is float
    assert 0 < r["sliced_w1"] <= r["w1"] <= r["w2"]
    # the target is the seed-16 draw: check w1 independently
    t = sample("grid25", 400, np.random.default_rng(16))
    assert r["w1"] == pytest.approx(w1(to_numpy(s), t), rel=1e-12)


def test_evaluate_same_on_backends(xp):
    s = sample("ring8", 300, np.random.default_rng(17), xp)
    r = evaluate(s, "ring8", np.random.default_rng(18), n_target=300)
    ref = evaluate(to_numpy(s), "ring8", np.random.default_rng(18), n_target=300)
    assert r["modes"] == ref["modes"] and r["high_quality"] == ref["high_quality"]
    assert r["w1"] == ref["w1"] and r["w2"] == ref["w2"]
    assert r["sliced_w1"] == pytest.approx(ref["sliced_w1"], rel=1e-12)


def test_evaluate_swissroll_has_no_modes():
    s = sample("swissroll", 200, np.random.default_rng(19))
    r = evaluate(s, "swissroll", np.random.default_rng(20), n_target=200)
    assert r["modes"] is None and r["high_quality"] is None and r["w1"] > 0
