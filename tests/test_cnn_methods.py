"""Every GAN method with DCGAN networks (``GANConfig(arch="dcgan")``, :mod:`refimpl.architectures`).

* the WGAN-GP / WGAN-LP / DRAGAN critic gradients and the generator gradients through
  :class:`refimpl.cnn.flat.FlatIO` equal PyTorch autograd (``create_graph=True``) of the same
  losses on the same networks, in float64;
* WGAN-GP, RWP, SBE, W1-FE and WWGAN train a few outer steps with DCGANs on every backend:
  both networks' parameters move, the outputs keep the backend, dtype and device, and an outer
  step makes no host round trip (array_api_strict);
* bad settings are refused at the config.
"""
import numpy as np
import pytest

from refimpl.backend import from_host, scalar, to_numpy
from refimpl.cnn.flat import FlatIO
from refimpl.objectives import Objective, critic_grads, generator_grads
from refimpl.rwp import RWPMethod
from refimpl.sbe import SBEMethod
from refimpl.train import ArrayData, GANConfig, GANMethod
from refimpl.w1fe import W1FE
from refimpl.wwgan import WWGANMethod
from tests.conftest import assert_xp

SHAPE = (1, 8, 8)
DCGAN = dict(arch="dcgan", image_shape=SHAPE, data_dim=64, width=2, latent_dim=3, batch_size=4)


def _cfg(**kw):
    return GANConfig(**{**DCGAN, **kw})


METHODS = {
    "wgan-gp": lambda: GANMethod(_cfg()),
    "wgan-lp": lambda: GANMethod(_cfg(objective="wgan-lp")),
    "dragan": lambda: GANMethod(_cfg(objective="dragan")),
    "rwp": lambda: RWPMethod(_cfg(), h=0.1, l=2),
    "sbe": lambda: SBEMethod(_cfg(), h=0.2, n_phi=2, phi_hidden=5),
    "w1fe": lambda: W1FE(_cfg(objective="wgan-lp"), eps=1.0, K=2),
    "wwgan": lambda: WWGANMethod(_cfg(), SHAPE),
}


def _changed(a, b):
    return max(float(np.max(np.abs(to_numpy(x) - to_numpy(y)))) for x, y in zip(a, b) if x.size)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_with_dcgan_networks(xp, name):
    method = METHODS[name]()
    assert isinstance(method.gen, FlatIO) and isinstance(method.critic, FlatIO) and not method.fused
    rng = np.random.default_rng(0)
    x = from_host(rng.uniform(-1, 1, (32, 64)), xp, "float64")
    data = ArrayData(x)
    state = method.init_state(rng, xp, "float64")
    g0 = [np.array(to_numpy(a)) for Wb in state["gen"] for a in Wb]          # copies: the step donates the state
    c0 = [np.array(to_numpy(a)) for Wb in state["critic"] for a in Wb]
    for _ in range(2):
        state, logs = method.outer_step(state, rng, data)
    assert logs and all(np.isfinite(scalar(v)) for v in logs.values())
    assert _changed(g0, [a for Wb in state["gen"] for a in Wb]) > 0      # the generator moved
    assert _changed(c0, [a for Wb in state["critic"] for a in Wb]) > 0   # and the critic
    z = method.latent(rng, 5, x)
    y = method.samples(state, z)
    assert y.shape == (5, 64)
    assert_xp(y, xp, "float64")


@pytest.mark.parametrize("name", ["wgan-gp", "rwp", "sbe", "w1fe", "wwgan"])
def test_dcgan_outer_step_makes_no_host_round_trip(name):
    xps = pytest.importorskip("array_api_strict")
    from gpu.counters import HostRoundTrips
    method = METHODS[name]()
    rng = np.random.default_rng(0)
    data = ArrayData(from_host(rng.uniform(-1, 1, (32, 64)), xps, "float32"))
    state = method.init_state(rng, xps, "float32")
    state, _ = method.outer_step(state, rng, data)
    with HostRoundTrips() as rt:
        state, logs = method.outer_step(state, rng, data)
    assert logs
    assert rt.total == 0, f"{name}: {rt.report()}"


# ----------------------------------------------------------------------------- PyTorch oracle
torch = pytest.importorskip("torch", reason="PyTorch is an optional test oracle")


def _torch_net(flat, params):
    from tests.test_cnn_torch import torch_forward
    leaves = [torch.tensor(to_numpy(a), requires_grad=True) for Wb in params for a in Wb]
    pairs = list(zip(leaves[::2], leaves[1::2]))
    shape = flat.net.input_shape

    def f(x):
        y = torch_forward(flat.net, pairs, x.reshape(x.shape[0], *shape))
        return y.reshape(y.shape[0], -1)
    return f, leaves


