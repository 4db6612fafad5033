"""Multi-run experiments: :class:`MultiRun` (variants x seeds, one run per ``--variant``),
:func:`execute_runs` and :func:`execute_multi` (``docs/runs.md``); one run is :mod:`.runner`'s.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Callable

from .flags import RunOptions
from .folders import has_checkpoint, run_folder


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
    return summarise_multi(exp, opts, out, variants, [(v, s, run_folder(out, v.key, s)) for s in seeds for v in variants])


#: the fields every multi-run experiment's top-level ``metrics.json`` carries (:func:`standard_summary`)
SUMMARY_FIELDS = ("experiment", "dataset", "seeds", "n_runs", "variants", "backend", "dtype", "quick", "threads")


def standard_summary(opts: RunOptions, out, variants, runs) -> dict:
    """The standard fields (:data:`SUMMARY_FIELDS`) of a multi-run experiment's summary of the
    finished runs ``[(variant, seed, folder)]`` in ``out``: the experiment, the seeds, the number of
    runs, per variant its label, base, seeds and run folders (relative to ``out``), and the
    backend, ``--quick``, and the dataset, dtype and threads of the runs (None where they differ)."""
    out = pathlib.Path(out)
    ms = []
    for _, _, folder in runs:
        try:
            ms.append(json.loads((pathlib.Path(folder) / "metrics.json").read_text()))
        except (OSError, ValueError):
            ms.append({})

    def common(key):
        vals = {json.dumps(m.get(key), sort_keys=True) for m in ms}
        return json.loads(vals.pop()) if len(vals) == 1 else None
    return {"experiment": opts.experiment, "dataset": common("dataset"), "seeds": sorted({s for _, s, _ in runs}),
            "n_runs": len(runs),
            "variants": {v.key: {"label": v.label, "base": v.base, "seeds": [s for w, s, _ in runs if w.key == v.key],
                                 "folders": [os.path.relpath(f, out) for w, _, f in runs if w.key == v.key]}
                         for v in variants},
            "backend": opts.backend, "dtype": common("dtype"), "quick": bool(opts.quick), "threads": common("threads")}


def summarise_multi(exp: MultiRun, opts: RunOptions, out, variants, runs):
    """``exp.summarise(out, variants, runs)``, then its ``out/metrics.json`` completed with the
    :func:`standard_summary` fields (written here, for every multi-run experiment and the sweep's
    summaries alike): a field the experiment wrote itself keeps its value where the standard one is
    None, and an experiment's own per-variant dict under ``variants`` keeps its entries beside the
    standard ones. Returns what ``exp.summarise`` returned."""
    from ..outputs import write_json
    result = exp.summarise(pathlib.Path(out), variants, runs)
    path = pathlib.Path(out) / "metrics.json"
    try:
        own = json.loads(path.read_text())
    except (OSError, ValueError):
        own = {}
    own = own if isinstance(own, dict) else {"summary": own}
    std = standard_summary(opts, out, variants, runs)
    theirs = own.get("variants") if isinstance(own.get("variants"), dict) else {}
    std["variants"] = {k: {**v, **(theirs[k] if isinstance(theirs.get(k), dict) else {})}
                       for k, v in std["variants"].items()}
    write_json(path, {**own, **{k: v for k, v in std.items() if v is not None or k not in own}})
    return result
