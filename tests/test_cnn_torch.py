"""PyTorch autograd as the oracle of the convolutional layers and DCGANs (test-only; skipped without torch).

Same weights and inputs in float64: forward, backward (``autograd.grad`` with a random
seed), input gradient and double backward (``autograd.grad(..., create_graph=True)``) of
every layer kind over hypothesis-drawn shapes, strides, paddings and channel counts, each
layer followed by a linear unit so that the input gradient is defined; then whole DCGAN
critics and generators. Tolerance 1e-10 relative to the largest entry.
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.cnn import (CNN, BatchNorm, Conv2d, ConvTranspose2d, Dense, LayerNorm, dcgan_critic,
                         dcgan_generator)
from refimpl.cnn.conv import conv_out_size, conv_transpose_out_size
from tests.conftest import assert_xp

torch = pytest.importorskip("torch", reason="PyTorch is an optional test oracle (pip install torch)")
F = torch.nn.functional

ACTS = ["tanh", "softplus", "elu", "sigmoid", "relu", "leaky_relu", "linear"]
TORCH_ACTS = {"relu": torch.relu, "tanh": torch.tanh, "softplus": F.softplus, "linear": lambda a: a,
              "elu": F.elu, "sigmoid": torch.sigmoid, "leaky_relu": lambda a: F.leaky_relu(a, 0.2)}
TOL = 1e-10


def torch_forward(net, params, x, stats=None):
    """The network ``net`` written with ``torch.nn.functional``; ``stats``: batch norm running
    (mean, var) tensors (updated in place in training mode, evaluation mode when ``eval_mode``)."""
    h, bn = x, 0
    for layer, (W, b) in zip(net.layers, params):
        bias = b if b.shape[0] else None
        if isinstance(layer, Dense):
            h = h.flatten(1) @ W
            h = h if bias is None else h + bias
            if layer.out_shape is not None:
                h = h.reshape(h.shape[0], *layer.out_shape)
        elif isinstance(layer, Conv2d):
            h = F.conv2d(h, W, bias, stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, ConvTranspose2d):
            h = F.conv_transpose2d(h, W, bias, stride=layer.stride, padding=layer.padding,
                                   output_padding=layer.output_padding)
        elif isinstance(layer, LayerNorm):
            h = F.layer_norm(h, tuple(h.shape[1:]), W, b, eps=layer.eps)
        else:
            rm, rv, training = stats[bn] if stats is not None else (None, None, True)
            h = F.batch_norm(h, rm, rv, W, b, training=training, momentum=layer.momentum, eps=layer.eps)
            bn += 1
        h = TORCH_ACTS[layer.activation](h)
    return h


def _close(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    scale = max(1.0, float(np.max(np.abs(theirs)))) if theirs.size else 1.0
    np.testing.assert_allclose(to_numpy(ours), theirs, rtol=TOL, atol=TOL * scale, err_msg=what)


def _grads_close(ours, theirs, what):
    for l, ((gW, gb), (tW, tb)) in enumerate(zip(ours, theirs)):
        _close(gW, tW, f"{what} W[{l}]")
        _close(gb, tb, f"{what} b[{l}]")


def _leaves(params):
    return [torch.tensor(a, requires_grad=True) for Wb in params for a in Wb]


def _pairs(leaves):
    return [(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]


def _zeros_if_none(gs, like):
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, like)]


def _random_params(net, rng):
    """The network's initial weights, with random biases and norm gains/offsets (nothing sits at 0 or 1)."""
    host = []
    for layer, (W, b) in zip(net.layers, net.init(rng)):
        if layer.affine:
            host.append((W, 0.3 * rng.standard_normal(b.shape)))
        else:
            host.append((1.0 + 0.3 * rng.standard_normal(W.shape), 0.3 * rng.standard_normal(b.shape)))
    return host


def check_against_torch(xp, net, seed, batch, double=True):
    """Forward, backward, and (scalar critics) input gradient and double backward of ``net`` against autograd."""
    rng = np.random.default_rng(seed)
    host = _random_params(net, rng)
    params = [tuple(from_host(a, xp, "float64") for a in Wb) for Wb in host]
    xh = rng.standard_normal((batch, *net.input_shape))
    x = from_host(xh, xp, "float64")

    y, cache = net.forward(params, x)
    assert_xp(y, xp, "float64")
    tl = _leaves(host)
    tx = torch.tensor(xh, requires_grad=True)
    ty = torch_forward(net, _pairs(tl), tx)
    _close(y, ty, "forward")

    dyh = rng.standard_normal(tuple(ty.shape))
    dx, grads = net.backward(params, cache, from_host(dyh, xp, "float64"))
    assert_xp((dx, grads), xp, "float64")
    tg = _zeros_if_none(torch.autograd.grad(ty, [tx] + tl, torch.tensor(dyh), allow_unused=True), [tx] + tl)
    _close(dx, tg[0], "backward dx")
    _grads_close(grads, _pairs(tg[1:]), "backward")

    if not double:
        return
    g, tape = net.input_gradient(params, x)
    assert_xp(g, xp, "float64")
    (tgx,) = torch.autograd.grad(torch_forward(net, _pairs(tl), tx).sum(), tx, create_graph=True)
    _close(g, tgx, "input gradient")
    uh = rng.standard_normal(xh.shape)
    dx2, grads2 = net.input_gradient_vjp(params, tape, from_host(uh, xp, "float64"))
    assert_xp((dx2, grads2), xp, "float64")
    q = (tgx * torch.tensor(uh)).sum()
    tq = _zeros_if_none(torch.autograd.grad(q, [tx] + tl, allow_unused=True), [tx] + tl)
    _close(dx2, tq[0], "double backward dx")
    _grads_close(grads2, _pairs(tq[1:]), "double backward")


