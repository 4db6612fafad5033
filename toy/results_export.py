"""Export what the docs' figures draw from the sweeps' outputs into small text CSVs.

    python -m toy.results_export [--sweeps DIR] [--results DIR] [NAME ...]

Reads the sweep folders of ``python -m toy sweep`` (default ``sweeps/``, where the commands of ``docs/sweeps.md`` write: ``sweep.json``,
one folder per run, ``experiment/<setting>/``) and writes, into ``--results`` (default
``docs/results``), the files of :data:`EXPORTS` (no checkpoints, no ``.npy``): per-run curves in
long format, the aggregated bands (mean and 95% Student t-interval over the seeds, as
:mod:`toy.aggregate`), for scatter and image figures the points or pixels drawn (one named
seed), and the final-metric tables (per run or seed, and the sweep's ``summary.csv``). Numbers are
rounded: curves to 5 significant digits, sample points and pixels to 4; the final-metric tables keep
``metrics.json``'s and ``summary.csv``'s values as they are.
:mod:`toy.figures` redraws the docs' figures from these files alone. Only the files named in
:data:`EXPORTS` are written (atomically); the sweeps are only read.
"""
from __future__ import annotations

import csv
import json
import math
import pathlib
import sys

import numpy as np

from refimpl.outputs import write_csv
from refimpl.evaluation import EVAL
from refimpl.harness import ArgumentParser

from .aggregate import curve_bands, read_curve, t_interval
from .common import parse_names

SWEEPS = pathlib.Path("sweeps")          # the docs' commands write sweeps/NAME
RESULTS = pathlib.Path("docs/results")
SIG_CURVE = 5
SIG_POINT = 4
BAND_COLUMNS = ("n", "mean", "std", "ci_low", "ci_high")


def fmt(v, sig=SIG_CURVE):
    """``v`` as CSV text: blank for None/NaN/'' , integers as they are, floats to ``sig`` significant digits."""
    if v is None or v == "":
        return ""
    if isinstance(v, str):
        try:
            v = float(v) if any(c in v for c in ".eEn") else int(v)
        except ValueError:
            return v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if not math.isfinite(v):
        return ""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.{sig}g}"


def _rows(rows, sig=SIG_CURVE, keep=None):
    return [{k: fmt(v, sig) if keep is None or k not in keep else v for k, v in r.items()} for r in rows]


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _runs(sweep):
    """``[(run_id, variant, seed, setting, folder)]`` of the finished runs of a sweep, in manifest order."""
    man = json.loads((sweep / "sweep.json").read_text())
    out = []
    for rid in man["order"]:
        r = man["runs"][rid]
        if r["status"] == "done" and (sweep / rid / "metrics.json").exists():
            out.append((rid, r.get("variant") or "", r["seed"], r.get("setting") or {}, sweep / rid))
    return out


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def _curve_long(sweep, columns, key=lambda rid, v, s, st: {}):
    """Every finished run's ``curve.csv`` as long rows ``{run, variant, seed, **key, **columns}``."""
    rows = []
    for rid, variant, seed, setting, folder in _runs(sweep):
        for r in _csv_rows(folder / "curve.csv"):
            rows.append({"run": rid, "variant": variant, "seed": seed, **key(rid, variant, seed, setting),
                         **{c: r.get(c, "") for c in columns}})
    return rows


def _bands_rows(curves_by_group, metrics, axes):
    """Rows ``{group..., metric, axis, x, n, mean, std, ci_low, ci_high}`` from
    :func:`toy.aggregate.curve_bands` (points where no run has a value are left out)."""
    rows = []
    for group, curves in curves_by_group.items():
        for m in metrics:
            for a in axes:
                for r in curve_bands(curves, m, a):
                    if r["n"]:
                        rows.append({**dict(group), "metric": m, "axis": a, **r})
    return rows


