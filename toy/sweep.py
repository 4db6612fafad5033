"""Sweeps: one experiment over seeds and settings, every run an independent task on Dask distributed.

    python -m toy sweep NAME --seeds 0-4 [--set key=v1,v2 ...] [--workers N | --scheduler ADDRESS]
                        --out DIR [experiment flags ...]

A *run* is one named experiment, ``toy.cli.run(NAME, flags)`` (:mod:`toy.registry`'s entry through
:func:`refimpl.harness.execute`), recorded as its argument list ``argv = [NAME, "--seed", S, "--out",
DIR/RUN_ID, *experiment_flags, *setting_flags]``; it returns an exit status and writes its
standard outputs (``metrics.json`` last) to its folder.
The sweep expands the runs (setting x seed; a *variant* is one combination of ``--set``
values; a multi-run experiment's own variants (:func:`toy.cli.variants`) multiply in as
``variant=KEY`` with ``--variant KEY``, and its own summary is written per setting to
``experiment/SETTING/``), runs them on a ``dask.distributed`` cluster (by default a ``LocalCluster`` of
single-threaded worker processes; ``--scheduler`` for an existing one, e.g. from
dask-jobqueue) or, when Dask is not installed or ``--workers 0`` is given, one after the other
in this process, then aggregates them (:mod:`toy.aggregate`).

Files in ``DIR``: ``RUN_ID/`` (the run's outputs), ``sweep.json`` (the manifest: every run's
arguments, status, attempts, seconds and error), ``logs/RUN_ID.log`` (the run's stdout and
stderr), ``summary.json``, ``summary.csv``, ``curves.csv`` and ``curve-METRIC.png``.

Robustness. A run whose ``metrics.json`` exists and whose recorded arguments and runner equal
the new ones is skipped on relaunch (a manifest's ``"toy.__main__:main"`` is the toy runner). A run folder left by a different argument list, or by an interrupted
run without a checkpoint, is renamed ``RUN_ID.old-K`` (never deleted); an interrupted run with
a checkpoint is continued with ``--resume``. A failed run (non-zero exit or exception) is
recorded and the others go on. A run whose worker process died is run again once: Dask's
scheduler reschedules a task whose worker died (up to ``distributed.scheduler.allowed-failures``
times, 3 by default), and the task counts the attempts that actually *started* in
``logs/RUN_ID.attempts``, refusing a third one (a task merely queued on the dying worker is not
charged; Dask's own count charges it). Dask's ``retries=1`` re-runs a task that raised outside
the run itself. Ctrl-C stops the sweep: the runs it cut short are recorded ``interrupted``, not
failed, and the relaunch resumes them.

Output: progress and notes on stderr (durations as the runs print them,
:func:`refimpl.progress.fmt_time`); when the runs are over, the results on stdout
(:func:`print_results`: a table of the main metrics per variant, ``undecided`` below 3 seeds,
and where ``summary.csv`` is).

The module is split by job: :mod:`toy.sweep_runs` (expansion), :mod:`toy.sweep_task` (one run as
a task), :mod:`toy.sweep_progress` (manifest and progress), :mod:`toy.sweep_exec` (serial and Dask
executors); this one keeps the sweep itself and its command line, and re-exports their names.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket
import sys

from refimpl.threads import usable_cpus

from . import cli
from .common import write_json
from .sweep_runs import RESERVED, Run, expand, parse_seeds, parse_setting, run_argv, safe_value  # noqa: F401
from .sweep_task import (MAX_ATTEMPTS, MTIME_SLACK, TOY_RUNNER, has_checkpoint, log_tail, prepare, run_task,  # noqa: F401
                         runner_name, set_aside, tail_text)
from .sweep_progress import MANIFEST, Progress, fmt_duration, load_manifest, run_estimate  # noqa: F401
from .sweep_exec import CLUSTER_CONFIG, dashboard_link, dask_available, execute_dask, execute_serial  # noqa: F401

DEFAULT_RUNNER = TOY_RUNNER


# ----------------------------------------------------------------------------- the sweep
def _acquire(path: pathlib.Path):
    """Create the lock file ``path`` (pid@host) so that two sweeps never write one manifest; a
    lock left by a dead process on this host is taken over."""
    me = f"{os.getpid()}@{socket.gethostname()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = path.read_text().strip()
            pid, _, host = holder.partition("@")
            if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
                raise RuntimeError(f"another sweep ({holder}) is running in {path.parent}; "
                                   f"if it is not, remove {path}") from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        return
    raise RuntimeError(f"could not take the lock {path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


_OWN_FILES = {".sweep.lock", "logs"}       # what a sweep leaves before its manifest exists


def _check_folder(out: pathlib.Path, name: str):
    """``ValueError`` unless ``out`` is new, empty, or this experiment's sweep folder: a sweep
    never writes into a folder of the user's, or over another experiment's sweep."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {out} is not a folder")
    if (out / MANIFEST).exists():
        other = load_manifest(out).get("experiment")
        if other not in (None, name):
            raise ValueError(f"--out {out} holds a sweep of {other}, not {name}; choose another --out")
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_FILES)
    if foreign:
        raise ValueError(f"--out {out} is not empty and holds no sweep ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty folder")


