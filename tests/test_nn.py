"""MLP passes against central finite differences (float64), on every backend."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.nn import ACTIVATIONS, MLP, copy_params, get_activation
from tests.conftest import assert_xp

ACTS = sorted(ACTIVATIONS)
SMOOTH = ["tanh", "softplus", "elu", "sigmoid"]
H = 1e-6


@st.composite
def nets(draw, out_dim=None, acts=ACTS):
    depth = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 32)) for _ in range(depth)]
    d_in = draw(st.integers(1, 5))
    d_out = out_dim or draw(st.integers(1, 3))
    act = draw(st.sampled_from(acts))
    out = draw(st.sampled_from(["linear", "tanh", "softplus", "sigmoid"]))
    batch = draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**31 - 1))
    return MLP((d_in, *widths, d_out), act, out), batch, seed


def _setup(xp, net, batch, seed):
    rng = np.random.default_rng(seed)
    params = net.init(rng, xp=xp, dtype="float64")
    # perturb biases so no pre-activation sits on a kink by construction
    params = [(W, b + from_host(rng.uniform(-0.5, 0.5, b.shape), xp, "float64")) for W, b in params]
    x = from_host(rng.standard_normal((batch, net.sizes[0])), xp, "float64")
    return rng, params, x


def _away_from_kinks(net, params, x, margin=1e-4):
    if net.activation not in ("relu", "leaky_relu"):
        return True
    _, cache = net.forward(params, x)
    return all(np.min(np.abs(to_numpy(a))) > margin for a in cache.as_[:-1])


def _perturb(params, l, k, i, j, eps, xp):
    """params with entry (i, j) of W_l (k=0) or entry i of b_l (k=1) moved by eps."""
    out = copy_params(params)
    arr = to_numpy(out[l][k]).copy()
    if k == 0:
        arr[i, j] += eps
    else:
        arr[i] += eps
    new = from_host(arr, xp, "float64")
    out[l] = (new, out[l][1]) if k == 0 else (out[l][0], new)
    return out


def _fd_params(fun, params, xp, rng, n_checks=12):
    """Central differences of scalar fun(params) at random entries; returns (indices, values)."""
    picks = []
    for _ in range(n_checks):
        l = int(rng.integers(len(params)))
        k = int(rng.integers(2))
        shape = params[l][k].shape
        idx = tuple(int(rng.integers(s)) for s in shape)
        i, j = (idx + (0,))[:2]
        fp = fun(_perturb(params, l, k, i, j, H, xp))
        fm = fun(_perturb(params, l, k, i, j, -H, xp))
        picks.append(((l, k, idx), (fp - fm) / (2 * H)))
    return picks


def _fd_input(fun, x, xp):
    xh = to_numpy(x)
    out = np.zeros_like(xh)
    for idx in np.ndindex(*xh.shape):
        e = np.zeros_like(xh)
        e[idx] = H
        out[idx] = (fun(from_host(xh + e, xp, "float64")) - fun(from_host(xh - e, xp, "float64"))) / (2 * H)
    return out


def _grad_at(grads, l, k, idx):
    return to_numpy(grads[l][k])[idx]


@given(nets())
def test_backward_matches_finite_differences(xp, case):
    net, batch, seed = case
    rng, params, x = _setup(xp, net, batch, seed)
    assume(_away_from_kinks(net, params, x))
    dy_h = rng.standard_normal((batch, net.sizes[-1]))
    dy = from_host(dy_h, xp, "float64")

    def loss(p, xx=x):
        return float(np.sum(to_numpy(net.forward(p, xx)[0]) * dy_h))

    y, cache = net.forward(params, x)
    dx, grads = net.backward(params, cache, dy)
    assert_xp((y, dx, grads), xp, "float64")
    for (l, k, idx), fd in _fd_params(loss, params, xp, rng):
        assert _grad_at(grads, l, k, idx) == pytest.approx(fd, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(to_numpy(dx), _fd_input(lambda xx: loss(params, xx), x, xp), rtol=1e-5, atol=1e-7)


@given(nets(out_dim=1))
def test_input_gradient_matches_finite_differences(xp, case):
    net, batch, seed = case
    rng, params, x = _setup(xp, net, batch, seed)
    assume(_away_from_kinks(net, params, x))
    g, _ = net.input_gradient(params, x)
    assert_xp(g, xp, "float64")
    fd = _fd_input(lambda xx: float(np.sum(to_numpy(net.forward(params, xx)[0]))), x, xp)
    np.testing.assert_allclose(to_numpy(g), fd, rtol=1e-5, atol=1e-7)


def _check_double_backward(xp, net, batch, seed):
    rng, params, x = _setup(xp, net, batch, seed)
    assume(_away_from_kinks(net, params, x, margin=1e-3))
    u_h = rng.standard_normal((batch, net.sizes[0]))
    u = from_host(u_h, xp, "float64")

    def q(p, xx=x):
        return float(np.sum(to_numpy(net.input_gradient(p, xx)[0]) * u_h))

    g, tape = net.input_gradient(params, x)
    dx2, grads2 = net.input_gradient_vjp(params, tape, u)
    assert_xp((dx2, grads2), xp, "float64")
    for (l, k, idx), fd in _fd_params(q, params, xp, rng):
        assert _grad_at(grads2, l, k, idx) == pytest.approx(fd, rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(to_numpy(dx2), _fd_input(lambda xx: q(params, xx), x, xp), rtol=1e-4, atol=1e-6)


@given(nets(out_dim=1))
def test_double_backward_matches_finite_differences(xp, case):
    _check_double_backward(xp, *case)


@given(nets(out_dim=1, acts=SMOOTH))
def test_double_backward_smooth_activations(xp, case):
    """tanh, softplus, elu, sigmoid: the act'' terms and earlier-layer paths must be present."""
    _check_double_backward(xp, *case)


def test_double_backward_tanh_has_second_derivative_term(xp):
    """numpy-ml's double backward drops act''; for tanh that changes the answer."""
    net = MLP((3, 7, 1), "tanh")
    rng, params, x = _setup(xp, net, 5, 1)
    u = from_host(rng.standard_normal((5, 3)), xp, "float64")
    _, tape = net.input_gradient(params, x)
    dx2, grads2 = net.input_gradient_vjp(params, tape, u)
    assert float(np.max(np.abs(to_numpy(dx2)))) > 1e-3       # nonzero only through tanh''
    assert float(np.max(np.abs(to_numpy(grads2[0][1])))) > 1e-3


