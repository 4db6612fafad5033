"""Flat parameter buffers (refimpl.flat) and the optimisers' in-place flat path."""
import numpy as np
import pytest

from refimpl.backend import from_host, to_numpy
from refimpl.checkpoint import tree_from_host, tree_to_host
from refimpl.flat import FlatParams, adopt_flat, copy_state, flatten
from refimpl.nn import MLP
from refimpl.optim import SGD, Adam, RMSprop
from tests.conftest import assert_xp

OPTS = [Adam(1e-3, 0.5, 0.9), SGD(1e-2, 0.9), SGD(1e-2), RMSprop(1e-3)]


def _grads(rng, params, xp, dtype):
    return [(from_host(rng.standard_normal(tuple(W.shape)), xp, dtype),
             from_host(rng.standard_normal(tuple(b.shape)), xp, dtype)) for W, b in params]


def test_views_share_the_buffer(xp):
    p = flatten(MLP((3, 4, 1)).init(np.random.default_rng(0), xp=xp))
    assert isinstance(p, FlatParams) and tuple(p.buffer.shape) == (3 * 4 + 4 + 4 + 1,)
    assert_xp(p.buffer, xp, "float64")
    p.buffer -= 1.0
    before = to_numpy(p[0][0]).copy()
    p.buffer *= 2.0                                       # the views see an in-place update of the buffer
    assert np.array_equal(to_numpy(p[0][0]), 2.0 * before)
    assert np.array_equal(to_numpy(p.wt[0]), 2.0 * before.T)


@pytest.mark.parametrize("opt", OPTS, ids=lambda o: type(o).__name__ + str(getattr(o, "momentum", "")))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flat_optimisers_are_bitwise_the_list_ones(opt, dtype):
    rng = np.random.default_rng(1)
    p = MLP((2, 9, 7, 1)).init(rng, dtype=dtype)
    fp, sl, pl = flatten(p), opt.init(p), p
    sf = opt.init(fp)
    for _ in range(6):
        g = _grads(rng, p, np, dtype)
        pl, sl = opt.step(pl, g, sl)
        fp2, sf = opt.step(fp, g, sf)
        assert fp2 is fp                                  # updated in place
    assert all(np.array_equal(a, b) for P, Q in zip(pl, fp) for a, b in zip(P, Q))
    assert not np.array_equal(pl[0][0], p[0][0])          # the steps moved the parameters


def test_capturable_adam_keeps_its_step_on_the_device(xp):
    rng = np.random.default_rng(2)
    p = MLP((2, 5, 1)).init(rng, xp=xp)
    a, b = Adam(1e-2, 0.5, 0.9), Adam(1e-2, 0.5, 0.9, capturable=True)
    fa, fb = flatten(p), flatten(p)
    sa, sb = a.init(fa), b.init(fb)
    assert_xp(sb["step"], xp, "float64") and sb["step"].shape == ()
    for _ in range(5):
        g = _grads(rng, p, xp, "float64")
        sa = a.step.unchecked(fa, g, sa)[1]
        sb = b.step.unchecked(fb, g, sb)[1]
    assert float(sb["step"]) == 5.0
    assert np.max(np.abs(to_numpy(fa.buffer) - to_numpy(fb.buffer))) <= 1e-15
    assert np.max(np.abs(to_numpy(fa.buffer) - to_numpy(flatten(p).buffer))) > 1e-3
    with pytest.raises(TypeError, match="flat parameters"):
        b.init(p)


def test_a_list_cannot_take_a_flat_state():
    p = MLP((2, 3, 1)).init(np.random.default_rng(0))
    opt = Adam()
    state = opt.init(flatten(p))
    with pytest.raises(TypeError, match="FlatParams"):
        opt.step.unchecked(p, p, state)
    with pytest.raises(TypeError, match="state does not match"):
        opt.step(p, p, state)


def test_copy_state_is_independent_and_adopt_restores_the_layout(xp):
    opt = Adam(1e-2)
    p = flatten(MLP((2, 4, 1)).init(np.random.default_rng(3), xp=xp))
    state = {"gen": p, "opt_gen": opt.init(p), "t": 1}
    kept = copy_state(state)
    opt.step.unchecked(p, _grads(np.random.default_rng(4), p, xp, "float64"), state["opt_gen"])
    assert isinstance(kept["gen"], FlatParams) and kept["gen"].buffer is not p.buffer
    assert np.max(np.abs(to_numpy(kept["gen"].buffer) - to_numpy(p.buffer))) > 1e-4
    host = tree_to_host(state)                            # as a checkpoint holds it: plain lists
    back = adopt_flat(tree_from_host(host, xp, getattr(xp, "device", None)))
    assert isinstance(back["gen"], FlatParams)
    assert np.array_equal(to_numpy(back["gen"].buffer), to_numpy(p.buffer))
    legacy = {"gen": list(p), "opt_gen": {"t": 0, "m": [a for Wb in p for a in Wb], "v": []}}
    assert not isinstance(adopt_flat(legacy)["gen"], FlatParams)   # list moments: the list layout stays


def test_flat_parameters_are_checked_once_until_an_unchecked_update():
    from refimpl.objectives import Objective, critic_grads
    rng = np.random.default_rng(5)
    net = MLP((2, 4, 1))
    p = flatten(net.init(rng))
    real, fake = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    obj = Objective("wgan-gp")
    assert not p.finite
    _, g, _ = critic_grads(obj, net, p, real, fake, rng)
    assert p.finite                                       # checked (one reduction), now known finite
    adam, sgd = Adam(1e-3), SGD(1e-3)
    s = adam.init(p)
    adam.step(p, g, s)
    assert p.finite                                       # a bounded public step keeps it
    sgd.step(p, g, sgd.init(p))
    assert not p.finite                                   # SGD's step can overflow: checked again next time
    critic_grads(obj, net, p, real, fake, rng)
    adam.step.unchecked(p, g, s)                          # an unchecked (training) update clears it
    assert not p.finite
    p.buffer[0] = np.nan
    with pytest.raises(ValueError, match=r"cparams\[0\]\[0\]"):
        critic_grads(obj, net, p, real, fake, rng)
    with pytest.raises(ValueError, match=r"grads"):
        adam.step(flatten(net.init(rng)), [(W * np.nan, b) for W, b in g], adam.init(flatten(net.init(rng))))
