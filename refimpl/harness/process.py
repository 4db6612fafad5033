"""The process around a run: BLAS threads, signals (SIGTERM and SIGHUP handled like Ctrl-C),
exit statuses and one-line errors (:func:`execute`), and allocator tuning.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shlex
import shutil
import signal
import sys
from typing import Callable

from ..threads import THREAD_VARIABLES
from .flags import RunOptions, default_threads
from .folders import CHECKPOINT, LEGACY_CHECKPOINT, claim_output, mark_output, only_marker


INSTALL = "pip install -e '.[toy]'"


@contextlib.contextmanager
def blas_threads(n, required=True):
    """Limit the BLAS thread pools to ``n`` threads while the block runs: threadpoolctl for the
    libraries already loaded, the environment (``OPENBLAS_NUM_THREADS`` ...) for those loaded
    inside the block. Yields ``n``, or ``None`` when threadpoolctl is missing and not
    ``required`` (no limit set)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        if not required:
            yield None
            return
        raise ImportError(f"--threads needs threadpoolctl: {INSTALL}", name="threadpoolctl") from e
    # threadpool_limits reaches the BLAS libraries loaded so far; one loaded later (scipy ships its
    # own OpenBLAS, loaded on first use) reads its thread count from the environment at load time
    # (the same variables bound the evaluation's own solver threads: refimpl.threads.thread_budget)
    names = THREAD_VARIABLES
    old = {k: os.environ.get(k) for k in names}
    os.environ.update({k: str(n) for k in names})
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield n
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------- signals
_signals = []                         # signals received by the handler of interrupts()


class Interrupted(KeyboardInterrupt):
    """A SIGTERM or SIGHUP turned into a KeyboardInterrupt; ``signum`` says which."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def interrupts():
    """SIGTERM and SIGHUP raise :class:`Interrupted` (a KeyboardInterrupt) while the block runs,
    so the training loop checkpoints exactly as on Ctrl-C. Only in the main thread."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _signals.append(signum)
        raise Interrupted(signum)
    sigs = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ----------------------------------------------------------------------------- the command-line lifecycle
def print_error(prog, message):
    """Print the one-line refusal ``PROG: error: MESSAGE`` on stderr, as ``argparse`` prints a usage
    error (:class:`ArgumentParser`), so every refusal of a command line reads the same; returns 2."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return 2


def prog_of(command):
    """The program part of a shell ``command``: its words before the first flag
    (``"python -m toy NAME --out D --resume"`` -> ``"python -m toy NAME"``)."""
    words = shlex.split(command)
    start = 2 if words[1:2] == ["-m"] else 1                 # python -m MODULE: its "-m" is no flag
    head = next((i for i in range(start, len(words)) if words[i].startswith("-")), len(words))
    return " ".join(words[:head]) or command


#: the final metrics a finished run's summary line shows first, where its metrics.json has them
KEY_METRICS = ("modes", "high_quality", "w1", "w2", "sliced_w1", "fd")
#: the standard record's fields (:func:`refimpl.harness.run_record`), never shown as results
_RECORD = {"seconds", "iterations", "seed", "backend", "threads", "dtype", "method", "dataset", "config",
           "train_seconds", "train_cpu_seconds", "eval_seconds", "n_eval", "n", "quick", "n_runs", "seeds"}


def _number(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _shown(m, limit=5, fallback=True):
    """``"k v, ..."`` of ``m``'s :data:`KEY_METRICS`, else (``fallback``) of its first ``limit`` scalar results."""
    keys = [k for k in KEY_METRICS if isinstance(m.get(k), (int, float))]
    if not keys and fallback:
        keys = [k for k, v in m.items() if k not in _RECORD and isinstance(v, (bool, int, float))][:limit]
    return ", ".join(f"{k} {_number(m[k])}" for k in keys)


