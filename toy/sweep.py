"""Sweeps: one experiment over seeds and settings, every run an independent task on Dask distributed.

    python -m toy sweep NAME --seeds 0-4 [--set key=v1,v2 ...] [--workers N | --scheduler ADDRESS]
                        --out DIR [experiment flags ...]

A *run* is the experiment's own command line, ``toy.__main__.main(argv)`` with
``argv = [NAME, "--seed", S, "--out", DIR/RUN_ID, *experiment_flags, *setting_flags]``; it
returns an exit status and writes its standard outputs (``metrics.json`` last) to its folder.
The sweep expands the runs (setting x seed; a *variant* is one combination of ``--set``
values; a multi-run experiment's own variants (:func:`toy.__main__.variants`) multiply in as
``variant=KEY`` with ``--variant KEY``, and its own summary is written per setting to
``experiment/SETTING/``), runs them on a ``dask.distributed`` cluster (by default a ``LocalCluster`` of
single-threaded worker processes; ``--scheduler`` for an existing one, e.g. from
dask-jobqueue) or, when Dask is not installed or ``--workers 0`` is given, one after the other
in this process, then aggregates them (:mod:`toy.aggregate`).

Files in ``DIR``: ``RUN_ID/`` (the run's outputs), ``sweep.json`` (the manifest: every run's
arguments, status, attempts, seconds and error), ``logs/RUN_ID.log`` (the run's stdout and
stderr), ``summary.json``, ``summary.csv``, ``curves.csv`` and ``curve-METRIC.png``.

Robustness. A run whose ``metrics.json`` exists and whose recorded arguments equal the new ones
is skipped on relaunch. A run folder left by a different argument list, or by an interrupted
run without a checkpoint, is renamed ``RUN_ID.old-K`` (never deleted); an interrupted run with
a checkpoint is continued with ``--resume``. A failed run (non-zero exit or exception) is
recorded and the others go on. A run whose worker process died is run again once: Dask's
scheduler reschedules a task whose worker died (up to ``distributed.scheduler.allowed-failures``
times, 3 by default), and the task counts the attempts that actually *started* in
``logs/RUN_ID.attempts``, refusing a third one (a task merely queued on the dying worker is not
charged; Dask's own count charges it). Dask's ``retries=1`` re-runs a task that raised outside
the run itself.
"""
from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
import pathlib
import re
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass

from refimpl.harness import PROGRESS
from refimpl.threads import usable_cpus

from .common import write_json

DEFAULT_RUNNER = "toy.__main__:main"
MANIFEST = "sweep.json"
MAX_ATTEMPTS = 2          # a run whose worker died is run once more, never a third time
# the LocalCluster's configuration. Scheduler: when Dask queues the tasks (more than twice the
# worker threads), a worker holds only the run it executes (the default saturation 1.1 sends a
# second one, which a dying worker would take down with it). Workers: no statistical profiler (it
# samples the running task's stack every 10 ms for the dashboard's Profile page, of no use for
# tasks that are whole runs; off, a sbe-grid sweep took about 3% less time, undecided over 7
# pairs: docs/performance.md)
CLUSTER_CONFIG = {"distributed.scheduler.worker-saturation": 1.0, "distributed.worker.profile.enabled": False}
_RESERVED = ("--seed", "--out", "--resume", "--seeds", "--variant", "--peer")


