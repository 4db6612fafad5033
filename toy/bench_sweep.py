"""Benchmark: a sweep on a LocalCluster against the same runs one after another, in one process.

    python -m toy.bench_sweep [--seeds 0-4] [--workers 2] [NAME [experiment flags]]

Default: ``wgan-gp-ring --quick`` over seeds 0-4 on 2 single-threaded workers. Both sides are
:func:`toy.sweep.sweep` end to end (expansion, runs, manifest, aggregation) into fresh temporary
folders, the serial side first (``workers=0``: in this process, BLAS at one thread); the Dask
side includes starting and closing the cluster. Prints both wall times (and the runs' own
durations measured inside their tasks, which separate the cluster's overhead), the ratio
Dask / serial (the goal of issue 15: <= 0.6 on 2 cores) and the load average, since on a shared
machine the ratio depends on what else runs.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

from .sweep import parse_seeds, sweep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m toy.bench_sweep", allow_abbrev=False)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--workers", type=int, default=2)
    args, rest = ap.parse_known_args(argv)
    name, flags = (rest[0], rest[1:]) if rest else ("wgan-gp-ring", ["--quick"])
    seeds = parse_seeds(args.seeds)
    times = {}
    print(f"{name} {' '.join(flags)}, seeds {args.seeds}; load average before {os.getloadavg()[0]:.2f}")
    for label, workers in (("serial", 0), (f"dask ({args.workers} workers)", args.workers)):
        with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:
            t0 = time.perf_counter()
            manifest = sweep(name, seeds, [], flags, out=tmp, workers=workers, stream=io.StringIO())
            times[label] = time.perf_counter() - t0
        failed = [k for k, v in manifest["runs"].items() if v["status"] != "done"]
        if failed:
            print(f"error: runs failed ({label}): {failed}", file=sys.stderr)
            return 1
        inside = [v["seconds"] for v in manifest["runs"].values()]
        print(f"{label:>18}: {times[label]:7.1f} s for {len(seeds)} runs (each run {min(inside):.1f}-{max(inside):.1f} s, "
              f"sum {sum(inside):.1f} s, inside its task)")
    serial, dask = times.values()
    print(f"ratio dask / serial: {dask / serial:.2f} (goal <= 0.6); load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
