"""Convolutional networks: the four passes against central finite differences (float64), builders,
bad input, and compatibility with the optimisers, on every backend."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.cnn import (CNN, BatchNorm, Conv2d, ConvTranspose2d, Dense, LayerNorm, dcgan_critic,
                         dcgan_generator)
from refimpl.flat import flatten
from refimpl.optim import Adam
from refimpl.testing import check_grad
from tests.conftest import assert_xp

SMOOTH = ["tanh", "softplus", "elu", "sigmoid"]


def _setup(xp, net, batch, seed, stats=False):
    rng = np.random.default_rng(seed)
    params = []
    for layer, (W, b) in zip(net.layers, net.init(rng, xp=xp)):
        shift = from_host(0.3 * rng.standard_normal(tuple(b.shape)), xp, "float64")
        params.append((W if layer.affine else W + shift, b + shift))
    x = from_host(rng.standard_normal((batch, *net.input_shape)), xp, "float64")
    return rng, params, x


def _dot(a, b):
    return float(np.sum(to_numpy(a) * b))


@st.composite
def critics(draw):
    """Small scalar critics: a convolution, an optional layer norm, a transposed convolution, a dense unit."""
    act = draw(st.sampled_from(SMOOTH))
    k, s = draw(st.integers(2, 3)), draw(st.integers(1, 2))
    layers = [Conv2d(draw(st.integers(1, 2)), k, s, draw(st.integers(0, k - 1)), activation=act,
                     bias=draw(st.booleans()))]
    if draw(st.booleans()):
        layers.append(LayerNorm(activation=draw(st.sampled_from(SMOOTH))))
    layers += [ConvTranspose2d(2, 2, 1, 0, activation=act), Dense(1)]
    H = draw(st.integers(k, 5))
    return CNN((draw(st.integers(1, 2)), H, H), tuple(layers)), draw(st.integers(1, 2)), draw(st.integers(0, 2**31 - 1))


@given(critics())
def test_four_passes_match_finite_differences(xp, case):
    net, batch, seed = case
    rng, params, x = _setup(xp, net, batch, seed)
    y, cache = net.forward(params, x)
    dy = rng.standard_normal(tuple(y.shape))
    dx, grads = net.backward(params, cache, from_host(dy, xp, "float64"))
    assert_xp((y, dx, grads), xp, "float64")
    check_grad(lambda p: _dot(net.forward(p, x)[0], dy), grads, params, max_entries=12, rng=rng, what="dparams")
    check_grad(lambda z: _dot(net.forward(params, z)[0], dy), dx, x, max_entries=12, rng=rng, what="dx")

    g, tape = net.input_gradient(params, x)
    assert_xp(g, xp, "float64")
    check_grad(lambda z: float(np.sum(to_numpy(net.forward(params, z)[0]))), g, x, max_entries=12, rng=rng,
               what="input gradient")
    u = rng.standard_normal(tuple(x.shape))
    dx2, grads2 = net.input_gradient_vjp(params, tape, from_host(u, xp, "float64"))
    assert_xp((dx2, grads2), xp, "float64")
    q = lambda p, z: _dot(net.input_gradient(p, z)[0], u)
    check_grad(lambda p: q(p, x), grads2, params, max_entries=12, rng=rng, rtol=1e-5, atol=1e-7, what="Q params")
    check_grad(lambda z: q(params, z), dx2, x, max_entries=12, rng=rng, rtol=1e-5, atol=1e-7, what="Q x")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_dcgan_critic_matches_finite_differences(xp, shape):
    net = dcgan_critic(shape, width=2, activation="softplus")
    rng, params, x = _setup(xp, net, 2, 1)
    g, tape = net.input_gradient(params, x)
    u = rng.standard_normal(tuple(x.shape))
    dx2, grads2 = net.input_gradient_vjp(params, tape, from_host(u, xp, "float64"))
    assert_xp((g, dx2, grads2), xp, "float64")
    check_grad(lambda p: _dot(net.input_gradient(p, x)[0], u), grads2, params, max_entries=10, rng=rng,
               rtol=1e-5, atol=1e-7, what="critic Q params")
    check_grad(lambda z: _dot(net.input_gradient(params, z)[0], u), dx2, x, max_entries=6, rng=rng,
               rtol=1e-5, atol=1e-7, what="critic Q x")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_dcgan_generator_matches_finite_differences(xp, shape):
    net = dcgan_generator(4, shape, width=2)
    rng, params, z = _setup(xp, net, 3, 2)
    y, cache = net.forward(params, z)
    assert tuple(y.shape) == (3, *shape)
    dy = rng.standard_normal(tuple(y.shape))
    dz, grads = net.backward(params, cache, from_host(dy, xp, "float64"))
    assert_xp((y, dz, grads), xp, "float64")
    check_grad(lambda p: _dot(net.forward(p, z)[0], dy), grads, params, max_entries=12, rng=rng, what="G params")
    check_grad(lambda v: _dot(net.forward(params, v)[0], dy), dz, z, max_entries=6, rng=rng, what="G z")


def test_builders_follow_the_papers():
    """SWGAN App. I.2 at width 64: FC(4096, 1) critic head and FC(128, 4096) generator stem."""
    c, g = dcgan_critic((1, 28, 28)), dcgan_generator(128, (1, 28, 28))
    assert c.shapes[-2] == (256, 4, 4) and c.param_shapes()[-1][0] == (4096, 1)
    assert g.param_shapes()[0][0] == (128, 4096) and g.output_shape == (1, 28, 28)
    assert [type(layer).__name__ for layer in g.layers].count("ConvTranspose2d") == 3
    assert not any(isinstance(layer, BatchNorm) for layer in dcgan_critic((3, 32, 32)).layers)
    for shape in [(3, 32, 32), (3, 64, 64)]:
        assert dcgan_critic(shape).shapes[-2][1:] == (4, 4)
        assert dcgan_generator(100, shape).output_shape == shape
    assert len(dcgan_critic((3, 64, 64)).layers) > len(dcgan_critic((3, 32, 32)).layers)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_takes_cnn_params_and_flat_buffers(xp, dtype):
    net = dcgan_critic((1, 28, 28), width=2)
    rng = np.random.default_rng(0)
    params = net.init(rng, xp=xp, dtype=dtype)
    x = from_host(rng.standard_normal((2, 1, 28, 28)), xp, dtype)
    y, cache = net.forward(params, x)
    _, grads = net.backward(params, cache, xp.ones_like(y), need_dx=False)
    opt = Adam(1e-3)
    new, state = opt.step(params, grads, opt.init(params))
    assert_xp((new, state["m"]), xp, dtype)
    assert [tuple(W.shape) for W, _ in new] == [tuple(W.shape) for W, _ in params]
    flat = flatten(params)
    opt.step(flat, grads, opt.init(flat))
    assert_xp(net.forward(flat, x)[0], xp, dtype)
    np.testing.assert_allclose(to_numpy(flat[0][0]), to_numpy(new[0][0]), rtol=1e-6)


def test_batch_norm_evaluation_uses_running_stats(xp):
    net = dcgan_generator(3, (1, 28, 28), width=2)
    rng = np.random.default_rng(0)
    params = net.init(rng, xp=xp)
    z = from_host(rng.standard_normal((4, 3)), xp, "float64")
    stats = net.init_stats(params)
    y_train, cache = net.forward(params, z)
    stats = net.update_stats(stats, cache)
    y_eval, _ = net.forward(params, z, stats=stats)
    assert_xp((stats, y_eval), xp, "float64")
    assert np.max(np.abs(to_numpy(y_train) - to_numpy(y_eval))) > 1e-3


def test_bad_specs():
    with pytest.raises(ValueError, match=r"layers\[0\]: kernel 5 with padding 0 does not fit the 3x3 input"):
        CNN((1, 3, 3), (Conv2d(2, 5, 1, 0), Dense(1)))
    with pytest.raises(ValueError, match=r"padding 3 does not fit kernel 3"):
        CNN((1, 8, 8), (Conv2d(2, 3, 1, 3),))
    with pytest.raises(ValueError, match=r"output_padding 2 does not fit stride 2"):
        CNN((1, 4, 4), (ConvTranspose2d(2, 5, 2, 2, 2),))
    with pytest.raises(ValueError, match=r"layers\[0\]\.stride must be an integer >= 1"):
        CNN((1, 4, 4), (Conv2d(2, 3, 0, 1),))
    with pytest.raises(ValueError, match="needs an image input"):
        CNN((4,), (Conv2d(2, 3),))
    with pytest.raises(ValueError, match="unknown activation"):
        CNN((4,), (Dense(1, activation="swish"),))
    with pytest.raises(ValueError, match="image_shape"):
        dcgan_critic((3, 32))
    with pytest.raises(ValueError, match="halve down to 4x4"):
        dcgan_critic((3, 24, 24))
    with pytest.raises(ValueError, match="norm must be one of"):
        dcgan_critic((3, 32, 32), norm="group")


def test_bad_inputs(xp):
    net = dcgan_critic((3, 32, 32), width=2)
    params = net.init(np.random.default_rng(0), xp=xp)
    x = from_host(np.zeros((2, 3, 32, 32)), xp, "float64")
    with pytest.raises(ValueError, match="x has 1 channels, the network takes 3"):
        net.forward(params, from_host(np.zeros((2, 1, 32, 32)), xp, "float64"))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 3, 32, 32\), got \(2, 3, 28, 28\)"):
        net.forward(params, from_host(np.zeros((2, 3, 28, 28)), xp, "float64"))
    with pytest.raises(ValueError, match=r"x must have shape"):
        net.input_gradient(params, from_host(np.zeros((2, 3072)), xp, "float64"))
    if hasattr(xp, "float16"):
        with pytest.raises(TypeError, match="x has dtype float16"):
            net.forward(params, xp.astype(x, xp.float16))
    with pytest.raises(ValueError, match="unsupported dtype 'float16'"):
        net.init(np.random.default_rng(0), xp=xp, dtype="float16")
    with pytest.raises(TypeError, match="x has dtype float32 but the network's parameters are float64"):
        net.forward(params, xp.astype(x, xp.float32))
    if hasattr(xp, "float16"):
        with pytest.raises(TypeError, match="float16.* is refused"):
            net.init(np.random.default_rng(0), xp=xp, dtype=xp.float16)
    with pytest.raises(ValueError, match="x has non-finite entries"):
        net.forward(params, x * float("nan"))
    with pytest.raises(ValueError, match=r"params\[0\]\[0\] must have shape"):
        net.forward([(params[0][0][:1, ...], params[0][1])] + params[1:], x)
    with pytest.raises(TypeError, match="x must be an array"):
        net.forward(params, [[0.0]])
    _, tape = net.input_gradient(params, x)
    with pytest.raises(ValueError, match=r"u must have shape \(2, 3, 32, 32\)"):
        net.input_gradient_vjp(params, tape, x[:1, ...])
    gen = dcgan_generator(4, (3, 32, 32), width=2)
    gp = gen.init(np.random.default_rng(0), xp=xp)
    with pytest.raises(ValueError, match="scalar-output"):
        gen.input_gradient(gp, from_host(np.zeros((2, 4)), xp, "float64"))
    bn = dcgan_critic((3, 32, 32), width=2, norm="batch")
    with pytest.raises(ValueError, match="batch norm couples the samples"):
        bn.input_gradient(bn.init(np.random.default_rng(0), xp=xp), x)
    with pytest.raises(ValueError, match=r"stats has 1 layers, expected 3"):
        gen.forward(gp, from_host(np.zeros((2, 4)), xp, "float64"), stats=gen.init_stats(gp)[:1])