def _write(results, name, rows, columns=None):
    path = results / name
    write_csv(path, rows, columns=columns)
    print(f"wrote {path} ({len(rows)} rows, {path.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)


def _points(rows_key, samples):
    return [{**rows_key, "x": fmt(x, SIG_POINT), "y": fmt(y, SIG_POINT)} for x, y in np.asarray(samples, float)]


# ----------------------------------------------------------------------------- per sweep
FINAL_KEYS = ("modes", "high_quality", "w1", "w2", "sliced_w1", "iterations", "train_seconds", "train_cpu_seconds")


def export_finals(sweeps, results, name, *, finished_only=False):
    """``NAME-per-run.csv`` (each finished run's final metrics, by run id) and
    ``NAME-summary.csv`` (the sweep's own ``summary.csv``: n, mean, std, 95% t-interval).
    ``finished_only``: runs without ``metrics.json`` (a sweep still running) are left out, and
    ``NAME-summary.csv`` is written only once the sweep has aggregated."""
    sweep = sweeps / name
    man = json.loads((sweep / "sweep.json").read_text())
    rows = []
    for rid, r in sorted(man["runs"].items()):
        if finished_only and not (sweep / rid / "metrics.json").exists():
            continue
        m = _metrics(sweep / rid)
        rows.append({"run": rid, "variant": r.get("variant") or "", "seed": r["seed"],
                     "setting": json.dumps(r.get("setting") or {}), **{k: m.get(k, "") for k in FINAL_KEYS}})
    _write(results, f"{name}-per-run.csv", rows, columns=["run", "variant", "seed", "setting", *FINAL_KEYS])
    if not finished_only or (sweep / "summary.csv").exists():
        _write(results, f"{name}-summary.csv", _csv_rows(sweep / "summary.csv"))


# The final-metric tables below keep the values of metrics.json as they are (Python's float repr,
# blank for None), as export_finals does: they are the numbers the docs' tables quote.
TOUR_KEYS = ("modes", "high_quality", "w1", "w2", "sliced_w1", "train_cpu_seconds", "iterations")


def export_tour_finals(sweeps, results):
    """``grid-tour-per-seed.csv``: per finished run (manifest order) and method (sorted), then the
    chance baseline (no training: time and iterations blank), the final values of :data:`TOUR_KEYS`;
    ``grid-tour-summary.csv``: the sweep's ``summary.csv`` rows of the methods' and the baseline's
    :data:`FINAL_KEYS` (the run constants ``n``, ``n_eval``, ``threads``, ... left out)."""
    sw = sweeps / "tour"
    rows = []
    for rid, _, seed, _, folder in _runs(sw):
        m = _metrics(folder)
        for method, r in [*sorted(m["methods"].items()), ("baseline", m["baseline"])]:
            rows.append({"seed": seed, "method": method, **{k: r.get(k, "") for k in TOUR_KEYS}})
    _write(results, "grid-tour-per-seed.csv", rows, columns=["seed", "method", *TOUR_KEYS])
    _write(results, "grid-tour-summary.csv", [r for r in _csv_rows(sw / "summary.csv")
                                              if r["metric"].split("/")[-1] in FINAL_KEYS])


# column: path in metrics.json["methods"][method] of toy.wwgan_digits
WWGAN_FINALS = {"tv_minmax": ("translation", "tv_minmax"), "tv_minmax_fill0": ("translation_fill0", "tv_minmax"),
                "zero_crossings": ("translation", "zero_crossings"), "noise_separation": ("noise", "separation"),
                "w1_to_test": ("w1",), "classifier_fd": ("fd",)}


def _at(d, path):
    for k in path:
        d = d[k]
    return d


def wwgan_per_seed(sw):
    """Rows ``{seed, method, **WWGAN_FINALS}`` per finished run (manifest order) and method (sorted)."""
    return [{"seed": seed, "method": k, **{c: _at(r, p) for c, p in WWGAN_FINALS.items()}}
            for _, _, seed, _, folder in _runs(sw) for k, r in sorted(_metrics(folder)["methods"].items())]


def w1fe_per_run(sw):
    """Rows ``{variant, seed, final_w1, best_w1, modes, high_quality, train_cpu_seconds,
    cpu_s_to_w1<=t}`` per finished run, sorted by (variant, seed); ``t`` runs over
    :data:`toy.w1fe_ring.W1_THRESHOLDS`, blank where the run never reached the level."""
    from .w1fe_ring import W1_THRESHOLDS

    rows = []
    for _, variant, seed, _, folder in _runs(sw):
        m = _metrics(folder)
        rows.append({"variant": variant.split("variant=")[-1], "seed": seed, "final_w1": m["w1"],
                     **{k: m[k] for k in ("best_w1", "modes", "high_quality", "train_cpu_seconds")},
                     **{f"cpu_s_to_w1<={t}": m["reach"][f"w1<={t}"]["cpu_s"] for t in W1_THRESHOLDS}})
    return sorted(rows, key=lambda r: (r["variant"], r["seed"]))


def export_tour(sweeps, results):
    sw = sweeps / "tour"
    cols = ("iteration", "train_seconds", "train_cpu_seconds", "modes", "high_quality", "w1", "w2", "sliced_w1")
    rows, by_method, pts = [], {}, []
    for rid, _, seed, _, folder in _runs(sw):
        for method in ("wgan-gp", "wgan-gp-rwp", "sbe", "swgan", "w1fe-lp"):
            rs = _csv_rows(folder / method / "curve.csv")
            rows += [{"run": rid, "seed": seed, "method": method, **{c: r.get(c, "") for c in cols}} for r in rs]
            by_method.setdefault((("method", method),), []).append(read_curve(folder / method / "curve.csv"))
            if seed == 0:
                pts += _points({"panel": method}, np.load(folder / method / "samples.npy"))
        if seed == 0:
            pts += _points({"panel": "baseline"}, np.load(folder / "baseline" / "samples.npy"))
    _write(results, "grid-tour-curves.csv", _rows(rows))
    _write(results, "grid-tour-bands.csv", _rows(_bands_rows(by_method, ("w1",), ("train_cpu_seconds",))))
    _write(results, "grid-tour-seed0-samples.csv", pts)


def _experiment_curves(sweeps, results, name):
    """rwp-grid / rwp-gen-iters / sbe-grid: every run's curve and the mean curves with 95% t-intervals
    (``experiment/default/curve_runs.csv`` and ``curve.csv`` of :func:`toy.rwp_experiments.summarise`)."""
    exp = sweeps / name / "experiment" / "default"
    rows = [{"run": f"variant={r['variant']},seed={r['seed']}", **r} for r in _csv_rows(exp / "curve_runs.csv")]
    ids = {rid for rid, *_ in _runs(sweeps / name)}
    if {r["run"] for r in rows} != ids:
        raise ValueError(f"{exp / 'curve_runs.csv'} does not hold exactly the sweep's finished runs")
    _write(results, f"{name}-curves.csv", _rows(rows))
    _write(results, f"{name}-mean-curves.csv", _rows(_csv_rows(exp / "curve.csv")))


def export_swgan(sweeps, results):
    sw = sweeps / "swgan-grid"
    cols = ("iteration", "train_seconds", "modes", "high_quality", "w1", "w2", "sliced_w1")
    _write(results, "swgan-grid-curves.csv", _rows(_curve_long(
        sw, cols, key=lambda rid, v, s, st: {"latent_dim": st.get("latent-dim", "")})))
    bands = _csv_rows(sw / "curves.csv")
    _write(results, "swgan-grid-bands.csv", _rows(bands))
    pts = []
    for rid, variant, seed, setting, folder in _runs(sw):
        if seed == 0:
            method = variant.split("variant=")[-1]
            pts += _points({"latent_dim": setting["latent-dim"], "method": method}, np.load(folder / "samples.npy"))
    _write(results, "swgan-grid-seed0-samples.csv", pts)


def export_w1fe(sweeps, results):
    sw = sweeps / "w1fe-ring"
    cols = ("iteration", "train_seconds", "train_cpu_seconds", "w1", "sliced_w1", "modes", "high_quality")
    rows = _curve_long(sw, cols)
    for r in rows:
        r["variant"] = r["variant"].split("variant=")[-1]
    _write(results, "w1fe-ring-curves.csv", _rows(rows))
    by = {}
    for rid, variant, seed, _, folder in _runs(sw):
        by.setdefault((("variant", variant.split("variant=")[-1]),), []).append(read_curve(folder / "curve.csv"))
    _write(results, "w1fe-ring-bands.csv",
           _rows(_bands_rows(by, ("w1", "sliced_w1"), ("iteration", "train_cpu_seconds"))))
    snap = []
    for rid, variant, seed, _, folder in _runs(sw):
        v = variant.split("variant=")[-1]
        if seed != 0 or v not in ("lp-K1", "lp-K3"):
            continue
        s = np.load(folder / "snapshots.npz")
        for i in range(len(s["z"])):
            snap.append({"variant": v, "epoch": 0, "kind": "G", "index": i,
                         "x": fmt(s["G0"][i, 0], SIG_POINT), "y": fmt(s["G0"][i, 1], SIG_POINT)})
        for j, it in enumerate(s["its"]):
            for kind in ("G", "zeta"):
                for i in range(len(s["z"])):
                    snap.append({"variant": v, "epoch": int(it), "kind": kind, "index": i,
                                 "x": fmt(s[kind][j, i, 0], SIG_POINT), "y": fmt(s[kind][j, i, 1], SIG_POINT)})
    _write(results, "w1fe-ring-seed0-transport.csv", snap)
    _write(results, "w1fe-ring-per-run.csv", w1fe_per_run(sw))


def export_protocol(sweeps, results, name):
    """The final metrics of a protocol sweep ``sweeps/NAME`` (issue 24: ``wgan-gp-grid-gdpp``,
    ``wgan-gp-ring-gdpp``, their ``-nc1`` variants, ``swgan-grid-lim-ye``, ``w1fe-ring-gp``), finished
    runs only, so that a sweep still running exports what it has: ``NAME-per-run.csv`` and, once
    aggregated, ``NAME-summary.csv``; the ``wgan-gp`` ones also their curves and seed 0's samples."""
    if name.startswith("wgan-gp-"):
        dataset, suffix = name[len("wgan-gp-"):].split("-", 1)
        export_wgan_gp(sweeps, results, dataset, "-" + suffix)
    if name.startswith("w1fe-ring"):
        _write(results, f"{name}-per-run.csv", w1fe_per_run(sweeps / name))
        if (sweeps / name / "summary.csv").exists():
            _write(results, f"{name}-summary.csv", _csv_rows(sweeps / name / "summary.csv"))
        return
    export_finals(sweeps, results, name, finished_only=True)


PROTOCOL_SWEEPS = ("wgan-gp-grid-gdpp", "wgan-gp-ring-gdpp", "wgan-gp-grid-gdpp-nc1", "wgan-gp-ring-gdpp-nc1",
                   "swgan-grid-lim-ye", "w1fe-ring-gp")


def _wwgan_seed(folder, seed):
    """Critic values (clean and salt-and-pepper test images), test image 0's translation curve and
    64 generated images per method of one finished ``wwgan-digits`` run, recomputed from its
    checkpoint exactly as :func:`toy.wwgan_digits.run` evaluated them (same seeds)."""
    from refimpl.checkpoint import load
    from refimpl.images import load_images
    from refimpl.train import GANConfig, GANMethod
    from refimpl.wwgan import WWGANMethod

    from .wwgan_digits import ALPHA, NOISE_P, critic_values, salt_and_pepper, shift_down

    m = _metrics(folder)
    if m["dataset"] != "digits":
        raise ValueError(f"{folder}: only the digits runs are exported, got {m['dataset']!r}")
    c = m["config"]["wgan-gp"]
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in c.items()}
    cfg = GANConfig(**fields)
    shape = tuple(m["image_shape"])
    methods = {"wgan-gp": GANMethod(cfg), "wwgan": WWGANMethod(cfg, shape, neighbours=4, variant="paper", alpha=ALPHA)}
    state = load(folder / "checkpoint.npz", np)["state"]
    test_x, _ = load_images("digits", None, "test")
    test_x = test_x.astype(np.float32)
    noisy = salt_and_pepper(test_x, NOISE_P, np.random.default_rng([seed, 31337])).astype(np.float32)
    C, H, W = shape
    critic, image0, images = [], [], []
    for k, meth in methods.items():
        cp = state[k]["critic"]
        f_real = critic_values(meth, cp, test_x)
        f_noisy = critic_values(meth, cp, noisy)
        got = abs(f_real.mean() - m["methods"][k]["critic_mean_real"])
        if got > 1e-4 * max(1.0, abs(f_real.mean())):
            raise ValueError(f"{folder}: recomputed critic mean {f_real.mean()} differs from metrics.json "
                             f"{m['methods'][k]['critic_mean_real']}")
        critic += [{"method": k, "images": "clean", "index": i, "critic": fmt(v)} for i, v in enumerate(f_real)]
        critic += [{"method": k, "images": "salt_and_pepper", "index": i, "critic": fmt(v)} for i, v in enumerate(f_noisy)]
        thr = m["methods"][k]["critic_threshold"]
        for s in range(H + 1):
            v = critic_values(meth, cp, shift_down(test_x[:1], s, -1.0))[0]
            image0.append({"method": k, "shift": s, "critic": fmt(v), "threshold": fmt(thr)})
        z = meth.latent(EVAL.latent_rng(seed, 1_000_002), 64, state[k]["gen"][0][0])
        images.append((k, np.asarray(meth.generate(state[k], z)).reshape(64, C * H * W)))
    images.insert(0, ("test", test_x[:64].reshape(64, C * H * W)))
    pix = [{"panel": p, "index": i, **{f"p{j}": fmt(v, SIG_POINT) for j, v in enumerate(img)}}
           for p, imgs in images for i, img in enumerate(imgs)]
    return critic, image0, pix


