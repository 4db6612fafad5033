"""Multi-run experiments (variant x seed) through one machinery: their variants are listed,
``--variant K --seed S`` executes exactly one run, and a sweep expands and aggregates them.

The runs are the quick, 2-iteration ones of ``sbe-grid`` (about 1 s each)."""
import json
import math
import pathlib

import pytest

pytest.importorskip("ot")

from refimpl import harness as runs
from toy import sweep
from toy.__main__ import main as toy_main
from toy.cli import options, variants

ONE = ["--quick", "--iters", "2"]


def _keys(name, argv):
    return [v.key for v, flags in variants(name, argv)]


def test_every_multi_run_experiment_lists_its_variants():
    assert _keys("rwp-grid", ["--quick"]) == ["wgan-gp", "wgan-gp-rwp", "standard", "standard-rwp",
                                              "dragan", "dragan-rwp"]
    assert _keys("rwp-grid", ["--objective", "dragan"]) == ["dragan", "dragan-rwp"]
    assert _keys("rwp-gen-iters", []) == ["wgan-gp-10g", "wgan-gp-10g-rwp"]
    assert _keys("sbe-grid", []) == ["wgan-gp", "sbe"]
    assert _keys("w1fe-ring", []) == ["lp-K1", "lp-K3", "lp-K5", "lp-K10", "gp-K1", "gp-K3", "gp-K5", "gp-K10"]
    assert _keys("w1fe-ring", ["--quick", "--objective", "wgan-gp"]) == ["gp-K1"]
    assert _keys("swgan-grid", []) == ["swgan", "wgan-gp"]
    pairs = variants("sbe-grid", [])
    assert [f for _, f in pairs] == [["--variant", "wgan-gp"], ["--variant", "sbe"]]
    assert pairs[1][0].base == "wgan-gp"
    # WGAN-GP gets SWGAN's training time, so its run comes after SWGAN's (quick runs are not time-matched)
    assert [v.after for v, _ in variants("swgan-grid", [])] == [(), ("swgan",)]
    assert [v.after for v, _ in variants("swgan-grid", ["--quick"])] == [(), ()]
    assert variants("wgan-gp-ring", []) is None and variants("prox-two-delta", ["--quick"]) is None
    with pytest.raises(ValueError, match="WGAN-GP"):
        variants("sbe-grid", ["--objective", "dragan"])


def test_explicit_seed_runs_that_seed_and_default_seeds_stay():
    assert runs.seeds_of(options("rwp-grid", []), (0, 1, 2, 3, 4)) == [0, 1, 2, 3, 4]
    assert runs.seeds_of(options("rwp-grid", ["--seed", "3"]), (0, 1, 2, 3, 4)) == [3]
    assert runs.seeds_of(options("rwp-grid", ["--seeds", "1,2"]), (0, 1, 2, 3, 4)) == [1, 2]


