"""Issue 12, items 1-3: each named instance of a silent wrong answer, as a test.

The policy is refimpl/validation.py: integer/bool arrays promoted to float64, float16
refused, float32 with float64 computed in float64, NaN/inf refused at entry with a
ValueError naming the argument, scalar parameters checked against their documented
domains, lists refused with a TypeError.
"""
import math

import numpy as np
import pytest

from refimpl import host_ot
from refimpl.backend import from_host, to_numpy
from refimpl.metrics import evaluate, mode_stats, sliced_w1, w1, w2
from refimpl.nn import MLP
from refimpl.objectives import Objective, critic_grads
from refimpl.optim import Adam
from refimpl.prox import shrink
from refimpl.rwp import proximal_term
from refimpl.wgrad import PixelGraph, wasserstein_gradient, wasserstein_norm_sq
from refimpl.w1flow import w1_flow, w1_flow_step, w1_matching


@pytest.fixture
def no_pot(monkeypatch):
    """Fail the test if POT is reached: a bad input must be refused before any solve."""
    def boom():
        raise AssertionError("POT was called on an input that should have been refused")
    monkeypatch.setattr(host_ot, "import_ot", boom)


def _clouds(xp, rng, n=40, m=30):
    return (from_host(rng.integers(-5, 6, (n, 2)), xp, xp.int64),
            from_host(rng.integers(-5, 6, (m, 2)) + 3, xp, xp.int64))


# ----------------------------------------------------------------------------- 1. dtypes
def test_sliced_w1_integer_clouds(xp, rng):
    """Was 0.0: the directions were cast to the clouds' integer dtype and rounded to 0."""
    x, y = _clouds(xp, rng)
    xf, yf = xp.astype(x, xp.float64), xp.astype(y, xp.float64)
    want = sliced_w1(xf, yf, 200, rng=3)
    assert want > 1.0                                            # the clouds are 3 apart
    assert sliced_w1(x, y, 200, rng=3) == want
    assert sliced_w1(x, yf, 200, rng=3) == want                  # only one cloud integer
    assert sliced_w1(xf, y, 200, rng=3) == want
    assert sliced_w1(x, y, 200, rng=3) <= w1(xf, yf) + 1e-12     # sliced <= exact


def test_float16_refused(xp, rng):
    if not hasattr(xp, "float16"):
        pytest.skip(f"{xp.__name__} has no float16")
    h = xp.astype(from_host(rng.standard_normal((5, 2)), xp), xp.float16)
    with pytest.raises(TypeError, match="float16"):
        from_host(np.zeros(2), xp, xp.float16)
    g = from_host(rng.standard_normal((5, 2)), xp, "float64")
    for call, name in ((lambda: sliced_w1(h, g, rng=0), "x"), (lambda: w1(g, h), "y"),
                       (lambda: shrink(h, 0.0, 0.1), "x"), (lambda: proximal_term(g, h, 0.1), "fake_prev"),
                       (lambda: mode_stats(h, np.zeros((1, 2)), 1.0), "samples")):
        with pytest.raises(TypeError, match=f"{name} has dtype float16"):
            call()


def test_mixed_float32_float64_promoted(xp, rng):
    a = rng.standard_normal((6, 4))
    b = rng.standard_normal((6, 4))
    v, d = proximal_term(from_host(a, xp, "float32"), from_host(b, xp, "float64"), 0.5)
    assert v.dtype == xp.float64 and d.dtype == xp.float64
    want = np.sum((a.astype(np.float32).astype(np.float64) - b) ** 2) / (2 * 0.5 * 6)
    assert float(to_numpy(v)) == pytest.approx(want, rel=1e-14)
    graph = PixelGraph(2, 2)
    X = from_host(rng.uniform(0, 1, (3, 1, 2, 2)), xp, "float32")
    G = from_host(rng.standard_normal((3, 1, 2, 2)), xp, "float64")
    assert wasserstein_norm_sq(graph, X, G).dtype == xp.float64
    s64 = sliced_w1(xp.astype(from_host(a, xp, "float32"), xp.float64), from_host(b, xp, "float64"), 50, rng=1)
    assert sliced_w1(from_host(a, xp, "float32"), from_host(b, xp, "float64"), 50, rng=1) == s64


