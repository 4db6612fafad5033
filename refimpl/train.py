"""The GAN training loop, shared by every method.

An *outer iteration* is ``n_critic`` critic steps followed by the generator phase
(``n_gen`` generator steps by default). A method is a :class:`GANMethod` (or a
subclass that overrides :meth:`GANMethod.critic_phase`, :meth:`GANMethod.generator_phase`
or :meth:`GANMethod.outer_step`); :func:`train` runs any method with the same
logging, evaluation, interrupt handling and non-finite checks, through three hooks: the
evaluation (``eval_fn``), the checkpoint (:class:`refimpl.checkpointer.Checkpointer`: fingerprint,
cadence, resume, atomic writes) and the progress events (``on_progress``). State is a plain dict of parameter lists and optimiser states; every step
is a function ``(state, rng, data) -> (state, logs)``.
"""
from __future__ import annotations

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


@dataclass
class TrainResult:
    state: dict
    curve: list = field(default_factory=list)     # dict rows: iteration, seconds, train_seconds, metrics...
    iterations: int = 0
    seconds: float = 0.0                          # wall clock, evaluations included
    train_seconds: float = 0.0                    # wall clock without the evaluations
    final_metrics: dict = field(default_factory=dict)
    interrupted: bool = False


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
          max_train_cpu_seconds=None, cuda_graph=False, on_progress=None):
    """Run ``iters`` outer iterations of ``method`` on ``data``.

    Parameters
    ----------
    method : GANMethod (or subclass).
    data : an object with ``sample(rng, n) -> (n, d)`` array on the device.
    eval_fn : callable ``(state, iteration) -> dict`` of metrics (Python numbers), run
        every ``eval_every`` iterations and at the end; its rows form the curve.
    checkpoint_path : file for atomic checkpoints (params, optimiser states, RNG state,
        iteration, curve, elapsed time; :mod:`refimpl.checkpoint`'s safe format), written every
        ``checkpoint_every`` iterations, whenever ``checkpoint_seconds`` of wall clock have
        passed since the last one (0: no clock cadence), at the end, and on ``KeyboardInterrupt``.
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
        "time" (``time.time()``, Unix seconds), "status" ("running")}``; the printed line is
        formatted from it (:func:`format_progress`).

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
    if (resume or checkpoint_every) and checkpoint_path is None:
        raise ValueError("resume and checkpoint_every need a checkpoint_path")
    stream = stream or sys.stderr
    rng = np.random.default_rng(seed)
    start, curve, elapsed0, eval0, cpu0 = 0, [], 0.0, 0.0, 0.0
    ckpt = Checkpointer(checkpoint_path, run_fingerprint(method, seed=seed, dtype=dtype, run_info=run_info),
                        every=checkpoint_every, seconds=checkpoint_seconds, config=getattr(method, "cfg", None))
    point = ckpt.resume(resume_from or checkpoint_path, iters) if resume else None
    if point is not None:
        state = tree_from_host(point.state, xp, device)
        state = adopt_flat(state) if isinstance(state, dict) else state
        start, curve, elapsed0, eval0, cpu0 = (point.iteration, point.curve, point.seconds, point.eval_seconds,
                                               point.train_cpu_seconds)
        rng.bit_generator.state = point.rng
        if max_train_cpu_seconds is not None and cpu0 >= max_train_cpu_seconds:
            iters = start                     # the budget was spent: the run is complete, train nothing
        if progress:
            print(f"resumed from {ckpt.saved[0]} at iteration {start}", file=stream)
    else:
        state = method.init_state(rng, xp, dtype, device)

    def checkpoint(st, it, rng_state, elapsed, host=None):
        ckpt.write(st, it, rng_state, curve, seconds=elapsed, eval_seconds=eval_time[0],
                   train_cpu_seconds=time.process_time() - c0 - eval_cpu[0], host=host)

    def evaluate(st, it):
        synchronize(xp)                      # time the queued GPU work, not its launch
        te, ce = time.perf_counter(), time.process_time()
        try:
            metrics = eval_fn(st, it)
        finally:                             # an interrupted evaluation is not training time either
            eval_time[0] += time.perf_counter() - te
            eval_cpu[0] += time.process_time() - ce
        now = time.perf_counter() - t0
        row = {"iteration": it, "seconds": round(now, 3), "train_seconds": round(now - eval_time[0], 3),
               "train_cpu_seconds": round(time.process_time() - c0 - eval_cpu[0], 3), **metrics}
        curve.append(row)
        latest.update(metrics)

    def eval_due(it):
        return eval_fn is not None and ((eval_every and it % eval_every == 0) or it == iters)

    t0 = time.perf_counter() - elapsed0
    c0 = time.process_time() - cpu0
    eval_time = [eval0]                      # seconds spent in eval_fn (excluded from train_seconds)
    eval_cpu = [0.0]                         # process CPU seconds spent in eval_fn
    last_print = -1e9
    first_done = None                        # seconds elapsed when this call's first iteration ended
    latest = dict(curve[-1]) if curve else {}
    good = (state, start, rng.bit_generator.state)   # last state whose losses were checked finite
    in_place = _has_flat(state)              # FlatParams are updated in place: no earlier state survives a step
    it = start
    try:
        if start and eval_due(start) and start not in {r["iteration"] for r in curve}:
            evaluate(state, start)           # interrupted during this evaluation: redo it
            if start == iters:
                checkpoint(state, start, rng.bit_generator.state, time.perf_counter() - t0)
        for it in range(start + 1, iters + 1):
            guard = _atomic_step()
            with guard:
                new_state, logs = outer_step(state, rng, data)
            if max_train_cpu_seconds is not None and time.process_time() - c0 - eval_cpu[0] >= max_train_cpu_seconds:
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
                checkpoint(state, it, rng.bit_generator.state, time.perf_counter() - t0, host)
            now = time.perf_counter()
            if first_done is None:
                first_done = now - t0
            if (progress or on_progress is not None) and (now - last_print > 2.0 or it == iters):
                last_print = now
                el = now - t0
                eta = time_left(el, first_done, it - start, iters - it)
                used = time.process_time() - c0 - eval_cpu[0]
                if max_train_cpu_seconds is not None and eta is not None:   # the budget's part left, at the pace so far
                    eta = min(eta, (el - elapsed0) * max(max_train_cpu_seconds - used, 0.0) / max(used - cpu0, 1e-9))
                event = {"status": "running", "iteration": it, "iterations": iters, "elapsed_seconds": el,
                         "left_seconds": eta, "train_cpu_seconds": used, "budget_cpu_seconds": max_train_cpu_seconds,
                         "metrics": {k: v for k, v in latest.items() if isinstance(v, (int, float))
                                     and k not in CLOCKS}, "time": time.time()}
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
            checkpoint(st, it_good, rs, time.perf_counter() - t0)
        except NonFiniteLoss as e:          # resuming it would only diverge again
            raise NonFiniteLoss(f"interrupted, and {e}") from None
        if progress:
            where = f"checkpoint written at iteration {it_good}" if checkpoint_path else "no checkpoint path"
            print(f"\ninterrupted: {where}", file=stream, flush=True)
        el = time.perf_counter() - t0
        return TrainResult(st, curve, it_good, el, el - eval_time[0], dict(latest), interrupted=True)
    synchronize(xp)
    seconds = time.perf_counter() - t0
    if ckpt.saved != (ckpt.path, iters):     # not yet written by the cadence (or a completed run resumed)
        checkpoint(state, iters, rng.bit_generator.state, seconds)
    final = dict(curve[-1]) if curve else {}
    return TrainResult(state, curve, iters, seconds, seconds - eval_time[0], final)
