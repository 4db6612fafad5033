"""The run layer: one lifecycle for every experiment of both command lines (``toy``, ``gpu``).

An experiment provides a function ``run(opts: RunOptions) -> dict`` that builds its methods
and trains one run with :func:`train_run`; or it is a :class:`MultiRun`: its variants
(:class:`Variant`), how to train one run of a variant and seed, and its summary as a function of
finished run folders. :func:`execute_multi` runs exactly one of them (``--variant KEY --seed S``,
the unit a sweep distributes) or all variant x seed in order (:func:`execute_runs`), then the
summary. Everything around that is done here, once:

* option types for ``argparse`` (:func:`positive_int`, ...) and the flags every experiment
  shares (:func:`add_common_flags`), so a bad flag exits 2 with one line naming it;
* ownership of the output folder (:func:`claim_output`): a marker file records which
  experiment wrote it; a non-empty folder it did not write is refused, and so is its own
  unless ``--resume`` is given; ``--out ""`` is refused; stale temporary files are removed;
  a folder this invocation created is removed again if the run fails before writing anything;
* the checkpoint (:func:`train_run`): its file, the run's fingerprint (experiment, dataset,
  method, every config field, seed, dtype), the cadences (every N iterations and every
  ``checkpoint_seconds`` of wall clock), legacy ``checkpoint.pkl`` files on resume;
* signals (:func:`interrupts`): SIGTERM and SIGHUP are handled like Ctrl-C, so the loop
  checkpoints the last completed iteration before the process exits (128 + signal);
* BLAS threads (:func:`blas_threads`, ``--threads``), recorded in ``metrics.json``;
* errors (:func:`execute`): OS errors, unreadable checkpoints, non-finite losses, missing
  optional packages end in one line on stderr and exit status 2.

See docs/runs.md for the layout.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import sys
from dataclasses import dataclass, field
from typing import Callable

from .checkpoint import remove_stale_temps
from .threads import THREAD_VARIABLES, usable_cpus

MARKER = ".refimpl-run.json"          # in every output folder: which experiment wrote it
CHECKPOINT = "checkpoint.npz"
LEGACY_CHECKPOINT = "checkpoint.pkl"  # written by earlier versions; read on resume only
CHECKPOINT_SECONDS = 60.0             # default wall-clock checkpoint cadence
INSTALL = "pip install -e '.[toy]'"


# ----------------------------------------------------------------------------- options
class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line (the flag and the reason) and exit 2;
    ``--help`` still prints the full usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass
class RunOptions:
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


# ----------------------------------------------------------------------------- threads
def default_threads(parallel_runs=1):
    """The machine's usable cores divided among ``parallel_runs`` runs (at least 1 each)."""
    return max(1, usable_cpus() // max(1, parallel_runs))


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


# ----------------------------------------------------------------------------- output folder
class OutputError(ValueError):
    """An output folder that may not be used; the message says why."""


def _owner(out: pathlib.Path):
    try:
        return json.loads((out / MARKER).read_text()).get("experiment")
    except (OSError, ValueError, AttributeError):
        return None


def has_checkpoint(folder) -> bool:
    folder = pathlib.Path(folder)
    return (folder / CHECKPOINT).exists() or (folder / LEGACY_CHECKPOINT).exists()


def checkpoint_file(folder) -> pathlib.Path:
    """The checkpoint to read in ``folder``: ``checkpoint.npz``, else a legacy ``checkpoint.pkl``."""
    folder = pathlib.Path(folder)
    return folder / LEGACY_CHECKPOINT if not (folder / CHECKPOINT).exists() and (folder / LEGACY_CHECKPOINT).exists() \
        else folder / CHECKPOINT


def _any_checkpoint(out):
    return has_checkpoint(out) or any(has_checkpoint(p.parent) for p in out.glob("**/checkpoint.*"))


def claim_output(out, experiment, resume) -> bool:
    """Make ``out`` this run's folder; returns whether it was created now.

    Raises
    ------
    OutputError
        ``out`` is non-empty and not written by ``experiment``; or written by it but
        ``resume`` is not set; or ``resume`` is set without any checkpoint in it.
        The folder cannot be created (below a file, read-only, ...): the message names ``--out``
        and the reason.
    OSError
        The folder's contents cannot be read.
    """
    out = pathlib.Path(out)
    if str(out).strip() in ("", "."):
        raise OutputError("--out must name a folder, not the current directory or an empty path")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    if out.is_dir():
        remove_stale_temps(out)
    contents = [p for p in out.iterdir()] if out.is_dir() else []
    owner = _owner(out)
    if resume:
        if owner is not None and owner != experiment:
            raise OutputError(f"{out} holds a run of {owner}, not {experiment}; resume it with "
                              f"'{owner}', or choose another --out")
        if not _any_checkpoint(out):
            raise OutputError(f"--resume given but there is no checkpoint in {out} ({CHECKPOINT}, or "
                              f"*/{CHECKPOINT} for multi-run experiments)")
    elif contents:
        if owner == experiment:
            raise OutputError(f"{out} already holds a run of {experiment}: pass --resume to continue it "
                              f"(or to rewrite its outputs), or choose another --out")
        who = f"a run of {owner}" if owner else "files this experiment did not write"
        raise OutputError(f"{out} is not empty (it holds {who}); choose another --out")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        at = f" ({e.filename})" if e.filename and pathlib.Path(e.filename) != out else ""
        raise OutputError(f"--out {out}: cannot create the folder: {e.strerror or e}{at}") from None
    if not contents:
        _mark(out, experiment)
    return created


def _mark(out, experiment):
    """Record ``experiment`` as the owner of ``out`` (a folder without a marker is adopted only
    after a successful run, so a refused resume leaves it as it was)."""
    if _owner(out) is None:
        from .outputs import write_json
        write_json(pathlib.Path(out) / MARKER, {"experiment": experiment})


def _only_marker(out: pathlib.Path):
    return all(p.name == MARKER or (p.is_dir() and _only_marker(p)) for p in out.iterdir())


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


# ----------------------------------------------------------------------------- one training run
def train_run(opts: RunOptions, method, data, *, dataset, xp, dtype="float32", iters, eval_fn=None,
              eval_every=0, checkpoint_every=None, check_every=None, progress=True, run_info=None,
              max_train_cpu_seconds=None, cuda_graph=False, device=None):
    """:func:`refimpl.train.train` with the layer's checkpoint file, fingerprint and cadences.

    The checkpoint is ``opts.out / checkpoint.npz``; ``--resume`` also reads a legacy
    ``checkpoint.pkl`` (restricted unpickler). The fingerprint adds ``opts.experiment`` and
    ``dataset`` (and ``run_info``) to the method, config, seed and dtype. Checkpoints are written
    every ``opts.checkpoint_every`` iterations (0: ``checkpoint_every``, else every evaluation)
    and every ``opts.checkpoint_seconds``. An interrupted run raises ``KeyboardInterrupt`` after
    its checkpoint is written (``NonFiniteLoss`` instead, when the state to checkpoint holds a NaN
    or an infinity: a resume would only diverge again). ``max_train_cpu_seconds`` and
    ``cuda_graph`` and ``device``: :func:`refimpl.train.train`'s.

    Returns
    -------
    refimpl.train.TrainResult
    """
    from .train import train
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    ck, legacy = out / CHECKPOINT, out / LEGACY_CHECKPOINT
    if (ck.exists() or legacy.exists()) and not opts.resume:
        raise OutputError(f"{out} holds a checkpoint: pass --resume to continue that run, or choose another --out")
    every = opts.checkpoint_every or checkpoint_every or max(eval_every, 1)
    res = train(method, data, xp=xp, dtype=dtype, device=device, seed=opts.seed, iters=iters, eval_fn=eval_fn,
                eval_every=eval_every, checkpoint_path=ck, checkpoint_every=every,
                checkpoint_seconds=opts.checkpoint_seconds, resume=opts.resume,
                resume_from=checkpoint_file(out), check_every=check_every,
                run_info={"experiment": opts.experiment, "dataset": dataset, **(run_info or {})},
                progress=progress, max_train_cpu_seconds=max_train_cpu_seconds, cuda_graph=cuda_graph)
    if res.interrupted:
        raise KeyboardInterrupt
    return res


# ----------------------------------------------------------------------------- several runs
def seeds_of(opts: RunOptions, default=None) -> list:
    """The seeds of a multi-run experiment: ``opts.extra["seeds"]`` (a comma string or a list of
    distinct integers >= 0) if given; else ``[opts.seed]`` for ``--quick`` or when ``default``
    is None; else ``list(default)``. ``ValueError`` naming ``--seeds`` for anything else."""
    s = (opts.extra or {}).get("seeds")
    if s is None:
        return [opts.seed] if opts.quick or default is None else list(default)
    try:
        vals = [int(v) for v in (s.split(",") if isinstance(s, str) else s) if str(v).strip()]
    except (TypeError, ValueError):
        raise ValueError(f"--seeds must be a comma list of integers, got {s!r}") from None
    if not vals or any(v < 0 for v in vals) or len(set(vals)) != len(vals):
        raise ValueError(f"--seeds must be distinct integers >= 0, got {s!r}")
    return vals



@dataclass(frozen=True)
class Run:
    """One run of an experiment: ``train(opts)`` writes the standard outputs into ``opts.out``
    (``--out / key``) with ``opts.seed = seed`` and returns its final metrics."""
    key: str
    seed: int
    train: Callable


def execute_runs(opts: RunOptions, runs, summarise=None, *, announce=None):
    """Execute ``runs`` in order, each in its sub-folder ``opts.out / run.key``; then
    ``summarise({key: metrics})`` (its result is returned; the dict itself when None).

    On ``--resume`` a run resumes from its checkpoint when it has one and starts afresh
    otherwise, so an interrupted multi-run experiment continues where it stopped.
    """
    if len({r.key for r in runs}) != len(runs):
        raise ValueError("run keys must be distinct")
    results = {}
    for r in runs:
        sub_out = pathlib.Path(opts.out) / r.key
        sub = dataclasses.replace(opts, out=sub_out, seed=r.seed, resume=opts.resume and has_checkpoint(sub_out))
        if announce:
            announce(r)
        results[r.key] = r.train(sub)
    return summarise(results) if summarise else results


# ----------------------------------------------------------------------------- multi-run experiments
@dataclass(frozen=True)
class Variant:
    """One variant of a multi-run experiment (its runs differ only by seed).

    ``key`` names it (``--variant KEY``; the in-process sub-folder is ``KEY-seedS``); ``label``
    is its legend; ``base`` the key of the variant it is compared with (or None); ``after`` the
    keys whose run of the same seed must finish first, their folders given to the run as
    ``opts.extra["peers"]`` (``{key: folder}``); ``data`` is the experiment's own (not compared).
    """
    key: str
    label: str = ""
    base: str | None = None
    after: tuple = ()
    data: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class MultiRun:
    """An experiment of variant x seed runs; calling it with ``opts`` executes it (:func:`execute_multi`).

    ``variants(opts) -> [Variant]`` validates the options (``ValueError``) and writes nothing;
    ``train(opts, variant) -> metrics`` executes exactly one run into ``opts.out`` with
    ``opts.seed``; ``summarise(out, variants, [(variant, seed, folder)]) -> dict`` computes the
    experiment's summary from finished run folders only and writes it into ``out``.
    ``default_seeds``: the seeds without ``--seeds`` / ``--seed`` (None: ``opts.seed``).
    """
    variants: Callable
    train: Callable
    summarise: Callable
    default_seeds: tuple | None = None

    def __call__(self, opts: RunOptions):
        return execute_multi(self, opts)


def run_folder(out, key, seed) -> pathlib.Path:
    """Where :func:`execute_multi` puts the run (``key``, ``seed``): ``out / f"{key}-seed{seed}"``."""
    return pathlib.Path(out) / f"{key}-seed{seed}"


def parse_peers(items) -> dict:
    """``["KEY=DIR", ...]`` (``--peer``) -> ``{KEY: Path(DIR)}``; ``ValueError`` naming ``--peer``."""
    peers = {}
    for item in items or ():
        key, sep, folder = str(item).partition("=")
        if not sep or not key or not folder:
            raise ValueError(f"--peer must be KEY=FOLDER, got {item!r}")
        peers[key] = pathlib.Path(folder)
    return peers


def execute_multi(exp: MultiRun, opts: RunOptions):
    """Execute a multi-run experiment.

    With ``opts.extra["variant"]`` (``--variant KEY``): exactly one run, of that variant and
    ``opts.seed``, into ``opts.out`` (its peers from ``opts.extra["peer"]``); returns its
    metrics. Otherwise every variant x seed (:func:`seeds_of` with ``exp.default_seeds``; seeds
    outer, variants inner) through :func:`execute_runs` into :func:`run_folder`, then
    ``exp.summarise``; returns the summary.

    Raises
    ------
    ValueError
        An unknown variant key, ``--variant`` with ``--seeds``, or the experiment's own option
        errors, before anything is written.
    """
    ex = opts.extra or {}
    variants = exp.variants(opts)
    by_key = {v.key: v for v in variants}
    key = ex.get("variant")
    if key is not None:
        if key not in by_key:
            raise ValueError(f"--variant {key!r} is not a variant of {opts.experiment or 'this experiment'} "
                             f"with these options (variants: {', '.join(by_key)})")
        if ex.get("seeds") is not None:
            raise ValueError("--variant runs one seed (--seed); drop --seeds")
        peers = parse_peers(ex.get("peer"))
        missing = [a for a in by_key[key].after if a not in peers]
        if missing:
            raise ValueError(f"variant {key} needs the finished run of {', '.join(missing)} with the same "
                             f"seed: give --peer {missing[0]}=FOLDER")
        return exp.train(dataclasses.replace(opts, extra={**ex, "peers": peers}), by_key[key])
    seeds = seeds_of(opts, exp.default_seeds)
    out = pathlib.Path(opts.out)

    def one(v, seed):
        peers = {a: run_folder(out, a, seed) for a in v.after}
        return lambda sub: exp.train(dataclasses.replace(sub, extra={**ex, "peers": peers}), v)
    plan = [Run(run_folder(out, v.key, s).name, s, one(v, s)) for s in seeds for v in variants]
    execute_runs(opts, plan, announce=lambda r: print(f"[{opts.experiment}] {r.key}", flush=True))
    return exp.summarise(out, variants, [(v, s, run_folder(out, v.key, s)) for s in seeds for v in variants])


def read_fingerprint(folder):
    """The fingerprint of the run in ``folder`` (from its checkpoint), or None without a checkpoint."""
    from .checkpoint import load
    return load(checkpoint_file(folder))["fingerprint"] if has_checkpoint(folder) else None


# ----------------------------------------------------------------------------- the command-line lifecycle
def _error(msg):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return 2


def _os_error(e: OSError):
    where = e.filename or ""
    if e.filename2:
        where = f"{where} -> {e.filename2}"
    reason = e.strerror or str(e)
    return f"{where}: {reason}" if where else reason


def execute(run: Callable, opts: RunOptions, *, resume_command: str, stream=None):
    """Run ``run(opts)`` with the whole lifecycle; returns ``(exit status, metrics or None)``.

    Claims ``opts.out``, limits BLAS threads, turns SIGTERM/SIGHUP into interrupts, and maps
    every expected failure to one line on stderr: exit 2 for bad options, OS errors (path and
    reason), unreadable or foreign checkpoints, non-finite losses and missing packages; 130
    (or 128 + the signal) for an interrupt, after which ``resume_command`` is printed.
    """
    out = pathlib.Path(opts.out)
    created, metrics = False, None
    threads = opts.threads or default_threads()
    _signals.clear()
    try:
        created = claim_output(out, opts.experiment, opts.resume)
        with interrupts(), blas_threads(threads, required=opts.threads is not None) as applied:
            metrics = run(dataclasses.replace(opts, threads=threads))
        _mark(out, opts.experiment)
        _record(out, {"threads": applied})
        status = 0
    except KeyboardInterrupt:
        print(f"interrupted; resume with: {resume_command}", file=sys.stderr, flush=True)
        status = 128 + (_signals[-1] if _signals else signal.SIGINT)
    except OSError as e:
        status = _error(_os_error(e))
    except ImportError as e:
        missing = f"missing package {e.name}; " if e.name else ""
        status = _error(f"{e} ({missing}every experiment runs after {INSTALL})")
    except (ValueError, RuntimeError, FloatingPointError) as e:   # bad options, checkpoints, non-finite losses
        status = _error(str(e))
    if status and created and out.is_dir() and _only_marker(out):
        shutil.rmtree(out, ignore_errors=True)
    return status, metrics


def _record(out, info):
    """Add ``info`` to ``out/metrics.json`` (atomically), if the experiment wrote one."""
    from .outputs import write_json
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


def seed_list(s):
    """``argparse`` type of ``--seeds``: a comma list of distinct integers >= 0 (returned as given)."""
    try:
        vals = [int(v) for v in str(s).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {s!r}") from None
    if not vals or any(v < 0 for v in vals) or len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0, got {s!r}")
    return s
