"""The grid tour (toy/tour.py), the chance baseline (refimpl.baseline.chance_baseline) and the
CPU-seconds budget of refimpl.train.train."""
import csv
import json
import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from refimpl.datasets import get_dataset, sample
from refimpl.baseline import chance_baseline, mixture_moments
from refimpl.metrics import evaluate
from refimpl.train import GANConfig, GANMethod, ToyData, train
from toy.__main__ import main

METHODS = ("wgan-gp", "wgan-gp-rwp", "sbe", "swgan", "w1fe-lp")
KEYS = ("modes", "high_quality", "w1", "w2", "sliced_w1", "train_seconds", "iterations")


# ----------------------------------------------------------------------------- the tour
@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour") / "t"
    # one BLAS thread: idle OpenBLAS threads spin, and on a loaded machine that inflates process CPU time
    assert main(["grid-tour", "--quick", "--seed", "3", "--out", str(out), "--threads", "1"]) == 0
    return out


def test_quick_tour_writes_every_output(tour):
    for f in ("summary.json", "summary.csv", "samples.png", "w1_vs_time.png", "baseline/metrics.json",
              "baseline/samples.npy"):
        assert (tour / f).stat().st_size > 0, f
    for m in METHODS:
        for f in ("metrics.json", "samples.npy", "samples.png", "curve.csv", "curves.png", "checkpoint.npz"):
            assert (tour / m / f).stat().st_size > 0, f"{m}/{f}"
        assert not (tour / m / "checkpoint.pkl").exists()
    s = json.loads((tour / "summary.json").read_text())
    assert json.loads((tour / "metrics.json").read_text()) == s
    assert set(s["methods"]) == set(METHODS)
    for k in ("modes", "high_quality", "w1", "w2", "sliced_w1"):
        assert s["baseline"][k] is not None
    rows = list(csv.DictReader(open(tour / "summary.csv")))
    assert [r["method"] for r in rows] == [*METHODS, "baseline"]
    assert {"modes", "high_quality", "w1", "w2", "sliced_w1", "train_seconds", "iterations", "folder"} <= set(rows[0])


def test_summary_equals_each_method_metrics(tour):
    s = json.loads((tour / "summary.json").read_text())
    base = json.loads((tour / "baseline" / "metrics.json").read_text())
    for k in ("modes", "high_quality", "w1", "w2", "sliced_w1"):
        assert s["baseline"][k] == base[k]
    rows = {r["method"]: r for r in csv.DictReader(open(tour / "summary.csv"))}
    for name, r in s["methods"].items():
        m = json.loads((tour / r["folder"] / "metrics.json").read_text())
        for k in KEYS:
            assert r[k] == m[k], (name, k)
            assert float(rows[name][k]) == pytest.approx(float(m[k]), rel=1e-12)
        assert m["baseline"]["modes"] == base["modes"]


def test_metrics_are_what_the_saved_samples_give(tour):
    """Recompute every method's final metrics from its samples.npy and the recorded seeds."""
    for name in METHODS:
        m = json.loads((tour / name / "metrics.json").read_text())
        x = np.load(tour / name / "samples.npy")
        assert x.shape == (m["n_eval"], 2)
        again = evaluate(x, "grid25", np.random.default_rng(m["eval_seeds"]["targets"]), n_target=m["n_eval"])
        for k in ("modes", "high_quality", "w1", "w2", "sliced_w1"):
            assert again[k] == m[k], (name, k)
        # the curve's last point is the final evaluation
        last = list(csv.DictReader(open(tour / name / "curve.csv")))[-1]
        assert int(last["iteration"]) == m["iterations"] and float(last["w1"]) == pytest.approx(m["w1"], rel=1e-12)
    b = json.loads((tour / "baseline" / "metrics.json").read_text())
    again, cloud = chance_baseline("grid25", np.random.default_rng(b["eval_seeds"]["targets"]), b["n"], b["n"],
                                   cloud_rng=np.random.default_rng(b["eval_seeds"]["cloud"]))
    np.testing.assert_array_equal(cloud, np.load(tour / "baseline" / "samples.npy"))
    assert all(again[k] == b[k] for k in ("modes", "high_quality", "w1", "w2", "sliced_w1"))