def summary_lines(out, metrics=None):
    """The few lines a command line prints after a finished run in ``out`` (instead of its whole
    metrics): its key metrics (:data:`KEY_METRICS`; per entry of a field such as ``methods`` whose
    entries hold them, one line each; the chance ``baseline``'s beside them) and where
    ``metrics.json`` is. For a multi-run experiment (its ``metrics.json`` lists ``variants`` with
    their run folders) one line per variant: the mean of each key metric over its runs.
    ``metrics``: the run's metrics when ``out`` has no ``metrics.json``."""
    out = pathlib.Path(out)
    path = out / "metrics.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        m = None
    m = m if isinstance(m, dict) else (metrics or {})
    variants = m.get("variants")
    runs = {k: v.get("folders") for k, v in variants.items() if isinstance(v, dict)} if isinstance(variants, dict) else {}
    if runs and all(isinstance(r, list) for r in runs.values()):
        lines = [f"finished {m.get('n_runs', sum(map(len, runs.values())))} runs of {m.get('experiment', 'the experiment')} "
                 f"(seeds {', '.join(map(str, m.get('seeds', [])))}):"]
        for key, folders in runs.items():
            ms = []
            for f in folders:
                try:
                    ms.append(json.loads((out / f / "metrics.json").read_text()))
                except (OSError, ValueError):
                    pass
            keys = [k for k in KEY_METRICS if ms and all(isinstance(r.get(k), (int, float)) for r in ms)]
            mean = {k: sum(r[k] for r in ms) / len(ms) for k in keys}
            lines.append(f"  {key}: {_shown(mean) if keys else 'see its metrics.json'}"
                         + (f" (mean of {len(ms)} runs)" if len(ms) > 1 and keys else ""))
    else:
        seconds = m.get("seconds") if isinstance(m.get("seconds"), (int, float)) else None
        done = ("finished" if seconds is None else
                f"{m['iterations']} iterations in {seconds:.1f} s" if isinstance(m.get("iterations"), int) else
                f"finished in {seconds:.1f} s")
        groups = [(name, g) for name, g in m.items() if name != "baseline" and isinstance(g, dict) and g
                  and all(isinstance(e, dict) and _shown(e, fallback=False) for e in g.values())]
        if _shown(m, fallback=False) or not groups:
            lines = [f"{done}: {_shown(m) or 'see metrics.json'}"]
        else:
            name, g = groups[0]
            lines = [f"{done}, per entry of {name}:", *(f"  {k}: {_shown(e)}" for k, e in g.items())]
        base = m.get("baseline")
        if isinstance(base, dict) and _shown(base, fallback=False):
            lines.append(f"chance baseline: {_shown(base, fallback=False)}")
    lines.append(f"all metrics: {path}")
    return lines


def _os_error(e: OSError):
    where = e.filename or ""
    if e.filename2:
        where = f"{where} -> {e.filename2}"
    reason = e.strerror or str(e)
    return f"{where}: {reason}" if where else reason


def execute(run: Callable, opts: RunOptions, *, resume_command: str, prog=None, stream=None):
    """Run ``run(opts)`` with the whole lifecycle; returns ``(exit status, metrics or None)``.

    Claims ``opts.out``, limits BLAS threads, turns SIGTERM/SIGHUP into interrupts, and maps
    every expected failure to one line on stderr, ``PROG: error: REASON`` (:func:`print_error`):
    exit 2 for bad options, OS errors (path and reason), unreadable or foreign checkpoints,
    non-finite losses and missing packages; 130 (or 128 + the signal) for an interrupt, after which
    ``resume_command`` is printed. ``resume_command`` (required, keyword) is the shell command that
    resumes this run, e.g. ``"python -m toy NAME --out DIR --resume"``; ``prog`` names the command
    line in the error lines (default: ``resume_command``'s words before its first flag, e.g.
    ``python -m toy NAME``); ``stream`` (default stderr) receives the lines.
    """
    prog = prog or prog_of(resume_command)

    def _error(message):
        return print_error(prog, message)
    out = pathlib.Path(opts.out)
    created, metrics, interrupted = False, None, False
    threads = opts.threads or default_threads()
    _signals.clear()
    try:
        created = claim_output(out, opts.experiment, opts.resume)
        with interrupts(), blas_threads(threads, required=opts.threads is not None) as applied:
            metrics = run(dataclasses.replace(opts, threads=threads))
        mark_output(out, opts.experiment)
        _record(out, {"threads": applied})
        status = 0
    except KeyboardInterrupt:
        interrupted = True
        status = 128 + (_signals[-1] if _signals else signal.SIGINT)
    except OSError as e:
        status = _error(_os_error(e))
    except ImportError as e:
        missing = f"missing package {e.name}; " if e.name else ""
        status = _error(f"{e} ({missing}every experiment runs after {INSTALL})")
    except (ValueError, RuntimeError, FloatingPointError) as e:   # bad options, checkpoints, non-finite losses
        status = _error(str(e))
    if status and created and out.is_dir() and only_marker(out):
        shutil.rmtree(out, ignore_errors=True)
    if interrupted:
        resumable = out.is_dir() and any(p.name in (CHECKPOINT, LEGACY_CHECKPOINT) for p in out.rglob("checkpoint.*"))
        print(f"interrupted; resume with: {resume_command}" if resumable else
              "interrupted before the first checkpoint: nothing to resume; run the same command again without --resume",
              file=sys.stderr, flush=True)
    return status, metrics


def _record(out, info):
    """Add ``info`` to ``out/metrics.json`` (atomically), if the experiment wrote one."""
    from ..outputs import write_json
    path = pathlib.Path(out) / "metrics.json"
    if path.exists():
        m = json.loads(path.read_text())
        if isinstance(m, dict):
            m.update(info)
            write_json(path, m)


def tune_allocator():
    """Raise glibc's mmap and trim thresholds so the ~1 MB temporaries of every step are reused
    from the heap instead of being mapped fresh (and page-faulted) each time.

    A process-level setting for the command lines and benchmarks (never done by the library);
    a no-op where glibc's ``mallopt`` is unavailable. See docs/performance.md for its effect.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)      # glibc's maximum
        libc.mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024)
    except (OSError, AttributeError):
        pass
