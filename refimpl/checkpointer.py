"""The training loop's checkpoint hook: one run's fingerprint, its cadence, its resume, and its
atomic writes (:mod:`refimpl.checkpoint`'s safe format).

:func:`refimpl.train.train` builds a :class:`Checkpointer` from its ``checkpoint_*`` arguments and
asks it three things: where to resume (:meth:`Checkpointer.resume`), whether an iteration is
due (:meth:`Checkpointer.due`), and to write one (:meth:`Checkpointer.write`). The payload is::

    {"fingerprint": dict, "state": host tree, "iteration": int, "rng": bit-generator state,
     "curve": [row, ...], "seconds": float, "evaluated": [int, ...], "eval_seconds": float,
     "train_cpu_seconds": float, "eval_cpu_seconds": float}

the clocks being :meth:`refimpl.train.TrainClock.saved`'s readings (a field that an older
checkpoint lacks reads 0).
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from dataclasses import dataclass

import numpy as np

from .checkpoint import CheckpointError, load as load_checkpoint, save as save_checkpoint, tree_to_host


class NonFiniteLoss(FloatingPointError):
    """A loss, or the state about to be checkpointed, became NaN or infinite; the message names
    the iteration and the checkpoint kept."""


class CheckpointRefused(ValueError):
    """A readable checkpoint that may not be resumed: another run's (``diff``: the differing fields,
    ``"field: checkpoint -> this run"``) or one whose state is not finite (``diff`` None); ``path``
    is the checkpoint file. The command lines add the way out (:func:`refimpl.harness.train_run`)."""

    def __init__(self, message, path, *, diff=None):
        super().__init__(message)
        self.path, self.diff = pathlib.Path(path), diff


def non_finite_parts(state):
    """The top-level keys of a host ``state`` tree (:func:`refimpl.checkpoint.tree_to_host`) that
    hold a NaN or an infinity in a floating-point array or float."""
    def bad(obj):
        if isinstance(obj, dict):
            return any(bad(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return any(bad(v) for v in obj)
        if isinstance(obj, float):
            return not math.isfinite(obj)
        if isinstance(obj, np.ndarray) and obj.dtype.kind in "fc":
            return not np.isfinite(obj).all()
        return False
    return [k for k, v in state.items() if bad(v)] if isinstance(state, dict) else (["state"] if bad(state) else [])


def run_fingerprint(method, *, seed, dtype, run_info=None):
    """What identifies a run, for its checkpoint: ``run_info`` (e.g. experiment, dataset), the
    method's name and config dict, the seed and the dtype's name."""
    return {**(run_info or {}), "method": method.name, "config": method.config(), "seed": seed,
            "dtype": str(dtype)}


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def fingerprint_diff(old, new, config=None):
    """The fields in which a checkpoint's fingerprint ``old`` differs from the run ``new``, as
    ``["name: old -> new", ...]`` (empty: the same run).

    A config field added to the library after the checkpoint was written matches when the new
    run leaves it at its default, and so does a top-level field (``experiment``, ``dataset``)
    that older checkpoints did not record; any other difference (a changed value, a removed
    field) does not. ``config`` (a config dataclass or its class) supplies those defaults.
    """
    if not isinstance(old, dict):
        return [f"fingerprint: {old!r} -> {new!r}"]
    fo, fn = _flat(old), _flat(new)
    defaults = {f"config.{f.name}": (list(f.default) if isinstance(f.default, tuple) else f.default)
                for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else {}
    diff = []
    for k in dict.fromkeys([*fn, *fo]):
        if k in fo and k in fn:
            if fo[k] != fn[k]:
                diff.append(f"{k}: {fo[k]!r} -> {fn[k]!r}")
        elif k in fo:
            diff.append(f"{k}: {fo[k]!r} -> (absent)")
        elif k.startswith("config."):
            if defaults.get(k, dataclasses.MISSING) != fn[k]:
                diff.append(f"{k}: (absent, default) -> {fn[k]!r}")
        elif "." in k:
            diff.append(f"{k}: (absent) -> {fn[k]!r}")
    return diff


_KEYS = {"fingerprint": dict, "state": dict, "iteration": int, "rng": dict, "curve": list, "seconds": (int, float)}


def check_payload(ck, path):
    """``CheckpointError`` unless ``ck`` has the structure :meth:`Checkpointer.write` writes."""
    if not isinstance(ck, dict):
        raise CheckpointError(f"checkpoint unreadable: a {type(ck).__name__}, not a dict ({path})")
    for k, t in _KEYS.items():
        if k not in ck:
            raise CheckpointError(f"checkpoint unreadable: no {k!r} entry ({path})")
        if not isinstance(ck[k], t) or isinstance(ck[k], bool):
            raise CheckpointError(f"checkpoint unreadable: {k!r} is a {type(ck[k]).__name__} ({path})")
    if ck["iteration"] < 0 or not all(isinstance(r, dict) and isinstance(r.get("iteration"), int)
                                      for r in ck["curve"]):
        raise CheckpointError(f"checkpoint unreadable: bad iteration or curve rows ({path})")


@dataclass
class Resumed:
    """Where a run resumes: its host ``state`` tree, ``iteration``, ``curve`` rows, wall
    ``seconds``, ``eval_seconds``, training CPU seconds so far, the RNG state, and the CPU
    seconds spent evaluating."""
    state: dict
    iteration: int
    curve: list
    seconds: float
    eval_seconds: float
    train_cpu_seconds: float
    rng: dict
    eval_cpu_seconds: float = 0.0


class Checkpointer:
    """One run's checkpoints at ``path`` (None: none written), identified by ``fingerprint``.

    Parameters
    ----------
    path : path-like or None
    fingerprint : dict
        :func:`run_fingerprint`; a checkpoint of another fingerprint is refused on resume.
    every : int >= 0
        Write every this many iterations (0: no iteration cadence).
    seconds : float >= 0
        Also write whenever this much wall clock has passed since the last write (0: never).
    config : dataclass or class, optional
        The defaults of config fields a checkpoint may not record (:func:`fingerprint_diff`).
    """

    def __init__(self, path, fingerprint, *, every=0, seconds=0.0, config=None):
        self.path = None if path is None else pathlib.Path(path)
        self.fingerprint, self.every, self.seconds, self.config = fingerprint, every, seconds, config
        self.saved = None                   # (file, iteration) of the last checkpoint on disk
        self.last = time.perf_counter()

    def resume(self, source, iters):
        """The :class:`Resumed` point of the checkpoint at ``source``, or None when there is none.

        Raises ``CheckpointError`` for an unreadable file, :class:`CheckpointRefused` (a
        ``ValueError``) for one of another run (naming the differing fields) or one whose state
        holds a NaN or an infinity, and ``ValueError`` for one beyond ``iters``.
        """
        source = pathlib.Path(source)
        if not source.exists():
            return None
        ck = load_checkpoint(source)        # on the host: its state is checked before it moves
        check_payload(ck, source)
        diff = fingerprint_diff(ck["fingerprint"], self.fingerprint, self.config)
        if diff:
            raise CheckpointRefused(f"checkpoint {source} was written by a different run; refusing to resume it. "
                                    f"Differences (checkpoint -> this run): {'; '.join(diff)}", source, diff=diff)
        if ck["iteration"] > iters:
            raise ValueError(f"the checkpoint {source} is at iteration {ck['iteration']}, beyond the requested "
                             f"{iters} iterations; resume with --iters {ck['iteration']} or more")
        bad = non_finite_parts(ck["state"])
        if bad:
            raise CheckpointRefused(f"checkpoint {source} holds non-finite values in its state "
                                    f"({', '.join(map(str, bad))}); refusing to resume it", source)
        rng = np.random.default_rng(0)
        try:
            rng.bit_generator.state = ck["rng"]
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"checkpoint unreadable: bad RNG state ({e}) ({source})") from None
        self.saved = (source, ck["iteration"])
        return Resumed(ck["state"], ck["iteration"], ck["curve"], ck["seconds"], ck.get("eval_seconds", 0.0),
                       ck.get("train_cpu_seconds", 0.0), ck["rng"], ck.get("eval_cpu_seconds", 0.0))

    def due(self, it):
        """Whether iteration ``it`` is due for a checkpoint by either cadence."""
        return self.path is not None and bool(
            (self.every and it % self.every == 0)
            or (self.seconds and time.perf_counter() - self.last >= self.seconds))

    def kept(self):
        """The end of an error message: which checkpoint is left on disk."""
        return (f"the last good checkpoint ({self.saved[0]}, iteration {self.saved[1]}) is kept"
                if self.saved is not None else "no checkpoint was written")

    def checked_host(self, state, it):
        """The state's host copy, refused (:class:`NonFiniteLoss`) when it holds a NaN or an
        infinity: the losses of step ``it`` were computed before its updates, so they cannot vouch
        for the state after it."""
        host = tree_to_host(state)
        bad = non_finite_parts(host)
        if bad:
            raise NonFiniteLoss(f"non-finite values in the state ({', '.join(map(str, bad))}) at iteration {it}; "
                                f"{self.kept()}")
        return host

    def write(self, state, it, rng_state, curve, *, seconds, eval_seconds, train_cpu_seconds, eval_cpu_seconds=0.0,
              host=None):
        """Write the checkpoint of iteration ``it`` atomically (nothing without a path); ``host``:
        the state's :meth:`checked_host` copy when the caller already has it."""
        if self.path is None:
            return
        host = self.checked_host(state, it) if host is None else host
        save_checkpoint(self.path, {"fingerprint": self.fingerprint, "state": host, "iteration": it,
                                    "rng": rng_state, "curve": curve, "seconds": seconds,
                                    "evaluated": [r["iteration"] for r in curve], "eval_seconds": eval_seconds,
                                    "train_cpu_seconds": train_cpu_seconds, "eval_cpu_seconds": eval_cpu_seconds})
        self.saved, self.last = (self.path, it), time.perf_counter()