# ----------------------------------------------------------------------------- 2. non-finite inputs
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_samples_refused_before_pot(xp, rng, no_pot, bad):
    """w1/w2/evaluate/w1_flow_step with NaN ran ~10 s, then failed inside POT ("infeasible")."""
    a = rng.standard_normal((20, 2))
    b = rng.standard_normal((20, 2))
    a[7, 1] = bad
    x, y = from_host(a, xp, "float64"), from_host(b, xp, "float64")
    for call, name in ((lambda: w1(x, y), "x"), (lambda: w2(y, x), "y"), (lambda: w1_matching(x, y), "particles"),
                       (lambda: w1_flow_step(y, x, 0.1), "data"), (lambda: w1_flow(x, y, 0.1, 2), "particles"),
                       (lambda: evaluate(x, "ring8", np.random.default_rng(0)), "samples"),
                       (lambda: sliced_w1(x, y, rng=0), "x"), (lambda: sliced_w1(y, x, rng=0), "y")):
        with pytest.raises(ValueError, match=f"^{name} has non-finite"):
            call()


def test_wasserstein_norm_nonfinite(xp, rng):
    """Returned NaN for NaN in g and inf for inf in X."""
    graph = PixelGraph(3, 3)
    X = rng.uniform(0, 1, (2, 1, 3, 3))
    g = rng.standard_normal((2, 1, 3, 3))
    g_bad, X_bad = g.copy(), X.copy()
    g_bad[1, 0, 2, 2] = np.nan
    X_bad[0, 0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="^g has non-finite"):
        wasserstein_norm_sq(graph, from_host(X, xp), from_host(g_bad, xp))
    with pytest.raises(ValueError, match="^X has non-finite"):
        wasserstein_norm_sq(graph, from_host(X_bad, xp), from_host(g, xp))
    with pytest.raises(ValueError, match="^X has non-finite"):
        wasserstein_gradient(graph, from_host(X_bad, xp), from_host(g, xp))


def test_mlp_input_gradient_at_inf(xp, rng):
    """Returned a finite gradient at x = inf, with only a warning."""
    net = MLP((2, 8, 1), "tanh")
    p = net.init(rng, xp=xp)
    x = np.zeros((3, 2))
    x[1, 0] = np.inf
    with pytest.raises(ValueError, match="^x has non-finite"):
        net.input_gradient(p, from_host(x, xp))
    with pytest.raises(ValueError, match="^x has non-finite"):
        net.forward(p, from_host(x, xp))
    bad = [(W, b) for W, b in p]
    bad[0] = (bad[0][0] * np.nan, bad[0][1])
    with pytest.raises(ValueError, match=r"^params\[0\]\[0\] has non-finite"):
        net.forward(bad, from_host(np.zeros((3, 2)), xp))


def test_training_entry_points_refuse_nonfinite(xp, rng):
    net = MLP((2, 4, 1))
    p = net.init(rng, xp=xp)
    ok = from_host(rng.standard_normal((4, 2)), xp)
    bad = from_host(np.full((4, 2), np.nan), xp)
    with pytest.raises(ValueError, match="^fake has non-finite"):
        critic_grads(Objective("wgan-gp"), net, p, ok, bad, rng)
    grads = [(W * np.inf, b) for W, b in p]
    opt = Adam()
    with pytest.raises(ValueError, match=r"^grads\[0\]\[0\] has non-finite"):
        opt.step(p, grads, opt.init(p))


