"""The GAN training loop, shared by every method.

An *outer iteration* is ``n_critic`` critic steps followed by the generator phase
(``n_gen`` generator steps by default). A method is a :class:`GANMethod` (or a
subclass that overrides :meth:`GANMethod.critic_phase`, :meth:`GANMethod.generator_phase`
or :meth:`GANMethod.outer_step`); :func:`train` runs any method with the same
logging, evaluation, interrupt handling and non-finite checks, through three hooks: the
evaluation (``eval_fn``), the checkpoint (:class:`refimpl.checkpointer.Checkpointer`: fingerprint,
cadence, resume, atomic writes) and the progress events (``on_progress``); its clocks are one
:class:`TrainClock`, which an ``eval_fn`` may read. State is a plain dict of parameter lists and optimiser states; every step
is a function ``(state, rng, data) -> (state, logs)``.
"""
from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .backend import scalar, synchronize
from .checkpoint import tree_from_host
from .checkpointer import Checkpointer, NonFiniteLoss, fingerprint_diff, run_fingerprint  # noqa: F401 (re-exported)
from .flat import FlatParams, adopt_flat
from .gan import ArrayData, GANConfig, GANMethod, ToyData, config_dict  # noqa: F401 (the loop's inputs, re-exported)
from .progress import CLOCKS, format_progress, time_left


# ----------------------------------------------------------------------------- the loop
def _has_flat(state):
    return isinstance(state, dict) and any(isinstance(v, FlatParams) for v in state.values())


