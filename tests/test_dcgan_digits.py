"""toy.dcgan_digits: DCGAN against MLP pairs on digits at one CPU budget; the summary's
statistics recomputed from the run folders."""
import json

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the offline digits data needs scikit-learn")

from toy.__main__ import main                                                  # noqa: E402
from toy.dcgan_digits import verdict                                           # noqa: E402
from refimpl.image_metrics import image_w1                                     # noqa: E402
from refimpl.images import load_images                                         # noqa: E402


def test_both_networks_train_at_the_same_budget_and_the_summary_is_their_difference(tmp_path):
    out = tmp_path / "dd"
    assert main(["dcgan-digits", "--quick", "--budget", "0.4", "--out", str(out)]) == 0
    m = {a: json.loads((out / f"{a}-seed0" / "metrics.json").read_text()) for a in ("mlp", "dcgan")}
    assert m["mlp"]["config"]["arch"] == "mlp" and m["dcgan"]["config"]["arch"] == "dcgan"
    for a in m:
        assert m[a]["budget_cpu_seconds"] == 0.4
        assert m[a]["train_cpu_seconds"] >= 0.4                 # the budget, not an iteration count, ended it
        assert m[a]["iterations"] > 1 and np.isfinite([m[a]["w1"], m[a]["fd"]]).all()
        assert m[a]["w1"] > m[a]["baseline"]["w1_train_vs_test"]    # untrained networks are above the floor
        samples = np.load(out / f"{a}-seed0" / "samples.npy")          # what the final metrics judge
        assert samples.shape == (m[a]["n_eval"], 1, 8, 8)
        assert image_w1(samples, load_images("digits", None, "test")[0][:m[a]["n_eval"]]) == m[a]["w1"]
    comp = json.loads((out / "metrics.json").read_text())
    from refimpl.harness import SUMMARY_FIELDS
    assert set(SUMMARY_FIELDS) <= set(comp) and comp["experiment"] == "dcgan-digits" and comp["n_runs"] == 2
    assert comp["seeds"] == [0] and comp["paired_seeds"] == [0]
    for k in ("w1", "fd"):
        assert comp["dcgan_minus_mlp"][k]["mean"] == pytest.approx(m["dcgan"][k] - m["mlp"][k], rel=1e-12)
        assert comp["per_variant"]["dcgan"][k]["mean"] == pytest.approx(m["dcgan"][k], rel=1e-12)
        assert comp["verdict"][k] == "undecided (one seed)"
    table = (out / "table.md").read_text()
    assert f"{m['dcgan']['w1']:.3f}" in table and f"{m['mlp']['fd']:.3f}" in table


def test_the_verdict_moves_with_the_interval():
    t = dict(n=3, mean=0.0, std=1.0)
    assert verdict({**t, "ci_low": -2.0, "ci_high": -0.1}) == "DCGAN lower"
    assert verdict({**t, "ci_low": 0.1, "ci_high": 2.0}) == "MLP lower"
    assert verdict({**t, "ci_low": -0.1, "ci_high": 2.0}) == "undecided"
    assert verdict({"n": 1, "mean": 0.3, "std": None, "ci_low": None, "ci_high": None}) == "undecided (one seed)"


def test_an_override_it_does_not_take_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["dcgan-digits", "--quick", "--objective", "wgan", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    assert "--objective" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_docs_figures_are_the_committed_runs():
    """docs/cnn.md and the README quote the means and paired differences of the committed per-run CSV."""
    import csv
    import pathlib
    from toy.aggregate import t_interval
    root = pathlib.Path(__file__).resolve().parents[1]
    rows = list(csv.DictReader(open(root / "docs" / "results" / "dcgan-digits-per-run.csv")))
    by = {(r["arch"], int(r["seed"])): r for r in rows}
    assert sorted(by) == [(a, s) for a in ("dcgan", "mlp") for s in (0, 1, 2)]
    assert all(float(r["train_cpu_seconds"]) >= 90.0 for r in rows)
    mean = {(a, k): sum(float(by[a, s][k]) for s in (0, 1, 2)) / 3 for a in ("mlp", "dcgan") for k in ("w1", "fd")}
    diff = {k: t_interval([float(by["dcgan", s][k]) - float(by["mlp", s][k]) for s in (0, 1, 2)]) for k in ("w1", "fd")}
    doc = (root / "docs" / "cnn.md").read_text()
    for q in (f"{mean['mlp', 'w1']:.3f}", f"{mean['dcgan', 'w1']:.3f}", f"{mean['mlp', 'fd']:.2f}",
              f"{mean['dcgan', 'fd']:.2f}", f"+{diff['w1']['mean']:.3f} [{diff['w1']['ci_low']:.3f}, {diff['w1']['ci_high']:.3f}]",
              f"+{diff['fd']['mean']:.2f} [{diff['fd']['ci_low']:.2f}, {diff['fd']['ci_high']:.2f}]"):
        assert q in doc, q
    assert diff["w1"]["ci_low"] > 0                                   # "better on pixel W1": its interval excludes 0
    assert diff["fd"]["ci_low"] < 0 < diff["fd"]["ci_high"]             # "undecided" on FD: its interval holds 0
    readme = (root / "README.md").read_text()
    assert f"pixel W1 at this budget, {mean['mlp', 'w1']:.2f} vs {mean['dcgan', 'w1']:.2f}" in readme
    assert f"FD {mean['mlp', 'fd']:.1f} vs {mean['dcgan', 'fd']:.1f}, undecided" in readme
