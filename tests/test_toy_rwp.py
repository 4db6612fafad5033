"""Smoke tests of toy/rwp_experiments.py (RWP Figs. 2, 4, 5 analogues): quick runs write every output."""
import csv
import json

import pytest

from refimpl.harness import SUMMARY_FIELDS
from tests.recompute import assert_recomputable
from toy.common import RunOptions
from toy.registry import EXPERIMENTS, resolve

TINY = {"batch_size": 16, "curve_samples": 100, "protocol_samples": 100}


def _check(out, variants, iters, gen_per_outer, seeds=(0,)):
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["variants"]) == set(variants) and m["seeds"] == list(seeds)
    assert set(SUMMARY_FIELDS) <= set(m) and m["n_runs"] == len(variants) * len(seeds) and m["quick"] is True
    assert m["iterations"] == iters and m["curve_samples"] == 100
    for v in variants:
        for s in seeds:
            run = out / f"{v}-seed{s}"
            for f in ("metrics.json", "curve.csv", "samples.npy", "samples.png", "curves.png", "checkpoint.npz"):
                assert (run / f).stat().st_size > 0, f"{run / f} missing"
            assert len(assert_recomputable(run)) == 5
        assert m["variants"][v]["gen_iters"] == iters * gen_per_outer[v]
        assert m["variants"][v]["w1"]["mean"] > 0 and m["variants"][v]["w1"]["n"] == len(seeds)
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert {r["variant"] for r in rows} == set(variants)
    assert all(int(r["w1_n"]) == len(seeds) for r in rows)
    if len(seeds) > 1:       # the 95% t-interval band holds the mean
        assert all(float(r["w1_ci_low"]) <= float(r["w1_mean"]) <= float(r["w1_ci_high"]) for r in rows)
    assert all(float(r["train_seconds"]) >= 0 for r in rows)
    for f in ("curves.png", "curve_runs.csv", "summary.json", "summary.csv", "curves.csv"):
        assert (out / f).stat().st_size > 0, f
    return m


def test_registered():
    for name in ("rwp-grid", "rwp-gen-iters", "sbe-grid"):
        assert name in EXPERIMENTS and callable(resolve(name))


def test_rwp_grid_quick(tmp_path):
    out = tmp_path / "grid"
    m = resolve("rwp-grid")(RunOptions(out=out, quick=True, iters=2,
                                       extra={**TINY, "objective": "dragan", "h": None, "seeds": "0,1"}))
    _check(out, ["dragan", "dragan-rwp"], 2, {"dragan": 1, "dragan-rwp": 5}, seeds=(0, 1))
    assert m["variants"]["dragan-rwp"]["config"]["rwp_h"] == 0.2
    assert m["variants"]["dragan-rwp"]["config"]["n_critic"] == 1
    assert set(m["comparisons"]) == {"dragan vs dragan-rwp"}
    assert set(m["comparisons"]["dragan vs dragan-rwp"]) == {"wall_clock", "cpu_time", "gen_iters"}


def test_rwp_gen_iters_quick(tmp_path):
    out = tmp_path / "gi"
    m = resolve("rwp-gen-iters")(RunOptions(out=out, quick=True, iters=3, extra={**TINY, "n_gen": 2}))
    _check(out, ["wgan-gp-10g", "wgan-gp-10g-rwp"], 3, {"wgan-gp-10g": 2, "wgan-gp-10g-rwp": 2})
    assert "w1_last_third_pooled_std" in m["variants"]["wgan-gp-10g-rwp"]["stability"]


def test_sbe_grid_quick(tmp_path):
    out = tmp_path / "sbe"
    m = resolve("sbe-grid")(RunOptions(out=out, quick=True, iters=2, extra=dict(TINY)))
    _check(out, ["wgan-gp", "sbe"], 2, {"wgan-gp": 1, "sbe": 1})
    assert m["variants"]["sbe"]["config"]["sbe_h"] == 0.2


def test_bad_options_raise_before_writing(tmp_path):
    with pytest.raises(ValueError, match="h must be"):
        resolve("rwp-grid")(RunOptions(out=tmp_path / "a", quick=True, extra={"h": -1.0}))
    with pytest.raises(ValueError, match="seeds"):
        resolve("sbe-grid")(RunOptions(out=tmp_path / "b", quick=True, extra={"seeds": "1,x"}))
    with pytest.raises(ValueError, match="objectives"):
        resolve("rwp-grid")(RunOptions(out=tmp_path / "c", quick=True, extra={"objectives": "wgan"}))
    with pytest.raises(ValueError, match="dataset"):
        resolve("sbe-grid")(RunOptions(out=tmp_path / "d", quick=True, extra={"dataset": "nope"}))
    with pytest.raises(ValueError, match="WGAN-GP"):
        resolve("rwp-gen-iters")(RunOptions(out=tmp_path / "e", quick=True, extra={"objective": "dragan"}))
    assert not any((tmp_path / k).exists() for k in "abcde")