# ----------------------------------------------------------------------------- expansion
@dataclass(frozen=True)
class Run:
    """One task of a sweep, writing to ``DIR/run_id`` (its arguments: :func:`run_argv`)."""
    run_id: str
    variant: str                      # "default", or the settings as "key=v,key=v"
    seed: int
    setting: tuple                    # ((key, value), ...), in --set order
    name: str                         # the experiment
    flags: tuple                      # the experiment's flags, then the setting's (then --variant KEY)
    key: str | None = None            # the experiment's own variant (multi-run experiments), else None
    peers: tuple = ()                 # ((variant key, run id), ...): runs of the same seed to finish first


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,1,3"`` -> [0, 1, 3]; ranges and lists mix (``"0-2,7"``).

    Raises ``ValueError`` for anything else, negative seeds, empty or reversed ranges, repeats.
    """
    seeds = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--seeds: expected a range like 0-4 or a list like 0,1,3, got {text!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"--seeds: empty range {part.strip()!r}")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: a seed is repeated in {text!r}")
    return seeds


def parse_setting(text: str) -> tuple[str, list[str]]:
    """``"lam=1,10"`` -> ("lam", ["1", "10"]); the key is the experiment's flag without ``--``
    (``n_critic`` and ``n-critic`` both mean ``--n-critic``)."""
    key, sep, values = str(text).partition("=")
    key = key.strip().lstrip("-").replace("_", "-")
    vals = [v.strip() for v in values.split(",")]
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key) or not all(vals):
        raise ValueError(f"--set: expected key=v1,v2,... (e.g. lam=1,10), got {text!r}")
    if f"--{key}" in _RESERVED:
        raise ValueError(f"--set {key}: the sweep sets --{key} itself")
    if len(set(vals)) != len(vals):
        raise ValueError(f"--set {key}: a value is repeated in {text!r}")
    return key, vals


def _safe(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "-", value)


def expand(name: str, seeds, settings=(), passthrough=(), variants=None, check=None) -> list[Run]:
    """Every (setting, variant, seed) run of the sweep, in that nesting (so a run comes after the
    runs it builds on).

    ``settings``: [(key, [values])] from :func:`parse_setting`; their Cartesian product are the
    settings. ``passthrough``: the experiment's own flags, given to every run unchanged.
    ``variants(name, flags) -> [(Variant, flags)] | None`` lists a multi-run experiment's own
    variants under a setting's flags (:func:`toy.__main__.variants`); each becomes
    ``variant=KEY`` in the run id and the variant name. None (or a None result): one run per
    setting and seed. ``check(name, flags)`` (:func:`toy.__main__.check_flags`), if given, is
    called once per setting before anything else and raises ``ValueError`` for flags (passthrough
    or ``--set`` values) the experiment refuses, so a bad flag stops the sweep before any run.
    """
    keys = [k for k, _ in settings]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"--set: the key {twice[0]} is given twice; give its values once, comma-separated")
    bad = [a for a in passthrough if a.split("=")[0] in _RESERVED]
    if bad:
        raise ValueError(f"{bad[0].split('=')[0]} is set by the sweep for every run; drop it from the experiment flags")
    combos = list(itertools.product(*[vals for _, vals in settings]))
    for combo in combos if check else ():
        check(name, [*passthrough, *[x for k, v in zip(keys, combo) for x in (f"--{k}", v)]])
    runs, ids = [], set()
    for combo in combos:
        setting = tuple(zip(keys, combo))
        parts = [f"{k}={_safe(v)}" for k, v in setting]
        flags = [x for k, v in setting for x in (f"--{k}", v)]
        own = variants(name, [*passthrough, *flags]) if variants else None
        for v, vflags in own or [(None, [])]:
            vparts = parts + ([f"variant={_safe(v.key)}"] if v else [])
            label = ",".join([f"{k}={val}" for k, val in setting] + ([f"variant={v.key}"] if v else [])) or "default"
            for s in seeds:
                run_id = ",".join(vparts + [f"seed={s}"])
                if run_id in ids:
                    raise ValueError(f"two runs would share the folder {run_id!r}; use distinct setting values")
                ids.add(run_id)
                peers = tuple((a, ",".join(parts + [f"variant={_safe(a)}", f"seed={s}"])) for a in (v.after if v else ()))
                runs.append(Run(run_id, label, int(s), setting, name, (*passthrough, *flags, *vflags),
                                v.key if v else None, peers))
    return runs


def run_argv(run: Run, out: pathlib.Path) -> list[str]:
    """The runner's arguments: ``[NAME, "--seed", S, "--out", out/RUN_ID, *flags, --peer KEY=out/RUN_ID ...]``."""
    peers = [x for key, rid in run.peers for x in ("--peer", f"{key}={out / rid}")]
    return [run.name, "--seed", str(run.seed), "--out", str(out / run.run_id), *run.flags, *peers]


# ----------------------------------------------------------------------------- the task
def _has_checkpoint(folder: pathlib.Path) -> bool:
    return any(folder.glob("checkpoint*")) or any(folder.glob("*/checkpoint*"))


def set_aside(folder: pathlib.Path) -> pathlib.Path:
    """Rename ``folder`` to the first free ``folder.old-K`` (nothing is deleted); returns the new path."""
    for k in itertools.count(1):
        dest = folder.with_name(f"{folder.name}.old-{k}")
        if not dest.exists():
            folder.rename(dest)
            return dest


