"""Tests of refimpl.prox: closed forms of the two-delta model (Prop. 5, Appendix B).

Independent oracles, all on the host in NumPy float64 or exact rationals:
* ``shrink``: its definition evaluated in exact rational arithmetic (fractions);
* proximal steps: a 2-D dense grid refinement of the full objective (minimum value)
  and a bisection on the monotone subgradient of each coordinate (argmin);
* ``d_W`` / ``F_W1``: POT's exact OT (W2) and scipy's 1-D W1 on ``Theta = {a < 0 < b}``;
* Prop. 5 and the step count: the theorems themselves.
"""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.prox import F_W1, d_E, d_W, shrink, two_delta_prox
from tests.conftest import assert_xp

coord = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False)
pair = st.tuples(coord, coord)
steps = st.floats(1e-3, 100.0)
alphas = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0))
inner_alphas = st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)
METRICS = ["wasserstein", "euclidean"]


def _weights(alpha, metric):
    """(weights in F, weights in d^2) for the coordinates (a, b)."""
    wf = (alpha, 1.0 - alpha)
    wd = wf if metric == "wasserstein" else (1.0, 1.0)
    return wf, wd


def _objective(A, B, tk, ts, alpha, h, metric):
    (fa, fb), (da, db) = _weights(alpha, metric)
    return (fa * np.abs(A - ts[0]) + fb * np.abs(B - ts[1])
            + (da * (A - tk[0]) ** 2 + db * (B - tk[1]) ** 2) / (2.0 * h))


def _grid_min(tk, ts, alpha, h, metric, n=65, iters=60):
    """Minimum of the 2-D objective by dense grid refinement.

    Search box per coordinate: [min(y_k, y*), max(y_k, y*)]. Clamping a point into it
    decreases both |y - y*| and |y - y_k|, so it contains a minimiser.
    """
    lo = np.minimum(tk, ts).astype(float)
    hi = np.maximum(tk, ts).astype(float)
    best = (np.inf, None)
    for _ in range(iters):
        ga, gb = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        A, B = np.meshgrid(ga, gb, indexing="ij")
        f = _objective(A, B, tk, ts, alpha, h, metric)
        i, j = np.unravel_index(np.argmin(f), f.shape)
        if f[i, j] < best[0]:
            best = (float(f[i, j]), (ga[i], gb[j]))
        lo = np.array([ga[max(i - 2, 0)], gb[max(j - 2, 0)]])
        hi = np.array([ga[min(i + 2, n - 1)], gb[min(j + 2, n - 1)]])
    return best


def _bisect_argmin(yk, c, wf, wd, h):
    """Minimiser of wf|y - c| + wd (y - yk)^2/(2h) (wd > 0) by bisection on the subgradient.

    The weights are first divided by their maximum (same argmin), so that subnormal
    weights such as alpha = 5e-324 do not underflow the subgradient.
    """
    s = max(wf, wd)
    wf, wd = wf / s, wd / s
    lo, hi = min(yk, c), max(yk, c)
    for _ in range(300):
        m = 0.5 * (lo + hi)
        if m <= lo or m >= hi:
            break
        q = wd * (m - yk) / h
        left = q - wf if m <= c else q + wf     # left derivative
        right = q + wf if m >= c else q - wf    # right derivative
        if left <= 0.0 <= right:
            return m
        if right < 0.0:
            lo = m
        else:
            hi = m
    ends = [lo, hi]
    return min(ends, key=lambda y: wf * abs(y - c) + wd * (y - yk) ** 2 / (2 * h))


def _prox(xp, tk, ts, alpha, h, metric, dtype="float64"):
    out = two_delta_prox(from_host(np.asarray(tk), xp, dtype), from_host(np.asarray(ts), xp, dtype),
                         alpha, h, metric=metric)
    assert_xp(out, xp, dtype)
    return to_numpy(out).astype(float)


# ----------------------------------------------------------------------------- shrink
def _shrink_exact(x, c, t):
    X, C, T = Fraction(x), Fraction(c), Fraction(t)
    return X - T if X > C + T else X + T if X < C - T else C


