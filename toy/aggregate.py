"""Statistics over the runs of a sweep: per variant and metric, n, mean, std and a 95% Student
t-interval; learning curves on a common axis with mean and confidence band.

The interval is the two-sided Student t-interval ``mean +- t_{0.975, n-1} std / sqrt(n)``
(``std`` with ``ddof=1``; the quantile from ``scipy.stats.t``). It assumes the per-seed values
are roughly normal; with n = 1 there is no interval (``null`` in JSON, blank in CSV).

The summaries (``summary.json``, ``summary.csv``, :func:`summarise`) say for each metric what its
interval is worth (:func:`decided`, the ``interval`` field): below :data:`DECIDES_AT` = 3 seeds it is
``"undecided"`` and not reported (at n = 2, t = 12.7: the interval of two seeds spans far beyond
anything they can tell, for a count of modes below 0); from 3 seeds the t-interval, cut to the
quantity's possible range where it crosses it (:data:`DOMAINS`: counts and distances are >= 0, a
fraction lies in [0, 1]) and then flagged ``"t, clipped to [0, 1]"``. The mean, std and n are
always reported. The curves' bands (``curves.csv``) are the plain t-interval.

Curves: on the *iteration* axis the statistics are taken at the iterations every run evaluated;
on the *training-seconds* axis each run's curve is linearly interpolated (``numpy.interp``) onto
50 points spanning the time range every run covers (no extrapolation). Blank cells (metrics not
evaluated at that row) are left out, so ``n`` may vary along a curve.
"""
from __future__ import annotations

import csv
import json
import math
import pathlib

import numpy as np

from .common import plt, write_csv, write_json

LEVEL = 0.95
INTERVAL = ("95% Student t-interval: mean +- t_{0.975,n-1} * std / sqrt(n), std with ddof=1 (scipy.stats.t); "
            "undecided (no interval) at n < 3; clipped to the quantity's possible range where it crosses it, and "
            "flagged (the 'interval' field)")
#: fewer seeds than this cannot decide: the summaries give no interval, and say "undecided"
DECIDES_AT = 3
#: the possible range (low, high; None: unbounded) of a metric, by the last part of its name: counts
#: and distances are >= 0, fractions lie in [0, 1]; a metric not named here is not clipped
DOMAINS = {"modes": (0.0, None), "iterations": (0.0, None), "gen_iters": (0.0, None),
           "high_quality": (0.0, 1.0), "w1": (0.0, None), "w2": (0.0, None), "sliced_w1": (0.0, None),
           "fd": (0.0, None), "fd_train_test": (0.0, None)}
SUMMARY_COLUMNS = ("variant", "metric", "n", "mean", "std", "ci_low", "ci_high", "interval")
#: keys (at any depth) that are settings or bookkeeping, not results: every flag of the toy
#: command line (``toy.cli.OVERRIDE_FLAGS`` and the shared flags; tests keep them in step),
#: the clocks, and what an experiment records about its setting (steps, sample sizes, budget)
NOT_METRICS = {"seed", "seeds", "iteration", "seconds", "train_seconds", "train_cpu_seconds", "eval_seconds",
               "iters", "steps", "threads", "backend", "dtype", "quick", "checkpoint_every", "checkpoint_seconds",
               "n", "n_eval", "n_target", "budget", "budget_cpu_seconds",
               "objective", "lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic", "h", "l",
               "K", "variant", "peer", "data_dir", "dataset", "clip", "eps", "protocol", "init_gain",
               "wgan_gp_iters", "method", "method_key"}
#: subtrees left out whole: the configuration, the evaluation seeds, the BLAS pools
NOT_METRIC_TREES = {"config", "eval_seeds", "blas_threads", "fingerprint"}
CURVE_COLUMNS = ("variant", "metric", "axis", "x", "n", "mean", "std", "ci_low", "ci_high")
TIME_AXIS = "train_seconds"
GRID_POINTS = 50