def _prepare(folder: pathlib.Path) -> list[str]:
    """Flags that continue what an earlier attempt of the same arguments left in ``folder``:
    ``--resume`` if it holds a checkpoint; otherwise a non-empty folder is set aside and the run
    starts afresh. (The caller has set aside folders of other arguments.)"""
    if not folder.exists() or not any(folder.iterdir()):
        return []
    if _has_checkpoint(folder):
        return ["--resume"]
    set_aside(folder)
    return []


def log_tail(path: pathlib.Path, start: int, lines=3) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


#: how far a file's modification time may lag the ``time.time()`` of the same moment: the kernel
#: stamps files from a coarse clock (one tick behind), some file systems to the second or two
MTIME_SLACK = 2.0


def _tail_text(path: pathlib.Path, nbytes: int, since=None) -> str:
    """The last ``nbytes`` of ``path`` as text ("" if missing, or not modified since ``since``,
    a ``time.time()``, less :data:`MTIME_SLACK`)."""
    try:
        with open(path, "rb") as fh:
            if since is not None and os.fstat(fh.fileno()).st_mtime < since - MTIME_SLACK:
                return ""
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - nbytes))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def run_task(spec: dict, *after) -> dict:
    """Execute one run (on a Dask worker, or in this process). BLAS is held at one thread.

    ``spec``: ``argv`` (the runner's arguments), ``folder`` (the run's ``--out``), ``log`` (file the
    run's stdout/stderr are appended to), ``attempts`` (a counter file), ``runner``
    (``"module:function"`` taking ``argv`` and returning an exit status).
    ``after``: results of the runs this one builds on (Dask waits for them; unused here).
    Returns ``{"status": "done"|"failed", "rc", "error", "attempt", "seconds", "host", "pid"}``;
    the run's own errors (exceptions, ``SystemExit``, non-zero status) are caught and returned.
    """
    from threadpoolctl import threadpool_limits
    t0 = time.perf_counter()
    folder, log, counter = pathlib.Path(spec["folder"]), pathlib.Path(spec["log"]), pathlib.Path(spec["attempts"])
    attempt = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt > MAX_ATTEMPTS:
        return {"status": "failed", "rc": None, "attempt": MAX_ATTEMPTS, "seconds": 0.0, "host": socket.gethostname(),
                "pid": os.getpid(), "error": f"its worker process died during each of {MAX_ATTEMPTS} attempts "
                                              "(killed, or out of memory?)"}
    if (folder / "metrics.json").exists():      # an earlier attempt finished, then its worker died
        return {"status": "done", "rc": 0, "error": None, "attempt": attempt, "seconds": 0.0,
                "host": socket.gethostname(), "pid": os.getpid()}
    argv = list(spec["argv"]) + _prepare(folder)
    module, func = spec["runner"].split(":")
    log.parent.mkdir(parents=True, exist_ok=True)
    error = None
    with open(log, "a") as fh:
        start = fh.tell()
        print(f"== attempt {attempt} on {socket.gethostname()} pid {os.getpid()}: {' '.join(argv)}", file=fh, flush=True)
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh), threadpool_limits(limits=1):
            try:
                rc = getattr(importlib.import_module(module), func)(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:       # the run's own failure: recorded, the sweep goes on
                traceback.print_exc(file=fh)
                rc, error = 1, traceback.format_exc(limit=-3).strip().splitlines()[-1]
    rc = 1 if rc is None else int(rc)
    if rc == 0 and not (folder / "metrics.json").exists():
        rc, error = 1, "exit status 0 but no metrics.json was written"
    if rc != 0 and error is None:
        error = f"exit status {rc}: {log_tail(log, start)}"
    return {"status": "done" if rc == 0 else "failed", "rc": rc, "error": error, "attempt": attempt,
            "seconds": round(time.perf_counter() - t0, 3), "host": socket.gethostname(), "pid": os.getpid()}


# ----------------------------------------------------------------------------- manifest and progress
def load_manifest(out: pathlib.Path) -> dict:
    path = out / MANIFEST
    if not path.exists():
        return {"runs": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is unreadable ({e}); move it away to start the sweep afresh") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        raise ValueError(f"{path} is not a sweep manifest; move it away or choose another --out")
    return data


class Progress:
    """Counts runs done / running / failed and prints one line per change. The ETA comes from the
    running runs' own progress events (``progress.json`` in their folders, written by
    :func:`refimpl.train.train`'s progress hook): the longest time left, plus the queued runs in rounds of
    ``slots``, each as long as the running ones' mean; when no running run has printed one yet,
    from the throughput of the runs finished in this session (elapsed / finished x remaining)."""

    def __init__(self, total, skipped, slots, stream, folders=None):
        self.total, self.skipped, self.slots, self.stream = total, skipped, max(slots, 1), stream
        self.folders = dict(folders or {})       # run id -> run folder, for the runs of this session
        self.done = self.failed = 0
        self.t0, self.started = time.perf_counter(), time.time()

    def _from_events(self, queued):
        spans = [t for t in (_run_estimate(f, self.started) for f in self.folders.values()) if t is not None]
        if not spans:
            return None
        mean = sum(e + l for e, l in spans) / len(spans)
        return max(l for _, l in spans) + -(-max(queued - len(spans), 0) // self.slots) * mean

    def line(self):
        finished = self.done + self.failed
        left = self.total - self.skipped - finished
        running = min(left, self.slots)
        el = time.perf_counter() - self.t0
        guess = self._from_events(left) if left else None
        if not left:
            eta = "0s"
        elif guess is not None:
            eta = f"~{_fmt(guess)} (from the runs' own estimates)"
        elif finished:
            eta = f"~{_fmt(el / finished * left)}"
        else:
            eta = "?"
        return (f"sweep: {self.done + self.skipped}/{self.total} done ({self.skipped} skipped), {running} running, "
                f"{left - running} queued, {self.failed} failed | {_fmt(el)} elapsed, ETA {eta}")

    @contextlib.contextmanager
    def heartbeat(self, every=30.0):
        """Print :meth:`line` every ``every`` seconds while the block runs (Dask runs log to files,
        so without it a sweep of long runs would be silent until the first one ends)."""
        stop = threading.Event()

        def beat():
            while not stop.wait(every):
                print(self.line(), file=self.stream, flush=True)
        t = threading.Thread(target=beat, name="sweep-heartbeat", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()

    def update(self, status, run_id, error=None):
        self.folders.pop(run_id, None)
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        msg = f"  {status}: {run_id}" + (f" ({error})" if error else "")
        print(msg + "\n" + self.line(), file=self.stream, flush=True)


def _fmt(seconds):
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


def _run_estimate(folder, since=None):
    """``(elapsed, left)`` seconds from the latest progress event of the run in ``folder`` (its
    training loop's ``progress.json``, :func:`refimpl.harness.train_run`; in the folder or, for a
    multi-run experiment, one level below), or None: no event since ``since`` (a ``time.time()``)
    or none with an estimate yet."""
    folder, best = pathlib.Path(folder), None
    for path in (folder / PROGRESS, *folder.glob(f"*/{PROGRESS}")):
        try:
            event = json.loads(path.read_text())
        except (OSError, ValueError):                # not there yet, or replaced while read
            continue
        if event.get("left_seconds") is None or (since is not None and event["time"] < since):
            continue
        if best is None or event["time"] > best["time"]:
            best = event
    return None if best is None else (best["elapsed_seconds"], best["left_seconds"])


# ----------------------------------------------------------------------------- executors
def dask_available():
    try:
        import distributed  # noqa: F401
        return True
    except ImportError:
        return False


def _execute_serial(jobs, record):
    for run, spec in jobs:
        res = run_task(spec)
        if res["rc"] == 130:                     # the run caught Ctrl-C and checkpointed: stop the sweep
            record(run, {**res, "status": "interrupted", "error": "interrupted (Ctrl-C)"})
            raise KeyboardInterrupt
        record(run, res)


def _dashboard(client):
    """The scheduler's dashboard link, or "" when it has none (Dask returns "" or raises then)."""
    try:
        return client.dashboard_link or ""
    except (KeyError, AttributeError):
        return ""


def _execute_dask(jobs, record, workers, scheduler, progress):
    import dask
    from distributed import Client, LocalCluster, as_completed
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout="30s"))
        else:
            with dask.config.set(CLUSTER_CONFIG):
                cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True))
            client = stack.enter_context(Client(cluster))
        progress.slots = max(sum(client.nthreads().values()), 1)
        link = _dashboard(client)
        print(f"sweep: Dask scheduler {client.scheduler.address}, {progress.slots} worker threads"
              + (f", dashboard {link}" if link else ""), file=progress.stream, flush=True)
        futures, by_id = {}, {}
        for run, spec in jobs:          # a run waits for the runs it builds on (jobs are in dependency order)
            after = [by_id[rid] for _, rid in run.peers if rid in by_id]
            fut = client.submit(run_task, spec, *after, key=f"sweep-{run.run_id}-{os.urandom(4).hex()}", retries=1,
                                pure=False)
            futures[fut], by_id[run.run_id] = run, fut
        try:
            with progress.heartbeat():
                for fut in as_completed(futures):
                    run = futures[fut]
                    if fut.status == "error":
                        exc = fut.exception()
                        record(run, {"status": "failed", "rc": None, "error": f"{type(exc).__name__}: {exc}"})
                    else:
                        record(run, fut.result())
        except BaseException:
            client.cancel(list(futures))
            raise


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
    return _canonical(runner, recorded) == _canonical(runner, argv)