def _check_scheduler(address: str):
    """``ValueError`` (one line) unless a Dask client can connect to ``address`` within 30 s."""
    import logging
    from distributed import Client
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        Client(address, timeout="30s").close()
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise ValueError(f"--scheduler {address}: cannot connect ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'no reply'})") from None
    finally:
        quiet.setLevel(level)


AGGREGATES = ("summary.json", "summary.csv", "curves.csv", "experiment")     # and curve-*.png


def _set_aside_aggregates(out: pathlib.Path):
    """Move the aggregates of the previous arguments into ``out/aggregates.old-N`` (returned), so
    that relaunching with other arguments never overwrites them; None if there were none."""
    old = [out / a for a in AGGREGATES if (out / a).exists()] + sorted(out.glob("curve-*.png"))
    if not old:
        return None
    n = 1
    while (out / f"aggregates.old-{n}").exists():
        n += 1
    dest = out / f"aggregates.old-{n}"
    dest.mkdir()
    for path in old:
        path.rename(dest / path.name)
    return dest


def _canonical(runner, argv):
    """The run's arguments as the experiment parses them (flag order and spelling do not matter),
    the sweep folder aside; the argument list itself for runners without a parser here."""
    build = _own(runner, "build_parser")
    if build is not None and argv:
        try:
            ap = build(argv[0])
            ap.error = lambda message: (_ for _ in ()).throw(ValueError(message))
            ns = vars(ap.parse_args(list(argv[1:])))
        except (SystemExit, ValueError, KeyError):
            ns = None
        if ns is not None:
            ns.pop("out", None)
            ns["peer"] = sorted(f"{k}={pathlib.PurePath(v).name}" for k, _, v in
                                (item.partition("=") for item in ns.get("peer") or []))
            return ("parsed", argv[0], sorted((k, repr(v)) for k, v in ns.items()))
    return ("argv", _argv_key(argv))


def _argv_key(args):
    rest = list(args[:4]) + list(args[5:])
    return [f"{a.partition('=')[0]}={pathlib.PurePath(a.partition('=')[2]).name}"
            if i and rest[i - 1] == "--peer" else a for i, a in enumerate(rest)]


def _same_args(recorded, argv, runner=DEFAULT_RUNNER) -> bool:
    """Equal arguments, the sweep folder aside: the ``--out`` value, and the folder part of each
    ``--peer KEY=FOLDER`` (its run id is kept), since the sweep folder may be reached by
    another path on relaunch; with the toy runner, as the experiment parses them (the order of
    the flags does not matter)."""
    if not isinstance(recorded, list):
        return False
    runner = runner_name(runner)
    return _canonical(runner, recorded) == _canonical(runner, argv)


