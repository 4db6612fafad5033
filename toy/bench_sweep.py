"""Benchmark: a sweep on a LocalCluster against the same runs one after another, in one process.

    python -m toy.bench_sweep [--seeds 0-4] [--workers 2] [NAME [experiment flags]]

Default: ``wgan-gp-ring --quick`` over seeds 0-4 on 2 single-threaded workers. Every side is
:func:`toy.sweep.sweep` end to end (expansion, runs, manifest, aggregation) into fresh temporary
folders:

0. one untimed run (another seed) in this process, so that neither serial side pays the imports;
1. serial, one thread (``workers=0``: in this process, each run ``--threads 1``: the sweep's
   fallback without Dask);
2. serial, all the cores (each run ``--threads`` the machine's CPUs: BLAS and the evaluation's
   two exact solves may use them, as a user running the seeds one after another would);
3. the Dask sweep, including starting and closing the cluster.

Prints the wall times (and the runs' own durations measured inside their tasks, which
separate the cluster's overhead), the ratio Dask / serial against the faster serial side (the
goal of issue 15: <= 0.6 on 2 cores), the CPU seconds each side used (this process and its
finished children: the ratio is the cluster's CPU overhead, which the load hardly changes),
the bound ``ceil(runs / workers) / runs`` that equal runs cannot beat however small the
overhead, and the load average, since on a shared machine the wall ratio depends on what else
runs.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import resource
import sys
import tempfile
import time

from refimpl.threads import usable_cpus

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
    cores = usable_cpus()
    sides = [("serial, 1 thread", 0, ["--threads", "1"]),
             (f"serial, {cores} threads", 0, ["--threads", str(cores)]),
             (f"dask, {args.workers} workers", args.workers, [])]
    if cores == 1:
        del sides[1]
    times, cpu = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:    # imports and caches warm, untimed
        sweep(name, [max(seeds) + 1], [], [*flags, "--threads", "1"], out=tmp, workers=0, stream=io.StringIO())
    print(f"{name} {' '.join(flags)}, seeds {args.seeds}; load average before {os.getloadavg()[0]:.2f}")
    for label, workers, extra in sides:
        with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:
            t0, c0 = time.perf_counter(), _cpu_seconds()
            manifest = sweep(name, seeds, [], [*flags, *extra], out=tmp, workers=workers, stream=io.StringIO())
            times[label], cpu[label] = time.perf_counter() - t0, _cpu_seconds() - c0
        failed = [k for k, v in manifest["runs"].items() if v["status"] != "done"]
        if failed:
            print(f"error: runs failed ({label}): {failed}", file=sys.stderr)
            return 1
        inside = [v["seconds"] for v in manifest["runs"].values()]
        n_runs = len(inside)                    # seeds x the experiment's own variants
        print(f"{label:>18}: {times[label]:7.1f} s wall, {cpu[label]:6.1f} s CPU for {n_runs} runs "
              f"(each run {min(inside):.1f}-{max(inside):.1f} s wall inside its task)")
    dask_label = sides[-1][0]
    serial_label = min((lab for lab, _, _ in sides[:-1]), key=times.get)
    bound = math.ceil(n_runs / args.workers) / n_runs
    print(f"ratio dask / fastest serial ({serial_label}): {times[dask_label] / times[serial_label]:.2f} wall "
          f"(goal <= 0.6; bound for equal runs without overhead {bound:.2f}), "
          f"{cpu[dask_label] / cpu[sides[0][0]]:.2f} CPU against serial, 1 thread; "
          f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