def numeric_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The result metrics of a ``metrics.json``: its finite numeric leaves (nested dicts flattened
    as ``a/b``), without booleans, lists, the settings and bookkeeping keys of
    :data:`NOT_METRICS` at any depth (``h``, ``steps``, ``threads``, ``baseline/n``, seeds, clocks)
    and the subtrees of :data:`NOT_METRIC_TREES` (``config``, ``eval_seeds``)."""
    flat = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if k in NOT_METRIC_TREES:
            continue
        if isinstance(v, dict):
            flat.update(numeric_metrics(v, key + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NOT_METRICS and math.isfinite(v):
            flat[key] = float(v)
    return flat


def t_interval(values) -> dict:
    """``{"n", "mean", "std", "ci_low", "ci_high"}`` of the finite ``values`` (see the module doc);
    ``std`` and the interval are ``None`` when n < 2, everything but n when n = 0."""
    from scipy.stats import t
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = float(x.std(ddof=1))
    half = float(t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def domain(metric: str, values=()):
    """The possible range ``(low, high)`` of ``metric`` (:data:`DOMAINS`, by the last part of its
    name: ``baseline/modes`` is a count), or None when it is not known, or when one of its
    ``values`` lies outside it (a name that does not mean the quantity, e.g. a difference)."""
    bounds = DOMAINS.get(metric.rsplit("/", 1)[-1])
    if bounds is None or any((bounds[0] is not None and v < bounds[0]) or (bounds[1] is not None and v > bounds[1])
                             for v in values):
        return None
    return bounds


def decided(stats: dict, bounds=None) -> dict:
    """:func:`t_interval`'s ``stats`` as a summary reports them, with ``"interval"`` saying what the
    interval is: ``"undecided (n = 2 < 3)"`` below :data:`DECIDES_AT` (``ci_low`` and ``ci_high``
    then None), else ``"t"``, or ``"t, clipped to [0, 1]"`` (``[0, inf)``) when it crossed ``bounds`` (the
    quantity's possible range, :func:`domain`) and was cut to it."""
    n = stats["n"]
    if n < DECIDES_AT:
        return {**stats, "ci_low": None, "ci_high": None, "interval": f"undecided (n = {n} < {DECIDES_AT})"}
    low, high = bounds or (None, None)
    lo, hi = stats["ci_low"], stats["ci_high"]
    out = {**stats, "ci_low": lo if low is None else max(lo, low), "ci_high": hi if high is None else min(hi, high)}
    if (out["ci_low"], out["ci_high"]) == (lo, hi):
        return {**out, "interval": "t"}
    span = ("(-inf" if low is None else f"[{low:g}") + ", " + ("inf)" if high is None else f"{high:g}]")
    return {**out, "interval": f"t, clipped to {span}"}


def summarise(per_run: list[tuple[str, dict]]) -> dict:
    """``{variant: {metric: decided(t_interval)}}`` from ``[(variant, metrics.json contents)]``; a
    metric's n counts the runs of that variant that report it."""
    values: dict[str, dict[str, list]] = {}
    for variant, metrics in per_run:
        for k, v in numeric_metrics(metrics).items():
            values.setdefault(variant, {}).setdefault(k, []).append(v)
    return {var: {k: decided(t_interval(vs), domain(k, vs)) for k, vs in sorted(ms.items())}
            for var, ms in values.items()}


#: the metrics of the results table (:func:`results_table`), in its column order, by the last part of
#: their names; an experiment without any of them shows its first :data:`TABLE_FALLBACK` metrics
MAIN_METRICS = ("modes", "high_quality", "w1", "fd")
TABLE_FALLBACK = 4


def _cell(s: dict, n_row: int) -> str:
    if not s or s["n"] == 0:
        return "-"
    text = f"{s['mean']:.4g}"
    if s.get("interval", "t").startswith("undecided"):
        text += ("" if s["std"] is None else f" (sd {s['std']:.2g})") + " undecided"
    elif s["ci_low"] is not None:
        text += f" [{s['ci_low']:.4g}, {s['ci_high']:.4g}]" + ("*" if "clipped" in s.get("interval", "") else "")
    return text + (f" (n={s['n']})" if s["n"] != n_row else "")


def _seed_ranges(seeds) -> str:
    seeds, parts = sorted(set(seeds)), []
    for s in seeds:
        if parts and s == parts[-1][1] + 1:
            parts[-1][1] = s
        else:
            parts.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts) or "-"


