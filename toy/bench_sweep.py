"""Benchmark: a sweep on a LocalCluster against the same runs one after another, in one process.

    python -m toy.bench_sweep [--seeds 0-4] [--workers 2] [NAME [experiment flags]]

Default: ``wgan-gp-ring --quick`` over seeds 0-4 on 2 single-threaded workers. Both sides are
:func:`toy.sweep.sweep` end to end (expansion, runs, manifest, aggregation) into fresh temporary
folders, the serial side first (``workers=0``: in this process, BLAS at one thread); the Dask
side includes starting and closing the cluster. Prints both wall times (and the runs' own
durations measured inside their tasks, which separate the cluster's overhead), the ratio
Dask / serial (the goal of issue 15: <= 0.6 on 2 cores), the CPU seconds each side used (this
process and its finished children: the ratio is the cluster's CPU overhead, which the load
hardly changes) and the load average, since on a shared machine the wall ratio depends on what
else runs.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time

from .sweep import parse_seeds, sweep


def _cpu_seconds():
    """User + system CPU of this process and of its finished children (the cluster's workers,
    once the cluster is closed)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m toy.bench_sweep", allow_abbrev=False)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--workers", type=int, default=2)
    args, rest = ap.parse_known_args(argv)
    name, flags = (rest[0], rest[1:]) if rest else ("wgan-gp-ring", ["--quick"])
    seeds = parse_seeds(args.seeds)
    times, cpu = {}, {}
    print(f"{name} {' '.join(flags)}, seeds {args.seeds}; load average before {os.getloadavg()[0]:.2f}")
    for label, workers in (("serial", 0), (f"dask ({args.workers} workers)", args.workers)):
        with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:
            t0, c0 = time.perf_counter(), _cpu_seconds()
            manifest = sweep(name, seeds, [], flags, out=tmp, workers=workers, stream=io.StringIO())
            times[label], cpu[label] = time.perf_counter() - t0, _cpu_seconds() - c0
        failed = [k for k, v in manifest["runs"].items() if v["status"] != "done"]
        if failed:
            print(f"error: runs failed ({label}): {failed}", file=sys.stderr)
            return 1
        inside = [v["seconds"] for v in manifest["runs"].values()]
        print(f"{label:>18}: {times[label]:7.1f} s wall, {cpu[label]:6.1f} s CPU for {len(seeds)} runs "
              f"(each run {min(inside):.1f}-{max(inside):.1f} s wall inside its task)")
    serial, dask = times.values()
    print(f"ratio dask / serial: {dask / serial:.2f} wall (goal <= 0.6), {list(cpu.values())[1] / list(cpu.values())[0]:.2f} "
          f"CPU; load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
