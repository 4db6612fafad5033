"""Figures 1, 2 and 4 of "A Differential Equation Approach for Wasserstein GANs" (W1-FE) on the 8-mode ring.

Paper: ``papers/w1-forward-euler-ode.md`` (shared folder), Sec. 5 (Fig. 1, Fig. 2) and
Appendix B.1 (Fig. 4); method :class:`refimpl.w1fe.W1FE`; protocol: conventions.md,
"2-D mixture protocol" (ring8, 2,500 evaluation samples, 3-std quality).

Paper settings (the defaults here): generator and critic MLPs with 3 hidden layers
of 128 ReLU, 2-D standard Gaussian latent, batch 512, 10 critic steps per epoch
(one *epoch* = one outer iteration of Algorithm 1), Adam with lr 1e-4 for both nets
(betas not given in the paper: the project's (0.5, 0.9)), eps = 1, penalty weight 10,
float32. W1-FE-LP (one-sided penalty) and W1-FE-GP (two-sided) for K in {1, 3, 5, 10}.

CPU budget. On the project's shared 2-core machine one epoch costs 0.085-0.105 s of
CPU on one BLAS thread (K = 1 to 10; 0.25-0.35 s wall under the shared load) and one
exact W1 of 2,500 x 2,500 points 2-8 s, so the default is 800 epochs (the paper's
horizon) with exact W1 every 100 epochs and the cheap sliced W1, modes and quality
every 25, on the grid ``DEFAULT_GRID`` (LP and GP, each with K = 1, 3, 5, 10) and one
seed: measured 4-5 minutes wall per run on the shared machine. ``--seeds 0,1,2``
runs the paper's three seeds; ``--K k`` restricts the grid to one K;
``opts.extra["grid"]`` (Python) takes any list of ``(penalty, K)`` pairs.

Outputs in ``opts.out``:

* ``<penalty>-K<k>-seed<s>/``: ``curve.csv`` (iteration, train_seconds (wall),
  train_cpu_seconds, w1 (exact, blank between exact evaluations), sliced_w1, modes,
  high_quality), ``metrics.json``, ``samples.npy``, ``samples.png``, ``snapshots.npz``
  (``G(z)`` and the Euler targets ``zeta`` for 256 fixed ``z`` at a few epochs),
  ``checkpoint.npz``. A run whose ``metrics.json`` exists with the same configuration
  is reused, not re-run.
* ``summary.json`` / ``summary.csv`` / ``curves.csv`` / ``curve-*.png``: the statistics of
  :mod:`toy.aggregate` per variant ``PENALTY-KK`` (n, mean, std, 95% t-interval).
* ``metrics.json`` / ``table.csv``: per run and per (penalty, K) over seeds: final and
  best W1, modes, high quality, training time (mean and 95% t-interval), and the epochs /
  CPU seconds to first reach each level of ``W1_THRESHOLDS`` (exact W1) and
  ``SLICED_THRESHOLDS`` (sliced W1); a mean over seeds is given only when every seed reached
  the level (else ``">N (r/s)"``). :func:`summarise` computes them from the run folders only,
  so a sweep's runs (``python -m toy sweep w1fe-ring``) get the same table.
* ``w1_vs_epoch.png``, ``w1_vs_time.png`` (Fig. 2 and Fig. 4: LP and GP panels),
  ``transport.png`` (Fig. 1: data, initial samples, arrows ``G_0(z) -> G_t(z)``; and the
  Euler arrows ``G_t(z) -> zeta``).

Timing: the training loop's clocks (:class:`refimpl.train.TrainClock`, evaluation
excluded), wall-clock and process CPU time, with the device synchronised around each
outer iteration (``sync=True``: on CuPy the time of the work, not of the kernel launches);
the CPU time is the comparison used, since the wall clock of a shared machine depends on
the other jobs.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np

from refimpl.backend import get_namespace, to_numpy
from refimpl.datasets import get_dataset, sample
from refimpl.evaluation import EVAL
from refimpl.metrics import N_EVAL, mode_stats, sliced_w1, w1
from refimpl.harness import finished_run
from refimpl.train import GANConfig, ToyData, TrainClock, config_dict
from refimpl.w1fe import W1FE

from .aggregate import INTERVAL, aggregate_runs, t_interval
from .common import MultiRun, Outputs, RunOptions, Variant, plt, run_and_write, write_csv, write_json
from .gan import apply_overrides, eval_samples, figures_2d

DATASET = "ring8"
PENALTIES = {"lp": "wgan-lp", "gp": "wgan-gp"}
PAPER_KS = (1, 3, 5, 10)
DEFAULT_GRID = (("lp", 1), ("lp", 3), ("lp", 5), ("lp", 10), ("gp", 1), ("gp", 3), ("gp", 5), ("gp", 10))
DEFAULT_ITERS = 800
EXACT_EVERY = 100           # exact W1 (2-8 s each on this machine)
EVAL_EVERY = 25             # sliced W1, modes, quality (cheap)
EPS = 1.0
# time-to-threshold levels. Exact W1 of 2,500 vs 2,500 samples: the data-vs-data floor on ring8
# is about 0.06 (mode-weight fluctuations of the two samples). Exact W1 is evaluated every
# EXACT_EVERY epochs, the sliced W1 every EVAL_EVERY (finer time resolution).
W1_THRESHOLDS = (0.3, 0.2, 0.15)
SLICED_THRESHOLDS = (0.15, 0.12, 0.1, 0.08)
N_SNAPSHOT = 256

QUICK = dict(iters=6, eval_every=2, exact_every=3, n_eval=400, hidden=(16, 16), batch=64, n_critic=2,
             grid=(("lp", 1), ("lp", 3), ("gp", 1)))


def paper_config(penalty, opts: RunOptions):
    """GANConfig of Sec. 5 for ``penalty`` in {'lp', 'gp'} (quick: tiny nets), with the CLI overrides."""
    q = opts.quick
    hidden = QUICK["hidden"] if q else (128, 128, 128)
    cfg = GANConfig(objective=PENALTIES[penalty], lam=10.0, data_dim=2, latent_dim=2,
                    gen_hidden=hidden, critic_hidden=hidden, gen_activation="relu", critic_activation="relu",
                    batch_size=QUICK["batch"] if q else 512, n_critic=QUICK["n_critic"] if q else 10, n_gen=1,
                    optimiser="adam", lr_gen=1e-4, lr_critic=1e-4, betas=(0.5, 0.9))
    return apply_overrides(cfg, opts, fields=("lam", "n_critic", "batch_size", "latent_dim", "lr_gen", "lr_critic"))


def _grid(opts: RunOptions):
    ex = opts.extra or {}
    grid = ex.get("grid") or (QUICK["grid"] if opts.quick else DEFAULT_GRID)
    grid = [(str(p), int(k)) for p, k in grid]
    for p, k in grid:
        if p not in PENALTIES:
            raise ValueError(f"unknown penalty {p!r} in the grid; use one of {', '.join(PENALTIES)}")
        if k < 1:
            raise ValueError(f"K must be >= 1, got {k}")
    if ex.get("objective") is not None:               # --objective wgan-gp | wgan-lp restricts the penalty
        pen = {"wgan-gp": "gp", "wgan-lp": "lp"}.get(ex["objective"])
        if pen is None:
            raise ValueError(f"w1fe-ring takes --objective wgan-gp or wgan-lp, got {ex['objective']!r}")
        grid = [(p, k) for p, k in grid if p == pen] or [(pen, k) for k in dict.fromkeys(k for _, k in grid)]
    if ex.get("K") is not None:
        grid = [(p, k) for p, k in grid if k == ex["K"]] or [(p, ex["K"]) for p in dict.fromkeys(p for p, _ in grid)]
    return grid


def first_reach(its, vals, thr):
    """First iteration (and index) where ``vals <= thr``; (None, None) if never. Blank values skipped."""
    for i, (it, v) in enumerate(zip(its, vals)):
        if v is not None and v == v and v <= thr:
            return it, i
    return None, None


def snapshot_iterations(iters, eval_every):
    """Evaluated iterations nearest below iters/8, iters/4, iters/2 and the last one (Fig. 1 panels)."""
    evals = {k * eval_every for k in range(1, iters // eval_every + 1)} | {iters}
    return sorted({max([e for e in evals if e <= max(iters * f, min(evals))]) for f in (1 / 8, 1 / 4, 1 / 2, 1)})


def reach_times(curve):
    """``{"w1<=t" / "sliced<=t": {"epoch": e, "cpu_s": c}}``: first evaluation at or below each level
    (``None`` values where the level is never reached)."""
    its = [r["iteration"] for r in curve]
    out = {}
    for key, name, levels in (("w1", "w1", W1_THRESHOLDS), ("sliced_w1", "sliced", SLICED_THRESHOLDS)):
        for t in levels:
            it, i = first_reach(its, [r[key] for r in curve], t)
            out[f"{name}<={t:g}"] = {"epoch": it, "cpu_s": curve[i]["train_cpu_seconds"] if i is not None else None}
    return out


def _one_run(sub, *, xp, penalty, K, iters, eval_every, exact_every, n_eval):
    """One (penalty, K, seed) run in ``sub.out`` (a :class:`refimpl.harness.Run`'s train function)."""
    cfg = paper_config(penalty, sub)
    method = W1FE(cfg, eps=EPS, K=K, name=f"w1fe-{penalty}")
    out, seed = pathlib.Path(sub.out), sub.seed
    fingerprint = {"method": method.name, "config": method.config(), "seed": seed, "iters": iters,
                   "eval_every": eval_every, "exact_every": exact_every, "n_eval": n_eval}
    old = finished_run(out, fingerprint, GANConfig)
    if old is not None:
        return {**old, "reused": True}
    out.mkdir(parents=True, exist_ok=True)

    spec = get_dataset(DATASET)
    snap_its = snapshot_iterations(iters, eval_every)
    z_snap = method.latent(np.random.default_rng([seed, 31337]), N_SNAPSHOT, xp.zeros((1,), dtype=xp.float32))
    g0 = method.init_state(np.random.default_rng(seed), xp, "float32")    # train() draws the init first
    snaps = {"z": to_numpy(z_snap), "G0": to_numpy(method.generate(g0, z_snap)), "its": [], "G": [], "zeta": []}

    def eval_fn(state, it):
        samples = eval_samples(method, state, seed, it, n=n_eval)
        rng = EVAL.target_rng(seed, it)
        target = sample(spec, n_eval, rng, xp=xp, dtype=samples.dtype)
        ms = mode_stats(samples, spec.centers, spec.std)
        row = {"w1": w1(samples, target) if (it % exact_every == 0 or it == iters) else None,
               "sliced_w1": sliced_w1(samples, target, rng=rng),
               "modes": ms["modes"], "high_quality": ms["high_quality"]}
        if it in snap_its:
            y, zeta, _ = method.targets(state, z_snap)
            snaps["its"].append(it)
            snaps["G"].append(to_numpy(y))
            snaps["zeta"].append(to_numpy(zeta))
        return row

    def finish(res):
        curve = res.curve
        samples = to_numpy(eval_samples(method, res.state, seed, res.iterations, n=n_eval))
        exact = [(r["iteration"], r["w1"]) for r in curve if r["w1"] is not None]
        last = curve[-1]
        metrics = {"penalty": penalty, "K": K, "w1": last["w1"], "best_w1": min(v for _, v in exact),
                   "sliced_w1": last["sliced_w1"], "modes": last["modes"], "high_quality": last["high_quality"],
                   "train_seconds": last["train_seconds"], "train_cpu_seconds": last["train_cpu_seconds"],
                   "cpu_seconds_per_epoch": last["train_cpu_seconds"] / max(res.iterations, 1),
                   "reach": reach_times(curve), "eps": EPS, "n_eval": n_eval,
                   "eval_seeds": EVAL.seeds(seed, res.iterations), "fingerprint": fingerprint,
                   "config": config_dict(cfg)}
        arrays = ({"snapshots": dict(z=snaps["z"], G0=snaps["G0"], its=np.asarray(snaps["its"]),
                                     G=np.stack(snaps["G"]), zeta=np.stack(snaps["zeta"]))} if snaps["its"] else {})
        return Outputs(metrics, samples, arrays=arrays,
                       plots=figures_2d(samples, DATASET, f"W1-FE-{penalty.upper()} K={K}"))

    return run_and_write(sub, method, ToyData(DATASET, xp, "float32", scale=cfg.data_scale), finish=finish,
                         dataset=DATASET, xp=xp, dtype="float32", iters=iters, eval_fn=eval_fn, eval_every=eval_every,
                         run_info={"K": K, "exact_every": exact_every, "n_eval": n_eval}, progress=not sub.quick,
                         clock=TrainClock(sync=True))


def _read_curve(run_dir):
    import csv
    rows = []
    with open(run_dir / "curve.csv") as f:
        for r in csv.DictReader(f):
            row = {k: (float(v) if v not in ("", None) else None) for k, v in r.items()}
            row["iteration"] = int(row["iteration"])
            rows.append(row)
    return rows


STATS = {"w1_final": "w1", "w1_best": "best_w1", "sliced_w1_final": "sliced_w1", "modes": "modes",
         "high_quality": "high_quality", "cpu_s_per_epoch": "cpu_seconds_per_epoch"}


def _table(runs):
    """Per (penalty, K) over its seeds: mean and 95% t-interval (:func:`toy.aggregate.t_interval`)
    of each of ``STATS``, and the epochs / CPU seconds to first reach each level; a level's mean is
    given only when every seed reached it (else ``">N (r/s)"``)."""
    groups = {}
    for m in runs:
        groups.setdefault((m["penalty"], m["K"]), []).append(m)
    table = []
    for (p, K), ms in sorted(groups.items()):
        row = {"penalty": p, "K": K, "seeds": len(ms)}
        for name, key in STATS.items():
            ci = t_interval([m[key] for m in ms])
            row.update({name: ci["mean"], f"{name}_ci_low": ci["ci_low"], f"{name}_ci_high": ci["ci_high"]})
        reach = [reach_times(m["curve"]) for m in ms]
        for lvl in reach[0]:
            got = [r[lvl] for r in reach if r[lvl]["epoch"] is not None]
            if len(got) == len(ms):
                row[f"epochs:{lvl}"] = t_interval([g["epoch"] for g in got])["mean"]
                row[f"cpu_s:{lvl}"] = round(t_interval([g["cpu_s"] for g in got])["mean"], 2)
            else:
                row[f"epochs:{lvl}"] = row[f"cpu_s:{lvl}"] = f">{ms[0]['iterations']} ({len(got)}/{len(ms)})"
        table.append(row)
    return table


def _plots(out, runs):
    pyplot = plt()
    pens = [p for p in PENALTIES if any(m["penalty"] == p for m in runs)]
    colors = {1: "tab:blue", 3: "tab:orange", 5: "tab:green", 10: "tab:red"}
    for fname, xkey, xlabel in (("w1_vs_epoch.png", "iteration", "epoch (outer iteration)"),
                                ("w1_vs_time.png", "train_cpu_seconds", "training CPU seconds (1 thread)")):
        fig, axes = pyplot.subplots(2, len(pens), figsize=(5 * len(pens), 7), squeeze=False)
        for col, p in enumerate(pens):
            for m in sorted((m for m in runs if m["penalty"] == p), key=lambda m: (m["K"], m["seed"])):
                c = m["curve"]
                lab = f"K={m['K']}" + (f" s{m['seed']}" if m["seed"] else "")
                ex = [r for r in c if r["w1"] is not None]
                kw = dict(color=colors.get(m["K"]), alpha=1.0 if m["seed"] == min(r["seed"] for r in runs) else 0.5)
                axes[0, col].plot([r[xkey] for r in ex], [r["w1"] for r in ex], marker="o", ms=3, label=lab, **kw)
                axes[1, col].plot([r[xkey] for r in c], [r["sliced_w1"] for r in c], label=lab, **kw)
            for row, name, thrs in ((0, "exact W1", W1_THRESHOLDS), (1, "sliced W1", SLICED_THRESHOLDS)):
                ax = axes[row, col]
                for thr in thrs:
                    ax.axhline(thr, color="grey", ls=":", lw=0.8)
                ax.set_yscale("log")
                ax.set_title(f"W1-FE-{p.upper()}: {name}", fontsize=9)
                ax.set_xlabel(xlabel)
                ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        pyplot.close(fig)

    # Fig. 1: transport arrows, LP (else the first penalty), first seed, K = 1 and 3 (else the first two)
    pen, seed0 = ("lp" if "lp" in pens else pens[0]), runs[0]["seed"]
    cands = sorted((m for m in runs if m["penalty"] == pen and m["seed"] == seed0), key=lambda m: m["K"])
    cands = [m for m in cands if m["K"] in (1, 3)] or cands[:2]
    shown = []
    for m in cands:
        d = pathlib.Path(m["folder"]) / "snapshots.npz"
        if d.exists():
            shown.append((m, np.load(d)))
    if not shown:
        return
    plot_transport(out / "transport.png", [(m["K"], s) for m, s in shown])


def transport_data():
    """The 1,000 ring8 points drawn under the transport figure (``default_rng(0)``)."""
    return sample(get_dataset(DATASET), 1000, np.random.default_rng(0), xp=np, dtype="float64")


def plot_transport(path, shown, data=None, suptitle=None):
    """Fig. 1 analogue: per shown run two rows of panels, one per snapshot epoch: the arrows
    ``G_0(z) -> G_t(z)`` and the Euler arrows ``G_t(z) -> zeta``, over ring8 points ``data``.

    Parameters
    ----------
    shown : list of (K, snapshots) with snapshots a mapping of ``its`` (S,), ``G0`` (n, 2),
        ``G`` (S, n, 2) and ``zeta`` (S, n, 2) (the contents of ``snapshots.npz``)
    data : (m, 2) array or None (:func:`transport_data`)
    """
    pyplot = plt()
    data = transport_data() if data is None else np.asarray(data)
    n_snap = max(len(s["its"]) for _, s in shown)
    fig, axes = pyplot.subplots(2 * len(shown), n_snap, figsize=(3 * n_snap, 6 * len(shown) + (0.3 if suptitle else 0)),
                                squeeze=False)
    for r, (K, s) in enumerate(shown):
        for c_, it in enumerate(s["its"]):
            for kind in (0, 1):
                ax = axes[2 * r + kind, c_]
                ax.scatter(data[:, 0], data[:, 1], s=2, c="green", alpha=0.4)
                if kind == 0:   # paper's Fig. 1: G_0(z) (magenta) -> G_t(z), arrow heads at the samples
                    a, b = s["G0"], s["G"][c_]
                    ax.scatter(a[:, 0], a[:, 1], s=3, c="magenta", alpha=0.5)
                    title = f"K={K} epoch {int(it)}: G_0(z) -> G_t(z)"
                else:           # Euler arrows of Algorithm 1: G_t(z) -> zeta = G_t(z) + eps grad f
                    a, b = s["G"][c_], s["zeta"][c_]
                    ax.scatter(a[:, 0], a[:, 1], s=3, c="black", alpha=0.6)
                    title = f"K={K} epoch {int(it)}: G(z) -> zeta (eps={EPS:g})"
                ax.quiver(a[:, 0], a[:, 1], b[:, 0] - a[:, 0], b[:, 1] - a[:, 1], angles="xy", scale_units="xy",
                          scale=1, color="grey", alpha=0.5, width=0.003)
                ax.set_title(title, fontsize=8)
                ax.set_xlim(-3, 3)
                ax.set_ylim(-3, 3)
                ax.set_aspect("equal")
        for c_ in range(len(s["its"]), n_snap):
            axes[2 * r, c_].axis("off")
            axes[2 * r + 1, c_].axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    pyplot.close(fig)


def _schedule(opts: RunOptions):
    """(iters, eval_every, exact_every, n_eval) of every run."""
    if opts.quick:
        return opts.iters or QUICK["iters"], QUICK["eval_every"], QUICK["exact_every"], QUICK["n_eval"]
    iters = opts.iters or DEFAULT_ITERS
    return iters, min(EVAL_EVERY, iters), min(EXACT_EVERY, iters), N_EVAL


def variants(opts: RunOptions):
    """One variant ``PENALTY-KK`` (e.g. ``lp-K3``) per point of the grid; validates the overrides."""
    grid = _grid(opts)
    for p in dict.fromkeys(p for p, _ in grid):
        paper_config(p, opts)                                   # invalid overrides fail before any output
    return [Variant(f"{p}-K{K}", f"W1-FE-{p.upper()} K={K}", data=(p, K)) for p, K in grid]


def train(opts: RunOptions, v: Variant) -> dict:
    """One (penalty, K) run of seed ``opts.seed`` into ``opts.out``."""
    iters, eval_every, exact_every, n_eval = _schedule(opts)
    penalty, K = v.data
    return _one_run(opts, xp=get_namespace(opts.backend), penalty=penalty, K=K, iters=iters, eval_every=eval_every,
                    exact_every=exact_every, n_eval=n_eval)


def summarise(out, variants, runs) -> dict:
    """From finished run folders ``[(variant, seed, folder)]``: the per-metric statistics of
    :func:`toy.aggregate.aggregate_runs` (summary.json/csv, curves.csv, curve-*.png), then
    ``table.csv`` and ``metrics.json`` (:func:`_table`, every run's final values and reach times)
    and the figures."""
    out = pathlib.Path(out)
    aggregate_runs(out, [(v.key, folder) for v, _, folder in runs])
    ms = []
    for _, _, folder in runs:
        m = json.loads((folder / "metrics.json").read_text())
        ms.append({**m, "curve": _read_curve(folder), "folder": str(folder)})
    table = _table(ms)
    keep = ("penalty", "K", "seed", "iterations", "w1", "best_w1", "sliced_w1", "modes", "high_quality",
            "train_seconds", "train_cpu_seconds", "cpu_seconds_per_epoch")
    per_run = [{**{k: m.get(k) for k in keep}, "reach": reach_times(m["curve"])} for m in ms]
    write_csv(out / "table.csv", table)
    fp = ms[0]["fingerprint"]
    result = {"experiment": "w1fe-ring", "dataset": DATASET, "iters": fp["iters"], "eval_every": fp["eval_every"],
              "exact_w1_every": fp["exact_every"], "n_eval": fp["n_eval"], "eps": EPS,
              "seeds": sorted({s for _, s, _ in runs}), "grid": [list(v.data) for v in variants],
              "w1_thresholds": W1_THRESHOLDS, "sliced_thresholds": SLICED_THRESHOLDS, "interval": INTERVAL,
              "table": table, "runs": per_run, "config": {m["penalty"]: m["config"] for m in ms}}
    write_json(out / "metrics.json", result)
    _plots(out, ms)
    return result


#: ``python -m toy w1fe-ring``: the grid of (penalty, K) variants, seed ``--seed`` (or ``--seeds``)
run = MultiRun(variants, train, summarise)
