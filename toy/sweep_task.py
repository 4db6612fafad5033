"""One task of a sweep: a run executed in a worker process (or this one), its folder prepared for a
resume or set aside, its log and attempt counter (:mod:`toy.sweep`)."""
from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import pathlib
import socket
import time
import traceback

from . import cli

MAX_ATTEMPTS = 2          # a run whose worker died is run once more, never a third time

#: the toy runner: a run's ``argv`` is ``[NAME, *flags]``, executed as ``toy.cli.run(NAME, flags)``
TOY_RUNNER = "toy"
#: the toy runner spelt as the command line's entry point, ``toy.__main__.main([NAME, *flags])``
TOY_RUNNER_ALIASES = ("toy.__main__:main",)


def runner_name(runner):
    """``runner`` as the sweep records and compares it: :data:`TOY_RUNNER` for any of its spellings."""
    return TOY_RUNNER if runner in TOY_RUNNER_ALIASES else runner


def _call(runner, argv):
    """The exit status of one run: :func:`toy.cli.run` for the toy runner, otherwise the
    ``"module:function"`` ``runner`` called with ``argv``."""
    if runner_name(runner) == TOY_RUNNER:
        return cli.run(argv[0], argv[1:])
    module, func = runner.split(":")
    return getattr(importlib.import_module(module), func)(argv)


def has_checkpoint(folder: pathlib.Path) -> bool:
    return any(folder.glob("checkpoint*")) or any(folder.glob("*/checkpoint*"))


def set_aside(folder: pathlib.Path) -> pathlib.Path:
    """Rename ``folder`` to the first free ``folder.old-K`` (nothing is deleted); returns the new path."""
    for k in itertools.count(1):
        dest = folder.with_name(f"{folder.name}.old-{k}")
        if not dest.exists():
            folder.rename(dest)
            return dest


def prepare(folder: pathlib.Path) -> list[str]:
    """Flags that continue what an earlier attempt of the same arguments left in ``folder``:
    ``--resume`` if it holds a checkpoint; otherwise a non-empty folder is set aside and the run
    starts afresh. (The caller has set aside folders of other arguments.)"""
    if not folder.exists() or not any(folder.iterdir()):
        return []
    if has_checkpoint(folder):
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


def tail_text(path: pathlib.Path, nbytes: int, since=None) -> str:
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

    ``spec``: ``argv`` (the run's arguments, ``[NAME, "--seed", S, "--out", folder, *flags]``),
    ``folder`` (the run's ``--out``), ``log`` (file the run's stdout/stderr are appended to),
    ``attempts`` (a counter file), ``runner`` (:data:`TOY_RUNNER`: ``toy.cli.run(NAME, flags)``, the
    registry's experiment through the harness; or ``"module:function"`` taking ``argv`` and
    returning an exit status, such as ``gpu.__main__:main``).
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
    argv = list(spec["argv"]) + prepare(folder)
    log.parent.mkdir(parents=True, exist_ok=True)
    error = None
    with open(log, "a") as fh:
        start = fh.tell()
        print(f"== attempt {attempt} on {socket.gethostname()} pid {os.getpid()}: {' '.join(argv)}", file=fh, flush=True)
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh), threadpool_limits(limits=1):
            try:
                rc = _call(spec["runner"], argv)
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
