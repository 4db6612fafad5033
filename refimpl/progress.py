"""Progress of the training loop: the events of :func:`refimpl.train.train`'s ``on_progress`` hook,
their printed line, and the time-left estimate. Plain Python numbers, no arrays."""
from __future__ import annotations

#: the names an event holds as its own fields, so never among its ``metrics``
CLOCKS = ("iteration", "seconds", "train_seconds", "train_cpu_seconds", "eval_seconds")


def fmt_time(s):
    """``1m36s`` below an hour, ``1h02m`` from one; negative seconds read as 0."""
    s = max(0, int(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def time_left(elapsed, first_done, done, remaining):
    """Seconds left at the pace of the iterations after this call's first, whose time holds the
    warm-up (on an H200 the first iteration took about 3 s, the next ones 39 ms each); ``None``
    until there is such a pace.

    elapsed, first_done : seconds since the start, now and when the first iteration ended
    done, remaining : iterations done in this call (the first included) and still to do
    """
    if remaining <= 0:
        return 0.0
    if done < 2:
        return None
    return (elapsed - first_done) / (done - 1) * remaining


def format_progress(event):
    """The progress line of a :func:`train` event: ``it I/N | losses | 1m36s elapsed, ~6m46s left``
    (``it I, CPU used/budget s`` for a run with a CPU budget). An evaluation's metrics are shown
    once, on the first line after it, as ``eval@it E: metrics`` (``E``: the iteration they were
    measured at); the later lines show the losses only, so no line passes old metrics for fresh ones."""
    where = f"it {event['iteration']}/{event['iterations']}"
    if event["budget_cpu_seconds"] is not None:
        where = f"it {event['iteration']}, CPU {event['train_cpu_seconds']:.1f}/{event['budget_cpu_seconds']:g} s"
    ev = event.get("evaluation") or {"keys": ()}
    keys = set(ev["keys"])
    shown = " ".join(f"{k} {v:.4g}" for k, v in event["metrics"].items() if k not in keys)
    evaluated = " ".join(f"{k} {v:.4g}" for k, v in event["metrics"].items() if k in keys)
    if evaluated and ev.get("new"):
        shown = f"{shown} | eval@it {ev['iteration']}: {evaluated}" if shown else f"eval@it {ev['iteration']}: {evaluated}"
    left = "" if event["left_seconds"] is None else f", ~{fmt_time(event['left_seconds'])} left"
    return f"{where} | {shown} | {fmt_time(event['elapsed_seconds'])} elapsed{left}"
