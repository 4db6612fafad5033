"""Every 2-D method of the library on the 25-mode grid, side by side, against a chance baseline.

    python -m toy grid-tour [--seed S] [--iters N] [--out DIR] [--quick]

Trains, one after the other, with the same seed and the same **training budget in process
CPU seconds** (evaluation excluded; ``BUDGET_CPU_SECONDS`` by default, ``opts.extra["budget"]``
to change it; ``--iters`` caps the outer iterations as well):

* ``wgan-gp``: WGAN-GP (Gulrajani et al.), the SWGAN paper's Sec. 6.1 comparison network
  (:func:`toy.swgan_grid.wgan_gp_config`: generator 2 x 128 tanh, critic 2 x 128 ReLU,
  4-D latent, batch 128, 5 critic steps, lambda 10, Adam(1e-4, 0.5, 0.9));
* ``wgan-gp-rwp``: the same with the Relaxed Wasserstein Proximal generator phase
  (:class:`refimpl.rwp.RWPMethod`, Appendix C's WGAN-GP setting h = 0.1, l = 10);
* ``sbe``: Semi-Backward Euler on the same WGAN-GP (:class:`refimpl.sbe.SBEMethod`, h = 0.2,
  5 potential steps, potential 1 x 64 tanh, as ``sbe-grid``);
* ``swgan``: parametric smoothed WGAN (:class:`refimpl.swgan.SWGANMethod`, its Table 1 /
  Appendix I.1 defaults, 4-D latent, as ``swgan-grid``);
* ``w1fe-lp``: W1 forward Euler with the one-sided penalty (:class:`refimpl.w1fe.W1FE`,
  eps = 1, K = 3, 10 critic steps as the paper's Sec. 5) on the WGAN-GP network.

Every method has the same generator (2 x 128 tanh, 4-D Gaussian latent) and batch 128.
Evaluation (conventions.md, "2-D mixture protocol"; the streams of
:data:`refimpl.evaluation.EVAL`): 2,500 generated samples from the latent stream of
``(seed, iteration)`` against 2,500 targets from its target stream; about every ``budget / N_CURVE`` CPU
seconds the modes, high-quality fraction, exact W1 and sliced W1, and at the end of the budget
the full protocol (:func:`refimpl.metrics.evaluate`, also W2) on exactly the samples saved in
``samples.npy``. The chance baseline (:func:`refimpl.baseline.chance_baseline`) is a Gaussian
with the data's mean and covariance, 2,500 points drawn from the latent stream of ``(seed, 0)``
and evaluated against targets from the target stream of ``(seed, 0)``.

Outputs in ``--out``: one folder per method (``metrics.json``, ``curve.csv``, ``samples.npy``,
``samples.png``, ``curves.png``, ``checkpoint.npz``), ``baseline/`` (``metrics.json``,
``samples.npy``), ``summary.json`` (also as ``metrics.json``) and ``summary.csv`` (per method:
modes, high_quality, w1, w2, sliced_w1, train_seconds, train_cpu_seconds, iterations, folder;
and the baseline),
``samples.png`` (one panel per method and the baseline, same axes, modes marked) and
``w1_vs_time.png`` (exact W1 against training CPU seconds, baseline dashed). A method whose
``metrics.json`` exists from the same configuration and budget is reused; ``--resume``
continues an interrupted method from its checkpoint (within the remaining budget).
``--quick``: 0.25 CPU seconds per method, 300 evaluation samples (a smoke run, not the protocol).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

import numpy as np

from refimpl.backend import backend_name, get_namespace, to_numpy
from refimpl.datasets import get_dataset, sample
from refimpl.evaluation import EVAL
from refimpl.baseline import chance_baseline
from refimpl.metrics import N_EVAL, evaluate, mode_stats, sliced_w1, w1
from refimpl.methods import get_method
from refimpl.harness import Outputs, finished_run, run_and_write
from refimpl.train import ToyData, TrainClock

from .common import RunOptions, plt, write_csv, write_json, write_npy
from .gan import eval_samples, plot_curves, plot_sample_panels, plot_samples
from .swgan_grid import wgan_gp_config

DATASET = "grid25"
LATENT_DIM = 4
BUDGET_CPU_SECONDS = 40.0     # per method; 5 x 40 s + evaluation (~45 CPU s) fits 5 minutes on 2 idle cores
QUICK_BUDGET = 0.25
QUICK_N_EVAL = 300
N_CURVE = 8                   # evaluations per method (the last one is the full protocol)
POLL_EVERY = 10               # iterations between checks of the evaluation clock
SUMMARY_KEYS = ("modes", "high_quality", "w1", "w2", "sliced_w1", "train_seconds", "train_cpu_seconds",
                "iterations")


#: ``key: (label, registry key, config fields, options)`` of the tour's methods (module docstring);
#: a method's name (its checkpoint fingerprint) is its registry key unless ``options`` names it
TOUR = {
    "wgan-gp": ("WGAN-GP", "wgan-gp", {}, {}),
    "wgan-gp-rwp": ("WGAN-GP + RWP", "rwp", {}, dict(h=0.1, l=10)),
    "sbe": ("SBE", "sbe", {}, dict(h=0.2, n_phi=5, phi_hidden=64)),
    "swgan": ("SWGAN", "swgan", None, {}),
    "w1fe-lp": ("W1-FE-LP", "w1fe", dict(objective="wgan-lp", n_critic=10), dict(eps=1.0, K=3, name="w1fe-lp")),
}


def methods():
    """``{key: (label, factory)}`` of the tour's methods, built by :mod:`refimpl.methods` from the
    WGAN-GP comparison network (SWGAN: its own configuration, 4-D latent)."""
    wg = wgan_gp_config(LATENT_DIM)

    def factory(registry_key, fields, options):
        spec = get_method(registry_key)
        cfg = spec.config(latent_dim=LATENT_DIM) if fields is None else dataclasses.replace(wg, **fields)
        return lambda: spec.build(cfg, **options)
    return {key: (label, factory(*rest)) for key, (label, *rest) in TOUR.items()}


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


def _fmt(m):
    return (f"{m['modes']}/25 modes, hq {m['high_quality']:.3f}, W1 {m['w1']:.3f}"
            + (f", W2 {m['w2']:.3f}" if m.get("w2") is not None else ""))


def _curve_metrics(samples, seed, it, n_eval):
    """Modes, high quality, exact W1 and sliced W1 of ``samples`` (no W2: the cheap curve point)."""
    spec = get_dataset(DATASET)
    rng = EVAL.target_rng(seed, it)
    target = sample(spec, n_eval, rng, xp=np, dtype=samples.dtype)
    ms = mode_stats(samples, spec.centers, spec.std)
    return {"modes": ms["modes"], "high_quality": ms["high_quality"], "w1": w1(samples, target), "w2": None,
            "sliced_w1": sliced_w1(samples, target, rng=rng)}


def train_one(opts: RunOptions, key, label, method, *, budget, n_eval, max_iters, baseline):
    """Train one method within ``budget`` CPU seconds; write its folder; return its final metrics."""
    xp = get_namespace(opts.backend)
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = TrainClock()                     # train()'s, carried over a resume by its checkpoint
    next_eval = [None]                       # CPU seconds of the next curve point

    def eval_fn(state, it):
        cpu = clock.train_cpu_seconds        # at the start of this evaluation
        if next_eval[0] is None:             # the first point after where this call began
            next_eval[0] = (int(clock.at_start["train_cpu_seconds"] * N_CURVE / budget) + 1) * budget / N_CURVE
        if cpu < next_eval[0] or next_eval[0] > budget * (1 - 0.5 / N_CURVE):
            return {}                        # not due (the final point is evaluated after training)
        while next_eval[0] <= cpu:
            next_eval[0] += budget / N_CURVE
        samples = to_numpy(eval_samples(method, state, opts.seed, it, n_eval))
        m = _curve_metrics(samples, opts.seed, it, n_eval)
        _say(f"[{key}] it {it}, {cpu:.1f} CPU s: {_fmt(m)}   "
             f"(chance: {baseline['modes']}/25, hq {baseline['high_quality']:.3f}, W1 {baseline['w1']:.3f})")
        return m

    def finish(res):
        _say(f"[{key}] budget spent at iteration {res.iterations}: evaluating (full protocol)")
        samples = to_numpy(eval_samples(method, res.state, opts.seed, res.iterations, n_eval))
        final = evaluate(samples, DATASET, EVAL.target_rng(opts.seed, res.iterations), n_target=n_eval)
        last = res.curve[-1]                 # train's row of the last iteration: the clocks
        curve = [r for r in res.curve if "w1" in r and r["iteration"] != res.iterations]
        curve.append({**{k: last[k] for k in ("iteration", "seconds", "train_seconds", "train_cpu_seconds")}, **final})

        def plots(folder, metrics):
            plot_samples(folder / "samples.png", samples, DATASET, f"{label}, {res.iterations} iterations\n"
                         f"{_fmt(final)} (chance {baseline['modes']}/25, hq {baseline['high_quality']:.3f})")
            plot_curves(folder / "curves.png", curve, f"{label}, grid25, seed {opts.seed}")
        return Outputs({**final, "train_seconds": last["train_seconds"], "train_cpu_seconds": last["train_cpu_seconds"],
                        "budget_cpu_seconds": budget, "n_eval": n_eval,
                        "eval_seeds": EVAL.seeds(opts.seed, res.iterations), "method": key, "label": label,
                        "baseline": baseline}, samples, curve=curve, plots=plots)

    metrics = run_and_write(opts, method, ToyData(DATASET, xp, "float32", scale=method.cfg.data_scale), finish=finish,
                            dataset=DATASET, xp=xp, dtype="float32", iters=max_iters, eval_fn=eval_fn,
                            eval_every=POLL_EVERY, checkpoint_every=500,
                            check_every=1 if backend_name(xp) != "cupy" else 50, max_train_cpu_seconds=budget,
                            clock=clock)
    _say(f"[{key}] final: {_fmt(metrics)} in {metrics['iterations']} iterations, {metrics['train_cpu_seconds']:.1f} CPU s")
    return metrics


def _curve_rows(folder):
    """A finished run's ``curve.csv`` as rows of floats (blank cells: None)."""
    import csv
    with open(pathlib.Path(folder) / "curve.csv", newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]


