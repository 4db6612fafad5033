"""SWGAN vs WGAN-GP on the 25-mode grid: Figures 1 and 2 of the smoothed-WGAN paper (Sec. 6.1).

    python -m toy swgan-grid [--latent-dim 4|2] [--seeds 0,1] [--iters N] [--quick]

For each seed: parametric SWGAN (:mod:`refimpl.swgan`, Table 1 / Appendix I.1 defaults:
``lam = 0.01``, L2 regulariser, L1 cost, batch 128 x 128, at most 20 dual steps with the
eq. 15 early stop, 10,000 generator steps, generator 2 x 128 tanh, potentials 2 x 128 ReLU),
then WGAN-GP (:class:`refimpl.train.GANMethod`) given the *same training wall-clock*: its
iteration count is the SWGAN run's training seconds (evaluation excluded) divided by
WGAN-GP's seconds per iteration, measured on 100 iterations just before it runs (the
paper: SWGAN 10,000 iterations and WGAN-GP 30,000 iterations in about the same time, 13
and 14 minutes on a K80).

WGAN-GP setting (the paper's are "manually tuned" and not given): generator as SWGAN's,
critic 2 x 128 ReLU (Appendix I.1: "hidden layers of size 128"), batch 128, 5 critic steps,
``lambda = 10``, Adam(1e-4, 0.5, 0.9) (Gulrajani et al.'s toy defaults).

Latent code: ``--latent-dim`` (default 4, Fig. 1; 2 for Fig. 2), ``z ~ N(0, I)``.
Float32, NumPy. Evaluation (conventions.md, "2-D mixture protocol"): every ``iters/10``
iterations the modes, high-quality fraction and sliced W1 of 2,500 samples; at the end also
the exact W1 and W2 (:func:`refimpl.metrics.evaluate`). ``--quick``: 5 iterations, at most 3
dual steps, 300 evaluation samples, WGAN-GP 5 iterations (not time-matched).

Outputs in ``--out``: ``swgan-seedS/`` and ``wgan-gp-seedS/`` (``metrics.json``,
``curve.csv``, ``samples.npy``, ``samples.png``, ``curves.png``, ``checkpoint.npz``;
WGAN-GP also ``budget.json``), ``metrics.json``, ``table.md`` and ``comparison.png``
(final samples side by side, first seed).
"""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from refimpl.backend import get_namespace, synchronize, to_numpy
from refimpl.checkpoint import load as load_checkpoint
from refimpl.runs import checkpoint_file, has_checkpoint
from refimpl.datasets import get_dataset, sample
from refimpl.metrics import N_EVAL, evaluate, mode_stats, sliced_w1
from refimpl.swgan import SWGANConfig, SWGANMethod
from refimpl.train import GANConfig, GANMethod, ToyData

from .common import (Run, RunOptions, atomic_write_bytes, execute_runs, plt, seeds_of, train_run, write_csv, write_json,
                     write_npy)
from .gan import apply_overrides, eval_samples, plot_curves, plot_samples

DATASET = "grid25"
DEFAULT_ITERS = 10_000
QUICK_ITERS = 5
QUICK_N_EVAL = 300
CALIBRATION_ITERS = 100


def wgan_gp_config(latent_dim):
    """The WGAN-GP comparison of Sec. 6.1 (module docstring)."""
    return GANConfig(objective="wgan-gp", lam=10.0, latent_dim=latent_dim, gen_hidden=(128, 128),
                     gen_activation="tanh", critic_hidden=(128, 128), critic_activation="relu",
                     batch_size=128, n_critic=5, lr_gen=1e-4, lr_critic=1e-4, betas=(0.5, 0.9))


def seconds_per_iteration(method, xp, n, seed=0):
    """Wall-clock seconds of one outer iteration of ``method`` (mean of ``n`` after 5 warm-up)."""
    rng = np.random.default_rng([seed, 31337])
    data = ToyData(DATASET, xp, "float32", scale=getattr(method.cfg, "data_scale", 1.0))
    state = method.init_state(rng, xp, "float32")
    for _ in range(5):
        state, _ = method.outer_step(state, rng, data)
    synchronize(xp)                          # time the device's work, not the kernel launches
    t = time.perf_counter()
    for _ in range(n):
        state, _ = method.outer_step(state, rng, data)
    synchronize(xp)
    return (time.perf_counter() - t) / n