def _own(runner, what):
    """``toy.__main__``'s ``variants`` / ``summarise`` for the toy runner; None for other runners."""
    if runner != DEFAULT_RUNNER:
        return None
    from . import __main__ as cli
    return getattr(cli, what)


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
    runner : ``"module:function"`` run as ``function(argv) -> exit status`` (``gpu.__main__:main``
        has the same contract). With the toy runner a multi-run experiment's own variants are
        expanded (:func:`expand`) and its own summary is written per setting into
        ``out/experiment/SETTING`` (:func:`toy.__main__.summarise`).
    """
    stream = stream or sys.stderr
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
    manifest.update({"experiment": name, "seeds": list(seeds), "settings": [[k, list(v)] for k, v in settings],
                     "passthrough": list(passthrough), "runner": runner,
                     "order": [r.run_id for r in runs]})
    entries = manifest["runs"]
    jobs, skipped, aggregates_moved = [], 0, None
    for run in runs:
        argv = run_argv(run, out)
        folder = out / run.run_id
        old = entries.get(run.run_id, {})
        same = _same_args(old.get("argv"), argv, runner)
        if (folder / "metrics.json").exists() and same:
            skipped += 1
            old["status"] = "done"
            continue
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
    print(f"sweep: {name}, {len(runs)} run{'s' * (len(runs) != 1)} ({skipped} finished before), {mode}",
          file=stream, flush=True)
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
            _execute_dask(jobs, record, workers, scheduler, progress)
        elif jobs:
            with progress.heartbeat():
                _execute_serial(jobs, record)
    except KeyboardInterrupt:
        for run, spec in jobs:               # runs started in this session and not recorded as ended
            if entries[run.run_id]["status"] == "queued" and \
                    "== attempt" in _tail_text(pathlib.Path(spec["log"]), 1 << 20, progress.started):
                entries[run.run_id]["status"] = "interrupted"
        raise
    finally:
        write_json(out / MANIFEST, manifest)
    if aggregate:
        from .aggregate import aggregate_sweep
        done = [r for r in runs if entries[r.run_id]["status"] == "done"]
        aggregate_sweep(out, [(r.run_id, r.variant) for r in done], stream)
        own = _own(runner, "summarise")
        for setting in dict.fromkeys(r.setting for r in done if r.key is not None):
            label = ",".join(f"{k}={_safe(v)}" for k, v in setting) or "default"
            flags = [x for k, v in setting for x in (f"--{k}", v)]
            try:
                own(name, [*passthrough, *flags], [(r.key, r.seed, out / r.run_id) for r in done if r.setting == setting],
                    out / "experiment" / label)
            except Exception as e:     # the runs and the sweep's statistics stand without it
                print(f"note: {name}'s own summary of {label} failed: {type(e).__name__}: {e}", file=stream)
    return manifest


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
    """``python -m toy sweep ...``: 0 when every run finished, 1 when some failed, 2 on bad flags."""
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
    failed = [k for k in manifest["order"] if manifest["runs"][k]["status"] != "done"]
    if failed:
        print(f"sweep: {len(failed)} run(s) failed: {', '.join(failed)} (errors in {args.out / MANIFEST}, "
              f"logs in {args.out / 'logs'})", file=sys.stderr)
        return 1
    print(f"sweep: outputs in {args.out}", file=sys.stderr)
    return 0
