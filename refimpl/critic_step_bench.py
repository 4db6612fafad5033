"""The WGAN-GP critic step as a benchmark workload: refimpl's and its PyTorch peer's.

Shared by the CPU benchmark (``python -m toy.bench_engine``) and the GPU benchmark
(``python -m gpu.bench``), so that neither front-end imports the other. The workload (issue
"Core engine"): critic on a real and a fake batch, gradient penalty (lam = 10) at random
interpolates through ``input_gradient`` + ``input_gradient_vjp``, Adam update. The peer is the
same step with ``torch.autograd.grad(..., create_graph=True)`` and ``torch.optim.Adam``;
PyTorch is never a dependency of refimpl: the functions that need it take the ``torch``
module as an argument or import it when called (``pip install 'refimpl[bench]'``).
"""
from __future__ import annotations

import numpy as np

from . import steps
from .flat import flatten
from .nn import MLP
from .objectives import Objective, critic_grads
from .optim import Adam


def matmul_shapes(sizes, batch):
    """(m, k, n) of every matrix product in refimpl's fused WGAN-GP critic step (ReLU critic,
    :func:`refimpl.steps.critic_loss_grads`): one forward and one backward over the ``3B`` real,
    fake and penalty rows, the double backward on the ``B`` penalty rows, one weight-gradient
    product per layer over ``3B`` stacked rows."""
    L = len(sizes) - 1
    rows = 3 * batch
    shapes = [(rows, sizes[l], sizes[l + 1]) for l in range(L)]            # forward
    shapes += [(rows, sizes[l + 1], sizes[l]) for l in range(1, L)]         # backward, all rows
    shapes.append((batch, sizes[1], sizes[0]))                              # ... to the input: penalty rows
    shapes += [(batch, sizes[l], sizes[l + 1]) for l in range(L - 1)]       # double backward: bar e_l
    shapes += [(sizes[l], rows, sizes[l + 1]) for l in range(L)]            # weight gradients
    return shapes


def refimpl_step_fn(sizes, batch, dtype, seed=0, xp=np, public=False):
    """One refimpl WGAN-GP critic step as a closure, on backend ``xp``: the fused step
    (:func:`refimpl.steps.critic_loss_grads`) and the flat in-place Adam, as training runs them;
    ``public=True``: the same through the checked public entry points
    (:func:`refimpl.objectives.critic_grads`, :meth:`refimpl.optim.Adam.step`)."""
    from refimpl.backend import from_host
    rng = np.random.default_rng(seed)
    net = MLP(sizes, "relu")
    params = flatten(net.init(rng, xp=xp, dtype=dtype))
    opt = Adam(1e-4, 0.5, 0.9)
    state = {"o": opt.init(params)}
    obj = Objective("wgan-gp", lam=10.0)
    real = from_host(rng.standard_normal((batch, sizes[0])), xp, dtype)
    fake = from_host(rng.standard_normal((batch, sizes[0])), xp, dtype)
    consts = steps.constants({}, obj, real, batch)

    def internal():
        eps = from_host(rng.uniform(size=(batch, 1)), xp, dtype, real.device)
        _, grads, _ = steps.critic_loss_grads(obj, net, params, real, fake, eps, consts)
        state["o"] = opt.step.unchecked(params, grads, state["o"])[1]

    def checked():
        _, grads, _ = critic_grads(obj, net, params, real, fake, rng)
        state["o"] = opt.step(params, grads, state["o"])[1]
    return checked if public else internal


def torch_mlp(torch, sizes, dtype=None, device="cpu"):
    """``torch.nn.Sequential`` of Linear layers with ReLU between them."""
    layers = []
    for l in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[l], sizes[l + 1]))
        if l < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(device=device, dtype=dtype)


def torch_wgan_gp_critic_update(torch, critic, opt, real, fake, eps=None):
    """The peer's WGAN-GP critic update: autograd.grad(create_graph=True), then Adam.

    ``eps`` (B, 1): the interpolation weights; default: drawn with ``torch.rand`` on the device.
    """
    batch = real.shape[0]
    opt.zero_grad(set_to_none=True)
    scores = critic(torch.cat([real, fake]))
    eps = torch.rand(batch, 1, dtype=real.dtype, device=real.device) if eps is None else eps
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    gp = 10.0 * ((g.norm(dim=1) - 1) ** 2).mean()
    loss = scores[batch:].mean() - scores[:batch].mean() + gp
    loss.backward()
    opt.step()


def torch_step_fn(sizes, batch, dtype, seed=0, device="cpu"):
    """The same step in PyTorch, as a closure."""
    import torch
    torch.manual_seed(seed)
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    critic = torch_mlp(torch, sizes, tdt, device)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
    real = torch.randn(batch, sizes[0], dtype=tdt, device=device)
    fake = torch.randn(batch, sizes[0], dtype=tdt, device=device)
    return lambda: torch_wgan_gp_critic_update(torch, critic, opt, real, fake)
