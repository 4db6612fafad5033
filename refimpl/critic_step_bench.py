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

from .nn import MLP
from .objectives import Objective, _critic_grads
from .optim import Adam


def matmul_shapes(sizes, batch):
    """(m, k, n) of every matrix product in refimpl's WGAN-GP critic step (ReLU critic)."""
    L = len(sizes) - 1
    two = 2 * batch
    shapes = []
    for l in range(L):                                   # forward on real+fake
        shapes.append((two, sizes[l], sizes[l + 1]))
    for l in range(L):                                   # backward: dW, and dh except at the input
        shapes.append((sizes[l], two, sizes[l + 1]))
        if l > 0:
            shapes.append((two, sizes[l + 1], sizes[l]))
    for l in range(L):                                   # input gradient: forward + backward
        shapes.append((batch, sizes[l], sizes[l + 1]))
        shapes.append((batch, sizes[l + 1], sizes[l]))
    for l in range(L):                                   # double backward: gW and bar_e
        shapes.append((sizes[l], batch, sizes[l + 1]))
        if l < L - 1:
            shapes.append((batch, sizes[l], sizes[l + 1]))
    return shapes


def refimpl_step_fn(sizes, batch, dtype, seed=0, xp=np):
    """One refimpl WGAN-GP critic step (critic_grads + Adam) as a closure, on backend ``xp``."""
    from refimpl.backend import from_host
    rng = np.random.default_rng(seed)
    net = MLP(sizes, "relu")
    state = {"p": net.init(rng, xp=xp, dtype=dtype)}
    opt = Adam(1e-4, 0.5, 0.9)
    state["o"] = opt.init(state["p"])
    obj = Objective("wgan-gp", lam=10.0)
    real = from_host(rng.standard_normal((batch, sizes[0])), xp, dtype)
    fake = from_host(rng.standard_normal((batch, sizes[0])), xp, dtype)

    def step():     # the unchecked twins a training step calls (no per-call validation, like torch)
        _, grads, _ = _critic_grads(obj, net, state["p"], real, fake, rng)
        state["p"], state["o"] = opt._step(state["p"], grads, state["o"])
    return step


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
