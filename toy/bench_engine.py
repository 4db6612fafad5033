"""Benchmark: one WGAN-GP critic step, refimpl against PyTorch CPU, same run and thread count.

Workload (issue "Core engine"): critic on a real and a fake batch, gradient penalty
(lam = 10) at random interpolates through ``input_gradient`` + ``input_gradient_vjp``,
Adam update. Peer: the same step with ``torch.autograd.grad(..., create_graph=True)``
and ``torch.optim.Adam``. Prints median times, the ratio refimpl/PyTorch, the achieved
FLOP/s against the BLAS ceiling (the step's own matrix products timed alone), and a
scaling table.

    python -m toy.bench_engine [--quick] [--threads N] [--repeats R]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from refimpl.nn import MLP
from refimpl.objectives import Objective, _critic_grads
from refimpl.optim import Adam


def _median_time(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


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


def blas_ceiling(shapes, dtype, repeats):
    """Median time of the plain matrix products alone, and their FLOP count."""
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))
            for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    t = _median_time(lambda: [a @ b for a, b in mats], repeats)
    return t, flops


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


def measure(sizes, batch, dtype, repeats):
    t_ref = _median_time(refimpl_step_fn(sizes, batch, dtype), repeats)
    t_torch = _median_time(torch_step_fn(sizes, batch, dtype), repeats)
    t_blas, flops = blas_ceiling(matmul_shapes(sizes, batch), dtype, repeats)
    return t_ref, t_torch, t_blas, flops


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small repeats and a reduced scaling table")
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: all cores)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default allocator thresholds")
    args = ap.parse_args(argv)
    if not args.no_malloc_tuning:
        from toy.common import tune_allocator
        tune_allocator()      # affects both refimpl and PyTorch: same process, same allocator
    try:
        import torch
    except ImportError:
        raise SystemExit("the benchmark peer needs PyTorch CPU: pip install torch (never a refimpl dependency)")
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass
    repeats = args.repeats or (5 if args.quick else 21)
    print(f"threads: {threads} (torch {torch.__version__}, numpy {np.__version__})")
    print("\nWGAN-GP critic step, MLP (2, 512, 512, 512, 1) relu, batch 256")
    print(f"{'dtype':8} {'refimpl ms':>11} {'torch ms':>9} {'ratio':>6} {'GFLOP/s':>8} {'BLAS GFLOP/s':>13} {'of BLAS':>8}")
    for dtype in ("float32", "float64"):
        t_ref, t_torch, t_blas, flops = measure((2, 512, 512, 512, 1), 256, dtype, repeats)
        print(f"{dtype:8} {1e3 * t_ref:11.2f} {1e3 * t_torch:9.2f} {t_ref / t_torch:6.2f} "
              f"{flops / t_ref / 1e9:8.1f} {flops / t_blas / 1e9:13.1f} {t_blas / t_ref:8.0%}")
    batches = (64, 256, 1024) if args.quick else (64, 256, 1024, 4096)
    widths = (128, 512) if args.quick else (128, 256, 512, 1024)
    print("\nscaling (float32): time per step and ratio refimpl/torch")
    print(f"{'batch':>6} {'width':>6} {'refimpl ms':>11} {'torch ms':>9} {'ratio':>6} {'of BLAS':>8}")
    for batch in batches:
        for width in widths:
            sizes = (2, width, width, width, 1)
            r = max(3, repeats // (1 + batch * width // (256 * 512)))
            t_ref, t_torch, t_blas, _ = measure(sizes, batch, "float32", r)
            print(f"{batch:6d} {width:6d} {1e3 * t_ref:11.2f} {1e3 * t_torch:9.2f} {t_ref / t_torch:6.2f} "
                  f"{t_blas / t_ref:8.0%}")


if __name__ == "__main__":
    main()
