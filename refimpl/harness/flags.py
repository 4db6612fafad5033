"""The flags every experiment shares and the ``argparse`` types that refuse a bad value in one line.

:class:`RunOptions` is what an experiment receives; :func:`add_common_flags` adds the shared
flags (``--backend``, ``--seed``, ``--iters``, ``--out``, ``--quick``, the checkpoint cadences,
``--resume``, ``--threads``) with their defaults shown by ``--help``.
"""
from __future__ import annotations

import argparse
import pathlib
from dataclasses import dataclass, field

from ..threads import usable_cpus


CHECKPOINT_SECONDS = 60.0             # default wall-clock checkpoint cadence


# ----------------------------------------------------------------------------- options
class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line (the flag and the reason) and exit 2;
    ``--help`` still prints the full usage. Flags are never abbreviated (``--l`` is not ``--lam``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass
class RunOptions:
    """What an experiment receives: the shared flags, parsed, and its own (``extra``)."""
    out: pathlib.Path                    # output folder (claimed by the layer before the run starts)
    backend: str = "numpy"               # numpy | cupy (array_api_strict also works, slowly)
    seed: int = 0
    iters: int | None = None             # None: the experiment's default
    quick: bool = False                  # short smoke run (CI)
    checkpoint_every: int = 0            # iterations between checkpoints; 0: at every evaluation
    resume: bool = False
    extra: dict = field(default_factory=dict)   # experiment-specific flags, e.g. latent_dim, data_dir
    experiment: str = ""                 # registered name, recorded in every checkpoint's fingerprint
    checkpoint_seconds: float = CHECKPOINT_SECONDS   # wall-clock checkpoint cadence; 0: none
    threads: int | None = None           # BLAS threads (None: default_threads())


def _number(kind, s):
    try:
        return kind(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {s!r}") from None


def positive_int(s):
    v = _number(int, s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def nonneg_int(s):
    v = _number(int, s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def positive_float(s):
    v = _number(float, s)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {s}")
    return v


def nonneg_float(s):
    v = _number(float, s)
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {s}")
    return v


def out_dir(s):
    if not str(s).strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty path")
    return pathlib.Path(s)


def seed_list(s):
    """``argparse`` type of ``--seeds``: a comma list of distinct integers >= 0 (returned as given)."""
    try:
        vals = [int(v) for v in str(s).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {s!r}") from None
    if not vals or any(v < 0 for v in vals) or len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0, got {s!r}")
    return s


# ----------------------------------------------------------------------------- threads
def default_threads(parallel_runs=1):
    """The machine's usable cores divided among ``parallel_runs`` runs (at least 1 each)."""
    return max(1, usable_cpus() // max(1, parallel_runs))


def add_common_flags(ap, *, iters_default="the experiment's", backends=("numpy", "cupy", "array_api_strict"),
                     backend="numpy"):
    """The flags every experiment of either command line takes."""
    ap.add_argument("--backend", choices=list(backends), default=backend, help=f"array backend (default {backend})")
    ap.add_argument("--seed", type=nonneg_int, default=0, help="random seed, >= 0 (default 0)")
    ap.add_argument("--iters", type=positive_int, default=None,
                    help=f"outer iterations (default {iters_default})")
    ap.add_argument("--out", type=out_dir, default=None, help="output folder (default runs/NAME-seedS)")
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--checkpoint-every", type=nonneg_int, default=0,
                    help="write a checkpoint every N outer iterations; 0 (default): at every evaluation. "
                         "Checkpoints are also written every --checkpoint-seconds, at the end and on "
                         "Ctrl-C, SIGTERM or SIGHUP")
    ap.add_argument("--checkpoint-seconds", type=nonneg_float, default=CHECKPOINT_SECONDS,
                    help=f"also checkpoint whenever this many seconds of wall clock have passed since the "
                         f"last one; 0: never (default {CHECKPOINT_SECONDS:g})")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --out from its checkpoint (a completed run: rewrite its outputs)")
    ap.add_argument("--threads", type=positive_int, default=None,
                    help=f"compute threads: BLAS, and the evaluation's two exact solves (default: the machine's "
                         f"cores, {default_threads()} here; use 1 per run when several runs share the machine)")
