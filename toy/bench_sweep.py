"""Benchmark: a sweep on a LocalCluster against the same runs one after another, and against plain processes.

    python -m toy.bench_sweep [--seeds 0-4] [--workers 2] [NAME [experiment flags]]

Default: ``wgan-gp-ring --quick`` over seeds 0-4 on 2 single-threaded workers. Each side but the
control is the command a user types, ``python -m toy sweep NAME --seeds ... --workers W --out
TMP [flags]``, timed in a fresh process from launch to exit (its imports, expansion, runs,
manifest and aggregation; for Dask also the workers' imports and the cluster's start and close):

0. one untimed serial run of another seed, so that the files are in the page cache;
1. serial, one thread (``--workers 0``: in the command's process, each run ``--threads 1``: the
   sweep's fallback without Dask);
2. serial, all the cores (each run ``--threads`` the machine's CPUs: BLAS and the evaluation's
   two exact solves may use them, as a user running the seeds one after another would);
3. the Dask sweep on a LocalCluster of ``--workers`` single-threaded workers;
4. the control: the same runs dealt round-robin to ``--workers`` fresh Python processes, each
   running its share one after another at one thread, with no scheduler, no manifest and no
   aggregation. This is what the machine itself allows in parallel (each process pays its
   imports, as a Dask worker does, and the runs share the caches and memory bandwidth); the
   ratio Dask / control is the sweep's own overhead: the cluster's start and close, the
   scheduler, and the manifest and aggregation (which the serial sides pay too).

Prints the wall times (and the runs' own durations measured inside their tasks), the ratio
Dask / the faster serial side (an earlier goal, <= 0.6 on 2 cores, withdrawn: on 2 cores two BLAS
threads already use the machine), the ratio Dask / the control (the goal: <= 1.10 for runs of at
least 30 s each; where 16 cores are lent, 8 workers at least 6x faster than one-thread serial), the ratio Dask /
serial at one thread with the bound ``ceil(runs / workers) / runs`` that equal runs cannot beat
against it however small the overhead, the control's ratios, the CPU seconds each side used
(its processes and their reaped children: the ratio is the cluster's CPU overhead, which the
load hardly changes), and the load average, since on a shared machine the wall ratio depends on
what else runs. ``--threads`` is not an experiment flag here: each side sets it.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

from refimpl.threads import THREAD_VARIABLES, usable_cpus

from . import cli
from .sweep import DEFAULT_RUNNER, dask_available, log_tail, expand, parse_seeds, run_argv

# one share of the control side: its runs one after another, their results to SHARE.out
_SHARE = ("import json, sys\nfrom toy.sweep import run_task\n"
          "specs = json.load(open(sys.argv[1]))\n"
          "json.dump([run_task(s) for s in specs], open(sys.argv[1] + '.out', 'w'))")


def _cpu_seconds():
    """User + system CPU of this process and of its finished children (and theirs: a sweep's
    workers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def plain_processes(name, seeds, flags, processes, out):
    """The control side: the sweep's runs (one BLAS thread each) dealt round-robin to ``processes``
    fresh Python processes that run their shares one after another, with the environment a Dask
    nanny gives its worker (:data:`~refimpl.threads.THREAD_VARIABLES` at 1). No scheduler, manifest
    or aggregation. Returns the runs' results (:func:`toy.sweep.run_task`), or None when some run
    waits for another (a multi-run experiment with dependent variants), which a fixed deal cannot
    honour."""
    out = pathlib.Path(out)
    runs = expand(name, seeds, [], [*flags, "--threads", "1"], cli.variants, cli.check_flags)
    if any(r.peers for r in runs):
        return None
    specs = [{"argv": run_argv(r, out), "folder": str(out / r.run_id), "log": str(out / f"{r.run_id}.log"),
              "attempts": str(out / f"{r.run_id}.attempts"), "runner": DEFAULT_RUNNER} for r in runs]
    env = {**_env(), **{v: "1" for v in THREAD_VARIABLES}}
    procs = []
    try:
        for i in range(processes):
            share = out / f"share-{i}.json"
            share.write_text(json.dumps(specs[i::processes]))
            with open(f"{share}.log", "w") as log:
                procs.append((share, subprocess.Popen([sys.executable, "-c", _SHARE, str(share)], env=env,
                                                      stdout=log, stderr=subprocess.STDOUT)))
        for _, proc in procs:                # all of them, before the caller removes their folder
            proc.wait()
    finally:
        for _, proc in procs:                # only on an interruption: none is left running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for share, proc in procs:
        if proc.returncode != 0:
            tail = log_tail(pathlib.Path(f"{share}.log"), 0).replace("\n", " | ")
            raise RuntimeError(f"a control process exited with status {proc.returncode}: {tail}")
        results += json.loads(pathlib.Path(f"{share}.out").read_text())
    return results


def build_parser():
    from refimpl.harness import ArgumentParser        # usage errors in one line, exit 2
    ap = ArgumentParser(
        prog="python -m toy.bench_sweep", allow_abbrev=False,
        usage="%(prog)s [-h] [--seeds SEEDS] [--workers N] [NAME [experiment flags ...]]",
        description=__doc__.strip().splitlines()[0],
        epilog="NAME [experiment flags ...]: the experiment (python -m toy list) and its own flags, given to "
               "every run as in python -m toy sweep (default: wgan-gp-ring --quick; not --threads, which each side "
               "sets). Prints the wall and CPU times of each side, the ratio dask / fastest serial and the "
               "control's ratios (docs/performance.md).")
    ap.add_argument("--seeds", default="0-4", help="the seeds of every side: a range 0-4, or a list 0,1,3 (default 0-4)")
    ap.add_argument("--workers", type=int, default=2, metavar="N",
                    help="worker processes of the Dask side's LocalCluster, >= 1 (default 2)")
    return ap


def _checked(ap, argv):
    """``(args, name, flags, seeds)`` of the command line; a bad experiment name, seed list, worker
    count or experiment flag, or a missing Dask, is a one-line usage error (exit 2) before any run
    starts."""
    args, rest = ap.parse_known_args(argv)
    name, flags = (rest[0], rest[1:]) if rest else ("wgan-gp-ring", ["--quick"])
    from .registry import EXPERIMENTS
    if name not in EXPERIMENTS:
        what = "expected the experiment NAME before its flags, got" if name.startswith("-") else "unknown experiment"
        ap.error(f"{what} {name!r} (known: {', '.join(EXPERIMENTS)})")
    if any(f == "--threads" or f.startswith("--threads=") for f in flags):
        ap.error("--threads is set by the benchmark for each side; drop it from the experiment flags")
    if args.workers < 1:
        ap.error(f"--workers must be >= 1 (the Dask side's worker processes), got {args.workers}")
    if not dask_available():        # the sweep would fall back to serial: nothing to compare
        ap.error("the Dask side needs Dask: pip install -e '.[toy,sweep]'")
    try:
        seeds = parse_seeds(args.seeds)
        # the sweep's own expansion: the experiment's flags (and its variants under them), checked
        expand(name, seeds, [], [*flags, "--threads", "1"], cli.variants, cli.check_flags)
    except ImportError as e:
        ap.error(f"{name} needs {e.name}: pip install -e '.[toy,sweep]'")
    except ValueError as e:
        if str(e).endswith("--help)"):            # the experiment's parser already points to its --help
            ap.exit(2, f"{ap.prog}: error: {e}\n")
        ap.error(str(e))
    return args, name, flags, seeds


def _env():
    """This environment, with the toy package importable from any working directory."""
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}


