"""Exact W1 forward-Euler particle flow (paper w1-forward-euler-ode eq. 4.1; conventions.md, "W1 forward Euler").

Proved statements tested here (module docstring of refimpl.w1flow), m_i = min(eps, d_i):
1. W1(new, old) <= mean m_i <= eps;
2. W1(new, data) = W1(old, data) - mean m_i (equality);
3. the matching used stays optimal; with a kept (or unique) matching the data are
   reached after exactly ceil(max d_i / eps) steps, W1_k = mean max(d_i - k eps, 0).
"""
import itertools
import math

import numpy as np
import pytest

pytest.importorskip("ot")
from hypothesis import assume, given, strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment

from refimpl.backend import from_host, to_numpy
from refimpl.metrics import w1
from refimpl.w1flow import w1_flow, w1_flow_step, w1_matching
from tests.conftest import assert_xp

# W1 values are O(1..10); POT's network simplex and the step are exact up to float64
# rounding of sums of a few hundred terms.
ATOL = 1e-9


@st.composite
def clouds(draw):
    n = draw(st.integers(2, 30))
    d = draw(st.integers(1, 3))
    # rounded to 1e-9 so that squared distances cannot underflow (|x - y| = 1e-300 reads as 0)
    el = st.floats(-3, 3, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 9))
    x = draw(arrays(np.float64, (n, d), elements=el))
    y = draw(arrays(np.float64, (n, d), elements=el))
    eps = draw(st.floats(0.1, 3.0))
    return x, y, eps


def _dists(x, y, perm):
    return np.linalg.norm(y[perm] - x, axis=1)


def test_matching_is_optimal_assignment():
    """POT's permutation has the cost of scipy's Hungarian solver."""
    rng = np.random.default_rng(0)
    for n, d in [(2, 1), (17, 2), (40, 3)]:
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d)) + 0.5
        perm, cost = w1_matching(x, y)
        assert sorted(perm.tolist()) == list(range(n))
        C = np.linalg.norm(x[:, None] - y[None], axis=2)
        r, c = linear_sum_assignment(C)
        assert cost == pytest.approx(C[r, c].mean(), rel=1e-12)
        assert cost == pytest.approx(_dists(x, y, perm).mean(), rel=1e-12)


def test_step_formula_and_namespace(xp):
    x = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0]])
    y = np.array([[3.0, 4.0], [5.0, 5.5], [1.0, 1.0]])
    for dtype in ("float64", "float32"):
        out = w1_flow_step(from_host(x, xp, dtype), from_host(y, xp, dtype), 1.0)
        assert_xp(out, xp, dtype)
        # (0,0) -> (3,4): one unit along (0.6, 0.8); (5,5) stops on (5,5.5); (1,1) stays
        np.testing.assert_allclose(to_numpy(out), [[0.6, 0.8], [5.0, 5.5], [1.0, 1.0]], rtol=1e-6)


@given(clouds())
def test_one_step_properties(xp, c):
    x, y, eps = c
    perm, W0 = w1_matching(x, y)
    m = np.minimum(eps, _dists(x, y, perm))
    new = to_numpy(w1_flow_step(from_host(x, xp), from_host(y, xp), eps))
    # 1. moved mass: each particle moves exactly m_i, and W1(new, old) <= mean m_i <= eps
    np.testing.assert_allclose(np.linalg.norm(new - x, axis=1), m, rtol=1e-12, atol=1e-12)
    W1step = w1(new, x)
    assert W1step <= m.mean() + ATOL
    assert m.max() <= eps and W1step <= eps + ATOL
    # 2. W1 to the data drops by exactly mean m_i
    W1new = w1(new, y)
    assert abs(W1new - (W0 - m.mean())) <= ATOL
    assert W1new <= W0 + ATOL
    # 3. the matching used is still optimal
    assert abs(_dists(new, y, perm).mean() - W1new) <= ATOL