class _atomic_step:
    """Defers SIGINT, SIGTERM and SIGHUP to the end of the block (main thread only), so that an
    outer step that updates its state in place is never interrupted half-way; a signal received
    meanwhile is delivered by :meth:`deliver`, to the handler that was installed, once the loop has
    recorded the step."""
    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

    def __enter__(self):
        self.saved, self.pending = {}, []
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.SIGNALS:
            self.saved[sig] = signal.signal(sig, lambda signum, frame: self.pending.append(signum))
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False

    def deliver(self):
        """Deliver the deferred signals (call once the step's bookkeeping is done)."""
        pending, self.pending = self.pending, []
        for signum in pending:
            handler = self.saved[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL and signum == getattr(signal, "SIGINT", None):
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


class TrainClock:
    """The training loop's clocks: wall and process CPU seconds since a run began (over its
    resumes), each also without the evaluations.

    :func:`train` starts it (from the checkpoint's readings on a resume), stops the training
    clocks around each ``eval_fn`` call and records its readings in every curve row and checkpoint.
    An ``eval_fn`` may read it live: during an evaluation the readings are those of its start
    (``eval_seconds``: the evaluations before it). One run at a time.

    Parameters
    ----------
    sync : bool
        Wait for the device (:func:`refimpl.backend.synchronize`) before and after each outer
        step, so that on CuPy a reading holds the steps' queued work, not only their launches:
        one synchronisation per step, no host transfer; a no-op on the CPU.

    Attributes
    ----------
    at_start : dict
        :meth:`saved` as the current :func:`train` call began (zeros for a fresh run).
    """

    def __init__(self, *, sync=False):
        if not isinstance(sync, bool):
            raise TypeError(f"sync must be True or False, got {sync!r}")
        self.sync, self.xp, self.at_start = sync, None, None
        self._t0 = self._c0 = self._frozen = None
        self._eval = [0.0, 0.0]              # wall, CPU seconds spent evaluating

    def start(self, xp, seconds=0.0, eval_seconds=0.0, train_cpu_seconds=0.0, eval_cpu_seconds=0.0):
        """Start (or, with a checkpoint's :meth:`saved` readings, continue) on namespace ``xp``."""
        self.xp, self._frozen, self._eval = xp, None, [eval_seconds, eval_cpu_seconds]
        self.at_start = {"seconds": seconds, "eval_seconds": eval_seconds, "train_cpu_seconds": train_cpu_seconds,
                         "eval_cpu_seconds": eval_cpu_seconds}
        self._t0 = time.perf_counter() - seconds
        self._c0 = time.process_time() - train_cpu_seconds - eval_cpu_seconds

    def read(self):
        """The readings at one instant, in seconds: ``{"seconds", "train_seconds", "eval_seconds"}``
        (wall clock: all, without and in the evaluations) and ``{"cpu_seconds",
        "train_cpu_seconds", "eval_cpu_seconds"}`` (process CPU time, likewise)."""
        if self._t0 is None:
            raise RuntimeError("the clock has not been started (train() starts it)")
        w, c = self._frozen or (time.perf_counter(), time.process_time())
        wall, cpu = w - self._t0, c - self._c0
        return {"seconds": wall, "train_seconds": wall - self._eval[0], "eval_seconds": self._eval[0],
                "cpu_seconds": cpu, "train_cpu_seconds": cpu - self._eval[1], "eval_cpu_seconds": self._eval[1]}

    seconds = property(lambda self: self.read()["seconds"], doc="Wall seconds since the run began.")
    train_seconds = property(lambda self: self.read()["train_seconds"], doc="Wall seconds, evaluations excluded.")
    eval_seconds = property(lambda self: self.read()["eval_seconds"], doc="Wall seconds spent evaluating.")
    cpu_seconds = property(lambda self: self.read()["cpu_seconds"], doc="Process CPU seconds since the run began.")
    train_cpu_seconds = property(lambda self: self.read()["train_cpu_seconds"],
                                 doc="Process CPU seconds, evaluations excluded.")

    def saved(self):
        """The readings a checkpoint keeps, :meth:`start`'s keywords: ``seconds``, ``eval_seconds``,
        ``train_cpu_seconds``, ``eval_cpu_seconds``."""
        r = self.read()
        return {k: r[k] for k in ("seconds", "eval_seconds", "train_cpu_seconds", "eval_cpu_seconds")}

    def step_bound(self):
        """Where an outer step begins or ends: the device is synchronised when ``sync``."""
        if self.sync:
            synchronize(self.xp)

    @contextlib.contextmanager
    def excluding(self):
        """A block (an evaluation) left out of the training clocks, from the device's idle point."""
        synchronize(self.xp)                 # time the queued GPU work, not its launch
        self._frozen = (time.perf_counter(), time.process_time())
        try:
            yield
        finally:                             # an interrupted evaluation is not training time either
            self._eval = [self._eval[0] + (time.perf_counter() - self._frozen[0]),
                          self._eval[1] + (time.process_time() - self._frozen[1])]
            self._frozen = None


@dataclass
class TrainResult:
    state: dict
    curve: list = field(default_factory=list)     # dict rows: iteration, seconds, train_seconds, metrics...
    iterations: int = 0
    seconds: float = 0.0                          # wall clock, evaluations included
    train_seconds: float = 0.0                    # wall clock without the evaluations
    final_metrics: dict = field(default_factory=dict)
    interrupted: bool = False
    clock: TrainClock | None = None               # the run's clock, read at its end


def default_check_every(xp):
    """Iterations between host checks of the losses: 1 on CPU backends (a check is free there),
    50 on CuPy, where each check is a device synchronisation (issue 14: one per step would
    serialise the GPU)."""
    from .backend import backend_name
    return 50 if backend_name(xp) == "cupy" else 1


def _quiet_floating_point(fn):
    """NumPy's overflow/invalid/divide warnings off inside ``fn``: a diverging run is reported once,
    by :class:`NonFiniteLoss`, not by a warning per operation first."""
    @functools.wraps(fn)
    def quiet(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return fn(*args, **kwargs)
    return quiet


@_quiet_floating_point
def train(method, data, *, xp, dtype="float32", device=None, seed=0, iters=1000, eval_fn=None,
          eval_every=0, checkpoint_path=None, checkpoint_every=0, checkpoint_seconds=0.0, resume=False,
          resume_from=None, check_every=None, run_info=None, progress=True, stream=None,
          max_train_cpu_seconds=None, cuda_graph=False, on_progress=None, clock=None):
    """Run ``iters`` outer iterations of ``method`` on ``data``.

    Parameters
    ----------
    method : GANMethod (or subclass).
    data : an object with ``sample(rng, n) -> (n, d)`` array on the device.
    eval_fn : callable ``(state, iteration) -> dict`` of metrics (Python numbers), run
        every ``eval_every`` iterations and at the end; its rows form the curve, each with the
        clock's ``seconds``, ``train_seconds`` and ``train_cpu_seconds`` after the evaluation.
    clock : TrainClock, optional
        The run's clocks (default: a new ``TrainClock()``), started here; pass one to read it
        in ``eval_fn`` or to time with ``sync=True``. ``TrainResult.clock``.
    checkpoint_path : file for atomic checkpoints (params, optimiser states, RNG state,
        iteration, curve, the clock's :meth:`TrainClock.saved` readings;
        :mod:`refimpl.checkpoint`'s safe format), written every ``checkpoint_every`` iterations,
        whenever ``checkpoint_seconds`` of wall clock have passed since the last one (0: no clock
        cadence), at the end, and on ``KeyboardInterrupt``.
        Both cadences are independent of ``check_every``: an iteration due for a checkpoint (or
        an evaluation) is checked first. ``resume=True`` continues from ``resume_from`` (default: the checkpoint
        path; e.g. a legacy file); a numpy run interrupted and resumed ends bit-identical to an
        uninterrupted one. An evaluation that was due at the checkpoint's iteration but not
        recorded (interrupted) is redone on resume; resuming a completed run trains nothing.
    check_every : losses are moved to the host and checked for NaN/Inf every this many
        iterations; ``None`` (default): :func:`default_check_every` (1 on the CPU, 50 on CuPy).
    run_info : dict merged into the checkpoint's fingerprint (e.g. experiment, dataset).
    cuda_graph : bool
        CuPy only: capture the fused outer iteration once as a CUDA graph and replay it
        (:class:`refimpl.graph.GraphStep`, which says what it refuses); ``ValueError`` on
        another backend.
    max_train_cpu_seconds : float > 0, optional
        Training budget in process CPU seconds (``eval_fn`` excluded): the run ends after the
        first iteration at which it is spent, as if ``iters`` were that iteration (final
        evaluation and checkpoint included); ``iters`` stays an upper bound. A resumed run whose
        checkpoint has spent the budget trains nothing (it only redoes a missing final
        evaluation), as a completed run.

    progress : bool
        Print a progress line to ``stream`` (default stderr) at most every 2 s and at the end.
    on_progress : callable ``(event: dict) -> None``, optional
        The progress hook, called at the same points whether or not ``progress`` prints: the event
        is ``{"iteration", "iterations", "elapsed_seconds", "left_seconds" (None until it can
        be estimated), "train_cpu_seconds", "budget_cpu_seconds" (None without a budget),
        "metrics" (the latest losses and the last evaluation's metrics, without the clocks),
        "evaluation" (None before the first, else the last evaluation's ``{"iteration", "keys"``:
        its metrics' names, ``"new"``: no earlier event held it``}``), "time" (``time.time()``, Unix
        seconds), "status" ("running")}``; the printed line is formatted from it (:func:`format_progress`).

    Raises
    ------
    NonFiniteLoss
        A logged loss is NaN or infinite at a check (every ``check_every`` iterations, and at
        every evaluation and checkpoint), or the state due to be evaluated or checkpointed holds a
        NaN or an infinity (it is then neither evaluated nor written; also when an interrupt
        would checkpoint it). The message names the iteration and the checkpoint kept, whose
        state was checked finite.
    ValueError
        Bad arguments; a checkpoint of a different run (naming the differing fields), or whose
        state holds a NaN or an infinity (written before that was checked); resume with ``iters``
        below the checkpoint's iteration.
    refimpl.checkpoint.CheckpointError
        An unreadable checkpoint.
    """
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
    if check_every is None:
        check_every = default_check_every(xp)
    for k, v in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every), ("check_every", check_every)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{k} must be an integer >= 0, got {v!r}")
    if not isinstance(checkpoint_seconds, (int, float)) or not checkpoint_seconds >= 0:
        raise ValueError(f"checkpoint_seconds must be a number >= 0, got {checkpoint_seconds!r}")
    if max_train_cpu_seconds is not None and not (isinstance(max_train_cpu_seconds, (int, float))
                                                  and 0 < max_train_cpu_seconds < math.inf):
        raise ValueError(f"max_train_cpu_seconds must be a finite number > 0, got {max_train_cpu_seconds!r}")
    if not isinstance(cuda_graph, bool):
        raise TypeError(f"cuda_graph must be True or False, got {cuda_graph!r}")
    if cuda_graph:
        from .backend import backend_name
        from .graph import GraphStep
        if backend_name(xp) != "cupy":
            raise ValueError(f"cuda_graph=True needs the cupy backend, not {backend_name(xp)}")
        outer_step = GraphStep(method, data).step
    else:
        outer_step = method.outer_step
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be callable, got {type(on_progress).__name__}")
    if clock is None:
        clock = TrainClock()
    elif not isinstance(clock, TrainClock):
        raise TypeError(f"clock must be a TrainClock, got {type(clock).__name__}")
    if (resume or checkpoint_every) and checkpoint_path is None:
        raise ValueError("resume and checkpoint_every need a checkpoint_path")
    stream = stream or sys.stderr
    rng = np.random.default_rng(seed)
    start, curve, saved = 0, [], {}
    ckpt = Checkpointer(checkpoint_path, run_fingerprint(method, seed=seed, dtype=dtype, run_info=run_info),
                        every=checkpoint_every, seconds=checkpoint_seconds, config=getattr(method, "cfg", None))
    point = ckpt.resume(resume_from or checkpoint_path, iters) if resume else None
    if point is not None:
        state = tree_from_host(point.state, xp, device)
        state = adopt_flat(state) if isinstance(state, dict) else state
        start, curve = point.iteration, point.curve
        saved = {"seconds": point.seconds, "eval_seconds": point.eval_seconds,
                 "train_cpu_seconds": point.train_cpu_seconds, "eval_cpu_seconds": point.eval_cpu_seconds}
        rng.bit_generator.state = point.rng
        if max_train_cpu_seconds is not None and point.train_cpu_seconds >= max_train_cpu_seconds:
            iters = start                     # the budget was spent: the run is complete, train nothing
        if progress:
            print(f"resumed from {ckpt.saved[0]} at iteration {start}", file=stream)
    else:
        state = method.init_state(rng, xp, dtype, device)

    def checkpoint(st, it, rng_state, host=None):
        ckpt.write(st, it, rng_state, curve, host=host, **clock.saved())

    def evaluate(st, it):
        with clock.excluding():
            metrics = eval_fn(st, it)
        r = clock.read()
        row = {"iteration": it, **{k: round(r[k], 3) for k in ("seconds", "train_seconds", "train_cpu_seconds")},
               **metrics}
        curve.append(row)
        latest.update(metrics)
        evaluated[0] = {"iteration": it, "keys": list(metrics), "new": True}

    def eval_due(it):
        return eval_fn is not None and ((eval_every and it % eval_every == 0) or it == iters)

    clock.start(xp, **saved)
    elapsed0, cpu0 = clock.at_start["seconds"], clock.at_start["train_cpu_seconds"]
    last_print = -1e9
    first_done = None                        # seconds elapsed when this call's first iteration ended
    latest = dict(curve[-1]) if curve else {}
    evaluated = [{"iteration": curve[-1]["iteration"], "keys": [k for k in curve[-1] if k not in CLOCKS], "new": True}
                 if curve else None]         # the last evaluation; "new" until an event has shown it
    good = (state, start, rng.bit_generator.state)   # last state whose losses were checked finite
    in_place = _has_flat(state)              # FlatParams are updated in place: no earlier state survives a step
    it = start
    try:
        if start and eval_due(start) and start not in {r["iteration"] for r in curve}:
            evaluate(state, start)           # interrupted during this evaluation: redo it
            if start == iters:
                checkpoint(state, start, rng.bit_generator.state)
        for it in range(start + 1, iters + 1):
            guard = _atomic_step()
            with guard:
                clock.step_bound()
                new_state, logs = outer_step(state, rng, data)
                clock.step_bound()
            if max_train_cpu_seconds is not None and clock.train_cpu_seconds >= max_train_cpu_seconds:
                iters = it                           # budget spent: this iteration is the last
            ck_due = ckpt.due(it)
            if (check_every and (it % check_every == 0 or it == iters)) or ck_due or eval_due(it):
                vals = {k: scalar(v) for k, v in logs.items()}
                bad = [k for k, v in vals.items() if not math.isfinite(v)]
                if bad:
                    raise NonFiniteLoss(f"non-finite {', '.join(bad)} at iteration {it} "
                                        f"({', '.join(f'{k}={vals[k]}' for k in bad)}); {ckpt.kept()}")
                latest.update(vals)
                good = (new_state, it, rng.bit_generator.state)
            elif in_place:                           # the earlier state is gone: keep the last one, unchecked
                good = (new_state, it, rng.bit_generator.state, logs)
            state = new_state
            guard.deliver()
            host = ckpt.checked_host(state, it) if ck_due or eval_due(it) else None   # neither sees a NaN state
            if eval_due(it):
                evaluate(state, it)
            if ck_due:
                checkpoint(state, it, rng.bit_generator.state, host)
            r = clock.read()
            el = r["seconds"]
            if first_done is None:
                first_done = el
            if (progress or on_progress is not None) and (el - last_print > 2.0 or it == iters):
                last_print = el
                eta = time_left(el, first_done, it - start, iters - it)
                used = r["train_cpu_seconds"]
                if max_train_cpu_seconds is not None and eta is not None:   # the budget's part left, at the pace so far
                    eta = min(eta, (el - elapsed0) * max(max_train_cpu_seconds - used, 0.0) / max(used - cpu0, 1e-9))
                event = {"status": "running", "iteration": it, "iterations": iters, "elapsed_seconds": el,
                         "left_seconds": eta, "train_cpu_seconds": used, "budget_cpu_seconds": max_train_cpu_seconds,
                         "metrics": {k: v for k, v in latest.items() if isinstance(v, (int, float))
                                     and k not in CLOCKS}, "time": time.time(),
                         "evaluation": evaluated[0] and dict(evaluated[0])}
                if evaluated[0]:
                    evaluated[0]["new"] = False
                if on_progress is not None:
                    on_progress(event)
                if progress:
                    print(format_progress(event), file=stream, flush=True)
            if it == iters:
                break
    except KeyboardInterrupt:
        st, it_good, rs = good[:3]
        if len(good) == 4:                   # its losses were not read yet
            bad = [k for k, v in good[3].items() if not math.isfinite(scalar(v))]
            if bad:
                raise NonFiniteLoss(f"interrupted, and non-finite {', '.join(bad)} at iteration {it_good}; "
                                    f"{ckpt.kept()}") from None
        curve[:] = [r for r in curve if r["iteration"] <= it_good]
        try:
            checkpoint(st, it_good, rs)
        except NonFiniteLoss as e:          # resuming it would only diverge again
            raise NonFiniteLoss(f"interrupted, and {e}") from None
        if progress:
            where = f"checkpoint written at iteration {it_good}" if checkpoint_path else "no checkpoint path"
            print(f"\ninterrupted: {where}", file=stream, flush=True)
        r = clock.read()
        return TrainResult(st, curve, it_good, r["seconds"], r["train_seconds"], dict(latest), interrupted=True,
                           clock=clock)
    synchronize(xp)
    r = clock.read()
    if ckpt.saved != (ckpt.path, iters):     # not yet written by the cadence (or a completed run resumed)
        checkpoint(state, iters, rng.bit_generator.state)
    final = dict(curve[-1]) if curve else {}
    return TrainResult(state, curve, iters, r["seconds"], r["train_seconds"], final, clock=clock)
