"""Toy datasets (conventions.md, "2-D mixture protocol")."""
import itertools
import math

import numpy as np
import pytest

from refimpl.backend import to_numpy
from refimpl.datasets import CLAIMED_MODES, DATASETS, Mixture, SwissRoll, get_dataset, sample
from tests.conftest import assert_xp


def test_ring8_spec():
    spec = get_dataset("ring8")
    want = [(math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)) for k in range(8)]
    np.testing.assert_allclose(spec.centers, np.array(want), rtol=0, atol=1e-15)
    assert spec.std == 0.01 and spec.n_modes == 8


def test_grid25_spec():
    spec = get_dataset("grid25")
    want = set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert {tuple(c) for c in spec.centers.tolist()} == want and spec.n_modes == 25
    assert spec.std == 0.05


def test_grid25_lim_ye_spec():
    """Lim & Ye's grid (datasets/toy.py exp4): centres linspace(-21, 21, 5)^2, variance 0.1."""
    spec = get_dataset("grid25-lim-ye")
    want = set(itertools.product([-21.0, -10.5, 0.0, 10.5, 21.0], repeat=2))
    assert {tuple(c) for c in spec.centers.tolist()} == want and spec.n_modes == 25
    assert spec.std ** 2 == pytest.approx(0.1, rel=1e-15)


def distinct_centres(centers, tol=1e-9):
    """Number of centres at least ``tol`` apart from every earlier one (greedy)."""
    kept = []
    for c in np.asarray(centers, float):
        if all(np.linalg.norm(c - k) > tol for k in kept):
            kept.append(c)
    return len(kept)


def test_the_distinct_centre_count_catches_the_endpoint_ring():
    """The classic bug: linspace(0, 2 pi, 8) with the endpoint puts the last centre on the first
    (GDPP's gdppgan_Synthetic.py ring), so 8 claimed modes are 7 distinct ones."""
    t = np.linspace(0, 2 * np.pi, 8)
    assert distinct_centres(np.stack([np.sin(t), np.cos(t)], axis=1)) == 7
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    assert distinct_centres(np.stack([np.sin(t), np.cos(t)], axis=1)) == 8


@pytest.mark.parametrize("name", sorted(n for n, d in DATASETS.items() if isinstance(d, Mixture)))
def test_every_mixture_has_as_many_distinct_centres_as_it_claims(name):
    """Each mixture's centres are pairwise distinct, their number is the one its name and
    CLAIMED_MODES claim, and no two modes overlap within their 3-sigma quality radius (so a
    high-quality sample belongs to one mode only)."""
    spec = get_dataset(name)
    assert distinct_centres(spec.centers) == spec.n_modes == CLAIMED_MODES[name]
    d = np.linalg.norm(spec.centers[:, None, :] - spec.centers[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 6 * spec.std


def test_every_mixture_claims_a_mode_count():
    assert set(CLAIMED_MODES) == {n for n, d in DATASETS.items() if isinstance(d, Mixture)}


def test_specs_are_read_only():
    with pytest.raises(ValueError):
        get_dataset("grid25").centers[0, 0] = 1.0


def test_unknown_name_lists_known():
    with pytest.raises(ValueError) as e:
        get_dataset("ring9")
    for name in DATASETS:
        assert name in str(e.value)
    with pytest.raises(ValueError):
        sample("nope", 3, np.random.default_rng(0))


def test_bad_arguments():
    with pytest.raises(TypeError):
        sample("ring8", 3, 0)
    with pytest.raises(ValueError):
        sample("ring8", -1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        Mixture("bad", np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError):
        Mixture("bad", np.zeros((3, 2)), 0.0)


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sample_shape_namespace(xp, name, dtype):
    x = sample(name, 17, np.random.default_rng(1), xp, dtype=dtype)
    assert_xp(x, xp, dtype)
    assert x.shape == (17, 2)
    assert sample(name, 0, np.random.default_rng(1), xp).shape == (0, 2)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_same_numbers_on_every_backend(xp, name):
    ref = sample(name, 50, np.random.default_rng(7))                      # host numpy float64
    got = to_numpy(sample(name, 50, np.random.default_rng(7), xp))
    np.testing.assert_array_equal(got, ref)
    got32 = to_numpy(sample(name, 50, np.random.default_rng(7), xp, dtype="float32"))
    np.testing.assert_array_equal(got32, ref.astype(np.float32))


@pytest.mark.parametrize("name", ["ring8", "grid25", "grid25-lim-ye"])
def test_mixture_statistics(name):
    """Mode frequencies and within-mode std, with 5-sigma binomial / chi-square bounds."""
    spec = get_dataset(name)
    n = 40_000
    x, lab = sample(name, n, np.random.default_rng(3), return_labels=True)
    K = spec.n_modes
    freq = np.bincount(lab, minlength=K) / n
    sd = math.sqrt((1 / K) * (1 - 1 / K) / n)
    assert np.all(np.abs(freq - 1 / K) < 5 * sd)
    resid = x - spec.centers[lab]
    # each point is closer to its own centre than 6 std (modes are >= 0.76 apart)
    assert np.max(np.linalg.norm(resid, axis=1)) < 6 * spec.std
    # sample std of 2n iid N(0, s^2) values: relative sd about 1/sqrt(4n)
    s_hat = math.sqrt(np.mean(resid ** 2))
    assert abs(s_hat / spec.std - 1) < 5 / math.sqrt(4 * n)
    np.testing.assert_allclose(resid.mean(axis=0), 0, atol=5 * spec.std / math.sqrt(n))


def test_swissroll_formula():
    """Noise-free roll: ``7.5 x = (t cos t, t sin t)`` with ``t = 7.5 |x|`` in [1.5 pi, 4.5 pi]."""
    spec = SwissRoll(noise=0.0)
    x, t = sample(spec, 1000, np.random.default_rng(0), return_labels=True)
    r = 7.5 * np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r, t, rtol=1e-13)
    assert r.min() >= 1.5 * np.pi and r.max() <= 4.5 * np.pi
    np.testing.assert_allclose(7.5 * x[:, 0], r * np.cos(r), atol=1e-12)
    np.testing.assert_allclose(7.5 * x[:, 1], r * np.sin(r), atol=1e-12)


def test_swissroll_default_scale():
    x = sample("swissroll", 20_000, np.random.default_rng(0))
    assert np.all(np.abs(x) < 2.3)
    assert x[:, 0].min() < -1.2 and x[:, 0].max() > 1.6
    assert get_dataset("swissroll").n_modes == 0
