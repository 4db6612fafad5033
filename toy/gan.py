"""Shared runner for the 2-D GAN experiments: train a method, evaluate, write every output.

Outputs in ``opts.out``: ``metrics.json`` (final metrics, wall-clock seconds, full
config), ``curve.csv`` (metrics against iteration and seconds), ``samples.npy``
(2,500 final samples; 300 with ``--quick``), ``samples.png`` (samples over the target modes),
``curves.png`` (learning curves) and ``checkpoint.npz`` (resumable state).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from refimpl.backend import get_namespace, to_numpy
from refimpl.metrics import N_EVAL, evaluate
from refimpl.evaluation import EVAL
from refimpl.train import ToyData

from .common import Outputs, RunOptions, plt, run_and_write

#: evaluation samples of a ``--quick`` run (a smoke run: the exact W1 / W2 of 2,500 points took 2.4 s
#: each, most of a quick run's time); full runs use :data:`refimpl.metrics.N_EVAL`
QUICK_N_EVAL = 300


def n_eval_of(opts: RunOptions) -> int:
    """The evaluation sample count of a run: :data:`QUICK_N_EVAL` for ``--quick``, else ``N_EVAL``."""
    return QUICK_N_EVAL if opts.quick else N_EVAL


# flags of the command line that override config fields (name in opts.extra -> config field)
OVERRIDES = ("objective", "lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic")


def apply_overrides(cfg, opts: RunOptions, fields=OVERRIDES):
    """``cfg`` with the command line's overrides of ``fields``; invalid values raise ``ValueError``
    (nothing written yet), and so does an override of a field ``cfg`` does not have: a flag is
    never dropped in silence."""
    kw = {k: opts.extra[k] for k in fields if opts.extra.get(k) is not None}
    unknown = [k for k in kw if k not in {f.name for f in dataclasses.fields(cfg)}]
    if unknown:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in unknown)} does not apply to "
                         f"{type(cfg).__name__} (its fields: {', '.join(f.name for f in dataclasses.fields(cfg))})")
    return dataclasses.replace(cfg, **kw) if kw else cfg


def eval_samples(method, state, seed, it, n=N_EVAL):
    """``n`` generated samples from a latent stream fixed by (seed, iteration), independent of training."""
    rng = EVAL.latent_rng(seed, it)
    like = state["gen"][0][0]
    return method.samples(state, method.latent(rng, n, like))


def make_eval_fn(method, dataset, seed, n=N_EVAL):
    def eval_fn(state, it):
        samples = eval_samples(method, state, seed, it, n)
        return evaluate(samples, dataset, EVAL.target_rng(seed, it), n_target=n)
    return eval_fn


#: half-width of the fixed square axes of a dataset's sample plots (the same for every method)
AXIS_LIMITS = {"grid25": 6.0, "ring8": 1.5, "grid25-lim-ye": 26.0}


def plot_samples(path, samples, dataset, title):
    """``samples`` (n, 2) over the dataset's modes on the dataset's fixed axes (:data:`AXIS_LIMITS`;
    points outside are counted in the figure), the title wrapped to fit, the legend below the axes."""
    import textwrap

    from refimpl.datasets import get_dataset
    pyplot = plt()
    spec = get_dataset(dataset)
    fig, ax = pyplot.subplots(figsize=(5, 5.6))
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, label=f"generated (n = {len(samples)})")
    centers = getattr(spec, "centers", None)
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="red", s=40, label="modes")
    lim = AXIS_LIMITS.get(dataset)
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        outside = int(np.sum(np.any(np.abs(samples) > lim, axis=1)))
        if outside:
            ax.text(0.02, 0.02, f"{outside} of {len(samples)} outside the axes", transform=ax.transAxes, fontsize=7)
    ax.set_title("\n".join(w for line in title.split("\n") for w in textwrap.wrap(line, 70)), fontsize=9)
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def plot_sample_panels(path, panels, dataset, suptitle=None, *, cols=3, dpi=90):
    """Scatter panels on the dataset's fixed axes (:data:`AXIS_LIMITS`), modes as red crosses.

    Parameters
    ----------
    panels : list of (title, samples (n, 2) array)
    suptitle : str or None, the figure's title
    """
    from refimpl.datasets import get_dataset
    pyplot = plt()
    centers = get_dataset(dataset).centers
    lim = AXIS_LIMITS[dataset]
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = pyplot.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows + (0.3 if suptitle else 0)), squeeze=False)
    for ax, (title, s) in zip(axes.flat, panels):
        s = np.asarray(s)
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4, c="tab:blue", label="generated", zorder=1)
        ax.scatter(centers[:, 0], centers[:, 1], c="red", s=30, marker="x", linewidths=1, label="modes", zorder=2)
        outside = int(np.sum(np.any(np.abs(s) > lim, axis=1)))
        if outside:
            ax.text(0.02, 0.02, f"{outside} of {len(s)} outside the axes", transform=ax.transAxes, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    axes[0][0].legend(loc="upper right", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot.close(fig)


def plot_curves(path, curve, title):
    pyplot = plt()
    keys = [k for k in ("w1", "w2", "sliced_w1", "modes", "high_quality") if curve and k in curve[0]]
    fig, axes = pyplot.subplots(1, len(keys), figsize=(3.2 * len(keys), 3))
    axes = np.atleast_1d(axes)
    its = [r["iteration"] for r in curve]
    for ax, k in zip(axes, keys):
        ax.plot(its, [r[k] for r in curve], marker=".")
        ax.set_xlabel("generator iteration")
        ax.set_title(k)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def figures_2d(samples, dataset, title, *, curve=None, curve_title=None):
    """The ``plots`` of a 2-D run's :class:`refimpl.harness.Outputs`: ``samples.png`` (titled
    ``title``, then the final modes, high-quality fraction and W1) and, given the ``curve`` rows,
    ``curves.png`` (titled ``curve_title``, default ``title``)."""
    def plots(folder, metrics):
        w1 = metrics.get("w1")
        plot_samples(folder / "samples.png", samples, dataset,
                     f"{title}: {metrics.get('modes')} modes, hq {metrics.get('high_quality') or 0:.2f}, "
                     f"W1 {float('nan') if w1 is None else w1:.3f}")
        if curve is not None:
            plot_curves(folder / "curves.png", curve, curve_title or title)
    return plots


def run_gan(opts: RunOptions, method, dataset, *, iters, eval_every, title, dtype="float32", extra_metrics=None,
            run_info=None):
    """Train ``method`` on a toy ``dataset`` and write the standard outputs; returns the final metrics.
    ``run_info`` joins the checkpoint's fingerprint (e.g. the protocol). Evaluations use
    :func:`n_eval_of` samples (fewer for ``--quick``)."""
    xp = get_namespace(opts.backend)
    n = n_eval_of(opts)

    def finish(res):
        samples = to_numpy(eval_samples(method, res.state, opts.seed, res.iterations, n))
        metrics = {**res.final_metrics, "train_seconds": round(res.train_seconds, 2), "n_eval": n,
                   "eval_seeds": EVAL.seeds(opts.seed, res.iterations), **(extra_metrics or {})}
        metrics.pop("iteration", None)
        return Outputs(metrics, samples, plots=figures_2d(samples, dataset, title, curve=res.curve))

    return run_and_write(opts, method, ToyData(dataset, xp, dtype, scale=method.cfg.data_scale), finish=finish,
                         dataset=dataset, xp=xp, dtype=dtype, iters=iters,
                         eval_fn=make_eval_fn(method, dataset, opts.seed, n), eval_every=eval_every, run_info=run_info)
