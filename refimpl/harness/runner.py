"""The runner: one training run and its standard folder, for every experiment of ``toy`` and ``gpu``.

:func:`train_run` trains (:func:`refimpl.train.train` with the harness's checkpoint file,
fingerprint, cadences and ``progress.json``); :func:`run_and_write` trains and then writes what
the experiment's ``finish(result) -> Outputs`` returns, beside the standard record of
:func:`run_record`, into the run's folder::

    curve.csv  samples.npy | samples.npz  [TABLE.csv ...]  [ARRAYS.npz ...]  [figures]  metrics.json

``metrics.json`` is written last: its presence marks a complete folder (a sweep, a resume and the
aggregations rely on it).
"""
from __future__ import annotations

import dataclasses
import pathlib
import time
from dataclasses import dataclass, field
from typing import Callable

from .flags import RunOptions
from .folders import CHECKPOINT, LEGACY_CHECKPOINT, MARKER, PROGRESS, OutputError, checkpoint_file


def refused_resume(out, error) -> str:
    """The one line of a refused resume (:class:`refimpl.checkpointer.CheckpointRefused`) of the run
    in ``out``, ending with the way out. A run of a multi-run experiment (a folder without a marker of
    its own, in its parent's) names the experiment's folder, which a fresh start needs deleted. Nothing
    is ever deleted for the user."""
    out = pathlib.Path(out)
    top = out.parent if not (out / MARKER).exists() and (out.parent / MARKER).exists() else out
    start = f"start over: --out ANOTHER_DIR, or delete {'that folder' if top == out else top} first"
    if error.diff:
        return (f"{out} holds a checkpoint of a different run (checkpoint -> this run: {'; '.join(error.diff)}); "
                f"resume it with its original flags, or {start}")
    return f"{error}; {start}"


def train_run(opts: RunOptions, method, data, *, dataset, xp, dtype="float32", iters, eval_fn=None,
              eval_every=0, checkpoint_every=None, check_every=None, progress=True, run_info=None,
              max_train_cpu_seconds=None, cuda_graph=False, device=None, clock=None):
    """:func:`refimpl.train.train` with the layer's checkpoint file, fingerprint and cadences.

    The checkpoint is ``opts.out / checkpoint.npz``; ``--resume`` also reads a legacy
    ``checkpoint.pkl`` (restricted unpickler). The fingerprint adds ``opts.experiment``,
    ``dataset`` and ``opts.quick`` (and ``run_info``) to the method, config, seed and dtype, so a
    full run refuses to resume a ``--quick`` run's checkpoint (an ``OutputError`` whose line ends
    with the way out, :func:`refused_resume`; so does a checkpoint with a non-finite state). Checkpoints are written
    every ``opts.checkpoint_every`` iterations (0: ``checkpoint_every``, else every evaluation)
    and every ``opts.checkpoint_seconds``. An interrupted run raises ``KeyboardInterrupt`` after
    its checkpoint is written (``NonFiniteLoss`` instead, when the state to checkpoint holds a NaN
    or an infinity: a resume would only diverge again). ``max_train_cpu_seconds``,
    ``cuda_graph``, ``device`` and ``clock`` (a :class:`refimpl.train.TrainClock`, which the
    checkpoint carries over a resume): :func:`refimpl.train.train`'s. Each progress event of the loop
    (its ``on_progress`` hook) is written, atomically, to ``opts.out / progress.json``, where
    :mod:`toy.sweep` reads a running run's pace; when the loop returns, the event's ``status``
    becomes ``finished`` or ``interrupted`` (at the checkpoint's iteration).

    Returns
    -------
    refimpl.train.TrainResult
    """
    from ..checkpointer import CheckpointRefused
    from ..outputs import write_json
    from ..progress import CLOCKS
    from ..train import train
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    ck, legacy = out / CHECKPOINT, out / LEGACY_CHECKPOINT
    if (ck.exists() or legacy.exists()) and not opts.resume:
        raise OutputError(f"{out} holds a checkpoint: pass --resume to continue that run, or choose another --out")
    every = opts.checkpoint_every or checkpoint_every or max(eval_every, 1)
    last = {}

    def record(event):                  # the loop's progress hook: the latest event, atomically
        last.update(event)
        write_json(out / PROGRESS, event)
    try:
        res = train(method, data, xp=xp, dtype=dtype, device=device, seed=opts.seed, iters=iters, eval_fn=eval_fn,
                    eval_every=eval_every, checkpoint_path=ck, checkpoint_every=every,
                    checkpoint_seconds=opts.checkpoint_seconds, resume=opts.resume,
                    resume_from=checkpoint_file(out), check_every=check_every,
                    run_info={"experiment": opts.experiment, "dataset": dataset, "quick": bool(opts.quick),
                              **(run_info or {})},
                    progress=progress, max_train_cpu_seconds=max_train_cpu_seconds, cuda_graph=cuda_graph,
                    on_progress=record, clock=clock)
    except CheckpointRefused as e:      # the refusal, and the way out
        raise OutputError(refused_resume(out, e)) from None
    if last:            # a stopped run must not read as a running one: its status, at its checkpoint's iteration
        record({**last, "status": "interrupted" if res.interrupted else "finished", "iteration": res.iterations,
                "elapsed_seconds": res.seconds, "left_seconds": None if res.interrupted else 0.0, "time": time.time(),
                "metrics": {**last.get("metrics", {}), **{k: v for k, v in res.final_metrics.items()
                                                            if isinstance(v, (int, float)) and k not in CLOCKS}}})
    if res.interrupted:
        raise KeyboardInterrupt
    return res


