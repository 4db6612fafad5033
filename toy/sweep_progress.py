"""The manifest of a sweep (``sweep.json``) and its progress lines, with an ETA from the running runs'
progress events (``progress.json``, :func:`refimpl.harness.train_run`) (:mod:`toy.sweep`)."""
from __future__ import annotations

import contextlib
import json
import pathlib
import threading
import time

from refimpl.harness import PROGRESS
from refimpl.progress import fmt_time

#: the one duration format of the sweep's output (elapsed, ETA): the runs' own progress lines',
#: :func:`refimpl.progress.fmt_time` (``1m36s`` below an hour, ``1h02m`` from one)
fmt_duration = fmt_time

MANIFEST = "sweep.json"

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
    """Counts runs done / running / failed / interrupted and prints one line per change. An
    interrupted run (Ctrl-C, or SIGTERM / SIGHUP, caught by the run or the sweep) is not a failure:
    the relaunch resumes it; :meth:`stop` prints the line of a stopped sweep. The ETA comes from the
    running runs' own progress events (``progress.json`` in their folders, written by
    :func:`refimpl.train.train`'s progress hook): the longest time left, plus the queued runs in rounds of
    ``slots``, each as long as the running ones' mean; when no running run has printed one yet,
    from the throughput of the runs finished in this session (elapsed / finished x remaining)."""

    def __init__(self, total, skipped, slots, stream, folders=None):
        self.total, self.skipped, self.slots, self.stream = total, skipped, max(slots, 1), stream
        self.folders = dict(folders or {})       # run id -> run folder, for the runs of this session
        self.done = self.failed = self.interrupted = 0
        self.stopped = False
        self.t0, self.started = time.perf_counter(), time.time()

    def _from_events(self, queued):
        spans = [t for t in (run_estimate(f, self.started) for f in self.folders.values()) if t is not None]
        if not spans:
            return None
        mean = sum(e + l for e, l in spans) / len(spans)
        return max(l for _, l in spans) + -(-max(queued - len(spans), 0) // self.slots) * mean

    def line(self):
        finished = self.done + self.failed + self.interrupted
        left = self.total - self.skipped - finished
        running = 0 if self.stopped else min(left, self.slots)
        el = time.perf_counter() - self.t0
        guess = self._from_events(left) if left and not self.stopped else None
        if self.stopped:
            eta = None
        elif not left:
            eta = fmt_duration(0)
        elif guess is not None:
            eta = f"~{fmt_duration(guess)} (from the runs' own estimates)"
        elif finished:
            eta = f"~{fmt_duration(el / finished * left)}"
        else:
            eta = "?"
        stopped = f", {self.interrupted} interrupted" if self.interrupted or self.stopped else ""
        return (f"sweep: {self.done + self.skipped}/{self.total} done ({self.skipped} skipped), {running} running, "
                f"{left - running} queued, {self.failed} failed{stopped} | {fmt_duration(el)} elapsed, "
                + ("stopped" if eta is None else f"ETA {eta}"))

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
        """Count a run that ended (``"done"``, ``"interrupted"``, anything else failed) and print it
        with the new line (an interrupted run's line comes from :meth:`stop`, as the sweep stops)."""
        self.folders.pop(run_id, None)
        if status == "done":
            self.done += 1
        elif status == "interrupted":
            self.interrupted += 1
        else:
            self.failed += 1
        msg = f"  {status}: {run_id}" + (f" ({error})" if error else "")
        print(msg if status == "interrupted" else msg + "\n" + self.line(), file=self.stream, flush=True)

    def stop(self, interrupted):
        """The sweep stopped on an interrupt with ``interrupted`` runs cut short (all of them, those
        :meth:`update` counted included): nothing runs any more; print the line."""
        self.stopped, self.interrupted = True, interrupted
        print(self.line(), file=self.stream, flush=True)


def run_estimate(folder, since=None):
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