def test_every_method_gets_the_same_cpu_budget(tour):
    s = json.loads((tour / "summary.json").read_text())
    budget = s["budget_cpu_seconds"]
    for name, r in s["methods"].items():
        # the run stops at the first iteration after the budget is spent: one iteration past it at most
        assert budget <= r["train_cpu_seconds"] <= budget + 0.5, name
        assert r["iterations"] >= 1


def test_rerun_reuses_finished_methods_and_overwrites_nothing(tour, capsys):
    before = {m: (tour / m / "samples.npy").read_bytes() for m in METHODS}
    assert main(["grid-tour", "--quick", "--seed", "3", "--out", str(tour), "--resume", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("reusing") == len(METHODS)
    assert all((tour / m / "samples.npy").read_bytes() == before[m] for m in METHODS)


def test_resume_of_a_spent_budget_names_its_checkpoint_and_trains_nothing(tour, tmp_path, capsys):
    """A method interrupted after its budget was spent (metrics.json not yet written) is resumed
    from checkpoint.npz, as the message says, and ends where it stopped: no further iteration."""
    import shutil
    copy = tmp_path / "t"
    shutil.copytree(tour, copy)
    before = json.loads((copy / "sbe" / "metrics.json").read_text())
    (copy / "sbe" / "metrics.json").unlink()
    assert main(["grid-tour", "--quick", "--seed", "3", "--out", str(copy), "--resume", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert f"resumed from {copy / 'sbe' / 'checkpoint.npz'} at iteration {before['iterations']}" in err
    after = json.loads((copy / "sbe" / "metrics.json").read_text())
    assert after["iterations"] == before["iterations"] and after["train_cpu_seconds"] == before["train_cpu_seconds"]
    assert all(after[k] == before[k] for k in ("modes", "high_quality", "w1", "w2", "sliced_w1"))


# ----------------------------------------------------------------------------- chance baseline
def test_mixture_moments_match_a_large_sample():
    for name in ("grid25", "ring8"):
        mean, cov = mixture_moments(name)
        x = sample(get_dataset(name), 400_000, np.random.default_rng(5))
        # standard errors of the sample mean / covariance at this n are below 0.005 * scale
        scale = math.sqrt(cov[0, 0])
        np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.02 * scale)
        np.testing.assert_allclose(np.cov(x.T), cov, atol=0.02 * scale ** 2)
    mean, cov = mixture_moments("grid25")
    np.testing.assert_allclose(cov, (8.0 + 0.05 ** 2) * np.eye(2), rtol=1e-15)     # var of {-4,..,4} is 8


def test_chance_baseline_reproduced_independently_from_a_fixed_seed():
    """Rebuild the cloud as sqrt(8.0025) * N(0, I) and recompute every metric with scipy."""
    n = 400
    m, cloud = chance_baseline("grid25", np.random.default_rng([7, 104729, 0]), n, n,
                               cloud_rng=np.random.default_rng([7, 7919, 0]))
    x = math.sqrt(8.0025) * np.random.default_rng([7, 7919, 0]).standard_normal((n, 2))
    np.testing.assert_allclose(cloud, x, rtol=1e-13, atol=1e-13)
    spec = get_dataset("grid25")
    rng = np.random.default_rng([7, 104729, 0])
    y = sample(spec, n, rng)                                               # evaluate's draw order
    d = cdist(x, spec.centers)
    hq = d.min(axis=1) <= 3 * spec.std
    assert m["high_quality"] == hq.mean()
    assert m["modes"] == len(set(d.argmin(axis=1)[hq]))
    c1 = cdist(x, y)                                                       # exact W1, W2 by assignment
    r, c = linear_sum_assignment(c1)
    assert m["w1"] == pytest.approx(c1[r, c].mean(), rel=1e-9)
    r, c = linear_sum_assignment(c1 ** 2)
    assert m["w2"] == pytest.approx(math.sqrt((c1[r, c] ** 2).mean()), rel=1e-9)
    g = rng.standard_normal((500, 2))
    th = g / np.linalg.norm(g, axis=1, keepdims=True)
    sw = np.mean(np.abs(np.sort(x @ th.T, axis=0) - np.sort(y @ th.T, axis=0)))
    assert m["sliced_w1"] == pytest.approx(sw, rel=1e-9)


def test_chance_baseline_matches_its_expected_quality_and_modes():
    """The grid's Gaussian baseline at the protocol's 2,500 samples, against the closed form
    p_k = P(|x - c_k| <= 3 sigma) ~ N(c_k; 0, 8.0025 I) pi (0.15)^2 (issue 11: ~18 modes, ~1.6%)."""
    n = 2500
    spec = get_dataset("grid25")
    var = 8.0025
    # exact disc probability of a near-constant density; relative error ~ r^2/var < 0.3%
    p = np.exp(-(spec.centers ** 2).sum(axis=1) / (2 * var)) / (2 * math.pi * var) * math.pi * (3 * spec.std) ** 2
    hq_exp, modes_exp = p.sum(), (1 - (1 - p) ** n).sum()
    got = [chance_baseline("grid25", np.random.default_rng([s, 104729, 0]), n, 200,
                           cloud_rng=np.random.default_rng([s, 7919, 0]))[0] for s in range(3)]
    hq = np.mean([g["high_quality"] for g in got])
    sd = math.sqrt(hq_exp * (1 - hq_exp) / (3 * n))
    assert abs(hq - hq_exp) < 4 * sd, (hq, hq_exp)
    modes = np.mean([g["modes"] for g in got])
    sd_m = math.sqrt(((1 - p) ** n * (1 - (1 - p) ** n)).sum() / 3)
    assert abs(modes - modes_exp) < 4 * sd_m + 1e-9, (modes, modes_exp)
    assert 0.01 < hq < 0.03 and 15 <= modes <= 23          # "modes" alone would look like learning


@pytest.mark.parametrize("kw, err", [(dict(dataset_name="swissroll"), ValueError), (dict(n=0), ValueError),
                                     (dict(n=2.0), TypeError), (dict(rng=3), TypeError),
                                     (dict(cloud_rng=None), TypeError)])
def test_chance_baseline_rejects_bad_inputs(kw, err):
    args = {**dict(dataset_name="grid25", rng=np.random.default_rng(0), n=10, n_target=10,
                   cloud_rng=np.random.default_rng(1)), **kw}
    with pytest.raises(err):
        chance_baseline(**args)


# ----------------------------------------------------------------------------- train's CPU budget
def _small():
    return GANMethod(GANConfig(gen_hidden=(8,), critic_hidden=(8,), batch_size=16, n_critic=1))


def test_train_stops_when_the_cpu_budget_is_spent():
    calls = []

    def eval_fn(state, it):
        calls.append(it)
        return {"x": 1.0}
    budget = 0.2
    res = train(_small(), ToyData("ring8", np, "float64"), xp=np, dtype="float64", seed=0, iters=10**7,
                eval_fn=eval_fn, max_train_cpu_seconds=budget, progress=False)
    assert 1 < res.iterations < 10**7
    last = res.curve[-1]
    assert calls == [res.iterations] and last["iteration"] == res.iterations     # final evaluation at the stop
    assert budget <= last["train_cpu_seconds"] < budget + 0.1
    # without a budget the same call runs to iters: the keyword is what stopped it
    res2 = train(_small(), ToyData("ring8", np, "float64"), xp=np, dtype="float64", seed=0, iters=res.iterations + 5,
                 progress=False)
    assert res2.iterations == res.iterations + 5


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "1"])
def test_train_rejects_a_bad_budget(bad):
    with pytest.raises(ValueError, match="max_train_cpu_seconds"):
        train(_small(), ToyData("ring8", np, "float64"), xp=np, iters=2, max_train_cpu_seconds=bad, progress=False)


def test_wgan_gp_grid_metrics_carry_the_baseline_of_their_final_evaluation(tmp_path):
    out = tmp_path / "g"
    assert main(["wgan-gp-grid", "--quick", "--iters", "2", "--batch-size", "16", "--seed", "4", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    from toy.gan import QUICK_N_EVAL                                 # a quick run's evaluation size, its baseline's too
    want, _ = chance_baseline("grid25", np.random.default_rng([4, 104729, 2]), n=QUICK_N_EVAL, n_target=QUICK_N_EVAL,
                              cloud_rng=np.random.default_rng([4, 7919, 2]))
    assert m["baseline"] == json.loads(json.dumps(want)) and m["baseline"]["n"] == QUICK_N_EVAL
    assert m["iterations"] == 2
    full, _ = chance_baseline("grid25", np.random.default_rng([4, 104729, 2]), cloud_rng=np.random.default_rng([4, 7919, 2]))
    assert full["n"] == 2500 and full["modes"] >= 10                 # at the protocol's size the cloud covers most modes by chance


# ----------------------------------------------------------------------------- figures
def _captured_figures(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    figs = []
    monkeypatch.setattr(pyplot, "close", lambda fig=None: figs.append(fig))     # kept open to be measured
    return figs


@pytest.mark.parametrize("dataset, lim", [("grid25", 6.0), ("ring8", 1.5)])
def test_sample_plots_have_the_datasets_fixed_axes_a_fitting_title_and_the_legend_outside(tmp_path, monkeypatch,
                                                                                          dataset, lim):
    from toy.gan import plot_samples
    figs = _captured_figures(monkeypatch)
    title = "WGAN-GP + RWP, 123 iterations\n0/25 modes, hq 0.000, W1 3.138, W2 3.380 (chance 5/25, hq 0.017)"
    for k, spread in enumerate((0.1, 10.0)):                       # two methods, very different samples
        plot_samples(tmp_path / f"s{k}.png", np.random.default_rng(k).normal(0, spread, (300, 2)), dataset, title)
    for fig in figs:
        ax = fig.axes[0]
        assert ax.get_xlim() == (-lim, lim) and ax.get_ylim() == (-lim, lim)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box, title_box = fig.bbox, ax.title.get_window_extent(renderer)
        assert box.x0 <= title_box.x0 and title_box.x1 <= box.x1 and title_box.y1 <= box.y1      # not cut off
        legend = ax.get_legend().get_window_extent(renderer)
        assert legend.y1 <= ax.get_window_extent(renderer).y0                                     # below the data
    assert "outside the axes" in " ".join(t.get_text() for t in figs[1].axes[0].texts)          # spread 10: said
    assert not figs[0].axes[0].texts
    monkeypatch.undo()
    for fig in figs:
        __import__("matplotlib.pyplot").pyplot.close(fig)


def test_w1_plot_names_the_actual_number_of_evaluation_samples(tmp_path, monkeypatch):
    from toy.tour import _plot_w1
    figs = _captured_figures(monkeypatch)
    summary = {"a": {"label": "A", "modes": 3, "high_quality": 0.1}}
    curves = {"a": [{"train_cpu_seconds": 0.1, "w1": 2.0}, {"train_cpu_seconds": 0.2, "w1": 1.5}]}
    base = {"w1": 1.2, "modes": 5, "high_quality": 0.017}
    _plot_w1(tmp_path / "w.png", summary, curves, base, 0, 0.25, 300)
    assert figs[0].axes[0].get_ylabel() == "exact W1 to 300 fresh data samples"
    _plot_w1(tmp_path / "w.png", summary, curves, base, 0, 40.0, 2500)
    assert figs[1].axes[0].get_ylabel() == "exact W1 to 2,500 fresh data samples"


def test_readme_and_toy_list_agree_on_the_tours_duration_and_outputs():
    import pathlib
    import re
    from toy.registry import EXPERIMENTS
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    listed = re.search(r"\(([^()]*min)\)$", EXPERIMENTS["grid-tour"][2]).group(1)
    assert f"grid ({listed} on 2 idle cores)" in readme
    quick = readme[readme.index("## Quick start"):readme.index("## Experiments")]
    for f in ("summary.json", "summary.csv", "`metrics.json` at the top", "samples.png", "w1_vs_time.png",
              "baseline/", "curve.csv", "samples.npy", "curves.png", "checkpoint.npz"):
        assert f in quick, f