# ----------------------------------------------------------------------------- layers
@st.composite
def conv_cases(draw):
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k - 1))
    H = draw(st.integers(max(1, k - 2 * p), 7))
    W = draw(st.integers(max(1, k - 2 * p), 7))
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layer = Conv2d(c_out, k, s, p, activation=draw(st.sampled_from(ACTS)), bias=draw(st.booleans()))
    return CNN((c_in, H, W), (layer, Dense(1))), draw(st.integers(1, 3)), draw(st.integers(0, 2**31 - 1))


@st.composite
def conv_transpose_cases(draw):
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k - 1))
    op = draw(st.integers(0, s - 1))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    assume(conv_transpose_out_size(H, k, s, p, op) >= 1 and conv_transpose_out_size(W, k, s, p, op) >= 1)
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layer = ConvTranspose2d(c_out, k, s, p, op, activation=draw(st.sampled_from(ACTS)), bias=draw(st.booleans()))
    return CNN((c_in, H, W), (layer, Dense(1))), draw(st.integers(1, 3)), draw(st.integers(0, 2**31 - 1))


@st.composite
def norm_inputs(draw):
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    else:
        shape = (draw(st.integers(2, 6)),)
    return shape, draw(st.sampled_from(ACTS)), draw(st.integers(0, 2**31 - 1))


@given(conv_cases())
def test_conv2d_matches_autograd(xp, case):
    net, batch, seed = case
    check_against_torch(xp, net, seed, batch)


@given(conv_transpose_cases())
def test_conv_transpose2d_matches_autograd(xp, case):
    net, batch, seed = case
    check_against_torch(xp, net, seed, batch)


@given(norm_inputs(), st.integers(1, 3))
def test_layer_norm_matches_autograd(xp, case, batch):
    shape, act, seed = case
    assume(np.prod(shape) >= 2)
    check_against_torch(xp, CNN(shape, (LayerNorm(activation=act), Dense(1))), seed, batch)


@given(norm_inputs(), st.integers(2, 4))
def test_batch_norm_training_matches_autograd(xp, case, batch):
    shape, act, seed = case
    check_against_torch(xp, CNN(shape, (BatchNorm(activation=act), Dense(2))), seed, batch, double=False)


@given(norm_inputs(), st.integers(1, 4))
def test_batch_norm_evaluation_and_running_stats_match_torch(xp, case, batch):
    shape, act, seed = case
    rng = np.random.default_rng(seed)
    net = CNN(shape, (BatchNorm(activation=act, momentum=0.3), BatchNorm()))
    host = [(rng.uniform(0.5, 1.5, a.shape), rng.standard_normal(b.shape)) for a, b in net.init(rng)]
    params = [tuple(from_host(a, xp, "float64") for a in Wb) for Wb in host]
    st_host = [(rng.standard_normal(m.shape), rng.uniform(0.5, 2.0, m.shape)) for m, _ in host]
    stats = [tuple(from_host(a, xp, "float64") for a in mv) for mv in st_host]
    xh = rng.standard_normal((batch, *shape))
    x = from_host(xh, xp, "float64")

    y, cache = net.forward(params, x, stats=stats)                # evaluation mode
    tl = _leaves(host)
    tx = torch.tensor(xh, requires_grad=True)
    tstats = [(torch.tensor(m), torch.tensor(v), False) for m, v in st_host]
    ty = torch_forward(net, _pairs(tl), tx, tstats)
    _close(y, ty, "evaluation forward")
    dyh = rng.standard_normal(xh.shape)
    dx, grads = net.backward(params, cache, from_host(dyh, xp, "float64"))
    assert_xp((y, dx, grads), xp, "float64")
    tg = torch.autograd.grad(ty, [tx] + tl, torch.tensor(dyh))
    _close(dx, tg[0], "evaluation dx")
    _grads_close(grads, _pairs(tg[1:]), "evaluation")

    if batch >= 2:                                                # running statistics: PyTorch's update
        _, cache = net.forward(params, x)
        new = net.update_stats(stats, cache)
        assert_xp(new, xp, "float64")
        tstats = [(torch.tensor(m), torch.tensor(v), True) for m, v in st_host]
        torch_forward(net, _pairs(tl), tx, tstats)
        for (m, v), (tm, tv, _) in zip(new, tstats):
            _close(m, tm, "running mean")
            _close(v, tv, "running var")


# ----------------------------------------------------------------------------- whole DCGANs
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("norm", ["layer", "none"])
def test_dcgan_critic_matches_autograd(xp, shape, norm):
    check_against_torch(xp, dcgan_critic(shape, width=2, norm=norm, activation="softplus"), 3, 2)


def test_dcgan_critic_leaky_relu_and_batch_norm_match_autograd(xp):
    check_against_torch(xp, dcgan_critic((1, 28, 28), width=2), 4, 2)
    check_against_torch(xp, dcgan_critic((1, 28, 28), width=2, norm="batch"), 5, 3, double=False)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_dcgan_generator_matches_autograd(xp, shape):
    check_against_torch(xp, dcgan_generator(6, shape, width=2), 6, 3, double=False)
