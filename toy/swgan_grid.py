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

``--protocol lim-ye`` (:mod:`toy.protocols`): the paper's data, Lim & Ye's grid
(``grid25-lim-ye``: centres ``linspace(-21, 21, 5)^2``, variance 0.1), SWGAN as above (Table 1)
and WGAN-GP at the paper's 30,000 iterations (Figs. 1-2), not matched in time (no peer needed).

Latent code: ``--latent-dim`` (default 4, Fig. 1; 2 for Fig. 2), ``z ~ N(0, I)``.
Float32, NumPy. Evaluation (conventions.md, "2-D mixture protocol"): every ``iters/10``
iterations the modes, high-quality fraction and sliced W1 of 2,500 samples; at the end also
the exact W1 and W2 (:func:`refimpl.metrics.evaluate`). ``--quick``: 5 iterations, at most 3
dual steps, 300 evaluation samples, WGAN-GP 5 iterations (not time-matched).

Variants (:class:`refimpl.harness.MultiRun`): ``swgan``, and ``wgan-gp``, whose run reads the
training seconds of the ``swgan`` run of its seed (``--peer swgan=FOLDER`` when run alone with
``--variant wgan-gp``; the sweep passes it and runs SWGAN first).

Outputs in ``--out``: ``swgan-seedS/`` and ``wgan-gp-seedS/`` (``metrics.json``,
``curve.csv``, ``samples.npy``, ``samples.png``, ``curves.png``, ``checkpoint.npz``;
WGAN-GP also ``budget.json``), the statistics of :mod:`toy.aggregate` (``summary.json``,
``summary.csv``, ``curves.csv``, ``curve-*.png``), ``metrics.json``, ``table.md`` and
``comparison.png`` (final samples side by side, first seed).
"""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from refimpl.backend import get_namespace, synchronize, to_numpy
from refimpl.checkpoint import load as load_checkpoint
from refimpl.harness import checkpoint_file
from refimpl.datasets import get_dataset, sample
from refimpl.evaluation import EVAL
from refimpl.metrics import N_EVAL, evaluate, mode_stats, sliced_w1
from refimpl.swgan import SWGANConfig, SWGANMethod
from refimpl.train import GANConfig, GANMethod, ToyData

from .aggregate import INTERVAL, aggregate_runs
from .common import MultiRun, Outputs, RunOptions, Variant, atomic_write_bytes, run_and_write, write_json
from . import protocols
from .gan import apply_overrides, eval_samples, figures_2d, plot_sample_panels

DATASET = "grid25"
DEFAULT_ITERS = 10_000
QUICK_ITERS = 5
QUICK_DUAL_STEPS = 3        # --quick's cap on SWGANConfig.n_critic
QUICK_N_EVAL = 300
CALIBRATION_ITERS = 100


def wgan_gp_config(latent_dim):
    """The WGAN-GP comparison of Sec. 6.1 (module docstring)."""
    return GANConfig(objective="wgan-gp", lam=10.0, latent_dim=latent_dim, gen_hidden=(128, 128),
                     gen_activation="tanh", critic_hidden=(128, 128), critic_activation="relu",
                     batch_size=128, n_critic=5, lr_gen=1e-4, lr_critic=1e-4, betas=(0.5, 0.9))


def seconds_per_iteration(method, xp, n, seed=0, dataset=DATASET):
    """Wall-clock seconds of one outer iteration of ``method`` (mean of ``n`` after 5 warm-up)."""
    rng = np.random.default_rng([seed, 31337])
    data = ToyData(dataset, xp, "float32", scale=getattr(method.cfg, "data_scale", 1.0))
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


def train_and_evaluate(opts: RunOptions, method, *, iters, eval_every, n_eval, title, more=None, dataset=DATASET,
                       protocol=None):
    """Train ``method`` on the grid and write the standard run files (as :func:`toy.gan.run_gan`).

    Curve rows (every ``eval_every``): modes, high-quality fraction and sliced W1 of ``n_eval``
    samples, and the training loop's clocks (``seconds``, ``train_seconds``: evaluation excluded;
    ``metrics.json`` adds the evaluations' total, ``eval_seconds``). The final row adds the exact
    W1 and W2 of :func:`refimpl.metrics.evaluate` (2,500 samples by the protocol; ``n_eval`` in
    quick runs). ``more(final state) -> dict`` adds metrics.
    ``dataset``: ``grid25`` or ``grid25-lim-ye`` (``--protocol lim-ye``); ``protocol``: a
    :class:`toy.protocols.Protocol`, recorded in ``metrics.json`` and the fingerprint.
    Returns the final metrics.
    """
    xp = get_namespace(opts.backend)

    def eval_fn(state, it):
        samples = eval_samples(method, state, opts.seed, it, n_eval)
        rng = EVAL.target_rng(opts.seed, it)
        if it == iters:
            m = evaluate(samples, dataset, rng, n_target=n_eval)
        else:
            ms = mode_stats(samples, get_dataset(dataset).centers, get_dataset(dataset).std)
            target = sample(get_dataset(dataset), n_eval, rng, xp=xp, dtype="float32")
            m = {"modes": ms["modes"], "high_quality": ms["high_quality"], "w1": None, "w2": None,
                 "sliced_w1": sliced_w1(samples, target, rng=rng)}
        return m

    data = ToyData(dataset, xp, "float32", scale=getattr(method.cfg, "data_scale", 1.0))
    def finish(res):
        fin = res.curve[-1]
        samples = to_numpy(eval_samples(method, res.state, opts.seed, res.iterations, n_eval))
        metrics = {k: fin[k] for k in ("modes", "high_quality", "w1", "w2", "sliced_w1", "train_seconds")}
        metrics["eval_seconds"] = round(res.clock.eval_seconds, 3)       # train()'s clock, at the end
        metrics.update({"n_eval": n_eval, "eval_seeds": EVAL.seeds(opts.seed, res.iterations)})
        if protocol is not None:
            metrics.update(protocol.record(protocols.overrides(opts, ("lam", "n_critic", "n_gen", "batch_size",
                                                                      "latent_dim", "lr_gen", "lr_critic"))))
        metrics.update(more(res.state) if more else {})
        return Outputs(metrics, samples, plots=figures_2d(samples, dataset, title, curve=res.curve))

    return run_and_write(opts, method, data, finish=finish, dataset=dataset, xp=xp, dtype="float32", iters=iters,
                         eval_fn=eval_fn, eval_every=eval_every,
                         run_info={"n_eval": n_eval, **({"protocol": protocol.name} if protocol else {})})


def settings(opts: RunOptions):
    """(SWGAN config, latent dim, iterations, evaluation samples) of every run; validates."""
    protocols.get(opts)
    latent = opts.extra.get("latent_dim") or SWGANConfig.latent_dim
    cfg = apply_overrides(SWGANConfig(latent_dim=latent), opts)
    if opts.quick:
        cfg = dataclasses.replace(cfg, n_critic=min(cfg.n_critic, QUICK_DUAL_STEPS))
    iters = opts.iters or (QUICK_ITERS if opts.quick else DEFAULT_ITERS)
    n_eval = opts.extra.get("n_eval") or (QUICK_N_EVAL if opts.quick else N_EVAL)
    return cfg, latent, iters, n_eval


def variants(opts: RunOptions):
    """``swgan``, then ``wgan-gp`` given the same training wall-clock as the ``swgan`` run of its
    seed (which must finish first; quick runs are not matched in time, so need no peer)."""
    settings(opts)
    timed = not opts.quick and protocols.get(opts) is None      # lim-ye: WGAN-GP at the paper's 30,000 iterations
    return [Variant("swgan", "SWGAN"),
            Variant("wgan-gp", "WGAN-GP", base="swgan", after=("swgan",) if timed else ())]


def train(opts: RunOptions, v: Variant) -> dict:
    """One run of ``v`` with seed ``opts.seed`` into ``opts.out``; returns its metrics."""
    cfg, latent, iters, n_eval = settings(opts)
    proto = protocols.get(opts)
    dataset = proto.dataset if proto else DATASET
    if v.key == "swgan":
        def dual_steps(_state):
            st = load_checkpoint(checkpoint_file(opts.out), np)["state"]      # host copies of the counters
            return {"mean_dual_steps": round(float(st["dual_steps"]) / float(st["outer"]), 2)}
        return train_and_evaluate(opts, SWGANMethod(cfg), iters=iters, eval_every=max(1, iters // 10),
                                  n_eval=n_eval, title=f"SWGAN d={latent} {dataset} seed {opts.seed}",
                                  more=dual_steps, dataset=dataset, protocol=proto)
    wg = GANMethod(wgan_gp_config(latent), name="wgan-gp")
    opts.out.mkdir(parents=True, exist_ok=True)
    budget_file = opts.out / "budget.json"
    if opts.resume and budget_file.exists():      # the iteration count is fixed once, kept for --resume
        budget = json.loads(budget_file.read_text())
    elif opts.quick:
        budget = {"iterations": iters, "note": "quick run: not matched in time"}
    elif proto is not None:
        budget = {"iterations": proto.extra["wgan_gp_iters"],
                  "note": f"protocol {proto.name}: the paper's WGAN-GP iterations, not matched in time"}
    else:
        peer = opts.extra["peers"]["swgan"] / "metrics.json"
        if not peer.exists():
            raise ValueError(f"the WGAN-GP run is given the SWGAN run's training time, but {peer} does not exist; "
                             "run the swgan variant of this seed first")
        swgan_seconds = json.loads(peer.read_text())["train_seconds"]
        spi = seconds_per_iteration(wg, get_namespace(opts.backend), CALIBRATION_ITERS, opts.seed)
        budget = {"swgan_train_seconds": swgan_seconds, "wgan_gp_s_per_iter": spi,
                  "iterations": max(1, int(swgan_seconds / spi))}
    write_json(budget_file, budget)
    iw = budget["iterations"]
    return train_and_evaluate(opts, wg, iters=iw, eval_every=max(1, iw // 10), n_eval=n_eval,
                              title=f"WGAN-GP d={latent} {dataset} seed {opts.seed}", dataset=dataset, protocol=proto)


def summarise(out, variants, runs) -> dict:
    """From finished run folders ``[(variant, seed, folder)]``: the per-metric statistics of
    :func:`toy.aggregate.aggregate_runs` (summary.json/csv, curves.csv, curve-*.png), then
    ``metrics.json`` (one row per run), ``table.md`` and ``comparison.png`` (first seed)."""
    aggregate_runs(out, [(v.key, folder) for v, _, folder in runs])
    ms = [(v, s, folder, json.loads((folder / "metrics.json").read_text())) for v, s, folder in runs]
    rows = [{"seed": s, **_row(v.label, m, dual_steps=m.get("mean_dual_steps"))} for v, s, _, m in ms]
    seeds = sorted({s for _, s, _ in runs})
    configs = {v.key: m["config"] for v, _, _, m in ms}
    latent = configs["swgan"]["latent_dim"]
    n_eval = ms[0][3]["n_eval"]
    dataset = ms[0][3].get("dataset", DATASET)
    write_json(out / "metrics.json", {"latent_dim": latent, "dataset": dataset, "protocol": ms[0][3].get("protocol"),
                                      "seeds": seeds, "n_eval": n_eval,
                                      "rows": rows, "interval": INTERVAL, "swgan_config": configs["swgan"],
                                      "wgan_gp_config": configs["wgan-gp"]})
    lines = [f"Latent dim {latent}, {dataset}, {n_eval} samples per evaluation; seconds: training only.", "",
             "| seed | method | iterations | train s | s/iter | dual steps/iter | modes | high quality | W1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ds = "" if r["mean_dual_steps"] is None else f"{r['mean_dual_steps']:.2f}"
        lines.append(f"| {r['seed']} | {r['method']} | {r['iterations']} | {r['train_seconds']:.0f} | "
                     f"{r['s_per_iter']:.4f} | {ds} | {r['modes']}/25 | {r['high_quality']:.3f} | {r['w1']:.4f} |")
    atomic_write_bytes(out / "table.md", ("\n".join(lines) + "\n").encode())
    _comparison(out, latent, [(r, folder) for r, (_, s, folder, _) in zip(rows, ms) if s == seeds[0]], dataset)
    first = {r["method"]: r for r in rows if r["seed"] == seeds[0]}
    return {"latent_dim": latent, "seeds": seeds,
            **{f"swgan_{k}": first["SWGAN"][k] for k in ("modes", "high_quality", "w1", "train_seconds", "s_per_iter")},
            **{f"wgan_gp_{k}": first["WGAN-GP"][k] for k in ("modes", "high_quality", "w1", "train_seconds",
                                                             "iterations")},
            "rows": rows}


#: ``python -m toy swgan-grid``: per seed, SWGAN then WGAN-GP at equal training wall-clock
run = MultiRun(variants, train, summarise)


def _comparison(out, latent, shown, dataset=DATASET):
    """Final samples side by side: ``shown`` = [(row, run folder)] of one seed."""
    plot_sample_panels(out / "comparison.png", [
        (f"{r['method']}, d={latent}: {r['iterations']} it, {r['train_seconds']:.0f} s\n"
         f"{r['modes']}/25 modes, hq {r['high_quality']:.2f}, W1 {r['w1']:.3f}", np.load(folder / "samples.npy"))
        for r, folder in shown], dataset, cols=len(shown), dpi=100)
