"""Command line of the toy experiments.

    python -m toy list
    python -m toy NAME [--backend numpy|cupy] [--seed S] [--iters N] [--out DIR] [--quick]
                       [--checkpoint-every N] [--resume] [experiment flags]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

from .common import RunOptions
from .registry import EXPERIMENTS, resolve


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonneg_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {s}")
    return v


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m toy", description="refimpl toy experiments (CPU by default)")
    ap.add_argument("name", help="experiment name, or 'list'")
    ap.add_argument("--backend", choices=["numpy", "cupy", "array_api_strict"], default="numpy")
    ap.add_argument("--seed", type=_nonneg_int, default=0)
    ap.add_argument("--iters", type=_positive_int, default=None, help="outer iterations (default: the experiment's)")
    ap.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default runs/NAME-seedS)")
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--checkpoint-every", type=_nonneg_int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pkl")
    g = ap.add_argument_group("overrides (experiments that use them)")
    g.add_argument("--objective", choices=["wgan", "wgan-gp", "wgan-lp", "dragan", "standard"], default=None,
                   help="GAN objective / critic penalty (W1-FE: wgan-gp or wgan-lp)")
    g.add_argument("--lam", type=_positive_float, default=None, help="penalty weight lambda")
    g.add_argument("--n-critic", type=_positive_int, default=None)
    g.add_argument("--n-gen", type=_positive_int, default=None)
    g.add_argument("--batch-size", type=_positive_int, default=None)
    g.add_argument("--latent-dim", type=_positive_int, default=None)
    g.add_argument("--lr-gen", type=_positive_float, default=None)
    g.add_argument("--lr-critic", type=_positive_float, default=None)
    g.add_argument("--h", type=_positive_float, default=None, help="proximal step size h (RWP, SBE)")
    g.add_argument("--l", type=_positive_int, default=None, help="generator steps per outer iteration (RWP)")
    g.add_argument("--K", type=_positive_int, default=None, help="persistent generator steps (W1-FE)")
    g.add_argument("--seeds", type=str, default=None, help="comma list of seeds for multi-seed experiments")
    g.add_argument("--data-dir", type=pathlib.Path, default=None, help="image data folder (MNIST, CIFAR-10)")
    g.add_argument("--dataset", type=str, default=None, help="dataset name where an experiment offers several")
    return ap


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sweep"]:                        # python -m toy sweep ... (toy/sweep.py)
        from .sweep import main as sweep_main
        return sweep_main(argv[1:])
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.name == "list":
        width = max(map(len, EXPERIMENTS))
        for name, (_, _, desc) in EXPERIMENTS.items():
            print(f"{name:{width}}  {desc}")
        return 0
    if args.name not in EXPERIMENTS:
        ap.error(f"unknown experiment {args.name!r}; run 'python -m toy list' (known: {', '.join(EXPERIMENTS)})")
    if args.backend != "numpy":
        from refimpl.backend import get_namespace
        try:
            get_namespace(args.backend)
        except (RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    out = args.out or pathlib.Path("runs") / f"{args.name}-seed{args.seed}"
    if args.resume and not (out / "checkpoint.pkl").exists() and not any(out.glob("*/checkpoint.pkl")):
        print(f"error: --resume given but there is no checkpoint in {out} (checkpoint.pkl, or */checkpoint.pkl "
              "for multi-run experiments)", file=sys.stderr)
        return 2
    extra = {k: v for k, v in vars(args).items()
             if k not in ("name", "backend", "seed", "iters", "out", "quick", "checkpoint_every", "resume")}
    from .common import tune_allocator
    tune_allocator()
    opts = RunOptions(out=out, backend=args.backend, seed=args.seed, iters=args.iters, quick=args.quick,
                      checkpoint_every=args.checkpoint_every, resume=args.resume, extra=extra)
    existed = out.exists()
    run = resolve(args.name)
    try:
        metrics = run(opts)
    except KeyboardInterrupt:
        print(f"interrupted; resume with: python -m toy {args.name} --out {out} --resume", file=sys.stderr)
        return 130
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as e:
        if not existed and out.exists() and not any(out.iterdir()):
            shutil.rmtree(out)
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in metrics.items() if k != "config"}, indent=1, default=str))
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