@pytest.mark.parametrize("name", ACTS)
def test_activation_derivatives(name):
    a = np.linspace(-3, 3, 601)
    a = a[np.abs(a) > 1e-3]
    act = get_activation(name)
    y = act.f(a)
    h = 1e-6
    np.testing.assert_allclose(act.df(a, y), (act.f(a + h) - act.f(a - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    if act.d2f is not None:
        np.testing.assert_allclose(act.d2f(a, y), (act.df(a + h, act.f(a + h)) - act.df(a - h, act.f(a - h))) / (2 * h),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["softplus", "sigmoid", "elu", "tanh"])
def test_activations_stable_at_large_inputs(name):
    a = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4])
    act = get_activation(name)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        y = act.f(a)
        d = act.df(a, y)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    if name == "softplus":
        np.testing.assert_allclose(y[-1], 1e4)
        assert y[0] == 0.0 and y[3] == pytest.approx(np.log(2.0))
    if name == "sigmoid":
        assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5


def test_init_same_numbers_on_every_backend(xp):
    net = MLP((2, 8, 1), "tanh")
    p_np = net.init(np.random.default_rng(3))
    p_xp = net.init(np.random.default_rng(3), xp=xp, dtype="float32")
    assert_xp(p_xp, xp, "float32")
    np.testing.assert_allclose(to_numpy(p_xp[0][0]), p_np[0][0].astype(np.float32))


def test_init_scale():
    W = MLP((400, 300, 1), "relu").init(np.random.default_rng(0))[0][0]
    assert np.std(W) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    W = MLP((400, 300, 1), "tanh").init(np.random.default_rng(0))[0][0]
    assert np.std(W) == pytest.approx(np.sqrt(2 / 700), rel=0.02)


@pytest.mark.parametrize("sizes", [(256, 128, 2), (2, 128, 1), (5, 5)])
def test_orthogonal_init(sizes):
    """``weight_init="orthogonal"``: W = gain * Q with orthonormal columns (fan_in >= fan_out) or
    rows (fan_in < fan_out), zero biases; the default init is unchanged by the option."""
    gain = 1.4
    params = MLP(sizes, "tanh", weight_init="orthogonal", init_gain=gain).init(np.random.default_rng(0))
    for W, b in params:
        fi, fo = W.shape
        gram = W.T @ W if fi >= fo else W @ W.T
        np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(fi, fo)), atol=1e-12)
        assert not np.any(b)
    default = MLP(sizes, "tanh").init(np.random.default_rng(0))
    same = MLP(sizes, "tanh", weight_init="default", init_gain=3.0).init(np.random.default_rng(0))
    for (W, _), (V, _) in zip(default, same):
        np.testing.assert_array_equal(W, V)
    with pytest.raises(ValueError, match="unknown weight_init"):
        MLP(sizes, weight_init="xavier")
    with pytest.raises(ValueError, match="init_gain"):
        MLP(sizes, weight_init="orthogonal", init_gain=0.0)