@pytest.mark.parametrize("scale", [1e200, 1e-200, 2.0 ** 1000])
def test_metrics_do_not_overflow_near_1e200(xp, rng, scale):
    """The kind of cost_matrix's inf near 1e200: squared distances overflowed (underflowed near
    1e-200, giving W2 = 0). W1, W2, SW1 and the W1 matching are homogeneous: scaled
    inputs give scaled values."""
    a, b = rng.standard_normal((7, 2)), rng.standard_normal((5, 2))
    x, y = from_host(a, xp), from_host(b, xp)
    xs, ys = from_host(a * scale, xp), from_host(b * scale, xp)
    for f in (w1, w2, lambda u, v: sliced_w1(u, v, 20, rng=4)):
        want = f(x, y)
        got = f(xs, ys)
        assert math.isfinite(got) and got > 0
        assert got / scale == pytest.approx(want, rel=1e-12)
    p, q = from_host(a[:5], xp), from_host(b, xp)
    perm, cost = w1_matching(p, q)
    perm_s, cost_s = w1_matching(from_host(a[:5] * scale, xp), from_host(b * scale, xp))
    assert np.array_equal(perm, perm_s) and cost_s / scale == pytest.approx(cost, rel=1e-12)


# ----------------------------------------------------------------------------- 3. parameter domains
def test_wasserstein_norm_alpha_gamma_domains(xp, rng):
    """alpha = -1 returned -256 (a negative squared norm); gamma = nan was accepted."""
    graph = PixelGraph(4, 4)
    X = from_host(np.ones((1, 1, 4, 4)), xp)
    g = from_host(np.ones((1, 1, 4, 4)), xp)
    assert float(to_numpy(wasserstein_norm_sq(graph, X, g, alpha=1.0))[0]) == 256.0   # (sum g)^2, L g = 0
    for kw, match in ((dict(alpha=-1.0), "alpha must be >= 0"), (dict(gamma=float("nan")), "gamma must be finite"),
                      (dict(gamma=-0.5), "gamma must be >= 0"), (dict(alpha=float("inf")), "alpha must be finite")):
        with pytest.raises(ValueError, match=match):
            wasserstein_norm_sq(graph, X, g, **kw)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        wasserstein_norm_sq(graph, X, g, alpha=True)


@pytest.mark.parametrize("std", [-1.0, 0.0, float("nan"), float("inf")])
def test_mode_stats_std_domain(xp, std):
    """std = -1 behaved as std = 1; std = 0 was accepted."""
    s = from_host(np.zeros((3, 2)), xp)
    with pytest.raises(ValueError, match="^std must be"):
        mode_stats(s, np.zeros((2, 2)), std)


def test_mode_stats_std_moves_the_result(xp):
    s = from_host(np.array([[0.0, 0.0], [0.0, 2.0]]), xp)
    assert mode_stats(s, np.zeros((1, 2)), 1.0)["high_quality"] == 1.0
    assert mode_stats(s, np.zeros((1, 2)), 0.5)["high_quality"] == 0.5


def test_w1_flow_step_matching_must_be_a_permutation(xp, rng, no_pot):
    x = from_host(rng.standard_normal((3, 2)), xp)
    y = from_host(rng.standard_normal((3, 2)), xp)
    for m in (np.array([0, 0, 1]), np.array([0, 1]), np.array([0, 1, 3])):
        with pytest.raises(ValueError, match="^matching must be a permutation"):
            w1_flow_step(x, y, 0.1, matching=m)
    with pytest.raises(TypeError, match="^matching must be an integer array"):
        w1_flow_step(x, y, 0.1, matching=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="^matching must be an integer array"):
        w1_flow_step(x, y, 0.1, matching=[2, 1, 0])
    out = w1_flow_step(x, y, 1e9, matching=np.array([2, 0, 1]))   # a permutation is used as given
    np.testing.assert_array_equal(to_numpy(out), to_numpy(y)[[2, 0, 1]])


