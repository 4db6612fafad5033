"""Redraw every figure of the docs from the CSV files in ``docs/results/`` alone.

    python -m toy.figures [--results DIR] [--out DIR] [NAME ...]

``NAME`` is a figure's file stem (default: all of :data:`FIGURES`); each is written as
``--out/NAME.png`` (default ``docs/figures``), atomically, and nothing else is written. No
training and no sweep folder is read: the CSVs are written by :mod:`toy.results_export` from the
sweeps (``docs/sweeps.md``, "Redrawing the figures"). Curves of several seeds are drawn as the
mean over the seeds with its 95% Student t-interval (:mod:`toy.aggregate`); a scatter or image
figure shows one named seed. The plotting functions are the experiments' own where they fit.

Exit status: 0; 2 for a bad flag, an unknown figure name or a missing/unreadable CSV file
(one line on stderr).
"""
from __future__ import annotations

import csv
import io
import pathlib
import sys

import numpy as np

from refimpl.checkpoint import atomic_write
from refimpl.harness import ArgumentParser

from .common import parse_names, plt

RESULTS = pathlib.Path("docs/results")
OUT = pathlib.Path("docs/figures")
BAND = "mean and 95% t-interval over seeds 0-4"


# ----------------------------------------------------------------------------- reading
def _num(v):
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def read(results, name, **where):
    """Rows of ``results/name`` (numbers parsed, blanks ``None``), those matching ``where`` only."""
    with open(pathlib.Path(results) / name, newline="") as fh:
        rows = [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def _xy(rows):
    return np.array([[r["x"], r["y"]] for r in rows], dtype=float)


# ----------------------------------------------------------------------------- figures
def grid_tour_samples(res, path):
    from .gan import plot_sample_panels
    from .tour import methods
    labels = {k: lab for k, (lab, _) in methods().items()}
    final = {r["method"]: r for r in read(res, "grid-tour-per-seed.csv", seed=0)}
    panels = []
    for k in [*labels, "baseline"]:
        r = final[k]
        head = (f"{labels[k]} ({r['iterations']} it)" if k in labels
                else "chance: Gaussian, data's mean/cov (no training)")
        panels.append((f"{head}\n{r['modes']}/25 modes, hq {r['high_quality']:.3f}, W1 {r['w1']:.3f}",
                       _xy(read(res, "grid-tour-seed0-samples.csv", panel=k))))
    plot_sample_panels(path, panels, "grid25", "grid-tour sweep, seed 0 (of 0-4): final 2,500 samples per method, "
                       "40 training CPU s each (red x: modes)")


def grid_tour_w1(res, path):
    from .tour import methods
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6.5, 4.2))
    for k, (label, _) in methods().items():
        rows = read(res, "grid-tour-bands.csv", method=k, metric="w1")
        x = [r["x"] for r in rows]
        (line,) = ax.plot(x, [r["mean"] for r in rows], label=f"{label} (n={max(r['n'] for r in rows)})")
        ax.fill_between(x, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], color=line.get_color(),
                        alpha=0.2)
    b = read(res, "grid-tour-summary.csv", metric="baseline/w1")[0]
    ax.axhline(b["mean"], color="grey", ls="--", label=f"chance (n={b['n']}; band: 95% t-interval)")
    ax.axhspan(b["ci_low"], b["ci_high"], color="grey", alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("training CPU seconds (evaluation excluded)")
    ax.set_ylabel("exact W1 to 2,500 fresh data samples")
    ax.set_title(f"grid-tour sweep, grid25: {BAND} (each run interpolated\non the CPU-time axis)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def _final_title(res, curves, seed, label):
    rows = read(res, curves, seed=seed)
    if not rows:
        raise ValueError(f"{curves} has no rows of seed {seed}")
    last = rows[-1]
    return (f"{label}, seed {seed}, iteration {last['iteration']}: {last['modes']} modes, "
            f"hq {last['high_quality']:.3f}, W1 {last['w1']:.3f}")


def wgan_gp_samples(dataset):
    short = {"grid25": "grid", "ring8": "ring"}[dataset]

    def draw(res, path):
        from .gan import plot_samples
        plot_samples(path, _xy(read(res, f"wgan-gp-{short}-seed0-samples.csv")), dataset,
                     _final_title(res, f"wgan-gp-{short}-curves.csv", 0, f"wgan-gp-{short} sweep, WGAN-GP {dataset}"))
    return draw


def wgan_gp_grid_seed1_curves(res, path):
    from .gan import plot_curves
    rows = read(res, "wgan-gp-grid-curves.csv", seed=1)
    if not rows:
        raise ValueError("wgan-gp-grid-curves.csv has no rows of seed 1")
    plot_curves(path, rows, "wgan-gp-grid sweep, WGAN-GP grid25, seed 1: 2,500 samples per evaluation")


def swgan_samples(latent):
    def draw(res, path):
        from .gan import plot_sample_panels
        final = {r["variant"]: r for r in read(res, "swgan-grid-per-run.csv", seed=0)}
        panels = []
        for method, label in (("swgan", "SWGAN"), ("wgan-gp", "WGAN-GP")):
            r = final[f"latent-dim={latent},variant={method}"]
            panels.append((f"{label}, d={latent}: {r['iterations']} it, {r['train_seconds']:.0f} s\n"
                           f"{r['modes']}/25 modes, hq {r['high_quality']:.2f}, W1 {r['w1']:.3f}",
                           _xy(read(res, "swgan-grid-seed0-samples.csv", latent_dim=latent, method=method))))
        plot_sample_panels(path, panels, "grid25", f"swgan-grid sweep, latent dim {latent}, seed 0 (of 0-4): "
                           "final 2,500 samples", cols=2, dpi=100)
    return draw


def w1fe_curves(axis):
    def draw(res, path):
        from .w1fe_ring import SLICED_THRESHOLDS, W1_THRESHOLDS
        pyplot = plt()
        colors = {1: "tab:blue", 3: "tab:orange", 5: "tab:green", 10: "tab:red"}
        rows = read(res, "w1fe-ring-bands.csv", axis=axis)
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        pens = list(dict.fromkeys(v.split("-")[0] for v in variants))
        fig, axes = pyplot.subplots(2, len(pens), figsize=(5 * len(pens), 7.3), squeeze=False)
        for col, p in enumerate(pens):
            for v in (v for v in variants if v.startswith(p + "-")):
                K = int(v.split("-K")[1])
                for row, metric in ((0, "w1"), (1, "sliced_w1")):
                    rs = [r for r in rows if r["variant"] == v and r["metric"] == metric]
                    x = [r["x"] for r in rs]
                    ax = axes[row, col]
                    ax.plot(x, [r["mean"] for r in rs], color=colors.get(K), marker="o" if metric == "w1" else None,
                            ms=3, label=f"K={K} (n={max(r['n'] for r in rs)})")
                    ax.fill_between(x, [r["ci_low"] for r in rs], [r["ci_high"] for r in rs], color=colors.get(K),
                                    alpha=0.2)
            for row, name, thrs in ((0, "exact W1 (every 100 epochs)", W1_THRESHOLDS),
                                    (1, "sliced W1 (every 25 epochs)", SLICED_THRESHOLDS)):
                ax = axes[row, col]
                for thr in thrs:
                    ax.axhline(thr, color="grey", ls=":", lw=0.8)
                ax.set_yscale("log")
                ax.set_title(f"W1-FE-{p.upper()}: {name}", fontsize=9)
                ax.set_xlabel("epoch (outer iteration)" if axis == "iteration"
                              else "training CPU seconds (1 thread; runs interpolated)")
                ax.legend(fontsize=7)
        fig.suptitle(f"w1fe-ring sweep, ring8, 2,500 samples: {BAND}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        pyplot.close(fig)
    return draw


def w1fe_transport(res, path):
    from .w1fe_ring import plot_transport
    rows = read(res, "w1fe-ring-seed0-transport.csv")
    shown = []
    for v in dict.fromkeys(r["variant"] for r in rows):
        rv = [r for r in rows if r["variant"] == v]
        its = sorted({r["epoch"] for r in rv if r["epoch"] > 0})

        def pts(epoch, kind):
            return _xy(sorted((r for r in rv if r["epoch"] == epoch and r["kind"] == kind), key=lambda r: r["index"]))
        shown.append((int(v.split("-K")[1]), {"its": its, "G0": pts(0, "G"), "G": [pts(e, "G") for e in its],
                                              "zeta": [pts(e, "zeta") for e in its]}))
    plot_transport(path, shown, suptitle="w1fe-ring sweep, W1-FE-LP, seed 0 (of 0-4): 256 fixed z")


def _images(res, panel):
    rows = read(res, "wwgan-digits-seed0-images.csv", panel=panel)
    px = np.array([[r[f"p{j}"] for j in range(64)] for r in sorted(rows, key=lambda r: r["index"])], dtype=float)
    return px.reshape(len(px), 1, 8, 8)


WWGAN_METHODS = ("wgan-gp", "wwgan")


def wwgan_samples(res, path):
    from .wwgan_digits import plot_image_panels
    plot_image_panels(path, [("test images", _images(res, "test"))] + [(k, _images(res, k)) for k in WWGAN_METHODS],
                      "wwgan-digits sweep, seed 0 (of 0-4): 64 images each")


def wwgan_translation(res, path):
    from .wwgan_digits import plot_translation
    image0, bands = {}, {}
    for k in WWGAN_METHODS:
        rows = read(res, "wwgan-digits-seed0-image0.csv", method=k)
        image0[k] = np.array([r["critic"] - r["threshold"] for r in rows])
        b = read(res, "wwgan-digits-translation-bands.csv", method=k)
        bands[k] = tuple(np.array([r[c] for r in b], dtype=float) for c in ("mean", "ci_low", "ci_high"))
    n = max(r["n"] for r in read(res, "wwgan-digits-translation-bands.csv"))
    plot_translation(path, _images(res, "test")[0], image0, bands,
                     f"min-max normalised curves: mean over the 360\ntest images, then {BAND.split(' over')[0]} "
                     f"over n={n} seeds",
                     "wwgan-digits sweep: panels 1-2 seed 0; panel 3 seeds 0-4")


def wwgan_noise(res, path):
    from .wwgan_digits import plot_noise_hist, separation
    hists = {}
    for k in WWGAN_METHODS:
        clean = np.array([r["critic"] for r in read(res, "wwgan-digits-seed0-critic.csv", method=k, images="clean")])
        noisy = np.array([r["critic"] for r in read(res, "wwgan-digits-seed0-critic.csv", method=k,
                                                    images="salt_and_pepper")])
        hists[k] = (clean, noisy, separation(clean, noisy)["separation"])
    plot_noise_hist(path, hists, "wwgan-digits sweep, seed 0 (of 0-4): critic on the 360 test images")


def prox_two_delta(res, path):
    from .prox_two_delta import plot_paths
    rows = read(res, "prox-two-delta-paths.csv")
    paths = {}
    for al in dict.fromkeys(r["alpha"] for r in rows):
        paths[al] = tuple(np.array([[r["a"], r["b"]] for r in rows if r["alpha"] == al and r["metric"] == m])
                          for m in ("wasserstein", "euclidean"))
    r0 = rows[0]
    pw = next(iter(paths.values()))[0]
    plot_paths(path, paths, pw[0], np.array([r0["a_star"], r0["b_star"]]), r0["h"], len(pw) - 1, n_grid=300)


#: (variant key, label) pairs of the envelope figures: the experiments' labels at the sweeps' defaults
ENVELOPES = {
    "rwp-grid": [("WGAN-GP", [("wgan-gp", "WGAN-GP"), ("wgan-gp-rwp", "WGAN-GP + RWP (h=0.1, l=10)")])],
    "rwp-gen-iters": [("WGAN-GP, 10 gen steps", [("wgan-gp-10g", "WGAN-GP, 10 gen steps"),
                                                 ("wgan-gp-10g-rwp", "WGAN-GP + RWP (h=0.1, l=10)")])],
    "sbe-grid": [("WGAN-GP", [("wgan-gp", "WGAN-GP"), ("sbe", "SBE on WGAN-GP (h=0.2)")])],
}
ITERS = {"rwp-grid": 1000, "rwp-gen-iters": 400, "sbe-grid": 500}


def envelope(name):
    def draw(res, path):
        from .rwp_experiments import plot_envelopes
        rows = read(res, f"{name}-mean-curves.csv")
        groups = [(g, [k for k, _ in kl]) for g, kl in ENVELOPES[name]]
        labels = {k: f"{lab} (n={max(r['w1_n'] for r in rows if r['variant'] == k)})"
                  for _, kl in ENVELOPES[name] for k, lab in kl}
        agg = {k: [r for r in rows if r["variant"] == k] for k in labels}
        plot_envelopes(path, agg, groups, labels,
                       f"{name} sweep, ring8, {ITERS[name]} outer iterations, 1,000 samples per point: {BAND}")
    return draw


#: figure stem -> (drawing function(results folder, path or file object), CSV inputs in the results folder)
FIGURES = {
    "grid-tour-seed0-samples": (grid_tour_samples, ("grid-tour-seed0-samples.csv", "grid-tour-per-seed.csv")),
    "grid-tour-w1": (grid_tour_w1, ("grid-tour-bands.csv", "grid-tour-summary.csv")),
    "wgan-gp-grid-seed0-samples": (wgan_gp_samples("grid25"), ("wgan-gp-grid-seed0-samples.csv",
                                                               "wgan-gp-grid-curves.csv")),
    "wgan-gp-grid-seed1-curves": (wgan_gp_grid_seed1_curves, ("wgan-gp-grid-curves.csv",)),
    "wgan-gp-ring-seed0-samples": (wgan_gp_samples("ring8"), ("wgan-gp-ring-seed0-samples.csv",
                                                              "wgan-gp-ring-curves.csv")),
    "swgan-grid-d4": (swgan_samples(4), ("swgan-grid-seed0-samples.csv", "swgan-grid-per-run.csv")),
    "swgan-grid-d2": (swgan_samples(2), ("swgan-grid-seed0-samples.csv", "swgan-grid-per-run.csv")),
    "w1fe-w1_vs_epoch": (w1fe_curves("iteration"), ("w1fe-ring-bands.csv",)),
    "w1fe-w1_vs_time": (w1fe_curves("train_cpu_seconds"), ("w1fe-ring-bands.csv",)),
    "w1fe-transport": (w1fe_transport, ("w1fe-ring-seed0-transport.csv",)),
    "wwgan-critic_translation": (wwgan_translation, ("wwgan-digits-seed0-image0.csv",
                                                     "wwgan-digits-translation-bands.csv",
                                                     "wwgan-digits-seed0-images.csv")),
    "wwgan-noise_hist": (wwgan_noise, ("wwgan-digits-seed0-critic.csv",)),
    "wwgan-samples": (wwgan_samples, ("wwgan-digits-seed0-images.csv",)),
    "prox-two-delta": (prox_two_delta, ("prox-two-delta-paths.csv",)),
    "rwp-grid-wgangp": (envelope("rwp-grid"), ("rwp-grid-mean-curves.csv",)),
    "rwp-gen-iters": (envelope("rwp-gen-iters"), ("rwp-gen-iters-mean-curves.csv",)),
    "sbe-grid": (envelope("sbe-grid"), ("sbe-grid-mean-curves.csv",)),
}


def draw(name, results=RESULTS, out=OUT) -> pathlib.Path:
    """Draw figure ``name`` from the CSVs in ``results`` into ``out/name.png`` (atomically)."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    fn, inputs = FIGURES[name]
    missing = [f for f in inputs if not (pathlib.Path(results) / f).is_file()]
    if missing:
        raise FileNotFoundError(f"figure {name} needs {', '.join(missing)} in {results}")
    buf = io.BytesIO()
    fn(results, buf)
    path = pathlib.Path(out) / f"{name}.png"
    atomic_write(path, buf.getvalue())
    return path


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m toy.figures", description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=pathlib.Path, default=RESULTS, help=f"CSV folder (default {RESULTS})")
    ap.add_argument("--out", type=pathlib.Path, default=OUT, help=f"figure folder (default {OUT})")
    ap.add_argument("names", nargs="*", metavar="NAME", help="figures to draw (default all): " + ", ".join(FIGURES))
    args, status = parse_names(ap, argv, FIGURES, "figure(s)")
    if args is None:
        return status
    if not args.results.is_dir():
        print(f"python -m toy.figures: --results {args.results} is not a folder", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"python -m toy.figures: --out {args.out} is not a folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for n in args.names or FIGURES:
            print(draw(n, args.results, args.out))
    except (OSError, ValueError, KeyError) as e:
        print(f"python -m toy.figures: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