def _own(runner, what):
    """:mod:`toy.cli`'s ``variants`` / ``check_flags`` / ``summarise`` / ``build_parser`` for the toy
    runner; None for other runners."""
    return getattr(cli, what) if runner_name(runner) == TOY_RUNNER else None


def sweep(name, seeds, settings=(), passthrough=(), *, out, workers=None, scheduler=None,
          runner=DEFAULT_RUNNER, stream=None, aggregate=True) -> dict:
    """Run (or resume) a sweep into ``out`` and aggregate it; returns the manifest.

    Parameters
    ----------
    name : the experiment (as in ``python -m toy list``).
    seeds : list of int. settings : [(key, [values])]. passthrough : the experiment's flags
        (``--threads 1`` is added for the toy and gpu runners unless ``--threads`` is given).
    workers : LocalCluster worker processes (default: the CPUs this process may use); 0 runs
        serially in this process, as does a missing Dask.
    scheduler : address of an existing Dask scheduler (``tcp://host:8786``); ``out`` must then be
        on a filesystem the workers share.
    runner : :data:`DEFAULT_RUNNER` (``"toy"``, also spelt ``"toy.__main__:main"``): each run is
        ``toy.cli.run(NAME, flags)``; a multi-run experiment's own variants are expanded
        (:func:`expand`) and its own summary is written per setting into
        ``out/experiment/SETTING`` (:func:`toy.cli.summarise`). Otherwise ``"module:function"``,
        run as ``function(argv) -> exit status`` (``gpu.__main__:main`` has that contract).
    """
    stream = stream or sys.stderr
    runner = runner_name(runner)
    out = pathlib.Path(out).absolute()         # workers may run in another directory, or on other hosts
    if runner in (DEFAULT_RUNNER, "gpu.__main__:main") and not any(
            a == "--threads" or a.startswith("--threads=") for a in passthrough):
        # one BLAS thread per run unless the user says otherwise: the run layer would otherwise give
        # every run all the machine's cores, and N workers x N threads oversubscribe the CPUs
        passthrough = [*passthrough, "--threads", "1"]
    runs = expand(name, seeds, settings, passthrough, _own(runner, "variants"), _own(runner, "check_flags"))
    if workers is not None and workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    use_dask = workers != 0 or scheduler is not None
    if use_dask and not dask_available():
        if scheduler is not None:
            raise RuntimeError("--scheduler needs Dask: pip install 'refimpl[sweep]'")
        print(f"note: Dask is not installed (pip install 'refimpl[sweep]'): the {len(runs)} runs run serially "
              "in this process", file=stream, flush=True)
        use_dask = False
    _check_folder(out, name)
    if use_dask and scheduler is not None:
        _check_scheduler(scheduler)             # before anything is written
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create the sweep folder: {e.strerror or e}") from None
    lock = out / ".sweep.lock"
    _acquire(lock)
    try:
        return _sweep(name, runs, seeds, settings, passthrough, out, workers, scheduler, runner, stream,
                      use_dask, aggregate)
    finally:
        lock.unlink(missing_ok=True)


