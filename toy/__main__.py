"""Command line of the toy experiments.

    python -m toy list
    python -m toy NAME --help          # that experiment's flags and defaults
    python -m toy sweep NAME --seeds 0-4 [--set key=v1,v2] [--workers N | --scheduler ADDR] --out DIR
                                       # variant x seed x setting, on Dask (toy/sweep.py)
    python -m toy NAME [--backend numpy|cupy] [--seed S] [--iters N] [--out DIR] [--quick]
                       [--checkpoint-every N] [--checkpoint-seconds S] [--resume] [--threads N]
                       [experiment flags]
    python -m toy NAME --variant KEY --seed S ...   # one run of a multi-run experiment

An experiment's flags, options and run are :mod:`toy.cli`'s; the lifecycle (output folder,
checkpoints, signals, threads, errors) is :mod:`refimpl.harness`'s.
:func:`main` returns the exit status: 0, 2 (bad input, OS error, unreadable checkpoint,
non-finite loss), 130 / 143 / 129 (interrupted by SIGINT / SIGTERM / SIGHUP, checkpoint written).
"""
from __future__ import annotations

import sys

from refimpl import harness as runs

from . import cli
from .registry import EXPERIMENTS


def _top_parser():
    ap = runs.ArgumentParser(prog="python -m toy", description="refimpl toy experiments (CPU by default). "
                                 "'python -m toy NAME --help' shows an experiment's own flags; "
                                 "'python -m toy sweep NAME --seeds 0-4 --out DIR' runs it over seeds and "
                                 "settings (variant x seed x setting) on Dask and aggregates (--help for more).")
    ap.add_argument("name", help="experiment name, 'list', or 'sweep'")
    return ap


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:                        # python -m toy sweep ... (toy/sweep.py)
        from .sweep import main as sweep_main
        return sweep_main(argv[1:])
    if not argv or argv[0].startswith("-"):
        _top_parser().parse_args(argv)            # --help, or the usage error
        return 2
    name = argv[0]
    if name == "list":
        width = max(map(len, EXPERIMENTS))
        for n, (_, _, desc) in EXPERIMENTS.items():
            print(f"{n:{width}}  {desc}")
        print(f"\n{'sweep':{width}}  python -m toy sweep NAME --seeds 0-4 [--set key=v1,v2] --out DIR: any experiment "
              "over variants x seeds x settings on Dask, with 95% t-intervals (python -m toy sweep --help)")
        return 0
    if name not in EXPERIMENTS:
        _top_parser().error(f"unknown experiment {name!r}; run 'python -m toy list' "
                            f"(known: {', '.join(EXPERIMENTS)})")
    return cli.run(name, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