@given(x=st.lists(coord, min_size=1, max_size=8), c=coord, t=st.floats(0.0, 50.0))
def test_shrink_matches_definition(xp, x, c, t):
    out = shrink(from_host(np.asarray(x), xp, "float64"), c, t)
    assert_xp(out, xp, "float64")
    got = to_numpy(out)
    for xi, gi in zip(x, got):
        want = float(_shrink_exact(xi, c, t))
        # one rounding of x -/+ t, and the branch test c +/- t is itself rounded
        assert abs(gi - want) <= 4 * np.spacing(max(abs(xi), abs(c), t, 1e-300)), (xi, c, t, gi, want)


@given(x=coord, c=coord, t=st.floats(0.0, 50.0))
def test_shrink_is_prox_of_abs_and_never_crosses_center(xp, x, c, t):
    y = float(to_numpy(shrink(from_host(np.asarray([x]), xp, "float64"), c, t))[0])
    if t > 0:
        assert abs(y - _bisect_argmin(x, c, t, 1.0, 1.0)) <= 1e-8
    assert (y - c) * (x - c) >= 0.0 and abs(y - c) <= abs(x - c)


# ----------------------------------------------------------------------------- prox = brute force
@pytest.mark.parametrize("metric", METRICS)
@given(tk=pair, ts=pair, alpha=alphas, h=steps)
def test_prox_matches_brute_force(xp, metric, tk, ts, alpha, h):
    tk, ts = np.asarray(tk), np.asarray(ts)
    got = _prox(xp, tk, ts, alpha, h, metric)
    f_got = float(_objective(got[0], got[1], tk, ts, alpha, h, metric))
    f_min, _ = _grid_min(tk, ts, alpha, h, metric)
    assert abs(f_got - f_min) <= 1e-8, (f_got, f_min)
    assert f_got <= f_min + 1e-12 * (1.0 + abs(f_min))
    wf, wd = _weights(alpha, metric)
    for i in range(2):
        if wd[i] == 0.0:   # W-prox, zero-mass coordinate: free; documented choice is no move
            assert got[i] == tk[i]
        else:
            assert abs(got[i] - _bisect_argmin(tk[i], ts[i], wf[i], wd[i], h)) <= 1e-8


def test_prox_closed_form_values(xp):
    tk, ts, h = np.array([-5.0, 4.0]), np.array([-1.0, 1.0]), 0.5
    np.testing.assert_array_equal(_prox(xp, tk, ts, 0.25, h, "wasserstein"), [-4.5, 3.5])
    np.testing.assert_array_equal(_prox(xp, tk, ts, 0.25, h, "euclidean"), [-4.875, 3.625])
    np.testing.assert_array_equal(_prox(xp, tk, ts, 0.0, h, "wasserstein"), [-5.0, 3.5])
    np.testing.assert_array_equal(_prox(xp, tk, ts, 1.0, h, "wasserstein"), [-4.5, 4.0])
    np.testing.assert_array_equal(_prox(xp, tk, ts, 0.0, h, "euclidean"), [-5.0, 3.5])
    np.testing.assert_array_equal(_prox(xp, [-1.2, 1.3], ts, 0.5, h, "wasserstein"), [-1.0, 1.0])


# ----------------------------------------------------------------------------- Prop. 5
@given(alpha=alphas, h=steps, seed=st.integers(0, 2**32 - 1))
def test_prop5_wasserstein_prox_decreases_F_at_least_as_much(xp, alpha, h, seed):
    r = np.random.default_rng(seed)
    tk, ts = r.uniform(-100, 100, (64, 2)), r.uniform(-100, 100, (64, 2))
    tw = two_delta_prox(from_host(tk, xp), from_host(ts, xp), alpha, h, "wasserstein")
    te = two_delta_prox(from_host(tk, xp), from_host(ts, xp), alpha, h, "euclidean")
    fw = to_numpy(F_W1(tw, from_host(ts, xp), alpha))
    fe = to_numpy(F_W1(te, from_host(ts, xp), alpha))
    assert np.all(fe >= fw), (fe - fw).min()


