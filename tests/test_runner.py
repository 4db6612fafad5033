"""The runner (:mod:`refimpl.harness.runner`): one training run and its standard folder, the one
path every experiment of ``toy`` and ``gpu`` trains through."""
import ast
import json
import pathlib

import numpy as np
import pytest

from refimpl.backend import get_namespace
from refimpl.harness import Outputs, RunOptions, run_and_write, write_run
from refimpl.train import GANConfig, GANMethod, ToyData

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _small(tmp_path, **kw):
    cfg = GANConfig(gen_hidden=(8,), critic_hidden=(8,), batch_size=16, n_critic=1)
    return RunOptions(out=tmp_path / "run", seed=3, experiment="runner-test", **kw), GANMethod(cfg, name="tiny")


def test_run_and_write_writes_the_standard_folder_with_metrics_last(tmp_path):
    opts, method = _small(tmp_path)
    xp = get_namespace("numpy")
    seen = {}

    def finish(res):
        assert res.iterations == 4
        samples = np.asarray(method.samples(res.state, method.latent(np.random.default_rng(0), 10,
                                                                     res.state["gen"][0][0])))

        def plots(folder, metrics):        # drawn after every file, before metrics.json
            seen["files"] = sorted(p.name for p in folder.iterdir())
            seen["metrics"] = dict(metrics)
        return Outputs({"w1": 0.5, "seed": "overridden"}, samples, tables={"extra": [{"a": 1}]},
                       arrays={"more": {"x": np.arange(3)}}, plots=plots)

    m = run_and_write(opts, method, ToyData("ring8", xp, "float32"), finish=finish, dataset="ring8", xp=xp,
                      iters=4, eval_fn=lambda st, it: {"probe": float(it)}, eval_every=2, progress=False)
    folder = opts.out
    assert "metrics.json" not in seen["files"]
    assert {"curve.csv", "samples.npy", "extra.csv", "more.npz", "checkpoint.npz"} <= set(seen["files"])
    on_disk = json.loads((folder / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m)) and seen["metrics"] == m
    # the standard record, and the experiment's metrics over it
    assert (m["method"], m["dataset"], m["iterations"], m["backend"], m["dtype"]) == ("tiny", "ring8", 4, "numpy",
                                                                                     "float32")
    assert m["seed"] == "overridden" and m["w1"] == 0.5 and m["config"] == method.config()
    assert m["threads"] == opts.threads and m["seconds"] >= 0
    # the loop's curve by default: its rows at iterations 2 and 4, with the clocks train() adds
    rows = (folder / "curve.csv").read_text().splitlines()
    assert rows[0].split(",")[:1] == ["iteration"] and len(rows) == 3
    assert "train_cpu_seconds" in rows[0] and "probe" in rows[0]
    assert np.load(folder / "samples.npy").shape == (10, 2)


def test_write_run_writes_samples_npz_and_no_curve_when_none(tmp_path):
    got = write_run(tmp_path, Outputs({"a": 1}, {"g": np.ones((2, 3))}), {"a": 0, "b": 2})
    assert got == {"a": 1, "b": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "samples.npz"]
    assert np.load(tmp_path / "samples.npz")["g"].shape == (2, 3)


def test_a_failing_finish_leaves_no_metrics_json(tmp_path):
    opts, method = _small(tmp_path)
    xp = get_namespace("numpy")

    def finish(res):
        raise RuntimeError("evaluation failed")
    with pytest.raises(RuntimeError):
        run_and_write(opts, method, ToyData("ring8", xp, "float32"), finish=finish, dataset="ring8", xp=xp, iters=2,
                      progress=False)
    assert (opts.out / "checkpoint.npz").exists() and not (opts.out / "metrics.json").exists()


def _calls(path, name):
    return [n.lineno for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def test_every_experiment_trains_through_the_runner():
    """No experiment of toy/ or gpu/ calls train_run (or train) itself: each declares its finish and
    hands it to run_and_write, so the standard folder is written in one place."""
    direct = {f"{p.relative_to(ROOT)}:{ln}" for pkg in ("toy", "gpu") for p in (ROOT / pkg).glob("*.py")
              if not p.name.startswith("bench") for name in ("train_run", "train") for ln in _calls(p, name)}
    assert not direct, direct
    users = {p.name for pkg in ("toy", "gpu") for p in (ROOT / pkg).glob("*.py") if _calls(p, "run_and_write")}
    assert {"gan.py", "rwp_experiments.py", "tour.py", "swgan_grid.py", "w1fe_ring.py", "wwgan_digits.py",
            "dcgan_digits.py", "experiments.py"} <= users
