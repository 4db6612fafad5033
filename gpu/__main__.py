"""Command line of the image-scale experiments (CuPy by default).

    python -m gpu NAME --dataset mnist|cifar10|digits [--data-dir DIR] [--backend cupy|numpy]
                       [--width W] [--batch-size B] [--iters N] [--eval-every N] [--seed S]
                       [--out DIR] [--resume] [--quick]

NAME is one of wgan-gp, rwp, sbe, w1fe, wwgan, swgan. ``--backend numpy`` runs the
same code on the CPU (slowly; useful for a smoke run with ``--quick``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from toy.__main__ import _positive_float, _positive_int

from .experiments import METHODS, ImageRun, run_image_experiment


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m gpu", description="refimpl image-scale experiments")
    ap.add_argument("name", choices=METHODS)
    ap.add_argument("--dataset", default="mnist", choices=["digits", "mnist", "cifar10"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--backend", default="cupy", choices=["cupy", "numpy"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--width", type=_positive_int, default=1024)
    ap.add_argument("--batch-size", type=_positive_int, default=256)
    ap.add_argument("--iters", type=_positive_int, default=None)
    ap.add_argument("--eval-every", type=_positive_int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--h", type=_positive_float, default=None)
    ap.add_argument("--K", type=_positive_int, default=3)
    ap.add_argument("--lam", type=_positive_float, default=10.0)
    ap.add_argument("--out", type=pathlib.Path, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: width 32, batch 16, 3 iterations")
    a = ap.parse_args(argv)
    from toy.common import tune_allocator
    tune_allocator()
    kw = dict(method=a.name, dataset=a.dataset, data_dir=a.data_dir, backend=a.backend, dtype=a.dtype,
              width=a.width, batch_size=a.batch_size, iters=a.iters or 20_000, eval_every=a.eval_every,
              seed=a.seed, h=a.h, K=a.K, lam=a.lam)
    if a.quick:
        kw.update(width=32, batch_size=16, iters=a.iters or 3, eval_every=a.iters or 3, n_eval=100)
    out = a.out or pathlib.Path("runs") / f"gpu-{a.name}-{a.dataset}-seed{a.seed}"
    try:
        if a.backend == "cupy":
            from . import require_cupy
            require_cupy()
        run = ImageRun(**kw)
        metrics = run_image_experiment(run, out, resume=a.resume)
    except KeyboardInterrupt:
        print(f"interrupted; resume with --out {out} --resume", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FileExistsError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("config", "run")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