@given(alpha=alphas, h=steps, seed=st.integers(0, 2**32 - 1))
def test_prop5_case_values_erratum(xp, alpha, h, seed):
    """Case a_k > a* + h, b_k > b* + h: F_W = F_k - h and F_E = F_k - h(alpha^2 + (1-alpha)^2).

    (Appendix B adds the proximal terms h/2 and writes the opposite inequality.)
    """
    r = np.random.default_rng(seed)
    ts = r.uniform(-50, 50, (16, 2))
    tk = ts + h + r.uniform(1e-3, 50, (16, 2))
    f0 = alpha * (tk[:, 0] - ts[:, 0]) + (1 - alpha) * (tk[:, 1] - ts[:, 1])
    X = lambda a: from_host(a, xp)  # noqa: E731
    fw = to_numpy(F_W1(two_delta_prox(X(tk), X(ts), alpha, h, "wasserstein"), X(ts), alpha))
    fe = to_numpy(F_W1(two_delta_prox(X(tk), X(ts), alpha, h, "euclidean"), X(ts), alpha))
    tol = 1e-12 * (np.abs(tk).max() + h)
    np.testing.assert_allclose(fw, f0 - h, rtol=0, atol=tol)
    np.testing.assert_allclose(fe, f0 - h * (alpha**2 + (1 - alpha) ** 2), rtol=0, atol=tol)


