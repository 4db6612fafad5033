"""Smoke test of toy/w1fe_ring.py (W1-FE Figs. 1, 2, 4 on the 8-mode ring), quick mode."""
import csv
import json

import numpy as np
import pytest

pytest.importorskip("ot")
pytest.importorskip("matplotlib")

from tests.recompute import assert_recomputable
from toy.common import RunOptions
from toy.w1fe_ring import QUICK, first_reach, run, snapshot_iterations


def test_w1fe_ring_quick(tmp_path):
    m = run(RunOptions(out=tmp_path, quick=True))
    for f in ("metrics.json", "table.csv", "summary.csv", "summary.json", "w1_vs_epoch.png", "w1_vs_time.png",
              "transport.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["table"] == m["table"]
    from refimpl.harness import SUMMARY_FIELDS
    assert set(SUMMARY_FIELDS) <= set(saved) and saved["n_runs"] == len(QUICK["grid"]) and saved["seeds"] == [0]
    assert {(r["penalty"], r["K"]) for r in saved["table"]} == set(QUICK["grid"])
    for p, K in QUICK["grid"]:
        d = tmp_path / f"{p}-K{K}-seed0"
        met = json.loads((d / "metrics.json").read_text())
        assert met["K"] == K and met["config"]["objective"] == {"lp": "wgan-lp", "gp": "wgan-gp"}[p]
        assert met["fingerprint"]["config"]["K"] == K and met["fingerprint"]["config"]["eps"] == 1.0
        assert np.load(d / "samples.npy").shape == (QUICK["n_eval"], 2)
        rows = list(csv.DictReader(open(d / "curve.csv")))
        assert [int(r["iteration"]) for r in rows] == [2, 4, 6]
        assert [r["w1"] != "" for r in rows] == [False, False, True]      # exact W1 every 3 and at the end
        assert all(float(r["w1"]) > 0 for r in rows if r["w1"])
        t = [float(r["train_cpu_seconds"]) for r in rows]
        assert 0 < t[0] <= t[1] <= t[2]
        assert 0 <= met["modes"] <= 8 and 0 <= met["high_quality"] <= 1
        assert assert_recomputable(d) == ["modes", "high_quality", "w1", "sliced_w1"]
        snap = np.load(d / "snapshots.npz")
        assert list(snap["its"]) == snapshot_iterations(6, 2) == [2, 6]
        assert snap["G"].shape == snap["zeta"].shape == (2, 256, 2)
        # the stored Euler targets are eps = 1 gradient steps: |zeta - G| = |grad f| > 0
        assert np.all(np.linalg.norm(snap["zeta"] - snap["G"], axis=2) > 0)

    table = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [(r["penalty"], int(r["K"])) for r in table] == sorted(QUICK["grid"])
    # a second call reuses the finished runs (same configuration) instead of re-training
    stamps = {p: (tmp_path / f"{p[0]}-K{p[1]}-seed0" / "metrics.json").stat().st_mtime_ns for p in QUICK["grid"]}
    m2 = run(RunOptions(out=tmp_path, quick=True))
    assert stamps == {p: (tmp_path / f"{p[0]}-K{p[1]}-seed0" / "metrics.json").stat().st_mtime_ns
                      for p in QUICK["grid"]}
    assert m2["table"] == m["table"]


def test_first_reach_and_bad_grid(tmp_path):
    assert first_reach([25, 50, 75], [None, 0.2, 0.1], 0.15) == (75, 2)
    assert first_reach([25, 50], [0.3, None], 0.15) == (None, None)
    with pytest.raises(ValueError, match="penalty"):
        run(RunOptions(out=tmp_path / "x", quick=True, extra={"grid": [("xx", 1)]}))
    with pytest.raises(ValueError, match="seeds"):
        run(RunOptions(out=tmp_path / "y", quick=True, extra={"seeds": "a,b"}))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
