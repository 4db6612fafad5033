"""Cited protocols as presets (toy/protocols.py): ``--protocol gdpp`` and ``--protocol lim-ye``."""
import csv
import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("ot")
pytest.importorskip("matplotlib")

from refimpl import harness as runs
from refimpl.datasets import get_dataset
from refimpl.metrics import mode_stats
from tests.recompute import assert_recomputable
from toy.__main__ import main as toy_main
from toy.cli import variants
from toy.protocols import GDPP_CONFIG, PROTOCOLS, names_for


def test_ci_gdpp_quick_records_the_cited_setting(tmp_path):
    """The CI check: ``python -m toy wgan-gp-grid --protocol gdpp --quick --out D`` runs and its
    metrics.json shows batch 512, latent 256, width 128, tanh, learning rates 1e-4 (D) / 1e-3 (G)."""
    out = tmp_path / "D"
    assert toy_main(["wgan-gp-grid", "--protocol", "gdpp", "--quick", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    c = m["config"]
    assert c["batch_size"] == 512 and c["latent_dim"] == 256
    assert c["gen_hidden"] == [128, 128] and c["critic_hidden"] == [128, 128]
    assert c["gen_activation"] == "tanh" and c["critic_activation"] == "tanh"
    assert c["lr_critic"] == 1e-4 and c["lr_gen"] == 1e-3 and c["betas"] == [0.5, 0.999]
    assert c["weight_init"] == "orthogonal" and c["init_gain"] == 1.4
    assert c["n_critic"] == 5 and c["lam"] == 10.0 and c["objective"] == "wgan-gp"
    assert m["protocol"] == "gdpp" and m["protocol_overrides"] == {} and set(m["protocol_unstated"]) == {"n_critic", "lam"}
    assert m["iterations"] == 20 and m["dataset"] == "grid25"
    assert runs.read_fingerprint(out)["protocol"] == "gdpp"
    assert len(assert_recomputable(out)) == 5
    # the metrics are what the kept samples give (the same 3-sigma rule on the same samples: 300 in a quick run)
    s = np.load(out / "samples.npy")
    spec = get_dataset("grid25")
    ms = mode_stats(s, spec.centers, spec.std)
    assert s.shape == (300, 2) == (m["n_eval"], 2) and (ms["modes"], ms["high_quality"]) == (m["modes"], m["high_quality"])


def test_flags_beside_a_protocol_override_it_and_are_recorded(tmp_path):
    out = tmp_path / "r"
    assert toy_main(["wgan-gp-ring", "--protocol", "gdpp", "--n-critic", "1", "--iters", "3", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["n_critic"] == 1 and m["protocol_overrides"] == {"n_critic": 1}
    assert m["config"]["latent_dim"] == 256 and m["dataset"] == "ring8" and m["iterations"] == 3


def test_a_protocol_run_does_not_resume_another_setting(tmp_path, capsys):
    """The protocol is in the checkpoint's fingerprint: resuming a gdpp run without it is refused."""
    out = tmp_path / "g"
    assert toy_main(["wgan-gp-grid", "--protocol", "gdpp", "--iters", "2", "--out", str(out)]) == 0
    assert toy_main(["wgan-gp-grid", "--iters", "3", "--out", str(out), "--resume"]) == 2
    assert "protocol: 'gdpp' -> (absent)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["wgan-gp-grid", "--protocol", "lim-ye"], ["wgan-gp-ring", "--protocol", "nope"],
                                  ["swgan-grid", "--protocol", "gdpp"], ["rwp-grid", "--protocol", "gdpp"]])
def test_a_protocol_the_experiment_does_not_offer_exits_2_and_writes_nothing(tmp_path, capsys, argv):
    out = tmp_path / "x"
    with pytest.raises(SystemExit) as e:
        toy_main([*argv, "--quick", "--out", str(out)])
    assert e.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "protocol" in err


def test_protocol_declarations():
    assert names_for("wgan-gp-grid") == names_for("wgan-gp-ring") == ["gdpp"]
    assert names_for("swgan-grid") == ["lim-ye"] and names_for("w1fe-ring") == []
    assert PROTOCOLS["gdpp"].iters == 25_000 and GDPP_CONFIG["batch_size"] == 512
    assert PROTOCOLS["lim-ye"].dataset == "grid25-lim-ye" and PROTOCOLS["lim-ye"].extra["wgan_gp_iters"] == 30_000


def test_lim_ye_swgan_grid_quick(tmp_path):
    """``swgan-grid --protocol lim-ye``: Lim & Ye's data, WGAN-GP not matched in time (no peer)."""
    assert [v.after for v, _ in variants("swgan-grid", ["--protocol", "lim-ye"])] == [(), ()]
    out = tmp_path / "s"
    assert toy_main(["swgan-grid", "--protocol", "lim-ye", "--quick", "--out", str(out)]) == 0
    for run in ("swgan-seed0", "wgan-gp-seed0"):
        m = json.loads((out / run / "metrics.json").read_text())
        assert m["dataset"] == "grid25-lim-ye" and m["protocol"] == "lim-ye"
        assert runs.read_fingerprint(out / run)["dataset"] == "grid25-lim-ye"
        s = np.load(out / run / "samples.npy")
        spec = get_dataset("grid25-lim-ye")
        assert mode_stats(s, spec.centers, spec.std)["modes"] == m["modes"]
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "grid25-lim-ye"


def test_protocol_sweep_export_holds_exactly_the_finished_runs_metrics(tmp_path):
    """``python -m toy.results_export --sweeps S wgan-gp-grid-gdpp``: one row per finished run with
    its metrics.json values unchanged; a run still going (no metrics.json) is left out."""

    from toy import results_export
    sweeps, res = tmp_path / "sweeps", tmp_path / "res"
    res.mkdir()
    assert toy_main(["sweep", "wgan-gp-grid", "--seeds", "0-1", "--workers", "0", "--protocol", "gdpp", "--iters", "2",
                     "--out", str(sweeps / "wgan-gp-grid-gdpp")]) == 0
    (sweeps / "wgan-gp-grid-gdpp" / "seed=1" / "metrics.json").unlink()          # as if still running
    assert results_export.main(["--sweeps", str(sweeps), "--results", str(res), "wgan-gp-grid-gdpp"]) == 0
    rows = list(csv.DictReader(open(res / "wgan-gp-grid-gdpp-per-run.csv")))
    assert [r["run"] for r in rows] == ["seed=0"]
    m = json.loads((sweeps / "wgan-gp-grid-gdpp" / "seed=0" / "metrics.json").read_text())
    for k in ("modes", "high_quality", "w1", "w2", "sliced_w1", "iterations"):
        assert rows[0][k] == str(m[k]), k
    assert (res / "wgan-gp-grid-gdpp-seed0-samples.csv").exists()


@pytest.mark.parametrize("name", ["wgan-gp-grid-gdpp", "wgan-gp-ring-gdpp"])
def test_the_docs_gdpp_figures_are_the_committed_runs(name):
    """README and docs/toy.md quote the means of the committed per-run CSV (5 seeds at 25,000 iterations)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    rows = list(csv.DictReader(open(root / "docs" / "results" / f"{name}-per-run.csv")))
    assert sorted(int(r["seed"]) for r in rows) == [0, 1, 2, 3, 4]
    assert {int(r["iterations"]) for r in rows} == {25_000}
    modes = sum(int(r["modes"]) for r in rows) / 5
    hq = 100 * sum(float(r["high_quality"]) for r in rows) / 5
    quoted = f"{modes:.1f}", f"{hq:.2f}%"
    for doc in (root / "README.md", root / "docs" / "toy.md"):
        text = doc.read_text()
        assert all(q in text for q in quoted), (doc.name, quoted)


def _per_run(name):
    root = pathlib.Path(__file__).resolve().parents[1]
    return root, list(csv.DictReader(open(root / "docs" / "results" / f"{name}-per-run.csv")))


def test_the_docs_lim_ye_figures_are_the_committed_runs():
    """README and docs/smoothed-ot.md quote the committed Lim & Ye sweep: 5 seeds per method and latent."""
    root, rows = _per_run("swgan-grid-lim-ye")
    by = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    assert {k: sorted(int(r["seed"]) for r in v) for k, v in by.items()} == {
        f"latent-dim={d},variant={m}": [0, 1, 2, 3, 4] for d in (2, 4) for m in ("swgan", "wgan-gp")}
    iters = {"swgan": 10_000, "wgan-gp": 30_000}
    doc, readme = (root / "docs" / "smoothed-ot.md").read_text(), (root / "README.md").read_text()
    for key, runs in by.items():
        assert {int(r["iterations"]) for r in runs} == {iters[key.split("variant=")[1]]}
        hq = sum(float(r["high_quality"]) for r in runs) / 5
        w1 = sum(float(r["w1"]) for r in runs) / 5
        assert f"{hq:.3f}" in doc and f"{w1:.2f}" in doc, (key, hq, w1)
        assert f"{100 * hq:.1f}%" in readme, (key, hq)


def test_the_docs_w1fe_gp_figures_are_the_committed_runs():
    """docs/w1-forward-euler.md quotes every final W1 of the committed GP K = 3, 5 sweep and its means."""
    root, rows = _per_run("w1fe-ring-gp")
    assert sorted((r["variant"], int(r["seed"])) for r in rows) == [(f"gp-K{k}", s) for k in (3, 5) for s in range(5)]
    doc = (root / "docs" / "w1-forward-euler.md").read_text()
    for k in (3, 5):
        w = [float(r["final_w1"]) for r in rows if r["variant"] == f"gp-K{k}"]
        line = f"| K = {k} | " + " | ".join(f"{x:.3f}" for x in w) + f" | {sum(w) / 5:.3f} ["
        assert line in doc, line


@pytest.mark.parametrize("name,modes,hq,w1", [("wgan-gp-grid-gdpp-nc1", "0.6", "0.14%", "3.94"),
                                              ("wgan-gp-ring-gdpp-nc1", "0.0", "0.00%", "11.68")])
def test_the_docs_nc1_figures_are_the_committed_runs(name, modes, hq, w1):
    """README and docs/toy.md quote the n_critic 1 sweeps' means (5 seeds at 25,000 iterations)."""
    root, rows = _per_run(name)
    assert sorted(int(r["seed"]) for r in rows) == [0, 1, 2, 3, 4]
    assert {int(r["iterations"]) for r in rows} == {25_000}
    assert f"{sum(int(r['modes']) for r in rows) / 5:.1f}" == modes
    assert f"{100 * sum(float(r['high_quality']) for r in rows) / 5:.2f}%" == hq
    assert f"{sum(float(r['w1']) for r in rows) / 5:.2f}" == w1
    toy, readme = (root / "docs" / "toy.md").read_text(), (root / "README.md").read_text()
    assert all(q in toy for q in (hq, w1)) and w1 in readme, name


def _t95(v):
    from toy.aggregate import t_interval
    t = t_interval(v)
    return f"{t['mean']:.2f} [{t['ci_low']:.2f}, {t['ci_high']:.2f}]"


@pytest.mark.parametrize("name,pairs", [
    ("rwp-grid", [("wgan-gp", "wgan-gp-rwp"), ("standard", "standard-rwp"), ("dragan", "dragan-rwp")]),
    ("rwp-gen-iters", [("wgan-gp-10g", "wgan-gp-10g-rwp")]), ("sbe-grid", [("wgan-gp", "sbe")])])
def test_the_docs_rwp_sbe_figures_are_the_committed_runs(name, pairs):
    """docs/wasserstein-proximal.md quotes, per variant, the final W1 mean and 95% interval of the committed
    per-run CSV (the saved samples' W1, 5 seeds) and each pair's paired difference."""
    root, rows = _per_run(name)
    doc = (root / "docs" / "wasserstein-proximal.md").read_text()
    w1 = {}
    for r in rows:
        w1.setdefault(r["variant"].removeprefix("variant="), {})[int(r["seed"])] = float(r["w1"])
    for a, b in pairs:
        assert sorted(w1[a]) == sorted(w1[b]) == [0, 1, 2, 3, 4]
        paired = [w1[b][s] - w1[a][s] for s in range(5)]
        for q in (_t95(list(w1[a].values())), _t95(list(w1[b].values()))):
            assert q in doc, (name, a, b, q)
        q = _t95(paired)
        assert f"paired {q if q.startswith('-') else '+' + q}" in doc, (name, a, b, q)


WWGAN_ROWS = {"tv_minmax": "TV under translation, min-max, blank fill", "tv_minmax_fill0": "TV under translation, min-max, fill 0",
              "zero_crossings": "zero-crossings (centred)", "noise_separation": "noise separation (Fig. 5)",
              "w1_to_test": "W1 to the test set"}


def wwgan_table_cells(rows):
    """Per quantity of docs/wasserstein-gradient.md's 5-seed table: ``| WGAN-GP mean | WWGAN mean | paired [CI] |``."""
    from toy.aggregate import t_interval
    by = {(r["method"], int(r["seed"])): r for r in rows}
    seeds = sorted({s for _, s in by})
    cells = {}
    for k, label in WWGAN_ROWS.items():
        a = [float(by["wgan-gp", s][k]) for s in seeds]
        b = [float(by["wwgan", s][k]) for s in seeds]
        t = t_interval([y - x for x, y in zip(a, b)])
        sign = "+" if t["mean"] >= 0 else ""
        cells[k] = (f"| {label} | {sum(a) / len(a):.2f} | {sum(b) / len(b):.2f} | "
                    f"{sign}{t['mean']:.2f} [{t['ci_low']:.2f}, {t['ci_high']:.2f}] |")
    return seeds, cells


def test_the_docs_wwgan_figures_are_the_committed_runs():
    """docs/wasserstein-gradient.md's 5-seed table quotes the committed per-seed CSV: both means and the
    paired difference with its 95% interval, row by row."""
    root = pathlib.Path(__file__).resolve().parents[1]
    rows = list(csv.DictReader(open(root / "docs" / "results" / "wwgan-digits-per-seed.csv")))
    seeds, cells = wwgan_table_cells(rows)
    assert seeds == [0, 1, 2, 3, 4]
    doc = (root / "docs" / "wasserstein-gradient.md").read_text()
    for k, cell in cells.items():
        assert cell in doc, cell
