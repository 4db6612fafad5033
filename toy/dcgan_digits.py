"""DCGAN against MLP networks on 8x8 digits, WGAN-GP, at the same training CPU budget and seeds.

A CPU demonstration that the convolutional networks of :mod:`refimpl.cnn` train (the papers'
image experiments use DCGANs; this is not one of them, only their kind of network on a small
data set). Two variants share everything but the networks:

* ``mlp``: generator ``32 -> 256 -> 256 -> 64`` (ReLU, tanh output), critic
  ``64 -> 256 -> 256 -> 1`` (leaky ReLU 0.2), as ``wwgan-digits``;
* ``dcgan``: :func:`refimpl.cnn.dcgan_generator` and :func:`refimpl.cnn.dcgan_critic` at the
  digits' own 1x8x8 (one stride-2 stage: 4x4 -> 8x8 in the generator, 8x8 -> 4x4 in the
  critic; no padding or upsampling of the data), width 32, critic layer norm, generator batch norm.

Both: WGAN-GP, lambda = 10, 5 critic steps per generator step, batch 64, Adam(1e-4, 0.5, 0.9),
float32, one BLAS thread, and a budget of ``--budget`` process CPU seconds of training each
(evaluation excluded; :func:`refimpl.train.train`'s ``max_train_cpu_seconds``), so the cheaper
network gets more iterations. At the default widths both cost about 20 ms per outer iteration.

Judged on the 360 held-out test digits, as ``wwgan-digits`` does: the exact W1 in pixel space
between 360 generated and the test images (:func:`refimpl.image_metrics.image_w1`) and the
Frechet distance of a digit classifier's features
(:class:`refimpl.image_metrics.ClassifierFrechet`, a stand-in for FID), beside their floors
(the train split against the test split). The summary gives per variant the 95% t-interval
over seeds and the paired difference ``dcgan - mlp`` per seed with its interval; the verdict
is "undecided" when that interval contains 0.

Outputs per run: ``metrics.json``, ``curve.csv``, ``samples.png``, ``checkpoint.npz``; in the
experiment folder ``summary.json``/``summary.csv`` (:func:`toy.aggregate.aggregate_runs`),
``metrics.json`` and ``table.md``.
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from refimpl.backend import from_host, get_namespace, to_numpy
from refimpl.evaluation import EVAL
from refimpl.image_metrics import ClassifierFrechet, classifier_accuracy, image_w1, train_classifier
from refimpl.images import load_images
from refimpl.train import ArrayData, GANConfig, GANMethod

from .aggregate import INTERVAL, aggregate_runs, t_interval
from .common import MultiRun, Outputs, RunOptions, Variant, atomic_write_bytes, run_and_write, write_json
from .gan import apply_overrides
from .wwgan_digits import plot_image_panels

DATASET = "digits"
BUDGET_CPU_SECONDS = 90.0
QUICK_BUDGET = 0.5
SEEDS = (0, 1, 2)
MAX_ITERS = 10 ** 6          # the budget ends a run; --iters caps it
EVAL_EVERY = 500
QUICK_EVAL_EVERY = 2
MLP_HIDDEN = (256, 256)
DCGAN_WIDTH = 32
QUALITY_METRICS = ("w1", "fd")


def config(arch, opts: RunOptions, image_shape):
    """The WGAN-GP config of variant ``arch`` (``"mlp"`` or ``"dcgan"``) with the command line's
    overrides (``ValueError`` for a bad one)."""
    C, H, W = image_shape
    net = (dict(gen_hidden=MLP_HIDDEN, critic_hidden=MLP_HIDDEN) if arch == "mlp" else
           dict(arch="dcgan", image_shape=tuple(image_shape), width=DCGAN_WIDTH))
    if opts.quick:
        net = dict(gen_hidden=(16,), critic_hidden=(16,)) if arch == "mlp" else {**net, "width": 4}
    base = GANConfig(objective="wgan-gp", lam=10.0, data_dim=C * H * W, latent_dim=32, gen_activation="relu",
                     critic_activation="leaky_relu", gen_output="tanh", batch_size=16 if opts.quick else 64,
                     n_critic=5, lr_gen=1e-4, lr_critic=1e-4, betas=(0.5, 0.9), **net)
    return apply_overrides(base, opts, fields=("lam", "n_critic", "batch_size", "latent_dim", "lr_gen", "lr_critic"))


def _budget(opts: RunOptions):
    return float(opts.extra.get("budget") or (QUICK_BUDGET if opts.quick else BUDGET_CPU_SECONDS))


def variants(opts: RunOptions):
    """``mlp`` and ``dcgan`` (the base of the comparison is ``mlp``); validates the overrides."""
    for arch in ("mlp", "dcgan"):
        config(arch, opts, (1, 8, 8))
    return [Variant("mlp", "MLP"), Variant("dcgan", "DCGAN", base="mlp")]


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


def train(opts: RunOptions, v: Variant) -> dict:
    """One run of variant ``v`` with seed ``opts.seed`` into ``opts.out``; returns its metrics."""
    xp = get_namespace(opts.backend)
    dtype = "float32"
    train_x, train_y = load_images(DATASET, None, "train")
    test_x, test_y = load_images(DATASET, None, "test")
    if opts.quick:
        test_x, test_y = test_x[:40], test_y[:40]
    shape = tuple(int(s) for s in train_x.shape[1:])
    n, d = len(test_x), int(np.prod(shape))
    cfg = config(v.key, opts, shape)
    method = GANMethod(cfg, name=f"wgan-gp-{v.key}")
    budget = _budget(opts)
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)

    trx, tex = from_host(train_x, xp, dtype), from_host(test_x, xp, dtype)
    cls, cparams, cinfo = train_classifier(
        trx, from_host(train_y, xp), hidden=(16, 8) if opts.quick else (256, 128), steps=30 if opts.quick else 2000,
        batch_size=128, lr=1e-3, seed=0, cache_dir=out.parent / ".cache", tag=f"classifier-{DATASET}", progress=_say)
    fd_ref = ClassifierFrechet(cls, cparams, tex)

    def generated(state, it):
        z = method.latent(EVAL.latent_rng(opts.seed, it), n, state["gen"][0][0])
        return xp.reshape(method.generate(state, z), (n, *shape))

    def judged(g):
        return {"w1": image_w1(g, test_x), "fd": fd_ref.score(g)}

    def quality(state, it):
        return judged(generated(state, it))

    iters = opts.iters or MAX_ITERS
    def finish(res):
        samples = generated(res.state, res.iterations)          # (n, C, H, W): what the final metrics judge
        final = judged(samples)
        last = res.curve[-1]
        curve = [r for r in res.curve if "w1" in r and r["iteration"] != res.iterations]
        curve.append({**{k: last[k] for k in ("iteration", "train_seconds", "train_cpu_seconds")}, **final})
        shown = to_numpy(generated(res.state, 1_000_002))[:64]

        def plots(folder, metrics):
            plot_image_panels(folder / "samples.png", [("test images", test_x[:64]),
                                                       (f"{v.label}, {res.iterations} it", shown)])
        return Outputs({**final, "train_seconds": last["train_seconds"], "train_cpu_seconds": last["train_cpu_seconds"],
                        "budget_cpu_seconds": budget, "arch": v.key, "image_shape": list(shape), "n_eval": n,
                        "eval_seeds": {"latent": EVAL.latent_seed(opts.seed, res.iterations)},
                        "baseline": {"w1_train_vs_test": image_w1(train_x[:n], test_x),
                                     "fd_train_vs_test": fd_ref.score(trx[:n, :, :, :]),
                                     "classifier_test_accuracy": classifier_accuracy(cls, cparams, tex,
                                                                                     from_host(test_y, xp))}},
                       samples, curve=curve, plots=plots)

    metrics = run_and_write(opts, method, ArrayData(xp.reshape(trx, (trx.shape[0], d))), finish=finish,
                            dataset=DATASET, xp=xp, dtype=dtype, iters=iters, eval_fn=quality,
                            eval_every=QUICK_EVAL_EVERY if opts.quick else EVAL_EVERY,
                            max_train_cpu_seconds=budget, run_info={"budget_cpu_seconds": budget})
    _say(f"[{v.key} seed {opts.seed}] {metrics['iterations']} iterations in {metrics['train_cpu_seconds']:.1f} CPU s: "
         f"W1 {metrics['w1']:.3f}, FD {metrics['fd']:.3f}")
    return metrics


def verdict(diff):
    """The word for a paired difference ``dcgan - mlp`` (lower is better) from its t-interval."""
    if diff["ci_low"] is None:
        return "undecided (one seed)"
    if diff["ci_high"] < 0:
        return "DCGAN lower"
    if diff["ci_low"] > 0:
        return "MLP lower"
    return "undecided"


def summarise(out, variants, runs) -> dict:
    """From finished run folders ``[(variant, seed, folder)]``: :func:`toy.aggregate.aggregate_runs`,
    then ``metrics.json`` (per variant the t-interval of W1, FD, iterations and CPU time; the
    paired ``dcgan - mlp`` differences with their verdicts) and ``table.md``."""
    out = pathlib.Path(out)
    aggregate_runs(out, [(v.key, folder) for v, _, folder in runs])
    ms = {(v.key, s): json.loads((folder / "metrics.json").read_text()) for v, s, folder in runs}
    seeds = sorted({s for _, s, _ in runs})
    keys = ("w1", "fd", "iterations", "train_cpu_seconds")
    per = {a: {k: t_interval([ms[a, s][k] for s in seeds if (a, s) in ms]) for k in keys} for a in ("mlp", "dcgan")}
    paired = [s for s in seeds if ("mlp", s) in ms and ("dcgan", s) in ms]
    diff = {k: t_interval([ms["dcgan", s][k] - ms["mlp", s][k] for s in paired]) for k in QUALITY_METRICS}
    any_m = next(iter(ms.values()))
    result = {"experiment": "dcgan-digits", "dataset": DATASET, "seeds": seeds, "paired_seeds": paired,
              "budget_cpu_seconds": any_m["budget_cpu_seconds"], "n_eval": any_m["n_eval"], "interval": INTERVAL,
              "per_variant": per, "dcgan_minus_mlp": diff, "verdict": {k: verdict(diff[k]) for k in QUALITY_METRICS},
              "baseline": any_m["baseline"],
              "runs": [{"arch": a, "seed": s, **{k: m[k] for k in keys}} for (a, s), m in sorted(ms.items())]}
    write_json(out / "metrics.json", result)

    def ci(t, f="{:.3f}"):
        if t["mean"] is None:
            return ""
        return f.format(t["mean"]) + ("" if t["ci_low"] is None else f" [{f.format(t['ci_low'])}, {f.format(t['ci_high'])}]")
    lines = [f"WGAN-GP on digits, {any_m['budget_cpu_seconds']:g} training CPU s per run, seeds "
             f"{', '.join(map(str, seeds))}; mean [95% t-interval]. Floors (train vs test): W1 "
             f"{any_m['baseline']['w1_train_vs_test']:.3f}, FD {any_m['baseline']['fd_train_vs_test']:.3f}.", "",
             "| networks | iterations | CPU s | pixel W1 | classifier FD |", "|---|---|---|---|---|"]
    for a, label in (("mlp", "MLP"), ("dcgan", "DCGAN")):
        p = per[a]
        lines.append(f"| {label} | {ci(p['iterations'], '{:.0f}')} | {ci(p['train_cpu_seconds'], '{:.1f}')} | "
                     f"{ci(p['w1'])} | {ci(p['fd'])} |")
    lines.append(f"| DCGAN - MLP (paired) | | | {ci(diff['w1'])}: {result['verdict']['w1']} | "
                 f"{ci(diff['fd'])}: {result['verdict']['fd']} |")
    atomic_write_bytes(out / "table.md", ("\n".join(lines) + "\n").encode())
    return result


#: ``python -m toy dcgan-digits``: per seed, the MLP and the DCGAN pair at the same CPU budget
run = MultiRun(variants, train, summarise, default_seeds=SEEDS)