def _baseline(out, seed, n_eval):
    m, cloud = chance_baseline(DATASET, EVAL.target_rng(seed, 0), n_eval, n_eval,
                               cloud_rng=EVAL.latent_rng(seed, 0))
    m = {**m, "eval_seeds": {"cloud": EVAL.latent_seed(seed, 0), "targets": EVAL.target_seed(seed, 0)}}
    (out / "baseline").mkdir(parents=True, exist_ok=True)
    write_npy(out / "baseline" / "samples.npy", cloud)
    write_json(out / "baseline" / "metrics.json", m)
    return m


def run(opts: RunOptions):
    ex = {k: v for k, v in (opts.extra or {}).items() if v is not None}
    budget = float(ex.get("budget", QUICK_BUDGET if opts.quick else BUDGET_CPU_SECONDS))
    if not (0 < budget < float("inf")):
        raise ValueError(f"budget must be a finite number of CPU seconds > 0, got {budget}")
    n_eval = QUICK_N_EVAL if opts.quick else N_EVAL
    max_iters = opts.iters or 10**9
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _say(f"grid-tour: 5 methods x {budget:g} training CPU seconds each, seed {opts.seed}, {n_eval} evaluation "
         f"samples; chance baseline first")
    baseline = _baseline(out, opts.seed, n_eval)
    _say(f"[baseline] Gaussian with the data's mean and covariance: {_fmt(baseline)}")
    summary, curves = {}, {}
    for key, (label, make) in methods().items():
        method = make()
        sub = dataclasses.replace(opts, out=out / key)
        fp = {"budget_cpu_seconds": budget, "n_eval": n_eval, "seed": opts.seed, "backend": opts.backend,
              "config": json.loads(json.dumps(method.config()))}
        m = finished_run(sub.out, fp, method.cfg)
        if m is not None:
            _say(f"[{key}] reusing {sub.out / 'metrics.json'}: {_fmt(m)}")
        else:
            _say(f"[{key}] {label}: training for {budget:g} CPU seconds")
            m = train_one(sub, key, label, method, budget=budget, n_eval=n_eval, max_iters=max_iters,
                          baseline=baseline)
        summary[key] = {"label": label, **{k: m[k] for k in SUMMARY_KEYS}, "folder": key}
        curves[key] = _curve_rows(sub.out)
    result = {"experiment": "grid-tour", "dataset": DATASET, "seed": opts.seed, "budget_cpu_seconds": budget,
              "n_eval": n_eval, "backend": opts.backend, "threads": opts.threads, "blas_threads": _blas_threads(),
              "methods": summary, "baseline": {k: baseline[k] for k in ("modes", "high_quality", "w1", "w2",
                                                                         "sliced_w1", "n", "eval_seeds")},
              "seconds": round(time.perf_counter() - t0, 1)}
    write_csv(out / "summary.csv", [{"method": k, **{c: v for c, v in r.items() if c != "label"}}
                                    for k, r in summary.items()]
              + [{"method": "baseline", **{k: baseline[k] for k in ("modes", "high_quality", "w1", "w2", "sliced_w1")},
                  "folder": "baseline"}])
    _plot_panels(out / "samples.png", out, summary, baseline, opts.seed, budget)
    _plot_w1(out / "w1_vs_time.png", summary, curves, baseline, opts.seed, budget, n_eval)
    write_json(out / "summary.json", result)
    write_json(out / "metrics.json", result)     # every experiment's final-metrics file (the same content)
    _say(table(result))
    return result


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    import os
    # one entry per loaded library (numpy and scipy each ship their own OpenBLAS)
    return {os.path.basename(i.get("filepath", "")) or i.get("internal_api"): i.get("num_threads")
            for i in threadpool_info() if i.get("user_api") == "blas"}