def _sweep(name, runs, seeds, settings, passthrough, out, workers, scheduler, runner, stream, use_dask, aggregate):
    (out / "logs").mkdir(exist_ok=True)
    manifest = load_manifest(out)
    same_runner = runner_name(manifest.get("runner", runner)) == runner
    manifest.update({"experiment": name, "seeds": list(seeds), "settings": [[k, list(v)] for k, v in settings],
                     "passthrough": list(passthrough), "runner": runner,
                     "order": [r.run_id for r in runs]})
    entries = manifest["runs"]
    jobs, skipped, resumed, aggregates_moved = [], 0, 0, None
    for run in runs:
        argv = run_argv(run, out)
        folder = out / run.run_id
        old = entries.get(run.run_id, {})
        same = same_runner and _same_args(old.get("argv"), argv, runner)
        if (folder / "metrics.json").exists() and same:
            skipped += 1
            old["status"] = "done"
            continue
        if same and old.get("status") == "interrupted":
            resumed += 1
        entry = {"variant": run.variant, "seed": run.seed, "setting": dict(run.setting), "argv": argv,
                 "status": "queued", "error": None, "attempts": 0}
        if folder.exists() and any(folder.iterdir()) and not same:
            entry["set_aside"] = str(set_aside(folder))
            print(f"sweep: {folder.name} held another run's outputs: kept as {entry['set_aside']}", file=stream)
            if aggregate and not aggregates_moved:
                aggregates_moved = [_set_aside_aggregates(out)]
                if aggregates_moved[0] is not None:
                    print(f"sweep: the previous arguments' aggregates are kept in {aggregates_moved[0]}",
                          file=stream)
        attempts = out / "logs" / f"{run.run_id}.attempts"
        attempts.unlink(missing_ok=True)
        entries[run.run_id] = entry
        jobs.append((run, {"argv": argv, "folder": str(folder), "log": str(out / "logs" / f"{run.run_id}.log"),
                           "attempts": str(attempts), "runner": runner}))
    write_json(out / MANIFEST, manifest)      # arguments recorded before any run starts
    if workers is None:
        workers = usable_cpus()
    workers = max(1, min(workers, len(jobs))) if jobs else 0
    progress = Progress(len(runs), skipped, workers if use_dask else 1, stream,
                        folders={run.run_id: spec["folder"] for run, spec in jobs})
    mode = ("nothing to run" if not jobs else ("scheduler " + scheduler) if scheduler else
            (f"LocalCluster of {workers} worker{'s' * (workers != 1)}" if use_dask else "serial"))
    before = f"{skipped} finished before" + (f", {resumed} interrupted before: resumed" if resumed else "")
    print(f"sweep: {name}, {len(runs)} run{'s' * (len(runs) != 1)} ({before}), {mode}", file=stream, flush=True)
    if not jobs:
        print(progress.line(), file=stream, flush=True)

    def record(run, res):
        e = entries[run.run_id]
        e.update({k: res[k] for k in ("status", "error", "seconds", "host", "pid") if k in res})
        e["attempts"] = res.get("attempt", e["attempts"])
        if res["status"] != "done" and "attempt" not in res:      # worker died past the allowed retry
            counter = out / "logs" / f"{run.run_id}.attempts"
            e["attempts"] = int(counter.read_text() or 0) if counter.exists() else e["attempts"]
        write_json(out / MANIFEST, manifest)
        progress.update(res["status"], run.run_id, res.get("error"))

    try:
        if jobs and use_dask:
            execute_dask(jobs, record, workers, scheduler, progress)
        elif jobs:
            with progress.heartbeat():
                execute_serial(jobs, record)
    except KeyboardInterrupt:
        for run, spec in jobs:               # runs started in this session and not recorded as ended
            if entries[run.run_id]["status"] == "queued" and \
                    "== attempt" in tail_text(pathlib.Path(spec["log"]), 1 << 20, progress.started):
                entries[run.run_id].update(status="interrupted", error="interrupted (Ctrl-C)")
        # interrupted, not failed: the relaunch resumes them (a checkpoint: --resume; none: afresh)
        progress.stop(sum(entries[run.run_id]["status"] == "interrupted" for run, _ in jobs))
        raise
    finally:
        write_json(out / MANIFEST, manifest)
    if aggregate:
        from .aggregate import aggregate_sweep
        done = [r for r in runs if entries[r.run_id]["status"] == "done"]
        aggregate_sweep(out, [(r.run_id, r.variant) for r in done], stream)
        own = _own(runner, "summarise")
        for setting in dict.fromkeys(r.setting for r in done if r.key is not None):
            label = ",".join(f"{k}={safe_value(v)}" for k, v in setting) or "default"
            flags = [x for k, v in setting for x in (f"--{k}", v)]
            try:
                own(name, [*passthrough, *flags], [(r.key, r.seed, out / r.run_id) for r in done if r.setting == setting],
                    out / "experiment" / label)
            except Exception as e:     # the runs and the sweep's statistics stand without it
                print(f"note: {name}'s own summary of {label} failed: {type(e).__name__}: {e}", file=stream)
    return manifest