def export_wwgan(sweeps, results):
    sw = sweeps / "wwgan-digits"
    rows, by = [], {}
    for rid, _, seed, _, folder in _runs(sw):
        for r in _csv_rows(folder / "translation.csv"):
            rows.append({"run": rid, "seed": seed, **r})
            by.setdefault(r["method"], {}).setdefault(int(r["shift"]), []).append(float(r["minmax_mean"]))
    _write(results, "wwgan-digits-translation.csv", _rows(rows))
    _write(results, "wwgan-digits-translation-bands.csv",
           _rows([{"method": k, "shift": s, **t_interval(v)} for k, d in by.items() for s, v in sorted(d.items())]))
    _write(results, "wwgan-digits-per-seed.csv", wwgan_per_seed(sw))
    critic, image0, pix = _wwgan_seed(sw / "seed=0", 0)
    _write(results, "wwgan-digits-seed0-critic.csv", critic)
    _write(results, "wwgan-digits-seed0-image0.csv", image0)
    _write(results, "wwgan-digits-seed0-images.csv", pix)


def export_wgan_gp(sweeps, results, dataset, suffix=""):
    """Curves, bands and seed 0's samples of the sweep ``wgan-gp-DATASET[SUFFIX]`` (suffix: a
    protocol's sweep, e.g. ``-gdpp``), into ``wgan-gp-DATASET[SUFFIX]-*.csv``."""
    dataset = f"{dataset}{suffix}"
    sw = sweeps / f"wgan-gp-{dataset}"
    cols = ("iteration", "seconds", "modes", "high_quality", "w1", "w2", "sliced_w1")
    rows = _curve_long(sw, cols)
    _write(results, f"wgan-gp-{dataset}-curves.csv", _rows([{k: v for k, v in r.items() if k != "variant"}
                                                             for r in rows]))
    if (sw / "curves.csv").exists():           # written when the sweep has finished
        _write(results, f"wgan-gp-{dataset}-bands.csv", _rows(_csv_rows(sw / "curves.csv")))
    seed0 = [f for rid, _, s, _, f in _runs(sw) if s == 0]
    if seed0:
        _write(results, f"wgan-gp-{dataset}-seed0-samples.csv", _points({}, np.load(seed0[0] / "samples.npy")))