def results_table(summary: dict, seeds: dict | None = None) -> list[str]:
    """The lines of a short table of ``summary`` (:func:`aggregate_runs`'s): a row per variant (and
    per group of its metrics, ``baseline``, ``methods/KEY``, that holds one of :data:`MAIN_METRICS`)
    with n, its ``seeds`` (``{variant: [seed]}``) and a column per main metric: ``mean [low, high]``
    (the 95% t-interval; ``*``: clipped to the quantity's range), ``mean (sd S) undecided`` below
    :data:`DECIDES_AT` seeds."""
    variants = summary.get("variants", {})
    rows = []                                   # (label, variant, {column: stats})
    for variant, v in variants.items():
        groups: dict[str, dict] = {}
        for metric, stats in v["metrics"].items():
            group, _, leaf = metric.rpartition("/")
            if leaf in MAIN_METRICS:
                groups.setdefault(group, {})[leaf] = stats
        for group, cells in sorted(groups.items(), key=lambda g: (g[0] != "", g[0])):
            rows.append((variant + (f" ({group})" if group else ""), variant, cells))
    columns = [m for m in MAIN_METRICS if any(m in cells for _, _, cells in rows)]
    if not columns:                             # none of the main metrics: the first few of each variant
        columns = list(dict.fromkeys(m for v in variants.values() for m in list(v["metrics"])[:TABLE_FALLBACK]))
        rows = [(variant, variant, v["metrics"]) for variant, v in variants.items()]
    if not rows:
        return ["no finished run: nothing to summarise"]
    table = [["variant", "n", "seeds", *columns]]
    for label, variant, cells in rows:
        n = max((s["n"] for s in cells.values()), default=0)
        table.append([label, str(n), _seed_ranges((seeds or {}).get(variant, [])),
                      *(_cell(cells.get(c), n) for c in columns)])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]