def _assert_grads(ours, leaves, tg):
    flat = [to_numpy(a) for Wb in ours for a in Wb]
    assert len(flat) == len(tg)
    for k, (a, t) in enumerate(zip(flat, tg)):
        if not a.size:                                                 # a layer without bias: unused in torch
            continue
        t = t.detach().numpy()
        np.testing.assert_allclose(a, t, rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(t).max())),
                                   err_msg=f"leaf {k}")
    assert max(float(np.abs(a).max()) for a in flat if a.size) > 1e-6          # the check has something to compare


@pytest.mark.parametrize("objective", ["wgan-gp", "wgan-lp", "dragan"])
def test_dcgan_critic_gradients_equal_autograd(xp, objective):
    cfg = _cfg(objective=objective, critic_norm="layer")
    m = GANMethod(cfg)
    rng = np.random.default_rng(1)
    cparams = m.critic.init(rng, xp=xp, dtype="float64")
    rh, fh = rng.uniform(-1, 1, (4, 64)), rng.uniform(-1, 1, (4, 64))
    real, fake = from_host(rh, xp, "float64"), from_host(fh, xp, "float64")
    obj = Objective(objective, cfg.lam, cfg.clip)
    loss, grads, _ = critic_grads(obj, m.critic, cparams, real, fake, np.random.default_rng(7))
    assert_xp((loss, grads), xp, "float64")
    # the same draws as refimpl.objectives.penalty_points
    draw = np.random.default_rng(7)
    f, leaves = _torch_net(m.critic, cparams)
    tr, tf = torch.tensor(rh), torch.tensor(fh)
    if objective == "dragan":
        u = torch.tensor(draw.uniform(size=(4, 64)))
        xh = tr + obj.dragan_scale * tr.std(unbiased=False) * u
    else:
        e = torch.tensor(draw.uniform(size=(4, 1)))
        xh = e * tr + (1 - e) * tf
    xh = xh.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xh).sum(), xh, create_graph=True)
    n = g.norm(dim=1)
    pen = ((n - 1).clamp(min=0) ** 2 if obj.penalty == "one-sided" else (n - 1) ** 2).mean() * cfg.lam
    if obj.logistic:                                                   # DRAGAN: the standard loss on logits
        sp = torch.nn.functional.softplus
        tl = sp(-f(tr)).mean() + sp(f(tf)).mean() + pen
    else:
        tl = f(tf).mean() - f(tr).mean() + pen
    np.testing.assert_allclose(scalar(loss), tl.item(), rtol=1e-12)
    _assert_grads(grads, leaves, torch.autograd.grad(tl, leaves, allow_unused=True))


def test_dcgan_generator_gradients_equal_autograd(xp):
    m = GANMethod(_cfg())
    rng = np.random.default_rng(2)
    gparams = m.gen.init(rng, xp=xp, dtype="float64")
    cparams = m.critic.init(rng, xp=xp, dtype="float64")
    zh = rng.standard_normal((4, 3))
    loss, grads, fake = generator_grads(m.objective, m.gen, gparams, m.critic, cparams, from_host(zh, xp, "float64"))
    assert_xp((loss, grads, fake), xp, "float64")
    fg, gleaves = _torch_net(m.gen, gparams)
    fc, _ = _torch_net(m.critic, cparams)
    tl = -fc(fg(torch.tensor(zh))).mean()
    np.testing.assert_allclose(scalar(loss), tl.item(), rtol=1e-12)
    _assert_grads(grads, gleaves, torch.autograd.grad(tl, gleaves, allow_unused=True))


def test_bad_dcgan_settings_are_refused():
    with pytest.raises(ValueError, match="image_shape"):
        GANConfig(arch="dcgan", data_dim=64)
    with pytest.raises(ValueError, match="data_dim"):
        GANConfig(arch="dcgan", image_shape=SHAPE, data_dim=63)
    with pytest.raises(ValueError, match="arch"):
        GANConfig(arch="resnet")
    with pytest.raises(ValueError, match="norm"):
        GANConfig(**{**DCGAN, "critic_norm": "group"})
    with pytest.raises(ValueError, match="width"):
        GANConfig(**{**DCGAN, "width": 0})
    with pytest.raises(TypeError):
        FlatIO("not a CNN")


# ----------------------------------------------------------------------------- the command line
def test_gpu_command_line_runs_dcgan(tmp_path):
    import json
    from gpu.__main__ import main
    out = tmp_path / "run"
    assert main(["wgan-gp", "--arch", "dcgan", "--backend", "numpy", "--quick", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["arch"] == "dcgan" and m["config"]["image_shape"] == [1, 8, 8]
    assert m["run"]["arch"] == "dcgan" and np.isfinite(m["w1_pixels"])
    assert main(["swgan", "--arch", "dcgan", "--backend", "numpy", "--quick", "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()
