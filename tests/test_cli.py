"""The toy command line: listing, a quick run's outputs, resume, and clear failures on bad input."""
import json

import numpy as np
import pytest

from toy.__main__ import main


def test_list(capsys):
    assert main(["list"]) == 0
    assert "wgan-gp-grid" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["nope"], "unknown experiment 'nope'"),
    (["wgan-gp-grid", "--iters", "0"], "must be >= 1"),
    (["wgan-gp-grid", "--lam", "-1"], "must be a finite number > 0"),
    (["wgan-gp-grid", "--n-critic", "0"], "must be >= 1"),
    (["wgan-gp-grid", "--backend", "tpu"], "invalid choice"),
    (["wgan-gp-grid", "--bogus"], "unrecognized arguments"),
])
def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys, argv, msg):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as e:
        main(argv + ["--out", str(out)])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err
    assert not out.exists()


def test_cupy_without_gpu_fails_clearly(tmp_path, capsys):
    from refimpl.backend import cuda_available
    if cuda_available()[0]:
        pytest.skip("a CUDA device is present")
    out = tmp_path / "o"
    assert main(["wgan-gp-grid", "--backend", "cupy", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cupy" in err and ("no CUDA device was found" in err or "cupy is not installed" in err)
    assert not out.exists()


def test_resume_without_checkpoint_fails(tmp_path, capsys):
    assert main(["wgan-gp-grid", "--resume", "--out", str(tmp_path / "o")]) == 2
    assert "there is no checkpoint in" in capsys.readouterr().err


def test_quick_run_writes_outputs_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["wgan-gp-grid", "--quick", "--iters", "3", "--batch-size", "32", "--out", str(out)]) == 0
    for f in ("metrics.json", "curve.csv", "samples.npy", "samples.png", "curves.png", "checkpoint.npz"):
        assert (out / f).exists(), f
    m = json.loads((out / "metrics.json").read_text())
    for k in ("modes", "high_quality", "w1", "w2", "sliced_w1", "seconds", "config"):
        assert k in m
    assert m["config"]["batch_size"] == 32
    from toy.gan import QUICK_N_EVAL
    assert np.load(out / "samples.npy").shape == (QUICK_N_EVAL, 2) and m["n_eval"] == QUICK_N_EVAL   # a smoke run's count
    assert m["baseline"]["n"] == QUICK_N_EVAL
    # a second run into the same folder without --resume refuses to overwrite
    assert main(["wgan-gp-grid", "--quick", "--iters", "3", "--batch-size", "32", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    # resume continues to a longer horizon
    assert main(["wgan-gp-grid", "--quick", "--iters", "5", "--batch-size", "32", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 5


@pytest.mark.parametrize("name", sorted(__import__("toy.registry", fromlist=["EXPERIMENTS"]).EXPERIMENTS))
def test_every_experiment_runs_on_array_api_strict(tmp_path, name):
    """One code path: every registered experiment's smoke run on the strict backend, which
    rejects any call outside the Array API standard; metrics.json must be written."""
    if name in ("wwgan-digits", "dcgan-digits"):
        pytest.importorskip("sklearn", reason="the offline digits data needs scikit-learn")
    from toy.registry import FLAGS
    out = tmp_path / name
    small = ["--batch-size", "16"] if "batch_size" in FLAGS.get(name, {"batch_size": None}) else []
    assert main([name, "--quick", "--iters", "2", *small, "--backend", "array_api_strict",
                 "--out", str(out)]) == 0
    assert (out / "metrics.json").exists()
    assert json.loads((out / "metrics.json").read_text())


def test_write_csv_takes_the_union_of_columns(tmp_path):
    """Curve rows of a run resumed from an older checkpoint lack the newer columns."""
    import csv
    from toy.common import write_csv
    write_csv(tmp_path / "c.csv", [{"iteration": 1, "w1": 2.0}, {"iteration": 2, "train_seconds": 3.0, "w1": 1.5}])
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert list(rows[0]) == ["iteration", "w1", "train_seconds"]
    assert rows[0]["train_seconds"] == "" and rows[1]["train_seconds"] == "3.0" and rows[1]["w1"] == "1.5"


def test_gan_help_shows_the_registrys_defaults():
    """`python -m toy gan --help` reads its defaults from the method registry, not from text of its own."""
    from refimpl.gan import GANConfig
    from refimpl.rwp import RWP_DEFAULTS
    from toy import registry
    flags = registry.FLAGS["gan"]
    assert flags["lam"].startswith(f"{GANConfig().lam} for --method wgan-gp")
    assert flags["batch_size"].startswith(f"{GANConfig().batch_size} for")
    import inspect
    from refimpl.sbe import SBEMethod
    sbe_h = inspect.signature(SBEMethod).parameters["h"].default
    assert f"{RWP_DEFAULTS['wgan-gp'][0]} (wgan-gp" in flags["h"] and f"sbe {sbe_h}" in flags["h"]
    assert flags["K"].startswith("w1fe 1;")
    assert not any("the method's configuration" in (v() if callable(v) else v) for v in flags.values())


def test_dataset_flag_offers_only_what_the_experiment_trains_on(capsys):
    from refimpl.datasets import DATASETS, Mixture
    from toy.cli import check_flags
    from toy.registry import dataset_choices
    assert dataset_choices("wwgan-digits") == ("digits", "mnist", "cifar10")
    mixtures = dataset_choices("gan")
    assert "grid25" in mixtures and all(isinstance(DATASETS[k], Mixture) for k in mixtures)
    assert "swissroll" in DATASETS and "swissroll" not in mixtures     # the chance baseline needs a mixture
    check_flags("gan", ["--dataset", "ring8"])
    for name, bad in (("gan", "swissroll"), ("gan", "digits"), ("wwgan-digits", "ring8")):
        with pytest.raises(ValueError, match="invalid choice"):
            check_flags(name, ["--dataset", bad])


def test_rwp_help_reads_the_experiments_configuration(monkeypatch):
    """rwp-grid's help defaults come from toy.rwp_experiments' configs: moving one moves the help."""
    from toy import registry, rwp_experiments
    from toy.cli import build_parser
    monkeypatch.setenv("COLUMNS", "500")                                          # no wrapped lines
    help_of = lambda: build_parser("rwp-grid").format_help()                      # noqa: E731
    assert "(default 64)" in help_of() and "(default 5 (WGAN-GP/LP), 1 (Standard, DRAGAN))" in help_of()
    registry._rwp_defaults.cache_clear()
    monkeypatch.setattr(rwp_experiments, "BATCH", 48)
    try:
        assert "batch size (default 48)" in help_of()
    finally:
        registry._rwp_defaults.cache_clear()