def export_prox(results, out):
    """The two-delta paths of ``python -m toy prox-two-delta`` (deterministic, seconds): run it into
    ``out`` (a new folder) and export its ``metrics.json`` table plus the iterates."""
    from .common import RunOptions
    from .prox_two_delta import prox_path, run

    m = run(RunOptions(out=pathlib.Path(out)))
    rows = []
    for al in m["alphas"]:
        for metric in ("wasserstein", "euclidean"):
            p, F = prox_path(np, np.asarray(m["theta0"]), np.asarray(m["theta_star"]), al, m["h"], metric, m["steps"])
            rows += [{"alpha": al, "metric": metric, "k": k, "a": fmt(a), "b": fmt(b), "F": fmt(f), "h": m["h"],
                      "a_star": m["theta_star"][0], "b_star": m["theta_star"][1]}
                     for k, ((a, b), f) in enumerate(zip(p, F))]
    _write(results, "prox-two-delta-paths.csv", rows)


def export_dcgan(sweeps, results):
    """``dcgan-digits-per-run.csv``: each finished run's final metrics (the W1 and FD of its saved
    ``samples.npy``) from ``SWEEPS/dcgan-digits/ARCH-seedS/`` (``python -m toy dcgan-digits --out``)."""
    rows = []
    for f in sorted((sweeps / "dcgan-digits").glob("*-seed*/metrics.json")):
        m = json.loads(f.read_text())
        rows.append({k: m[k] for k in ("arch", "seed", "iterations", "train_cpu_seconds", "w1", "fd")})
    if not rows:
        raise ValueError(f"no finished dcgan-digits run in {sweeps / 'dcgan-digits'}")
    rows.sort(key=lambda r: ({"mlp": 0, "dcgan": 1}.get(r["arch"], 2), r["seed"]))
    _write(results, "dcgan-digits-per-run.csv", rows, columns=["arch", "seed", "iterations", "train_cpu_seconds",
                                                              "w1", "fd"])