def table(result):
    """A Markdown table of a tour's ``summary.json`` (methods, then the chance baseline)."""
    lines = [f"grid25, seed {result['seed']}, {result['budget_cpu_seconds']:g} training CPU seconds per method, "
             f"{result['n_eval']} samples", "",
             "| method | iterations | CPU s | modes | high quality | W1 | W2 | sliced W1 |", "|---|---|---|---|---|---|---|---|"]
    for k, r in result["methods"].items():
        lines.append(f"| {r['label']} | {r['iterations']} | {r['train_cpu_seconds']:.1f} | {r['modes']}/25 | "
                     f"{r['high_quality']:.3f} | {r['w1']:.3f} | {r['w2']:.3f} | {r['sliced_w1']:.3f} |")
    b = result["baseline"]
    lines.append(f"| chance (Gaussian, data's mean and covariance) | - | - | {b['modes']}/25 | {b['high_quality']:.3f} | "
                 f"{b['w1']:.3f} | {b['w2']:.3f} | {b['sliced_w1']:.3f} |")
    return "\n".join(lines)


def _plot_panels(path, out, summary, baseline, seed, budget):
    panels = [(f"{r['label']} ({r['iterations']} it)\n{r['modes']}/25 modes, hq {r['high_quality']:.3f}, W1 {r['w1']:.3f}",
               np.load(out / r["folder"] / "samples.npy")) for r in summary.values()]
    b = baseline
    panels.append((f"chance: Gaussian, data's mean/cov (no training)\n{b['modes']}/25 modes, hq {b['high_quality']:.3f}, "
                   f"W1 {b['w1']:.3f}", np.load(out / "baseline" / "samples.npy")))
    plot_sample_panels(path, panels, DATASET,
                       f"grid25, seed {seed}, {budget:g} training CPU seconds per method (red x: modes)")


def _plot_w1(path, summary, curves, baseline, seed, budget, n_eval):
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6.5, 4.2))
    for k, r in summary.items():
        c = [p for p in curves[k] if p.get("w1") is not None]
        ax.plot([p["train_cpu_seconds"] for p in c], [p["w1"] for p in c], marker="o", ms=3,
                label=f"{r['label']} ({r['modes']}/25, hq {r['high_quality']:.2f})")
    ax.axhline(baseline["w1"], color="grey", ls="--",
               label=f"chance ({baseline['modes']}/25, hq {baseline['high_quality']:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel("training CPU seconds (evaluation excluded)")
    ax.set_ylabel(f"exact W1 to {n_eval:,} fresh data samples")
    ax.set_title(f"grid25, seed {seed}, budget {budget:g} CPU s per method", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)