def test_w1_flow_n_steps_and_eps_domains(xp, rng, no_pot):
    x = from_host(rng.standard_normal((3, 2)), xp)
    with pytest.raises(ValueError, match="^n_steps must be >= 0"):
        w1_flow(x, x, 0.1, -3)
    with pytest.raises(TypeError, match="^n_steps must be an integer"):
        w1_flow(x, x, 0.1, 2.7)
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="^eps must be"):
            w1_flow_step(x, x, eps)


def test_sliced_w1_n_projections_domain(xp, rng):
    """n_projections = 0 returned NaN with a warning."""
    x = from_host(rng.standard_normal((4, 2)), xp)
    with pytest.raises(ValueError, match="^n_projections must be >= 1"):
        sliced_w1(x, x, 0, rng=0)
    with pytest.raises(TypeError, match="^n_projections must be an integer"):
        sliced_w1(x, x, 10.0, rng=0)


def test_lists_refused_clearly(xp, rng):
    """Lists where arrays are expected raise TypeError naming the argument (not AttributeError)."""
    x = from_host(rng.standard_normal((4, 2)), xp)
    net = MLP((2, 3, 1))
    p = net.init(rng, xp=xp)
    for call, name in ((lambda: w1([[0.0, 1.0]], x), "x"), (lambda: sliced_w1(x, [[0.0, 1.0]], rng=0), "y"),
                       (lambda: mode_stats([[0.0, 0.0]], np.zeros((1, 2)), 1.0), "samples"),
                       (lambda: net.forward(p, [[0.0, 0.0]]), "x"),
                       (lambda: net.forward([([[1.0]], p[0][1])] + p[1:], x), r"params\[0\]\[0\]"),
                       (lambda: shrink([1.0, 2.0], 0.0, 0.1), "x"), (lambda: proximal_term(x, [[0.0]], 1.0), "fake_prev"),
                       (lambda: wasserstein_norm_sq(PixelGraph(2, 2), [[[[1.0]]]], x), "X")):
        with pytest.raises(TypeError, match=f"^{name} must be an array"):
            call()


# ----------------------------------------------------------------------------- after the ot/swgan/train merges
def test_float32_weights_not_refused_when_another_argument_promotes(xp, rng):
    """Was "a must sum to 1" (or "b ..."): the mass of float32 weights was checked after an
    integer ``plan``/``psi`` had promoted them to float64, against float64's tolerance."""
    from refimpl.ot import dual_objective, regularizer
    a = xp.full((3,), 1.0 / 3.0, dtype=xp.float32)               # sums to 1 + 3e-8 in float64
    b = xp.full((2,), 0.5, dtype=xp.float32)
    a64, b64 = xp.astype(a, xp.float64), xp.astype(b, xp.float64)
    plan = from_host(np.array([[1, 0], [2, 1], [0, 3]]), xp, xp.int64)
    got = regularizer(plan, "kl", a, b)
    assert got.dtype == xp.float64
    p = np.array([[1, 0], [2, 1], [0, 3]], float)
    pos = p > 0
    want = np.sum(p[pos] * np.log(p[pos] / (to_numpy(a64)[:, None] * to_numpy(b64)[None, :])[pos]))
    assert float(got) == pytest.approx(want, rel=1e-12)
    phi = from_host(rng.uniform(-1, 1, 3), xp, xp.float32)
    psi = from_host(np.array([1, -1]), xp, xp.int64)
    C = from_host(rng.uniform(0, 1, (3, 2)), xp, xp.float32)
    val = dual_objective(phi, psi, C, 0.5, "l2", a, b)[0]
    assert val.dtype == xp.float64 and math.isfinite(float(val))