# ----------------------------------------------------------------------------- iterated W-prox
@given(alpha=alphas, hn=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_w_prox_reaches_target_in_ceil_steps(xp, alpha, hn, seed):
    """Dyadic inputs (multiples of 1/16) keep every step exact in float64.

    Coordinate distance after j steps is max(d - j h, 0); theta* is first reached at
    step ceil(max(|a-a*|, |b-b*|)/h). A zero-mass coordinate (alpha = 0 or 1) never moves.
    """
    r = np.random.default_rng(seed)
    h = hn / 16
    tk = r.integers(-128, 129, (32, 2)) / 16
    ts = r.integers(-128, 129, (32, 2)) / 16
    d0 = np.abs(tk - ts)
    moving = np.array([alpha > 0, alpha < 1])
    n_exp = np.ceil(np.where(moving, d0, 0.0).max(axis=1) / h)
    th, TS = from_host(tk, xp), from_host(ts, xp)
    first = np.full(32, -1)
    for j in range(1, int(n_exp.max()) + 2):
        th = two_delta_prox(th, TS, alpha, h, "wasserstein")
        cur = to_numpy(th)
        want = np.where(moving, ts + np.sign(tk - ts) * np.maximum(d0 - j * h, 0.0), tk)
        np.testing.assert_array_equal(cur, want)
        hit = np.all(cur[:, moving] == ts[:, moving], axis=1) & (first < 0)
        first[hit] = j
    first[n_exp == 0] = 0
    np.testing.assert_array_equal(first, n_exp)


@given(alpha=inner_alphas, h=st.floats(0.25, 10.0), seed=st.integers(0, 2**32 - 1))
def test_w_prox_never_overshoots_arbitrary_floats(xp, alpha, h, seed):
    r = np.random.default_rng(seed)
    tk, ts = r.uniform(-10, 10, (32, 2)), r.uniform(-10, 10, (32, 2))
    n = int(np.ceil(np.abs(tk - ts).max() / h))
    th, TS, prev = from_host(tk, xp), from_host(ts, xp), tk
    for _ in range(n + 1):
        th = two_delta_prox(th, TS, alpha, h, "wasserstein")
        cur = to_numpy(th)
        assert np.all((cur - ts) * (tk - ts) >= 0.0)               # same side of theta*
        assert np.all(np.abs(cur - ts) <= np.abs(prev - ts))         # monotone
        prev = cur
    np.testing.assert_array_equal(prev, ts)


# ----------------------------------------------------------------------------- metric and loss
@given(a=st.floats(-50, -1e-3), b=st.floats(1e-3, 50), a2=st.floats(-50, -1e-3), b2=st.floats(1e-3, 50),
       alpha=alphas)
def test_dW_is_W2_and_F_is_W1_on_Theta(xp, a, b, a2, b2, alpha):
    import ot
    from scipy.stats import wasserstein_distance
    w = np.array([alpha, 1 - alpha])
    x, y = np.array([a, b]), np.array([a2, b2])
    w2sq = ot.emd2(w, w, (x[:, None] - y[None, :]) ** 2)
    w1 = wasserstein_distance(x, y, w, w)
    t1, t2 = from_host(x, xp), from_host(y, xp)
    dw, f, de = d_W(t1, t2, alpha), F_W1(t1, t2, alpha), d_E(t1, t2)
    assert_xp((dw, f, de), xp, "float64")
    np.testing.assert_allclose(float(to_numpy(dw)) ** 2, w2sq, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(float(to_numpy(f)), w1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(float(to_numpy(de)), np.hypot(a - a2, b - b2), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_namespace_dtype_and_broadcast(xp, dtype):
    tk = from_host(np.array([[-3.0, 2.0], [-0.5, 0.25], [1.0, -1.0]]), xp, dtype)
    ts = from_host(np.array([-1.0, 1.0]), xp, dtype)
    for m in METRICS:
        out = two_delta_prox(tk, ts, 0.3, 0.5, m)
        assert_xp(out, xp, dtype)
        assert tuple(out.shape) == (3, 2)
    for out, shape in [(d_W(tk, ts, 0.3), (3,)), (d_E(tk, ts), (3,)), (F_W1(tk, ts, 0.3), (3,)),
                       (shrink(tk, ts, 0.1), (3, 2))]:
        assert_xp(out, xp, dtype)
        assert tuple(out.shape) == shape


# ----------------------------------------------------------------------------- bad input
GOOD = np.array([-1.0, 1.0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(theta=np.array([np.nan, 1.0])), "theta has non-finite"),
    (dict(theta_star=np.array([-1.0, np.inf])), "theta_star has non-finite"),
    (dict(h=0.0), "h must be > 0"),
    (dict(h=-1.0), "h must be > 0"),
    (dict(h=float("nan")), "h must be finite"),
    (dict(alpha=-0.1), r"alpha must lie in \[0, 1\]"),
    (dict(alpha=1.5), r"alpha must lie in \[0, 1\]"),
    (dict(alpha=float("inf")), "alpha must be finite"),
    (dict(theta=np.array([-1.0, 1.0, 2.0])), r"theta must have shape \(..., 2\)"),
    (dict(theta=np.zeros((2, 3))), r"theta must have shape \(..., 2\)"),
    (dict(theta=np.zeros((3, 2)), theta_star=np.zeros((4, 2))), "do not broadcast"),
    (dict(metric="kl"), "unknown metric 'kl'"),
    (dict(metric=None), "unknown metric None"),
])
def test_prox_bad_input(xp, kwargs, match):
    args = dict(theta=GOOD, theta_star=GOOD, alpha=0.3, h=0.5, metric="wasserstein")
    args.update(kwargs)
    args["theta"], args["theta_star"] = xp.asarray(args["theta"]), xp.asarray(args["theta_star"])
    with pytest.raises(ValueError, match=match):
        two_delta_prox(**args)


def test_dtype_rule(xp):
    """refimpl.validation: integer parameters are promoted to float64, float16 refused, lists refused."""
    out = two_delta_prox(xp.asarray([-3, 2]), xp.asarray(GOOD), 0.3, 0.5)
    assert out.dtype == xp.float64
    assert np.array_equal(to_numpy(out), to_numpy(two_delta_prox(xp.asarray([-3.0, 2.0]), xp.asarray(GOOD), 0.3, 0.5)))
    if hasattr(xp, "float16"):
        with pytest.raises(TypeError, match="theta has dtype float16"):
            two_delta_prox(xp.asarray(GOOD, dtype=xp.float16), xp.asarray(GOOD), 0.3, 0.5)
    with pytest.raises(TypeError, match="theta must be an array"):
        two_delta_prox([-1.0, 1.0], xp.asarray(GOOD), 0.3, 0.5)


def test_other_functions_bad_input(xp):
    g = xp.asarray(GOOD)
    with pytest.raises(ValueError, match="t must be >= 0"):
        shrink(g, 0.0, -0.1)
    with pytest.raises(ValueError, match="x has non-finite"):
        shrink(xp.asarray([np.nan]), 0.0, 0.1)
    with pytest.raises(ValueError, match="center must be finite"):
        shrink(g, float("nan"), 0.1)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        d_W(g, g, 2.0)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        F_W1(g, g, -1.0)
    with pytest.raises(ValueError, match=r"theta2 must have shape \(..., 2\)"):
        d_E(g, xp.asarray([1.0]))