def read_curve(path) -> dict[str, np.ndarray]:
    """``curve.csv`` as columns of float64 (blank or non-numeric cells: NaN)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = {}
    for k in (rows[0] if rows else {}):
        col = []
        for r in rows:
            try:
                col.append(float(r.get(k) or "nan"))
            except ValueError:
                col.append(float("nan"))
        cols[k] = np.asarray(col)
    return cols


def curve_bands(curves: list[dict], metric: str, axis: str) -> list[dict]:
    """Rows ``{"x", **t_interval}`` of ``metric`` over the runs' ``curves`` on ``axis``
    (``"iteration"``: the iterations every run has; ``TIME_AXIS``: interpolated, module doc)."""
    curves = [c for c in curves if metric in c and axis in c]
    if not curves:
        return []
    if axis == "iteration":
        common = sorted(set.intersection(*[set(c["iteration"][np.isfinite(c["iteration"])].tolist()) for c in curves]))
        rows = []
        for x in common:
            vals = [float(c[metric][c["iteration"] == x][0]) for c in curves]
            rows.append({"x": x, **t_interval(vals)})
        return rows
    pairs = []
    for c in curves:
        ok = np.isfinite(c[axis]) & np.isfinite(c[metric])
        order = np.argsort(c[axis][ok], kind="stable")
        pairs.append((c[axis][ok][order], c[metric][ok][order]))
    if any(t.size < 2 for t, _ in pairs):
        return []
    lo, hi = max(float(t[0]) for t, _ in pairs), min(float(t[-1]) for t, _ in pairs)
    if not hi > lo:
        return []
    grid = np.linspace(lo, hi, GRID_POINTS)
    interp = np.stack([np.interp(grid, t, y) for t, y in pairs])    # (runs, GRID_POINTS)
    return [{"x": float(x), **t_interval(interp[:, i].tolist())} for i, x in enumerate(grid)]


def aggregate_sweep(out, runs: list[tuple[str, str]], stream=None) -> dict:
    """Write ``summary.json``, ``summary.csv``, ``curves.csv`` (its header only when the runs have
    no curve) and one ``curve-METRIC.png`` per metric into the sweep folder ``out`` from the finished ``runs`` ``[(run_id, variant)]``; returns the summary."""
    out = pathlib.Path(out)
    return aggregate_runs(out, [(variant, out / run_id) for run_id, variant in runs], stream)


def aggregate_runs(out, runs: list[tuple[str, pathlib.Path]], stream=None) -> dict:
    """:func:`aggregate_sweep` for finished run folders ``[(variant, folder)]`` anywhere: writes the
    same four outputs into ``out``; returns the summary (``"variants": {variant: {"runs", "metrics"}}``,
    the runs named by their folder relative to ``out`` where possible)."""
    out = pathlib.Path(out)
    per_run, curves, names = [], {}, {}
    for variant, folder in runs:
        folder = pathlib.Path(folder)
        metrics = json.loads((folder / "metrics.json").read_text())
        per_run.append((variant, metrics))
        names.setdefault(variant, []).append(str(folder.relative_to(out)) if folder.is_relative_to(out) else str(folder))
        if (folder / "curve.csv").exists():
            curves.setdefault(variant, []).append(read_curve(folder / "curve.csv"))
    stats = summarise(per_run)
    summary = {"interval": INTERVAL, "variants": {v: {"runs": names[v], "metrics": stats.get(v, {})} for v in names}}
    write_json(out / "summary.json", summary)
    write_csv(out / "summary.csv", [{"variant": v, "metric": k, **s} for v, ms in stats.items() for k, s in ms.items()],
              columns=SUMMARY_COLUMNS)
    bands = {}
    for variant, cs in curves.items():
        names = [k for k in dict.fromkeys(k for c in cs for k in c) if k not in NOT_METRICS]
        for metric in names:
            for axis in ("iteration", TIME_AXIS):
                rows = curve_bands(cs, metric, axis)
                if rows:
                    bands.setdefault(metric, {}).setdefault(axis, {})[variant] = rows
    write_csv(out / "curves.csv", [{"variant": v, "metric": m, "axis": a, **r}
                                   for m, axes in bands.items() for a, vs in axes.items()
                                   for v, rows in vs.items() for r in rows], columns=CURVE_COLUMNS)
    if not bands:
        print("note: the runs have no curve.csv with a metric in common: curves.csv holds its header only",
              file=stream)
    try:
        for metric, axes in bands.items():
            plot_bands(out / f"curve-{metric.replace('/', '-')}.png", metric, axes)
    except RuntimeError as e:          # matplotlib missing: the CSVs hold the same numbers
        print(f"note: no curve figures ({e})", file=stream)
    return summary


def plot_bands(path, metric, axes: dict):
    """One figure for ``metric``: a panel per axis, a line per variant with its 95% band."""
    pyplot = plt()
    fig, panels = pyplot.subplots(1, len(axes), figsize=(4.2 * len(axes), 3.3), squeeze=False)
    for ax, (axis, variants) in zip(panels[0], axes.items()):
        for variant, rows in variants.items():
            x = np.array([r["x"] for r in rows])
            m = np.array([r["mean"] for r in rows], dtype=float)
            lo = np.array([np.nan if r["ci_low"] is None else r["ci_low"] for r in rows], dtype=float)
            hi = np.array([np.nan if r["ci_high"] is None else r["ci_high"] for r in rows], dtype=float)
            n = max(r["n"] for r in rows)
            (line,) = ax.plot(x, m, marker="." if len(x) < 20 else None, label=f"{variant} (n={n})")
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("generator iteration" if axis == "iteration" else "training seconds (wall)")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    fig.suptitle(f"{metric}: mean and 95% t-interval over seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)