@dataclass
class Outputs:
    """What an experiment's ``finish`` returns for :func:`run_and_write` to write.

    Attributes
    ----------
    metrics : dict
        The run's final metrics; they take precedence over :func:`run_record`'s fields of the same name.
    samples : array (n, ...) or dict of arrays, optional
        The samples the final metrics judge: ``samples.npy`` (one array) or ``samples.npz``.
    curve : list of dict, optional
        The rows of ``curve.csv``; None: the training loop's curve.
    tables : dict ``name -> rows``
        Further CSV files (``name`` without ``.csv``).
    arrays : dict ``name -> {key: array}``
        Further ``.npz`` files (``name`` without ``.npz``).
    plots : callable ``(folder, metrics) -> None``, optional
        Draws the figures, after every file above and before ``metrics.json``.
    """
    metrics: dict
    samples: object = None
    curve: list | None = None
    tables: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    plots: Callable | None = None


def run_record(opts: RunOptions, method, result, *, dataset, dtype) -> dict:
    """The fields every run's ``metrics.json`` carries: clocks, iterations, seed, backend, BLAS
    threads, dtype, the method's name and configuration, the dataset."""
    return {"seconds": round(result.seconds, 2), "iterations": result.iterations, "seed": opts.seed,
            "backend": opts.backend, "threads": opts.threads, "dtype": str(dtype), "method": method.name,
            "dataset": dataset, "config": method.config()}


def write_run(folder, outputs: Outputs, record: dict) -> dict:
    """Write ``outputs`` into ``folder`` (atomically, ``metrics.json`` last); returns the metrics
    written: ``record`` updated by ``outputs.metrics``."""
    from ..backend import to_numpy
    from ..outputs import write_csv, write_json, write_npy, write_npz
    folder = pathlib.Path(folder)
    metrics = {**record, **outputs.metrics}
    if outputs.curve is not None:
        write_csv(folder / "curve.csv", outputs.curve)
    if isinstance(outputs.samples, dict):
        write_npz(folder / "samples.npz", **{k: to_numpy(v) for k, v in outputs.samples.items()})
    elif outputs.samples is not None:
        write_npy(folder / "samples.npy", to_numpy(outputs.samples))
    for name, rows in outputs.tables.items():
        write_csv(folder / f"{name}.csv", rows)
    for name, arrays in outputs.arrays.items():
        write_npz(folder / f"{name}.npz", **arrays)
    if outputs.plots is not None:
        outputs.plots(folder, metrics)
    write_json(folder / "metrics.json", metrics)
    return metrics


def run_and_write(opts: RunOptions, method, data, *, finish, dataset, xp, dtype="float32", iters, **train):
    """Train one run with :func:`train_run` and write its folder (``opts.out``) with :func:`write_run`.

    ``finish(result) -> Outputs`` (``result``: the :class:`refimpl.train.TrainResult`) evaluates
    the trained state; ``train`` holds :func:`train_run`'s other keywords (``eval_fn``,
    ``eval_every``, ``run_info``, ...). Returns the metrics written to ``metrics.json``.
    """
    result = train_run(opts, method, data, dataset=dataset, xp=xp, dtype=dtype, iters=iters, **train)
    outputs = finish(result)
    if outputs.curve is None:
        outputs = dataclasses.replace(outputs, curve=result.curve)
    return write_run(opts.out, outputs, run_record(opts, method, result, dataset=dataset, dtype=dtype))