@given(clouds())
def test_kept_matching_reaches_data(xp, c):
    x, y, eps = c
    perm, _ = w1_matching(x, y)
    d = _dists(x, y, perm)
    ratio = d.max() / eps
    # a ratio within rounding of an integer may need one extra step for a 1e-16 residue
    assume(ratio == 0 or abs(ratio - round(ratio)) > 1e-6)
    K = math.ceil(ratio)
    vals, final = w1_flow(from_host(x, xp), from_host(y, xp), eps, K, rematch=False, return_particles=True)
    assert_xp(final, xp, "float64")
    assert len(vals) == K + 1
    want = [np.mean(np.maximum(d - k * eps, 0.0)) for k in range(K + 1)]
    np.testing.assert_allclose(vals, want, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(to_numpy(final), y[perm])                # landed exactly
    if K > 0:
        assert vals[K - 1] > 0


def test_rematch_reaches_data_when_matching_unique(xp):
    """Random Gaussian clouds (unique optimal matching a.s.): re-matching every step is
    the same flow; reached after exactly ceil(max d / eps) steps."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n, d = 12, 2
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d)) + [1.5, 0.0]
        eps = 0.37
        perm, _ = w1_matching(x, y)
        dist = _dists(x, y, perm)
        K = math.ceil(dist.max() / eps)
        vals, final = w1_flow(from_host(x, xp), from_host(y, xp), eps, K, return_particles=True)
        want = [np.mean(np.maximum(dist - k * eps, 0.0)) for k in range(K + 1)]
        np.testing.assert_allclose(vals, want, rtol=0, atol=ATOL)
        assert vals[-1] == 0.0 and vals[-2] > 0
        np.testing.assert_array_equal(to_numpy(final), y[perm])


def _optimal_perms(x, y):
    C = np.linalg.norm(x[:, None] - y[None], axis=2)
    perms = list(itertools.permutations(range(len(x))))
    cost = [C[np.arange(len(x)), p].sum() for p in perms]
    best = min(cost)
    return [np.array(p) for p, c in zip(perms, cost) if c <= best + 1e-12]


def test_ties_can_slow_rematching():
    """Particles {0, -1}, data {2, 1}, eps = 1: every matching is optimal at every step.
    Keeping the first matching reaches the data in ceil(2/1) = 2 steps; switching to
    another optimal matching at step 2 needs 3. The ceil bound needs a kept matching."""
    x = np.array([[0.0], [-1.0]])
    y = np.array([[2.0], [1.0]])
    assert len(_optimal_perms(x, y)) == 2
    p0 = np.array([0, 1])                                                  # 0 -> 2, -1 -> 1
    x1 = to_numpy(w1_flow_step(x, y, 1.0, matching=p0))
    np.testing.assert_array_equal(x1, [[1.0], [0.0]])
    assert len(_optimal_perms(x1, y)) == 2
    np.testing.assert_array_equal(to_numpy(w1_flow_step(x1, y, 1.0, matching=p0)), y)   # kept: done
    x2 = to_numpy(w1_flow_step(x1, y, 1.0, matching=np.array([1, 0])))   # switched: not done
    assert w1(x2, y) == pytest.approx(0.5)
    np.testing.assert_array_equal(to_numpy(w1_flow_step(x2, y, 1.0)), [[1.0], [2.0]])


def test_bad_eps():
    with pytest.raises(ValueError):
        w1_flow_step(np.zeros((2, 1)), np.ones((2, 1)), 0.0)


def test_numpy_scalar_parameters(xp):
    """eps as numpy.float64 raised TypeError on array_api_strict (a NumPy scalar in array
    arithmetic). NumPy scalars are reals, integers and bools by refimpl.validation: every scalar
    parameter is converted to a Python number at entry, and the result equals the Python-scalar one."""
    rng = np.random.default_rng(5)
    x, y = from_host(rng.standard_normal((6, 2)), xp), from_host(rng.standard_normal((6, 2)), xp)
    want = to_numpy(w1_flow_step(x, y, 0.25))
    for eps in (np.float64(0.25), np.float32(0.25), np.asarray(0.25)):
        got = w1_flow_step(x, y, eps)
        assert_xp(got, xp, "float64")
        np.testing.assert_array_equal(to_numpy(got), want)
        np.testing.assert_array_equal(to_numpy(w1_flow_step(x, y, eps, matching=np.arange(6))),
                                      to_numpy(w1_flow_step(x, y, 0.25, matching=np.arange(6))))
    vals, p = w1_flow(x, y, 0.25, 3, rematch=False, return_particles=True)
    for eps, n, flag in ((np.float64(0.25), np.int64(3), np.False_), (np.float32(0.25), np.int32(3), np.bool_(False))):
        got_vals, got_p = w1_flow(x, y, eps, n, rematch=flag, return_particles=np.True_)
        assert got_vals == vals and len(got_vals) == 4
        assert_xp(got_p, xp, "float64")
        np.testing.assert_array_equal(to_numpy(got_p), to_numpy(p))