def test_a_variant_and_seed_call_executes_exactly_one_run(tmp_path, capsys):
    out = tmp_path / "one"
    assert toy_main(["sbe-grid", "--variant", "sbe", "--seed", "3", *ONE, "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["seed"] == 3 and m["method"] == "sbe" and m["iterations"] == 2
    assert not [p for p in out.iterdir() if p.is_dir()]                # no sub-runs: one run in --out
    assert {p.name for p in out.glob("checkpoint*")} == {"checkpoint.npz"}
    fp = runs.read_fingerprint(out)                                     # readable from the folder
    assert fp["experiment"] == "sbe-grid" and fp["seed"] == 3 and fp["method"] == "sbe"
    assert runs.read_fingerprint(tmp_path) is None
    # an unknown key, or --variant with --seeds, is one line and exit 2, and writes nothing
    for argv, msg in ((["--variant", "nope"], "variants: wgan-gp, sbe"), (["--variant", "sbe", "--seeds", "0,1"],
                                                                         "drop --seeds")):
        capsys.readouterr()
        assert toy_main(["sbe-grid", *argv, *ONE, "--out", str(tmp_path / "bad")]) == 2
        assert msg in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_a_run_that_builds_on_a_peer_needs_it(tmp_path, capsys):
    assert toy_main(["swgan-grid", "--variant", "wgan-gp", "--iters", "2", "--out", str(tmp_path / "w")]) == 2
    assert "--peer swgan=FOLDER" in capsys.readouterr().err and not (tmp_path / "w").exists()
    rs = sweep.expand("swgan-grid", [0, 1], [sweep.parse_setting("latent-dim=4,2")], [], variants)
    assert [r.run_id for r in rs[:4]] == ["latent-dim=4,variant=swgan,seed=0", "latent-dim=4,variant=swgan,seed=1",
                                          "latent-dim=4,variant=wgan-gp,seed=0", "latent-dim=4,variant=wgan-gp,seed=1"]
    assert rs[3].variant == "latent-dim=4,variant=wgan-gp" and rs[3].key == "wgan-gp"
    assert sweep.run_argv(rs[3], pathlib.Path("D"))[-6:] == [
        "--latent-dim", "4", "--variant", "wgan-gp", "--peer", f"swgan={pathlib.Path('D') / rs[1].run_id}"]
    # a relaunch that reaches the sweep folder by another path still counts as the same arguments
    same = sweep._same_args
    assert same(sweep.run_argv(rs[3], pathlib.Path("/a/D")), sweep.run_argv(rs[3], pathlib.Path("/b/D")))
    assert not same(sweep.run_argv(rs[3], pathlib.Path("D")), sweep.run_argv(rs[7], pathlib.Path("D")))
    assert not same(sweep.run_argv(rs[3], pathlib.Path("D")), sweep.run_argv(rs[2], pathlib.Path("D")))


def test_two_seed_sweep_aggregates_each_variant_as_computed_by_hand(tmp_path, capsys):
    out = tmp_path / "sw"
    assert toy_main(["sweep", "sbe-grid", "--seeds", "0-1", "--workers", "0", *ONE, "--out", str(out)]) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["order"] == ["variant=wgan-gp,seed=0", "variant=wgan-gp,seed=1",
                                 "variant=sbe,seed=0", "variant=sbe,seed=1"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["variants"]) == {"variant=wgan-gp", "variant=sbe"}
    own = json.loads((out / "experiment" / "default" / "metrics.json").read_text())
    for key in ("wgan-gp", "sbe"):
        per_run = [json.loads((out / f"variant={key},seed={s}" / "metrics.json").read_text()) for s in (0, 1)]
        assert [m["seed"] for m in per_run] == [0, 1] and {m["method"] for m in per_run} == {key}
        w1 = [m["w1"] for m in per_run]
        assert w1[0] != w1[1]                                            # the seeds differ: the check has teeth
        mean, std = sum(w1) / 2, abs(w1[0] - w1[1]) / math.sqrt(2)
        for got in (summary["variants"][f"variant={key}"]["metrics"]["w1"], own["variants"][key]["w1"]):
            assert got["n"] == 2 and got["mean"] == pytest.approx(mean, rel=1e-12)
            assert got["std"] == pytest.approx(std, rel=1e-12)
            # two seeds cannot decide: no interval (the t-interval at n >= 3: tests/test_sweep_ux.py)
            assert (got["ci_low"], got["ci_high"], got["interval"]) == (None, None, "undecided (n = 2 < 3)")
        hq = [m["curve_final"]["high_quality"] for m in per_run]
        assert summary["variants"][f"variant={key}"]["metrics"]["curve_final/high_quality"]["mean"] == \
            pytest.approx(sum(hq) / 2, rel=1e-12)
    # the experiment's own summary: the threshold comparison of SBE with WGAN-GP, from the run folders
    assert set(own["comparisons"]) == {"wgan-gp vs sbe"} and own["seeds"] == [0, 1]
    assert set(runs.SUMMARY_FIELDS) <= set(own) and own["experiment"] == "sbe-grid" and own["n_runs"] == 4
    for f in ("curves.png", "curve.csv", "curve_runs.csv"):
        assert (out / "experiment" / "default" / f).stat().st_size > 0


def test_a_variant_run_resumes_bit_identical(tmp_path):
    import numpy as np
    one = ["sbe-grid", "--variant", "sbe", "--seed", "2", "--quick"]
    assert toy_main([*one, "--iters", "4", "--out", str(tmp_path / "a")]) == 0
    assert toy_main([*one, "--iters", "2", "--out", str(tmp_path / "b")]) == 0
    before = np.load(tmp_path / "b" / "samples.npy")
    assert toy_main([*one, "--iters", "4", "--out", str(tmp_path / "b"), "--resume"]) == 0
    after = np.load(tmp_path / "b" / "samples.npy")
    assert not np.array_equal(before, after)                            # it trained on
    np.testing.assert_array_equal(after, np.load(tmp_path / "a" / "samples.npy"))