def test_gan_config_weight_init_reaches_both_networks():
    from refimpl.train import GANConfig, GANMethod
    m = GANMethod(GANConfig(latent_dim=4, gen_hidden=(8,), critic_hidden=(8,), weight_init="orthogonal", init_gain=2.0))
    assert m.gen.weight_init == m.critic.weight_init == "orthogonal" and m.gen.init_gain == m.critic.init_gain == 2.0
    assert GANMethod(GANConfig()).gen.weight_init == "default"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_and_float64_outputs(xp, dtype):
    net = MLP((2, 16, 16, 1), "softplus")
    rng = np.random.default_rng(0)
    params = net.init(rng, xp=xp, dtype=dtype)
    x = from_host(rng.standard_normal((4, 2)), xp, dtype)
    y, cache = net.forward(params, x)
    dx, grads = net.backward(params, cache, xp.ones_like(y))
    g, tape = net.input_gradient(params, x)
    dx2, grads2 = net.input_gradient_vjp(params, tape, g)
    assert_xp((y, dx, grads, g, dx2, grads2), xp, dtype)


# ----------------------------------------------------------------------------- bad input
def test_bad_specs():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP((2, 3, 1), "swish")
    with pytest.raises(ValueError, match="unknown activation"):
        MLP((2, 3, 1), "relu", output="nope")
    with pytest.raises(ValueError, match="sizes"):
        MLP((2,), "relu")
    with pytest.raises(ValueError, match="sizes"):
        MLP((2, 0, 1), "relu")


def test_bad_inputs(xp):
    net = MLP((2, 4, 1), "tanh")
    rng = np.random.default_rng(0)
    params = net.init(rng, xp=xp)
    x = from_host(rng.standard_normal((3, 2)), xp, "float64")
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 2\)"):
        net.forward(params, from_host(np.ones((3, 5)), xp, "float64"))
    with pytest.raises(TypeError, match="x has dtype float32"):
        net.forward(params, from_host(np.ones((3, 2)), xp, "float32"))
    y, cache = net.forward(params, x)
    with pytest.raises(ValueError, match=r"dy must have shape \(3, 1\)"):
        net.backward(params, cache, from_host(np.ones((3, 2)), xp, "float64"))
    _, tape = net.input_gradient(params, x)
    with pytest.raises(ValueError, match=r"u must have shape \(3, 2\)"):
        net.input_gradient_vjp(params, tape, from_host(np.ones((2, 2)), xp, "float64"))
    wide = MLP((2, 4, 3), "tanh")
    with pytest.raises(ValueError, match="scalar-output"):
        wide.input_gradient(wide.init(rng, xp=xp), x)
    with pytest.raises(ValueError, match="layers"):
        net.forward(params[:1], x)
