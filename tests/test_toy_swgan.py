"""Smoke test of toy/swgan_grid.py (SWGAN Figs. 1-2: SWGAN vs WGAN-GP on the grid), quick mode."""
import csv
import json

import numpy as np
import pytest

pytest.importorskip("ot")
pytest.importorskip("matplotlib")

from tests.recompute import assert_recomputable
from toy.common import RunOptions
from toy.registry import EXPERIMENTS, resolve
from toy.swgan_grid import QUICK_ITERS, QUICK_N_EVAL, run


def test_registered():
    assert resolve("swgan-grid") is run and "swgan-grid" in EXPERIMENTS


def test_swgan_grid_quick(tmp_path):
    m = run(RunOptions(out=tmp_path, quick=True, extra={"latent_dim": 2}))
    assert m["latent_dim"] == 2 and m["seeds"] == [0]
    for f in ("metrics.json", "table.md", "comparison.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    summary = json.loads((tmp_path / "metrics.json").read_text())
    from refimpl.harness import SUMMARY_FIELDS
    assert set(SUMMARY_FIELDS) <= set(summary) and summary["n_runs"] == 2 and set(summary["variants"]) == {"swgan", "wgan-gp"}
    assert summary["swgan_config"]["latent_dim"] == 2 and summary["wgan_gp_config"]["latent_dim"] == 2
    assert summary["swgan_config"]["lam"] == 0.01 and summary["swgan_config"]["cost"] == "l1"
    assert [r["method"] for r in summary["rows"]] == ["SWGAN", "WGAN-GP"]
    for f in ("summary.json", "summary.csv", "curves.csv"):
        assert (tmp_path / f).stat().st_size > 0, f
    for name in ("swgan-seed0", "wgan-gp-seed0"):
        d = tmp_path / name
        for f in ("metrics.json", "curve.csv", "samples.npy", "samples.png", "curves.png", "checkpoint.npz"):
            assert (d / f).stat().st_size > 0, f
        met = json.loads((d / "metrics.json").read_text())
        assert len(assert_recomputable(d)) == 5
        assert met["iterations"] == QUICK_ITERS and 0 <= met["modes"] <= 25 and met["w1"] > 0
        assert 0 < met["train_seconds"] <= met["seconds"]
        assert np.load(d / "samples.npy").shape == (QUICK_N_EVAL, 2)
        rows = list(csv.DictReader(open(d / "curve.csv")))
        assert [int(r["iteration"]) for r in rows] == list(range(1, QUICK_ITERS + 1))
        assert [r["w1"] != "" for r in rows] == [False] * (QUICK_ITERS - 1) + [True]   # exact W1 at the end
    sw = summary["rows"][0]
    assert 0 < sw["mean_dual_steps"] <= 3                 # quick: at most 3 dual steps per generator step
    # a finished run is not silently overwritten
    with pytest.raises(ValueError, match="--resume"):
        run(RunOptions(out=tmp_path, quick=True, extra={"latent_dim": 2}))


def test_bad_seeds_write_nothing(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        run(RunOptions(out=tmp_path / "x", quick=True, extra={"seeds": "a,b"}))
    assert not (tmp_path / "x").exists()
