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


def _paired_medians(fns, repeats, warmup=3, block=4):
    """Median seconds of each closure, timed in blocks of ``block`` calls whose order rotates round by
    round (drift hits all alike). The first call of a block is not counted: it shares the cores with
    the previous block's thread pool (OpenMP and OpenBLAS threads spin for a while after their work)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    ts = [[] for _ in fns]
    rounds = max(1, -(-repeats // (block - 1)))
    for r in range(rounds):
        for i in [(r + k) % len(fns) for k in range(len(fns))]:
            for j in range(block):
                t0 = time.perf_counter()
                fns[i]()
                if j:
                    ts[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in ts]


def blas_ceiling(shapes, dtype, repeats):
    """Median time of the plain matrix products alone, and their FLOP count."""
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))
            for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    t = _paired_medians([lambda: [a @ b for a, b in mats]], repeats)[0]
    return t, flops


def measure(sizes, batch, dtype, repeats):
    """Median seconds of refimpl (internal path), refimpl (public, checked path) and PyTorch, timed
    in rotating rounds, then the BLAS ceiling and the step's FLOPs."""
    t_ref, t_pub, t_torch = _paired_medians([refimpl_step_fn(sizes, batch, dtype),
                                             refimpl_step_fn(sizes, batch, dtype, public=True),
                                             torch_step_fn(sizes, batch, dtype)], repeats)
    t_blas, flops = blas_ceiling(matmul_shapes(sizes, batch), dtype, repeats)
    return t_ref, t_pub, t_torch, t_blas, flops


def machine():
    """The CPU model and the BLAS libraries with their kernels (threadpoolctl's ``architecture``)."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
                         f"({i.get('prefix')}, {i.get('num_threads')} threads)"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        blas = "threadpoolctl not installed"
    return cpu, blas


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
    cpu, blas = machine()
    print(f"threads: {threads} (torch {torch.__version__}, numpy {np.__version__})")
    print(f"CPU: {cpu}\nBLAS: {blas}\ntorch: {torch.get_num_threads()} threads, MKL {torch.backends.mkl.is_available()}")
    print("\nWGAN-GP critic step, MLP (2, 512, 512, 512, 1) relu, batch 256 (public: the checked entry points)")
    print(f"{'dtype':8} {'refimpl ms':>11} {'public ms':>10} {'torch ms':>9} {'ratio':>6} {'public/int':>11} "
          f"{'GFLOP/s':>8} {'BLAS GFLOP/s':>13} {'of BLAS':>8}")
    for dtype in ("float32", "float64"):
        t_ref, t_pub, t_torch, t_blas, flops = measure((2, 512, 512, 512, 1), 256, dtype, repeats)
        print(f"{dtype:8} {1e3 * t_ref:11.2f} {1e3 * t_pub:10.2f} {1e3 * t_torch:9.2f} {t_ref / t_torch:6.2f} "
              f"{t_pub / t_ref:11.3f} {flops / t_ref / 1e9:8.1f} {flops / t_blas / 1e9:13.1f} {t_blas / t_ref:8.0%}")
    batches = (64, 256, 1024) if args.quick else (64, 256, 1024, 4096)
    widths = (128, 512) if args.quick else (128, 256, 512, 1024)
    print("\nscaling (float32): time per step and ratio refimpl/torch")
    print(f"{'batch':>6} {'width':>6} {'refimpl ms':>11} {'torch ms':>9} {'ratio':>6} {'of BLAS':>8}")
    for batch in batches:
        for width in widths:
            sizes = (2, width, width, width, 1)
            r = max(3, repeats // (1 + batch * width // (256 * 512)))
            t_ref, _, t_torch, t_blas, _ = measure(sizes, batch, "float32", r)
            print(f"{batch:6d} {width:6d} {1e3 * t_ref:11.2f} {1e3 * t_torch:9.2f} {t_ref / t_torch:6.2f} "
                  f"{t_blas / t_ref:8.0%}")


if __name__ == "__main__":
    main()
