"""GPU benchmark: refimpl on CuPy against PyTorch CUDA, same run, float32.

Workloads: (1) the WGAN-GP critic step of ``toy/bench_engine.py`` (critic on a real
and a fake batch, gradient penalty through ``input_gradient`` +
``input_gradient_vjp``, Adam); (2) a full image-scale WGAN-GP outer iteration (5
critic steps and 1 generator step) with MLPs ``128-W-W-W-784`` and ``784-W-W-W-1``
on device-resident data. Batch 64 to 4096, width 512 to 2048. Prints time per step,
samples per second, the ratio CuPy/PyTorch, and the achieved TFLOP/s against the
device's measured matrix-product rate. Timing synchronises the device.

    python -m gpu.bench [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from refimpl.train import ArrayData, GANConfig, GANMethod
from toy.bench_engine import refimpl_step_fn, torch_mlp, torch_step_fn, torch_wgan_gp_critic_update

from . import require_cupy


def _timer(sync):
    def median_time(fn, repeats, warmup=3):
        for _ in range(warmup):
            fn()
        sync()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)
    return median_time


def matmul_rate(xp, sync, n=4096):
    """Measured float32 matrix-product rate of the device (FLOP/s)."""
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype=xp.float32)
    t = _timer(sync)(lambda: a @ a, 10)
    return 2 * n ** 3 / t


def critic_step_flops(sizes, batch):
    """Matrix-product FLOPs of one WGAN-GP critic step (forward 2B, backward 2B, GP on B)."""
    per_row = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return per_row * (2 * batch * 3 + batch * 4)


def refimpl_image_step(xp, width, batch, data_dim=784, latent=128):
    cfg = GANConfig(data_dim=data_dim, latent_dim=latent, gen_hidden=(width,) * 3, critic_hidden=(width,) * 3,
                    batch_size=batch)
    method = GANMethod(cfg)
    rng = np.random.default_rng(0)
    st = {"s": method.init_state(rng, xp, "float32")}
    data = ArrayData(xp.asarray(rng.uniform(-1, 1, (10_000, data_dim)), dtype=xp.float32))

    def step():
        st["s"], _ = method.outer_step(st["s"], rng, data)
    return step


def torch_image_step(torch, width, batch, data_dim=784, latent=128):
    dev = torch.device("cuda")
    G = torch_mlp(torch, (latent, width, width, width, data_dim), device=dev)
    D = torch_mlp(torch, (data_dim, width, width, width, 1), device=dev)
    og = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.9))
    od = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.9))
    data = torch.rand(10_000, data_dim, device=dev) * 2 - 1

    def step():
        for _ in range(5):
            real = data[torch.randint(0, data.shape[0], (batch,), device=dev)]
            with torch.no_grad():
                fake = G(torch.randn(batch, latent, device=dev))
            torch_wgan_gp_critic_update(torch, D, od, real, fake)
        og.zero_grad(set_to_none=True)
        (-D(G(torch.randn(batch, latent, device=dev))).mean()).backward()
        og.step()
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    xp = require_cupy()
    import cupy
    try:
        import torch
    except ImportError:
        raise SystemExit("the peer needs PyTorch with CUDA: pip install torch (never a refimpl dependency)")
    if not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no CUDA device: install a CUDA build of torch for the peer")
    sync_c = cupy.cuda.Device().synchronize
    sync_t = torch.cuda.synchronize
    timed_c, timed_t = _timer(sync_c), _timer(sync_t)
    repeats = args.repeats or (5 if args.quick else 20)
    peak = matmul_rate(xp, sync_c)
    print(f"device: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}; "
          f"measured float32 matmul {peak / 1e12:.1f} TFLOP/s (4096^3)")
    batches = (64, 1024) if args.quick else (64, 256, 1024, 4096)
    widths = (512, 2048) if args.quick else (512, 1024, 2048)
    print("\n(1) WGAN-GP critic step, MLP (2, W, W, W, 1), float32")
    print(f"{'batch':>6} {'width':>6} {'cupy ms':>9} {'torch ms':>9} {'ratio':>6} {'samples/s':>10} {'TFLOP/s':>8} {'of peak':>8}")
    for b in batches:
        for w in widths:
            sizes = (2, w, w, w, 1)
            tc = timed_c(refimpl_step_fn(sizes, b, "float32", xp=xp), repeats)
            tt = timed_t(torch_step_fn(sizes, b, "float32", device="cuda"), repeats)
            fl = critic_step_flops(sizes, b)
            print(f"{b:6d} {w:6d} {tc * 1e3:9.3f} {tt * 1e3:9.3f} {tc / tt:6.2f} {b / tc:10.0f} "
                  f"{fl / tc / 1e12:8.2f} {fl / tc / peak:8.1%}")
    print("\n(2) image-scale WGAN-GP outer iteration (5 critic + 1 generator step), 128-W-W-W-784 / 784-W-W-W-1")
    print(f"{'batch':>6} {'width':>6} {'cupy ms':>9} {'torch ms':>9} {'ratio':>6} {'samples/s':>10}")
    for b in batches:
        for w in widths:
            tc = timed_c(refimpl_image_step(xp, w, b), max(3, repeats // 4))
            tt = timed_t(torch_image_step(torch, w, b), max(3, repeats // 4))
            print(f"{b:6d} {w:6d} {tc * 1e3:9.3f} {tt * 1e3:9.3f} {tc / tt:6.2f} {6 * b / tc:10.0f}")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        raise SystemExit(f"error: {e}")