def print_results(name, out, manifest, stream=None):
    """The sweep's results on stdout (its progress and notes are on stderr): a short table of the
    finished runs' main metrics per variant (:func:`toy.aggregate.results_table`), and where the
    summary of every metric is."""
    from .aggregate import DECIDES_AT, results_table
    stream = stream or sys.stdout
    out = pathlib.Path(out)
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return
    seeds = {}
    for rid in manifest["order"]:
        e = manifest["runs"][rid]
        if e["status"] == "done":
            seeds.setdefault(e.get("variant"), []).append(e.get("seed"))
    notes = {s.get("interval", "") for v in summary.get("variants", {}).values() for s in v["metrics"].values()}
    legend = (f"; undecided: n < {DECIDES_AT} seeds cannot decide" * any(x.startswith("undecided") for x in notes)
              + "; *: clipped to the quantity's possible range" * any("clipped" in x for x in notes))
    print(f"{name}: mean [95% t-interval] over seeds{legend}", file=stream)
    for line in results_table(summary, seeds):
        print("  " + line, file=stream)
    own = f"; {name}'s own summary in {out / 'experiment'}" if (out / "experiment").is_dir() else ""
    print(f"summary of every metric: {out / 'summary.csv'} (and summary.json, curves.csv){own}", file=stream,
          flush=True)


def build_parser():
    from refimpl.harness import ArgumentParser        # usage errors in one line, exit 2
    ap = ArgumentParser(
        prog="python -m toy sweep", allow_abbrev=False,
        description="Run one experiment over seeds and settings on Dask (or serially without it), then aggregate. "
                    "Unknown flags (--quick, --iters, --lam, ...) pass through to every run.")
    ap.add_argument("name", help="experiment (python -m toy list)")
    ap.add_argument("--seeds", required=True, help="a range 0-4, or a list 0,1,3")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                    help="one experiment flag over several values (repeatable; variants are the product)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None,
                   help="LocalCluster worker processes (default: the CPU count; 0: serially in this process)")
    g.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    ap.add_argument("--out", type=pathlib.Path, required=True, help="sweep folder")
    return ap


def main(argv=None) -> int:
    """``python -m toy sweep ...``: 0 when every run finished, 1 when some failed, 2 on bad flags, 130
    when interrupted (the relaunch resumes). The results table goes to stdout, the rest to stderr."""
    ap = build_parser()
    args, passthrough = ap.parse_known_args(argv)
    from .registry import EXPERIMENTS
    if args.name not in EXPERIMENTS:
        ap.error(f"unknown experiment {args.name!r} (known: {', '.join(EXPERIMENTS)})")
    if str(args.out) in ("", "."):
        ap.error("--out must name a sweep folder")
    try:
        seeds = parse_seeds(args.seeds)
        settings = [parse_setting(s) for s in args.set]
        manifest = sweep(args.name, seeds, settings, passthrough, out=args.out, workers=args.workers,
                         scheduler=args.scheduler)
    except ImportError as e:
        print(f"error: {args.name} needs {e.name}: pip install -e '.[toy,sweep]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; relaunch the same command to resume the sweep in {args.out}", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_results(args.name, args.out, manifest)
    failed = [k for k in manifest["order"] if manifest["runs"][k]["status"] != "done"]
    if failed:
        print(f"sweep: {len(failed)} run(s) failed: {', '.join(failed)} (errors in {args.out / MANIFEST}, "
              f"logs in {args.out / 'logs'})", file=sys.stderr)
        return 1
    print(f"sweep: outputs in {args.out}", file=sys.stderr)
    return 0
