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

from refimpl.critic_step_bench import matmul_shapes, refimpl_step_fn, torch_step_fn


def _median_time(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def blas_ceiling(shapes, dtype, repeats):
    """Median time of the plain matrix products alone, and their FLOP count."""
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))
            for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    t = _median_time(lambda: [a @ b for a, b in mats], repeats)
    return t, flops


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