def test_swgan_gradients_name_bad_networks_and_parameters(xp, rng):
    """Were array_api_strict's "Expected Array or Python scalar" and AttributeError."""
    from refimpl.swgan import dual_loss_grads, generator_grads
    phi_net, psi_net, gen = MLP((2, 3, 1), "relu"), MLP((2, 3, 1), "relu"), MLP((2, 3, 2), "tanh")
    pp, qp, gp = (n.init(rng, xp=xp, dtype="float64") for n in (phi_net, psi_net, gen))
    x, y, z = (from_host(rng.standard_normal((4, 2)), xp, "float64") for _ in range(3))
    ok = dict(phi_net=phi_net, phi_params=pp, psi_net=psi_net, psi_params=qp, x=x, y=y, lam=0.1)
    dual_loss_grads(**ok)
    nan_W = from_host(np.full((2, 3), np.nan), xp, "float64")
    for bad, err in [(dict(phi_params=[([[1.0]], pp[0][1])] + pp[1:]), TypeError), (dict(phi_net=None), TypeError),
                     (dict(psi_params=[(nan_W, qp[0][1])] + qp[1:]), ValueError),
                     (dict(x=xp.astype(x, xp.float32)), TypeError), (dict(y=y[:, :1]), ValueError),
                     (dict(psi_net=MLP((2, 3, 2), "relu")), ValueError)]:
        with pytest.raises(err, match=list(bad)[0].replace("_params", r"_params\[")):
            dual_loss_grads(**{**ok, **bad})
    gok = dict(gen=gen, gparams=gp, z=z, y=y, phi_net=phi_net, phi_params=pp, psi_net=psi_net, psi_params=qp,
               lam=0.1, reg="l2", cost="l1")
    generator_grads(**gok)
    for bad, err in [(dict(gen=None), TypeError), (dict(psi_params=qp[:1]), ValueError),
                     (dict(z=[[0.0, 0.0]]), TypeError), (dict(gparams=[(nan_W, gp[0][1])] + gp[1:]), ValueError)]:
        with pytest.raises(err, match=list(bad)[0]):
            generator_grads(**{**gok, **bad})


def test_array_data_checks_its_array_rng_and_n(xp, rng):
    """Was AttributeError for rng=None."""
    from refimpl.train import ArrayData
    data = ArrayData(from_host(rng.uniform(-1, 1, (5, 2)), xp, "float32"))
    assert tuple(data.sample(rng, 3).shape) == (3, 2)
    for args, err, name in [((None, 3), TypeError, "rng"), ((rng, 2.5), TypeError, "n"), ((rng, -1), ValueError, "n")]:
        with pytest.raises(err, match=name):
            data.sample(*args)
    with pytest.raises(TypeError, match="array"):
        ArrayData([[0.0, 1.0]])
    with pytest.raises(ValueError, match="array"):
        ArrayData(from_host(np.array([[0.0, np.nan]]), xp, "float64"))


def test_kl_density_overflow_names_lam(xp, rng):
    """Was inf / -inf returned silently: float32 exp(V/lam) beyond ~88 overflows."""
    from refimpl.ot import density_ratio, dual_objective, plan_from_potentials, termination_statistic
    phi = from_host(np.array([2.0, 0.0]), xp, "float32")
    psi = from_host(np.array([0.0, 0.0, 0.0]), xp, "float32")
    C = from_host(np.zeros((2, 3)), xp, "float32")
    for f in (density_ratio, plan_from_potentials, dual_objective, termination_statistic):
        assert np.all(np.isfinite(to_numpy(f(phi, psi, C, 0.05, "kl") if f is not dual_objective
                                           else f(phi, psi, C, 0.05, "kl")[0])))
        with pytest.raises(ValueError, match="lam=0.01 is too small"):
            f(phi, psi, C, 0.01, "kl")
        f(phi, psi, C, 0.01, "l2")                                   # L2 has no exponential
    f64 = [xp.astype(a, xp.float64) for a in (phi, psi, C)]
    assert math.isfinite(float(dual_objective(*f64, 0.01, "kl")[0]))   # float64 holds exp(200)