def _row(method, m, dual_steps=None):
    return {"method": method, "modes": m["modes"], "high_quality": m["high_quality"], "w1": m["w1"],
            "iterations": m["iterations"], "train_seconds": m["train_seconds"],
            "s_per_iter": round(m["train_seconds"] / m["iterations"], 5), "mean_dual_steps": dual_steps}


def train_and_evaluate(opts: RunOptions, method, *, iters, eval_every, n_eval, title):
    """Train ``method`` on the grid and write the standard run files (as :func:`toy.gan.run_gan`).

    Curve rows (every ``eval_every``): modes, high-quality fraction and sliced W1 of ``n_eval``
    samples, the cumulative training seconds (evaluation excluded) and evaluation seconds. The
    final row adds the exact W1 and W2 of :func:`refimpl.metrics.evaluate` (2,500 samples by
    the protocol; ``n_eval`` in quick runs). Returns the final metrics.
    """
    xp = get_namespace(opts.backend)
    spent = {"eval": 0.0}
    if opts.resume and has_checkpoint(opts.out):
        curve = load_checkpoint(checkpoint_file(opts.out), np)["curve"]
        spent["eval"] = curve[-1]["eval_seconds"] if curve else 0.0

    def eval_fn(state, it):
        t = time.perf_counter()
        samples = eval_samples(method, state, opts.seed, it, n_eval)
        rng = np.random.default_rng([opts.seed, 104729, it])
        if it == iters:
            m = evaluate(samples, DATASET, rng, n_target=n_eval)
        else:
            ms = mode_stats(samples, get_dataset(DATASET).centers, get_dataset(DATASET).std)
            target = sample(get_dataset(DATASET), n_eval, rng, xp=xp, dtype="float32")
            m = {"modes": ms["modes"], "high_quality": ms["high_quality"], "w1": None, "w2": None,
                 "sliced_w1": sliced_w1(samples, target, rng=rng)}
        spent["eval"] += time.perf_counter() - t
        return {**m, "eval_seconds": round(spent["eval"], 3)}

    data = ToyData(DATASET, xp, "float32", scale=getattr(method.cfg, "data_scale", 1.0))
    res = train_run(opts, method, data, dataset=DATASET, xp=xp, dtype="float32", iters=iters, eval_fn=eval_fn,
                    eval_every=eval_every, run_info={"n_eval": n_eval})
    for row in res.curve:
        row["train_seconds"] = round(row["seconds"] - row["eval_seconds"], 3)
    fin = res.curve[-1]
    samples = to_numpy(eval_samples(method, res.state, opts.seed, res.iterations, n_eval))
    metrics = {k: fin[k] for k in ("modes", "high_quality", "w1", "w2", "sliced_w1", "train_seconds",
                                   "eval_seconds")}
    metrics.update({"seconds": round(res.seconds, 2), "iterations": res.iterations, "n_eval": n_eval,
                    "backend": opts.backend, "threads": opts.threads, "seed": opts.seed, "dtype": "float32",
                    "method": method.name, "dataset": DATASET, "config": method.config()})
    write_npy(opts.out / "samples.npy", samples)
    write_csv(opts.out / "curve.csv", res.curve)
    write_json(opts.out / "metrics.json", metrics)
    plot_samples(opts.out / "samples.png", samples, DATASET,
                 f"{title}: {metrics['modes']} modes, hq {metrics['high_quality']:.2f}, W1 {metrics['w1']:.3f}")
    plot_curves(opts.out / "curves.png", res.curve, title)
    return metrics