EXPORTS = {
    "tour": lambda s, r, a: (export_tour(s, r), export_tour_finals(s, r)),
    "rwp-grid": lambda s, r, a: (_experiment_curves(s, r, "rwp-grid"), export_finals(s, r, "rwp-grid")),
    "rwp-gen-iters": lambda s, r, a: (_experiment_curves(s, r, "rwp-gen-iters"), export_finals(s, r, "rwp-gen-iters")),
    "sbe-grid": lambda s, r, a: (_experiment_curves(s, r, "sbe-grid"), export_finals(s, r, "sbe-grid")),
    "swgan-grid": lambda s, r, a: (export_swgan(s, r), export_finals(s, r, "swgan-grid")),
    "w1fe-ring": lambda s, r, a: export_w1fe(s, r),
    "wwgan-digits": lambda s, r, a: export_wwgan(s, r),
    "dcgan-digits": lambda s, r, a: export_dcgan(s, r),
    "wgan-gp-grid": lambda s, r, a: (export_wgan_gp(s, r, "grid"), export_finals(s, r, "wgan-gp-grid")),
    "wgan-gp-ring": lambda s, r, a: (export_wgan_gp(s, r, "ring"), export_finals(s, r, "wgan-gp-ring")),
    "prox-two-delta": lambda s, r, a: export_prox(r, a.prox_out),
    **{n: (lambda s, r, a, n=n: export_protocol(s, r, n)) for n in PROTOCOL_SWEEPS},
}


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m toy.results_export", description=__doc__.split("\n")[0])
    ap.add_argument("--sweeps", type=pathlib.Path, default=SWEEPS, help=f"sweep folders (default {SWEEPS})")
    ap.add_argument("--results", type=pathlib.Path, default=RESULTS, help=f"output folder, created if missing (default {RESULTS}: the committed CSVs of the named exports "
                         "are rewritten; git shows what changed)")
    ap.add_argument("--prox-out", type=pathlib.Path, default=None,
                    help="new folder for the prox-two-delta run (required for that export)")
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"exports (default all): {', '.join(EXPORTS)}")
    args, status = parse_names(ap, argv, EXPORTS, "export(s)")
    if args is None:
        return status
    names = args.names or list(EXPORTS)
    if "prox-two-delta" in names and (args.prox_out is None or args.prox_out.exists()):
        print("python -m toy.results_export: prox-two-delta needs --prox-out NEW_FOLDER", file=sys.stderr)
        return 2
    if args.results.exists() and not args.results.is_dir():
        print(f"python -m toy.results_export: --results {args.results} is not a folder", file=sys.stderr)
        return 2
    args.results.mkdir(parents=True, exist_ok=True)
    for n in names:
        try:
            EXPORTS[n](args.sweeps, args.results, args)
        except (OSError, ValueError, KeyError) as e:        # a missing or unfinished sweep
            print(f"python -m toy.results_export: {n}: {e} (is {args.sweeps / n} a finished sweep of {n}?)",
                  file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
