"""RWP and SBE on the 2-D mixtures: analogues of Figs. 2, 4 and 5 of *Wasserstein proximal of GANs*.

Experiments (``python -m toy NAME``):

* ``rwp-grid`` (Fig. 2): WGAN-GP, Standard GAN and DRAGAN, each with and without RWP;
  exact W1 and modes against generator iterations and against training wall-clock,
  mean over seeds with its 95% t-interval band.
* ``rwp-gen-iters`` (Fig. 4): WGAN-GP with 10 generator steps per outer iteration, with and
  without RWP; stability = spread of W1 over the last third of training.
* ``sbe-grid`` (Fig. 5): SBE on WGAN-GP against WGAN-GP, aligned by generator iterations.

Reduced CPU setting (the paper's DCGAN/CIFAR-10 runs are far beyond 2 CPU cores): generator
and critic MLPs of 2 hidden layers of 64 ReLU units, batch 64 (Appendix C's batch), 2-D
Gaussian latent, ``ring8`` data (``--dataset grid25`` for the grid), float32. Optimisers as
Appendix C: WGAN-GP Adam(1e-4, 0.5, 0.9) with 5 critic steps; Standard GAN and DRAGAN
Adam(2e-4, 0.1, 0.999) with 1 critic step. RWP: WGAN-GP h = 0.1, l = 10; Standard/DRAGAN
h = 0.2, l = 5 (``--h`` overrides h). SBE: h = 0.2, 5 potential steps, potential of one hidden
layer of 64 tanh units.

Evaluation. Curve points use 1,000 generated against 1,000 fresh target samples (exact W1 by
POT, modes and high-quality fraction of the 2-D protocol); the final point of each run is also
evaluated with the full protocol on the 2,500 samples saved as ``samples.npy``: those are the
run's final metrics (``modes``, ``high_quality``, ``w1``, ``w2``, ``sliced_w1``), recomputable from
the folder alone; the curve's last point is ``curve_final``. Two
training clocks are recorded, both without the time spent in evaluations: wall-clock
(``train_seconds``, the paper's axis) and the process's CPU time (``train_cpu_seconds``),
which is the cost a dedicated machine would see when other jobs share the CPU cores.
Each experiment is a :class:`refimpl.harness.MultiRun`: its variants (``OBJ`` / ``OBJ-rwp``,
``wgan-gp-10g`` / ``wgan-gp-10g-rwp``, ``wgan-gp`` / ``sbe``) over its seeds, seeds outer and
variants inner so that load changes on a shared machine hit them alike; ``--variant KEY
--seed S`` runs one of them (what ``python -m toy sweep`` distributes).

Outputs in ``opts.out``: one sub-folder per ``VARIANT-seedS`` (curve.csv, metrics.json,
samples.npy, samples.png, curves.png, checkpoint.npz); the statistics of :mod:`toy.aggregate`
(``summary.json``/``summary.csv``: n, mean, std, 95% t-interval per variant and metric;
``curves.csv`` and ``curve-*.png``); and :func:`summarise`'s ``metrics.json``, ``curve.csv``
(mean and 95% t-interval per variant and evaluation point), ``curve_runs.csv`` (every run) and
``curves.png`` (the paper's panels, mean with its band).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import pathlib

import numpy as np

from refimpl.backend import get_namespace, to_numpy
from refimpl.datasets import get_dataset
from refimpl.datasets import sample as sample_dataset
from refimpl.evaluation import EVAL
from refimpl.metrics import N_EVAL, evaluate, mode_stats, w1
from refimpl.rwp import RWPMethod
from refimpl.sbe import SBEMethod
from refimpl.train import GANConfig, GANMethod, ToyData

from .aggregate import INTERVAL, aggregate_runs, curve_bands, read_curve, t_interval
from .common import MultiRun, Outputs, RunOptions, Variant, plt, run_and_write, write_csv, write_json
from .gan import OVERRIDES, apply_overrides, eval_samples, figures_2d

#: config overrides taken from the command line; the objective is chosen per variant instead
FIELDS = tuple(f for f in OVERRIDES if f != "objective")
NAMES = {"wgan-gp": "WGAN-GP", "wgan-lp": "WGAN-LP", "standard": "Standard", "dragan": "DRAGAN"}

#: the reduced networks of the CPU runs
HIDDEN = (64, 64)
BATCH = 64
N_CURVE = 1000            # samples per curve evaluation (generated and target)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
DEFAULT_DATASET = "ring8"
DEFAULT_ITERS = 1000
QUICK_ITERS = 6
GEN_ITERS_N_GEN = 10      # rwp-gen-iters: generator steps per outer iteration (Fig. 4)

WGAN_GP = dict(objective="wgan-gp", n_critic=5, lr_gen=1e-4, lr_critic=1e-4, betas=(0.5, 0.9))
LOGISTIC = dict(n_critic=1, lr_gen=2e-4, lr_critic=2e-4, betas=(0.1, 0.999))


def base_config(objective, **kw):
    """The reduced toy config of an objective (Appendix C optimisers, small MLPs)."""
    opt = WGAN_GP if objective in ("wgan-gp", "wgan-lp") else {**LOGISTIC, "objective": objective}
    opt = {**opt, "objective": objective}
    return GANConfig(gen_hidden=HIDDEN, critic_hidden=HIDDEN, batch_size=BATCH, **{**opt, **kw})


# ----------------------------------------------------------------------------- options
def _extra(opts):
    return {k: v for k, v in (opts.extra or {}).items() if v is not None}



def _dataset(opts):
    name = _extra(opts).get("dataset", DEFAULT_DATASET)
    get_dataset(name)                               # ValueError for unknown names
    return name


def _sample_sizes(opts):
    """(curve, final-protocol) sample counts: N_CURVE and 2,500; ``quick`` uses 200 for both
    (a smoke run, not the protocol). ``opts.extra`` keys ``curve_samples``/``protocol_samples`` override."""
    ex = _extra(opts)
    q = 200 if opts.quick else None
    sizes = (int(ex.get("curve_samples", q or N_CURVE)), int(ex.get("protocol_samples", q or N_EVAL)))
    if min(sizes) < 1:
        raise ValueError(f"sample counts must be >= 1, got {sizes}")
    return sizes


def _iters(opts):
    return int(opts.iters) if opts.iters else (QUICK_ITERS if opts.quick else DEFAULT_ITERS)


def _eval_every(iters, quick, n_points=15):
    return iters if quick else max(1, iters // n_points)


# ----------------------------------------------------------------------------- one run
def _curve_eval(method, state, dataset, seed, it, n):
    """W1 (exact) and mode statistics on ``n`` generated vs ``n`` fresh target samples."""
    spec = get_dataset(dataset)
    samples = to_numpy(eval_samples(method, state, seed, it, n=n)).astype(np.float64)
    target = sample_dataset(spec, n, EVAL.target_rng(seed, it))
    ms = mode_stats(samples, spec.centers, spec.std)
    return {"w1": w1(samples, target), "modes": ms["modes"], "high_quality": ms["high_quality"]}


def run_one(opts: RunOptions, method, dataset, *, iters, eval_every, title, gen_per_outer, dtype="float32",
            n_curve=N_CURVE, n_protocol=N_EVAL):
    """Train one method and write the standard outputs of one run into ``opts.out``.

    Like :func:`toy.gan.run_gan`, but the curve is evaluated on ``n_curve`` samples and carries
    ``gen_iters`` (outer iterations x generator steps per outer iteration) and
    ``train_seconds`` (wall-clock minus the time spent evaluating). The final metrics are those
    of the ``n_protocol`` samples saved as ``samples.npy`` (the 2-D protocol's 2,500 by default)
    against the targets of ``EVAL.target_rng(seed, iterations)``; the curve's last point is
    ``curve_final``.

    Returns the final metrics.
    """
    xp = get_namespace(opts.backend)

    def eval_fn(state, it):            # train() adds the clocks without the evaluations (kept over a resume)
        return {**_curve_eval(method, state, dataset, opts.seed, it, n_curve), "gen_iters": it * gen_per_outer}

    def finish(res):
        samples = to_numpy(eval_samples(method, res.state, opts.seed, res.iterations, n=n_protocol))
        final = evaluate(samples, dataset, EVAL.target_rng(opts.seed, res.iterations), n_target=n_protocol)
        last = res.curve[-1]
        return Outputs({**final, "curve_final": {k: last[k] for k in ("w1", "modes", "high_quality")},
                        "train_seconds": last["train_seconds"], "train_cpu_seconds": last["train_cpu_seconds"],
                        "gen_iters": last["gen_iters"], "curve_samples": n_curve, "protocol_samples": n_protocol,
                        "eval_seeds": EVAL.seeds(opts.seed, res.iterations)},
                       samples, plots=figures_2d(samples, dataset, title, curve=res.curve))

    return run_and_write(opts, method, ToyData(dataset, xp, dtype), finish=finish, dataset=dataset, xp=xp,
                         dtype=dtype, iters=iters, eval_fn=eval_fn, eval_every=eval_every, progress=False,
                         run_info={"curve_samples": n_curve, "protocol_samples": n_protocol})


# ----------------------------------------------------------------------------- several seeds
def mean_curves(curves):
    """Per evaluation point (the iterations every run evaluated), the mean over the runs of the
    clocks and ``gen_iters``, and mean and 95% t-interval (:func:`toy.aggregate.t_interval`) of
    W1, modes and high-quality fraction: rows ``{"iteration", "gen_iters", "train_seconds",
    "train_cpu_seconds", "w1_mean", "w1_ci_low", "w1_ci_high", "w1_n", ...}``."""
    cols = {k: curve_bands(curves, k, "iteration")
            for k in ("gen_iters", "train_seconds", "train_cpu_seconds", "w1", "modes", "high_quality")}
    rows = []
    for i, pt in enumerate(cols["w1"]):
        row = {"iteration": int(pt["x"]), **{k: cols[k][i]["mean"] for k in ("gen_iters", "train_seconds",
                                                                               "train_cpu_seconds")}}
        for k in ("w1", "modes", "high_quality"):
            row.update({f"{k}_{s}": cols[k][i][s] for s in ("mean", "ci_low", "ci_high", "n")})
        rows.append(row)
    return rows


def last_third_spread(curves):
    """Stability over the last third of training: each seed's std of W1 (its t-interval over the
    seeds), and the pooled std and range of every W1 value in the last third across seeds."""
    pooled, per_seed = [], []
    for c in curves:
        last = c["iteration"] > 2 * c["iteration"][-1] / 3
        v = c["w1"][last]
        pooled += v.tolist()
        per_seed.append(float(np.std(v)) if v.size > 1 else 0.0)
    return {"w1_last_third_pooled_std": float(np.std(pooled)),
            "w1_last_third_range": float(np.max(pooled) - np.min(pooled)),
            "w1_last_third_mean": float(np.mean(pooled)),
            "w1_last_third_per_seed_std": t_interval(per_seed), "n_points": len(pooled)}


def _first_time_below(rows, thr, key="w1_mean", x="train_seconds"):
    for r in rows:
        if r[key] <= thr:
            return r[x]
    return None


def _value_at(rows, x_value, key="w1_mean", x="train_seconds"):
    """The last curve value at or before ``x_value`` (step interpolation)."""
    v = None
    for r in rows:
        if r[x] <= x_value + 1e-9:
            v = r[key]
    return v


def compare(agg, base, new, x="train_seconds"):
    """How ``new`` compares with ``base``: first time the mean W1 reaches the larger of the two
    final mean W1 values, final W1, and W1 at the time both runs reach (the shorter run's end)."""
    a, b = agg[base], agg[new]
    thr = max(a[-1]["w1_mean"], b[-1]["w1_mean"])
    common = min(a[-1][x], b[-1][x])
    return {"threshold_w1": thr,
            f"{base}_first_{x}_at_threshold": _first_time_below(a, thr, x=x),
            f"{new}_first_{x}_at_threshold": _first_time_below(b, thr, x=x),
            f"{base}_final_w1_mean": a[-1]["w1_mean"], f"{new}_final_w1_mean": b[-1]["w1_mean"],
            f"{new}_ends_lower": b[-1]["w1_mean"] < a[-1]["w1_mean"],
            f"common_{x}": common,
            f"{base}_w1_at_common": _value_at(a, common, x=x), f"{new}_w1_at_common": _value_at(b, common, x=x)}


def plot_envelopes(path, agg, groups, labels, title, xs=("gen_iters", "train_seconds", "train_cpu_seconds")):
    """Rows = groups of variants; columns = W1 and modes against each x axis; mean line over the
    seeds with its 95% t-interval band (the format of the paper's Figs. 2, 4, 5)."""
    pyplot = plt()
    cols = [(k, x) for k in ("w1", "modes") for x in xs]
    fig, axes = pyplot.subplots(len(groups), len(cols), figsize=(3.4 * len(cols), 2.9 * len(groups)), squeeze=False)
    xlabel = {"gen_iters": "generator iterations", "train_seconds": "training wall-clock (s)",
              "train_cpu_seconds": "training CPU time (s)",
              "iteration": "outer iterations"}
    for gi, (gname, keys) in enumerate(groups):
        for ci, (k, x) in enumerate(cols):
            ax = axes[gi][ci]
            for key in keys:
                rows = agg[key]
                xv = [r[x] for r in rows]
                line, = ax.plot(xv, [r[f"{k}_mean"] for r in rows], lw=1.8, marker=".", ms=4, label=labels[key])
                lo, hi = ([np.nan if r[f"{k}_{b}"] is None else r[f"{k}_{b}"] for r in rows]
                          for b in ("ci_low", "ci_high"))
                ax.fill_between(xv, lo, hi, color=line.get_color(), alpha=0.2)
            if k == "w1":
                ax.set_yscale("log")
            ax.set_xlabel(xlabel[x], fontsize=8)
            ax.set_title(f"{gname}: {'exact W1' if k == 'w1' else 'modes'}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def train_variant(opts: RunOptions, v: Variant):
    """One run of variant ``v`` (``v.data``: ``(make, gen_per_outer, iters, eval_every, dataset)``)."""
    make, gen_per_outer, iters, eval_every, dataset = v.data
    n_curve, n_protocol = _sample_sizes(opts)
    return run_one(opts, make(), dataset, iters=iters, eval_every=eval_every, title=f"{v.label} (seed {opts.seed})",
                   gen_per_outer=gen_per_outer, n_curve=n_curve, n_protocol=n_protocol)


def summarise(out, variants, runs, *, title):
    """The experiment's summary from finished run folders ``[(variant, seed, folder)]``: the
    sweep's per-metric statistics (:func:`toy.aggregate.aggregate_runs`: summary.json/csv,
    curves.csv, curve-*.png), then metrics.json (per variant the t-interval of the final W1,
    modes, protocol metrics and clocks, and the last-third stability; per (base, variant) pair
    the threshold comparison of the mean curves), curve.csv (mean curves with 95% t-intervals),
    curve_runs.csv (every run) and curves.png."""
    out = pathlib.Path(out)
    agg_summary = aggregate_runs(out, [(v.key, folder) for v, _, folder in runs])
    per = {v.key: [(s, folder) for w, s, folder in runs if w.key == v.key] for v in variants}
    first = json.loads((runs[0][2] / "metrics.json").read_text())
    curves = {k: [read_curve(f / "curve.csv") for _, f in rs] for k, rs in per.items()}
    agg = {k: mean_curves(cs) for k, cs in curves.items()}
    stats = {k: s["metrics"] for k, s in agg_summary["variants"].items()}
    summary = {}
    for v in variants:
        ms = [json.loads((f / "metrics.json").read_text()) for _, f in per[v.key]]
        summary[v.key] = {"label": v.label, "seeds": [s for s, _ in per[v.key]], "gen_iters": ms[0]["gen_iters"],
                          **{k: stats[v.key].get(k) for k in ("w1", "modes", "high_quality", "w2", "sliced_w1",
                                                              "curve_final/w1", "curve_final/modes",
                                                              "curve_final/high_quality")},
                          "train_seconds": t_interval([m["train_seconds"] for m in ms]),
                          "train_cpu_seconds": t_interval([m["train_cpu_seconds"] for m in ms]),
                          "stability": last_third_spread(curves[v.key]), "config": ms[0]["config"]}
        summary[v.key] = {k: x for k, x in summary[v.key].items() if x is not None}
    pairs = [(v.base, v.key) for v in variants if v.base]
    comparisons = {f"{b} vs {n}": {"wall_clock": compare(agg, b, n, "train_seconds"),
                                   "cpu_time": compare(agg, b, n, "train_cpu_seconds"),
                                   "gen_iters": compare(agg, b, n, "gen_iters")} for b, n in pairs}
    seeds = sorted({s for _, s, _ in runs})
    metrics = {"title": title, "dataset": first["dataset"], "seeds": seeds, "iterations": first["iterations"],
               "curve_samples": first["curve_samples"], "protocol_samples": first["protocol_samples"],
               "backend": first["backend"], "interval": INTERVAL, "variants": summary, "comparisons": comparisons}
    write_json(out / "metrics.json", metrics)
    write_csv(out / "curve.csv", [{"variant": k, **r} for k, rows in agg.items() for r in rows])
    write_csv(out / "curve_runs.csv", [{"variant": k, "seed": s, **r} for k, rs in per.items() for s, f in rs
                                       for r in csv.DictReader((f / "curve.csv").open())])
    labels = {v.key: v.label for v in variants}
    groups = [(labels[b], [b, n]) for b, n in pairs]
    plot_envelopes(out / "curves.png", agg, groups, labels, f"{title} ({first['dataset']}, seeds {seeds})")
    return metrics


# ----------------------------------------------------------------------------- experiments
def _wgan_gp_only(opts, name):
    o = _extra(opts).get("objective")
    if o is not None and o != "wgan-gp":
        raise ValueError(f"{name} runs WGAN-GP (as the paper's figure); --objective {o} is not offered")


def _h(opts, default):
    return _extra(opts).get("h", default)


def _plain(cfg, name):
    return lambda: GANMethod(cfg, name=name)


def _schedule(opts, n_points=15):
    """(iterations, eval_every, dataset) of every run."""
    iters = _iters(opts)
    return iters, _eval_every(iters, opts.quick, n_points), _dataset(opts)


def rwp_grid_variants(opts: RunOptions):
    """Fig. 2 analogue: WGAN-GP, Standard GAN, DRAGAN, each without (key ``OBJ``) and with RWP
    (``OBJ-rwp``, compared with ``OBJ``).

    ``--objective`` (one) or ``opts.extra['objectives']`` (list or comma string) restricts the
    objectives (default wgan-gp, standard, dragan; wgan-lp is also accepted).
    """
    sched = _schedule(opts)
    _sample_sizes(opts)
    ex = _extra(opts)
    objs = ex.get("objectives", [ex["objective"]] if "objective" in ex else ("wgan-gp", "standard", "dragan"))
    if isinstance(objs, str):
        objs = [o.strip() for o in objs.split(",") if o.strip()]
    bad = [o for o in objs if o not in NAMES]
    if bad or not objs:
        raise ValueError(f"objectives must be among {sorted(NAMES)}, got {objs}")
    variants = []
    for o in objs:
        cfg = apply_overrides(base_config(o), opts, fields=FIELDS)
        probe = RWPMethod(cfg, h=_h(opts, None), l=ex.get("l"))   # validates; Appendix C defaults
        h, l = probe.h, probe.l
        variants += [Variant(o, NAMES[o], data=(_plain(cfg, o), cfg.n_gen, *sched)),
                     Variant(f"{o}-rwp", f"{NAMES[o]} + RWP (h={h:g}, l={l})", base=o,
                             data=(functools.partial(RWPMethod, cfg, h=h, l=l), l, *sched))]
    return variants


def rwp_gen_iters_variants(opts: RunOptions):
    """Fig. 4 analogue: WGAN-GP with 10 generator steps per outer iteration (``--n-gen``), without
    (``wgan-gp-10g``) and with RWP (``wgan-gp-10g-rwp``, ``--h``, default 0.1)."""
    _wgan_gp_only(opts, "rwp-gen-iters")
    sched = _schedule(opts, 20)
    _sample_sizes(opts)
    n_gen = _extra(opts).get("n_gen", GEN_ITERS_N_GEN)
    cfg = apply_overrides(base_config("wgan-gp"), opts, fields=tuple(f for f in FIELDS if f != "n_gen"))
    h = RWPMethod(cfg, h=_h(opts, None), l=n_gen).h                # None: RWP_DEFAULTS (Appendix C)
    return [Variant("wgan-gp-10g", f"WGAN-GP, {n_gen} gen steps",
                    data=(_plain(dataclasses.replace(cfg, n_gen=n_gen), "wgan-gp"), n_gen, *sched)),
            Variant("wgan-gp-10g-rwp", f"WGAN-GP + RWP (h={h:g}, l={n_gen})", base="wgan-gp-10g",
                    data=(functools.partial(RWPMethod, cfg, h=h, l=n_gen), n_gen, *sched))]


def sbe_grid_variants(opts: RunOptions):
    """Fig. 5 analogue: SBE (``sbe``; h = 0.2, 5 critic, 5 potential, 1 generator step) against
    WGAN-GP (``wgan-gp``), aligned by generator iterations (one generator step per outer iteration)."""
    _wgan_gp_only(opts, "sbe-grid")
    sched = _schedule(opts)
    _sample_sizes(opts)
    cfg = apply_overrides(base_config("wgan-gp"), opts, fields=FIELDS)
    given = {"h": _extra(opts)["h"]} if "h" in _extra(opts) else {}
    h = SBEMethod(cfg, **given).h                         # validates before anything is written; default: SBEMethod's
    return [Variant("wgan-gp", "WGAN-GP", data=(_plain(cfg, "wgan-gp"), cfg.n_gen, *sched)),
            Variant("sbe", f"SBE on WGAN-GP (h={h:g})", base="wgan-gp",
                    data=(functools.partial(SBEMethod, cfg, h=h, phi_hidden=64), cfg.n_gen, *sched))]


def _experiment(variants, title, seeds):
    return MultiRun(variants, train_variant, functools.partial(summarise, title=title), seeds)


#: ``python -m toy rwp-grid | rwp-gen-iters | sbe-grid``: seeds 0-4 / 0-2 by default (``--seeds``, ``--seed``)
run_rwp_grid = _experiment(rwp_grid_variants, "rwp-grid", DEFAULT_SEEDS)
run_rwp_gen_iters = _experiment(rwp_gen_iters_variants, "rwp-gen-iters", (0, 1, 2))
run_sbe_grid = _experiment(sbe_grid_variants, "sbe-grid", (0, 1, 2))