def run(opts: RunOptions):
    latent = opts.extra.get("latent_dim") or 4
    cfg = apply_overrides(SWGANConfig(latent_dim=latent), opts)
    seeds = seeds_of(opts)
    if opts.quick:
        cfg = dataclasses.replace(cfg, n_critic=min(cfg.n_critic, 3))
    iters = opts.iters or (QUICK_ITERS if opts.quick else DEFAULT_ITERS)
    n_eval = opts.extra.get("n_eval") or (QUICK_N_EVAL if opts.quick else N_EVAL)
    xp = get_namespace(opts.backend)
    swgan_train_seconds = {}

    def train_swgan(sub):
        ms = train_and_evaluate(sub, SWGANMethod(cfg), iters=iters, eval_every=max(1, iters // 10), n_eval=n_eval,
                                title=f"SWGAN d={latent} seed {sub.seed}")
        st = load_checkpoint(checkpoint_file(sub.out), np)["state"]
        swgan_train_seconds[sub.seed] = ms["train_seconds"]
        return {"seed": sub.seed, **_row("SWGAN", ms, dual_steps=round(st["dual_steps"] / st["outer"], 2))}

    def train_wgan_gp(sub):
        """WGAN-GP with the same training wall-clock (iteration count fixed once, kept for --resume)."""
        wg = GANMethod(wgan_gp_config(latent))
        wg.name = "wgan-gp"
        sub.out.mkdir(parents=True, exist_ok=True)
        budget_file = sub.out / "budget.json"
        if sub.resume and budget_file.exists():
            budget = json.loads(budget_file.read_text())
        elif opts.quick:
            budget = {"iterations": iters, "note": "quick run: not matched in time"}
        else:
            spi = seconds_per_iteration(wg, xp, CALIBRATION_ITERS, sub.seed)
            budget = {"swgan_train_seconds": swgan_train_seconds[sub.seed], "wgan_gp_s_per_iter": spi,
                      "iterations": max(1, int(swgan_train_seconds[sub.seed] / spi))}
        write_json(budget_file, budget)
        iw = budget["iterations"]
        mw = train_and_evaluate(sub, wg, iters=iw, eval_every=max(1, iw // 10), n_eval=n_eval,
                                title=f"WGAN-GP d={latent} seed {sub.seed}")
        return {"seed": sub.seed, **_row("WGAN-GP", mw)}

    plan = [run for seed in seeds for run in (Run(f"swgan-seed{seed}", seed, train_swgan),
                                               Run(f"wgan-gp-seed{seed}", seed, train_wgan_gp))]
    done = execute_runs(opts, plan)
    rows = [done[r.key] for r in plan]
    sw, wg = SWGANMethod(cfg), GANMethod(wgan_gp_config(latent))
    summary = {"latent_dim": latent, "dataset": DATASET, "seeds": seeds, "n_eval": n_eval, "rows": rows,
               "swgan_config": sw.config(), "wgan_gp_config": wg.config()}
    write_json(opts.out / "metrics.json", summary)
    lines = [f"Latent dim {latent}, grid25, {n_eval} samples per evaluation; seconds: training only.", "",
             "| seed | method | iterations | train s | s/iter | dual steps/iter | modes | high quality | W1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ds = "" if r["mean_dual_steps"] is None else f"{r['mean_dual_steps']:.2f}"
        lines.append(f"| {r['seed']} | {r['method']} | {r['iterations']} | {r['train_seconds']:.0f} | "
                     f"{r['s_per_iter']:.4f} | {ds} | {r['modes']}/25 | {r['high_quality']:.3f} | {r['w1']:.4f} |")
    atomic_write_bytes(opts.out / "table.md", ("\n".join(lines) + "\n").encode())
    _comparison(opts.out, seeds[0], latent, rows)
    first = {r["method"]: r for r in rows if r["seed"] == seeds[0]}
    return {"latent_dim": latent, "seeds": seeds,
            **{f"swgan_{k}": first["SWGAN"][k] for k in ("modes", "high_quality", "w1", "train_seconds", "s_per_iter")},
            **{f"wgan_gp_{k}": first["WGAN-GP"][k] for k in ("modes", "high_quality", "w1", "train_seconds",
                                                             "iterations")},
            "rows": rows}


def _comparison(out, seed, latent, rows):
    pyplot = plt()
    centers = get_dataset(DATASET).centers
    fig, axes = pyplot.subplots(1, 2, figsize=(9, 4.6))
    for ax, (name, folder) in zip(axes, (("SWGAN", "swgan"), ("WGAN-GP", "wgan-gp"))):
        s = np.load(out / f"{folder}-seed{seed}" / "samples.npy")
        r = next(r for r in rows if r["seed"] == seed and r["method"] == name)
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4, c="tab:blue", label="generated", zorder=1)
        ax.scatter(centers[:, 0], centers[:, 1], c="red", s=30, marker="x", linewidths=1, label="modes", zorder=2)
        ax.set_title(f"{name}, d={latent}: {r['iterations']} it, {r['train_seconds']:.0f} s\n"
                     f"{r['modes']}/25 modes, hq {r['high_quality']:.2f}, W1 {r['w1']:.3f}", fontsize=9)
        ax.set_xlim(-6, 6)
        ax.set_ylim(-6, 6)
        ax.set_aspect("equal")
    axes[0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=100)
    pyplot.close(fig)
