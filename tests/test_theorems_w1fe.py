"""W1-FE (Malik & Huang): eq. (2.2) / Prop. 3.1 (Kantorovich-Rubinstein duality, the potential as
the derivative of J), Remarks 2.3 / 3.1 (the flow follows the potential's gradient) and Thm 4.1
(convergence of the Euler curves as eps -> 0; behaviour under ties), as hypothesis properties of the
library's exact particle flow (refimpl.w1flow) and exact W1 (refimpl.metrics.w1).

Independent pieces: POT's LP duals (refimpl.testing.kantorovich_potential), scipy's assignment
solver for the limit curve, finite differences of the potential (numeric_grad)."""
import itertools
import math

import numpy as np
import ot
import pytest
from hypothesis import assume, given, strategies as st
from scipy.optimize import linear_sum_assignment

from refimpl.backend import from_host, to_numpy
from refimpl.metrics import w1
from refimpl.testing import cost_matrix_host, kantorovich_potential, point_clouds
from refimpl.w1flow import w1_flow, w1_flow_step, w1_matching


@st.composite
def equal_clouds(draw, max_n=7, ties=None):
    """(particles, data) of one size n (1..max_n), d in 1..3; ties=True: integer lattice (many optimal
    matchings); ties=False: continuous points (unique matching almost surely)."""
    n, d = draw(st.integers(1, max_n)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lattice = draw(st.booleans()) if ties is None else ties
    if lattice:
        return rng.integers(-3, 4, (n, d)).astype(float), rng.integers(-3, 4, (n, d)).astype(float)
    s = 10.0 ** draw(st.floats(-1.0, 1.0))
    return s * rng.standard_normal((n, d)), s * (rng.standard_normal((n, d)) + draw(st.floats(0.0, 3.0)))


# ----------------------------------------------------------------------------- eq. 2.2, Def. 2.2
@given(cl=point_clouds(max_points=8, dims=(1, 3), weights=("uniform",)))
def test_eq_2_2_kantorovich_rubinstein_duality_with_an_lp_potential(xp, cl):
    """The c-transform f of POT's LP duals is 1-Lipschitz and the critic g = -f (large on data) attains
    E_data g - E_particles g = W1 = the library's exact metrics.w1 (Def. 2.2's maximal potential)."""
    f, dc, u, v = kantorovich_potential(cl.x, cl.y)
    Z = np.concatenate([cl.x, cl.y])
    fz = f(Z)
    scale = 1 + np.abs(fz).max()
    assert np.all(np.abs(fz[:, None] - fz[None, :]) <= cost_matrix_host(Z, Z) + 1e-12 * scale)
    M = cl.x.shape[0]
    g = -fz
    lib = w1(from_host(cl.x, xp), from_host(cl.y, xp))
    assert g[M:].mean() - g[:M].mean() == pytest.approx(lib, rel=1e-9, abs=1e-12 * scale)
    assert lib == pytest.approx(dc, rel=1e-9, abs=1e-12 * scale)


# ----------------------------------------------------------------------------- Prop. 3.1
@given(cl=point_clouds(max_points=6, dims=(1, 3), weights=("uniform",), duplicates=False),
       k=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_prop_3_1_potential_is_the_derivative_of_J(cl, k, seed):
    """J(mu) = W1(mu, data). For nu = k new points and mu_s = mu + s (nu - mu): by 1-Lipschitzness
    J(mu_s) - J(mu) >= s int f d(nu - mu) (f the LP potential, small on data, i.e. -critic); the
    difference quotients decrease as s decreases (convexity, the proof's sandwich) and become constant
    for small s (the one-sided derivative exists: J is piecewise linear in the weights). The derivative
    equals int f d(nu - mu) for a maximising potential; discrete LP potentials are not unique, so the
    quotient is only checked to be >= the given potential's value (docs/theorems.md)."""
    f, dc, _, _ = kantorovich_potential(cl.x, cl.y)
    rng = np.random.default_rng(seed)
    z = cl.x[rng.integers(0, cl.x.shape[0], k)] + rng.standard_normal((k, cl.x.shape[1]))
    M, N = cl.x.shape[0], cl.y.shape[0]
    pts = np.concatenate([cl.x, z])
    C = cost_matrix_host(pts, cl.y)
    b = np.full(N, 1.0 / N)
    J = lambda s: float(ot.emd2(np.concatenate([np.full(M, (1 - s) / M), np.full(k, s / k)]), b, C))
    lin = f(z).mean() - f(cl.x).mean()
    svals = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
    q = [(J(s) - dc) / s for s in svals]
    res = [1e-12 * (1 + C.max()) / s for s in svals]          # LP value resolution over s
    assert all(v >= lin - r for v, r in zip(q, res))
    assert all(q[i + 1] <= q[i] + res[i + 1] for i in range(len(q) - 1))
    assert q[-1] == pytest.approx(q[-2], abs=res[-1])          # the one-sided derivative exists
    assert q[0] != 0 or lin == 0                               # moved


# ----------------------------------------------------------------------------- Remarks 2.3, 3.1 / eq. 4.1
@given(cl=equal_clouds(ties=False), eps=st.floats(1e-3, 1.0))
def test_remark_2_3_flow_moves_along_the_potential_gradient(xp, cl, eps):
    """Along the transport ray from a particle to its optimal match the LP critic g = -f increases at
    exactly unit rate (one-sided finite differences; any optimal potential, even one with a kink at the
    particle: LP duals are not unique), and the library's Euler step is y + eps u, u the ray's unit
    vector, for particles farther than eps from their match (else the match itself)."""
    x, y = cl
    f, _, _, _ = kantorovich_potential(x, y)
    perm, _ = w1_matching(from_host(x, xp), from_host(y, xp))
    d = np.linalg.norm(y[perm] - x, axis=1)
    assume(d.min() > 1e-3)
    step = to_numpy(w1_flow_step(from_host(x, xp), from_host(y, xp), float(eps)))
    for i in range(x.shape[0]):
        unit = (y[perm[i]] - x[i]) / d[i]
        delta = 1e-6 * d[i]
        rate = (f(x[i][None, :])[0] - f((x[i] + delta * unit)[None, :])[0]) / delta
        # resolution: a few roundings of f (values ~ |f| + max cost) over the step delta
        res = 32 * np.finfo(float).eps * (1 + np.abs(f(x)).max() + cost_matrix_host(x, y).max()) / delta
        assert rate == pytest.approx(1.0, abs=res)
        # complementary slackness: g(T x) - g(x) = |T x - x|
        assert f(x[i][None, :])[0] - f(y[perm[i]][None, :])[0] == pytest.approx(d[i], rel=1e-9, abs=1e-12)
        want = x[i] + eps * unit if d[i] > eps else y[perm[i]]
        np.testing.assert_allclose(step[i], want, rtol=1e-12, atol=1e-12 * (1 + np.abs(y).max()))
    assert np.abs(step - x).max() > 0                  # moved


# ----------------------------------------------------------------------------- Thm 4.1
def _limit_curve(x, y, t):
    """mu*(t) with a unique optimal matching (scipy): each particle moves at unit speed towards its
    match and stops there."""
    r, c = linear_sum_assignment(cost_matrix_host(x, y))
    T = y[c[np.argsort(r)]]
    d = np.linalg.norm(T - x, axis=1, keepdims=True)
    move = np.minimum(t, d)
    return x + np.where(d > 0, move / np.where(d > 0, d, 1.0), 0.0) * (T - x)


def _unique_matching(x, y, margin=1e-9):
    """True when one permutation is optimal by more than ``margin`` (brute force, n <= 6). In 1-D
    continuous points often have several optimal W1 matchings (e.g. all particles right of all data)."""
    C = cost_matrix_host(x, y)
    costs = sorted(C[np.arange(len(x)), list(p)].sum() for p in itertools.permutations(range(len(x))))
    return len(costs) == 1 or costs[1] - costs[0] > margin * (1 + costs[0])


@given(cl=equal_clouds(max_n=5, ties=False), t=st.floats(0.0, 4.0))
def test_theorem_4_1_euler_curves_converge_when_the_matching_is_unique(xp, cl, t):
    """W1(mu_eps(t), mu*(t)) <= eps for eps = 1, 1/2, ..., 1/16 (mu_eps piecewise constant, eq. 4.2)
    and it vanishes as eps -> 0 (at t a multiple of eps it is 0)."""
    x, y = cl
    assume(_unique_matching(x, y))
    scale = max(1.0, np.abs(np.concatenate([x, y])).max())
    star = _limit_curve(x, y, t * scale)
    errs = []
    for k in range(5):
        eps = float(scale / 2 ** k)
        n = int(math.floor(t * scale / eps))
        _, p = w1_flow(from_host(x, xp), from_host(y, xp), eps, n, return_particles=True)
        e = w1(p, from_host(star, xp))
        assert e <= eps * (1 + 1e-9) + 1e-9 * scale
        errs.append(e)
    assert errs[-1] <= scale / 16 + 1e-9 * scale


@given(cl=equal_clouds(ties=True), k=st.integers(0, 3))
def test_theorem_4_1_under_ties(xp, cl, k):
    """Ties (lattice points, several optimal matchings): every re-matched step still lowers W1 by exactly
    mean_i min(eps, d_i) (so W1(mu_eps(s), mu_eps(t)) <= |t - s| + eps, the equicontinuity behind
    Thm 4.1), and the flow reaches the data within ceil(n W1_0 / eps) + 1 steps (it may need more than
    ceil(max d / eps) steps: the documented tie behaviour)."""
    x, y = cl
    eps = 1.0 / 2 ** k
    n = x.shape[0]
    w0 = w1(x, y)
    bound = int(math.ceil(n * w0 / eps)) + 1
    p = from_host(x, xp)
    vals = [w0]
    for _ in range(bound):
        perm, _ = w1_matching(p, from_host(y, xp))
        d = np.linalg.norm(y[perm] - to_numpy(p), axis=1)
        q = w1_flow_step(p, from_host(y, xp), eps)
        assert w1(q, p) <= eps + 1e-12
        vals.append(w1(q, from_host(y, xp)))
        assert vals[-1] == pytest.approx(vals[-2] - np.minimum(eps, d).mean(), abs=1e-9 * (1 + w0))
        p = q
        if vals[-1] <= 1e-12:
            break
    assert vals[-1] <= 1e-9 * (1 + w0)