def command_side(name, seeds, flags, workers, out):
    """``python -m toy sweep NAME --seeds SEEDS --workers WORKERS --out OUT FLAGS`` in a fresh
    process, as a user types it (its imports, and its workers' start and close, included).
    Returns the sweep's manifest; ``RuntimeError`` with the end of its output if it failed."""
    out = pathlib.Path(out)
    cmd = [sys.executable, "-m", "toy", "sweep", name, "--seeds", seeds, "--workers", str(workers),
           "--out", str(out / "sweep"), *flags]
    with open(out / "output.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env())
    if rc != 0:
        raise RuntimeError(f"exit status {rc}: {log_tail(out / 'output.log', 0).replace(chr(10), ' | ')}")
    return json.loads((out / "sweep" / "sweep.json").read_text())


def main(argv=None) -> int:
    """``python -m toy.bench_sweep ...``: 0, 1 when a run failed, 2 (one line) on bad flags."""
    ap = build_parser()
    args, name, flags, seeds = _checked(ap, argv)
    cores = usable_cpus()
    sides = [("serial, 1 thread", 0, ["--threads", "1"]),
             (f"serial, {cores} threads", 0, ["--threads", str(cores)]),
             (f"dask, {args.workers} workers", args.workers, [])]
    if cores == 1:
        del sides[1]
    times, cpu = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:    # files in the page cache; untimed
        try:
            command_side(name, str(max(seeds) + 1), [*flags, "--threads", "1"], 0, tmp)
        except RuntimeError as e:
            print(f"error: the untimed warm-up run failed: {e}", file=sys.stderr)
            return 1
    print(f"{name} {' '.join(flags)}, seeds {args.seeds}; load average before {os.getloadavg()[0]:.2f}")
    for label, workers, extra in sides:
        with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:
            t0, c0 = time.perf_counter(), _cpu_seconds()
            try:
                manifest = command_side(name, args.seeds, [*flags, *extra], workers, tmp)
            except RuntimeError as e:
                print(f"error: the {label} side failed: {e}", file=sys.stderr)
                return 1
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
    plain_label = f"{args.workers} plain processes"
    with tempfile.TemporaryDirectory(prefix="bench_sweep-") as tmp:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        try:
            results = plain_processes(name, seeds, flags, args.workers, tmp)
        except RuntimeError as e:
            print(f"error: the {plain_label} side failed: {e}", file=sys.stderr)
            return 1
        times[plain_label], cpu[plain_label] = time.perf_counter() - t0, _cpu_seconds() - c0
    if results is None:
        print(f"{plain_label:>18}: not run ({name}'s variants wait for one another)")
    elif any(r["status"] != "done" for r in results):
        print(f"error: runs failed ({plain_label}): {[r['error'] for r in results if r['status'] != 'done']}",
              file=sys.stderr)
        return 1
    else:
        inside = [r["seconds"] for r in results]
        print(f"{plain_label:>18}: {times[plain_label]:7.1f} s wall, {cpu[plain_label]:6.1f} s CPU for "
              f"{len(inside)} runs dealt round-robin, no scheduler (each run {min(inside):.1f}-{max(inside):.1f} s)")
    serial_label = min((lab for lab, _, _ in sides[:-1]), key=times.get)
    bound = math.ceil(n_runs / args.workers) / n_runs
    print(f"ratio dask / fastest serial ({serial_label}): {times[dask_label] / times[serial_label]:.2f} wall "
          f"; dask / serial, 1 thread: {times[dask_label] / times[sides[0][0]]:.2f} wall "
          f"(bound for equal runs without overhead {bound:.2f}), "
          f"{cpu[dask_label] / cpu[sides[0][0]]:.2f} CPU; "
          f"load average after {os.getloadavg()[0]:.2f}")
    if results is not None:
        print(f"control: {plain_label} / fastest serial {times[plain_label] / times[serial_label]:.2f} wall "
              f"(the machine's own limit, no scheduler); dask / {plain_label} "
              f"{times[dask_label] / times[plain_label]:.2f} "
              f"(the sweep's overhead: cluster, scheduler, manifest, aggregation; goal <= 1.10 for runs of >= 30 s, "
              f"these took {min(inside):.1f}-{max(inside):.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
