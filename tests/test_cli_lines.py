"""What a new user reads from ``python -m toy NAME``: one refusal line with one prefix, the way out
of a refused resume, progress lines that never pass old metrics for fresh ones, a short summary
after a run instead of its whole metrics, a quick run's evaluation size, and the standard fields of
every multi-run experiment's top-level ``metrics.json``."""
import json
import re
import types

import numpy as np
import pytest

from refimpl import harness as runs
from refimpl.progress import format_progress
from toy.__main__ import main

TINY = ["--quick", "--batch-size", "16", "--iters", "2", "--threads", "1"]


def _cheap_evaluate(samples, dataset, rng, **kw):
    from refimpl.backend import to_numpy
    return {"w1": float(np.mean(np.abs(to_numpy(samples)))), "modes": 3, "high_quality": 0.5}


@pytest.fixture(autouse=True)
def cheap_eval(monkeypatch):
    import toy.gan
    monkeypatch.setattr(toy.gan, "evaluate", _cheap_evaluate)


def _refusal(capsys, argv):
    """The stderr of a refused ``python -m toy *argv`` (exit 2, by return or SystemExit)."""
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code
    assert status == 2, argv
    return capsys.readouterr().err


# ----------------------------------------------------------------------------- 1. one prefix
def test_every_refusal_is_one_line_with_the_argparse_prefix(tmp_path, capsys):
    done = tmp_path / "done"
    assert main(["wgan-gp-grid", *TINY, "--out", str(done)]) == 0
    capsys.readouterr()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refusals = {
        "bad flag": ["wgan-gp-grid", "--bogus"],
        "bad value": ["wgan-gp-grid", "--iters", "0"],
        "foreign checkpoint": ["wgan-gp-grid", *TINY, "--lam", "5", "--out", str(done), "--resume"],
        "own folder, no --resume": ["wgan-gp-grid", *TINY, "--out", str(done)],
        "non-empty foreign folder": ["wgan-gp-grid", *TINY, "--out", str(foreign)],
        "--resume, no checkpoint": ["wgan-gp-grid", *TINY, "--out", str(tmp_path / "none"), "--resume"],
        "below a file": ["wgan-gp-grid", *TINY, "--out", str(foreign / "notes.txt" / "x")],
        "an experiment's own refusal": ["rwp-grid", "--quick", "--seeds", "0", "--variant", "wgan-gp",
                                        "--out", str(tmp_path / "v")],
    }
    for what, argv in refusals.items():
        err = _refusal(capsys, argv)
        assert err.count("\n") == 1, (what, err)
        assert err.startswith(f"python -m toy {argv[0]}: error: "), (what, err)
    assert _refusal(capsys, ["nope"]).startswith("python -m toy: error: unknown experiment")
    assert (foreign / "notes.txt").read_text() == "mine" and not (tmp_path / "none").exists()


def test_gpu_refusals_share_the_prefix(tmp_path, capsys):
    from gpu.__main__ import main as gpu_main
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert gpu_main(["wgan-gp", "--backend", "numpy", "--quick", "--out", str(busy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m gpu wgan-gp: error: ") and "not empty" in err
    with pytest.raises(SystemExit):
        gpu_main(["wgan-gp", "--backend", "numpy", "--width", "0"])
    assert capsys.readouterr().err.startswith("python -m gpu wgan-gp: error: ")


def test_prog_of_a_resume_command():
    assert runs.prog_of("python -m toy wgan-gp-grid --out 'a b' --resume") == "python -m toy wgan-gp-grid"
    assert runs.prog_of("python -m gpu rwp --backend numpy") == "python -m gpu rwp"
    assert runs.prog_of("myscript --resume") == "myscript"


# ----------------------------------------------------------------------------- 2. the way out
def test_a_refused_resume_says_how_to_go_on_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["wgan-gp-grid", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in out.iterdir())
    err = _refusal(capsys, ["wgan-gp-grid", *TINY, "--lam", "5", "--out", str(out), "--resume"])
    assert f"{out} holds a checkpoint of a different run (checkpoint -> this run: config.lam: 10.0 -> 5.0)" in err
    assert "resume it with its original flags" in err and "--out ANOTHER_DIR, or delete that folder first" in err
    assert sorted(p.name for p in out.iterdir()) == before          # nothing deleted for the user
    # the ways out it names work: the old flags resume it; another folder starts afresh
    assert main(["wgan-gp-grid", *TINY, "--out", str(out), "--resume"]) == 0
    assert main(["wgan-gp-grid", *TINY, "--lam", "5", "--out", str(tmp_path / "another")]) == 0


def test_the_way_out_of_a_multi_run_names_the_experiments_folder(tmp_path):
    from refimpl.checkpointer import CheckpointRefused
    top = tmp_path / "exp"
    (top / "wgan-gp-seed0").mkdir(parents=True)
    runs.mark_output(top, "sbe-grid")
    foreign = CheckpointRefused("x", top / "wgan-gp-seed0" / "checkpoint.npz", diff=["quick: True -> False"])
    line = runs.runner.refused_resume(top / "wgan-gp-seed0", foreign)
    assert "(checkpoint -> this run: quick: True -> False)" in line and line.endswith(f"or delete {top} first")
    assert runs.runner.refused_resume(top, foreign).endswith("or delete that folder first")
    nan = CheckpointRefused("checkpoint c holds non-finite values", top / "checkpoint.npz")
    assert runs.runner.refused_resume(top, nan) == ("checkpoint c holds non-finite values; start over: "
                                                    "--out ANOTHER_DIR, or delete that folder first")


def test_resume_without_a_checkpoint_says_what_to_do(tmp_path, capsys):
    err = _refusal(capsys, ["wgan-gp-grid", *TINY, "--out", str(tmp_path / "new"), "--resume"])
    assert "run without --resume" in err


# ----------------------------------------------------------------------------- 3. progress lines
def _event(it, evaluation, **metrics):
    return {"iteration": it, "iterations": 400, "budget_cpu_seconds": None, "train_cpu_seconds": 1.0,
            "elapsed_seconds": 10.0, "left_seconds": 5.0, "evaluation": evaluation,
            "metrics": {"critic_loss": 0.5, **metrics}}


def test_progress_shows_an_evaluation_once_with_its_iteration():
    ev = {"iteration": 250, "keys": ["w1", "modes"], "new": True}
    fresh = format_progress(_event(253, ev, w1=1.921, modes=13))
    assert "critic_loss 0.5" in fresh and "eval@it 250: w1 1.921 modes 13" in fresh
    stale = format_progress(_event(270, {**ev, "new": False}, w1=1.921, modes=13))
    assert "critic_loss 0.5" in stale and "w1" not in stale and "modes" not in stale
    assert "eval@" not in format_progress(_event(3, None))


def test_the_training_loop_marks_its_evaluations(monkeypatch):
    """Every iteration prints (a clock 3 s per read); evaluations at 2 and 4 of 5."""
    import refimpl.train as train_mod
    from refimpl.train import GANConfig, GANMethod, ToyData, train
    from refimpl.backend import get_namespace
    clock = iter(range(0, 10_000, 3))
    fake = types.SimpleNamespace(perf_counter=lambda: float(next(clock)), process_time=train_mod.time.process_time,
                                 time=train_mod.time.time)
    monkeypatch.setattr(train_mod, "time", fake)
    xp = get_namespace("numpy")
    cfg = GANConfig(objective="wgan-gp", gen_hidden=(8,), critic_hidden=(8,), batch_size=8, n_critic=1)
    events, lines = [], []
    stream = types.SimpleNamespace(write=lambda s: lines.append(s), flush=lambda: None)
    train(GANMethod(cfg), ToyData("grid25", xp, "float32"), xp=xp, seed=0, iters=5, eval_every=2,
          eval_fn=lambda st, it: {"w1": float(it)}, on_progress=events.append, stream=stream)
    assert [e["iteration"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["evaluation"] and (e["evaluation"]["iteration"], e["evaluation"]["new"]) for e in events] == \
        [None, (2, True), (2, False), (4, True), (5, True)]
    text = [ln for ln in "".join(lines).splitlines() if ln.startswith("it ")]
    assert ["eval@it" in ln for ln in text] == [False, True, False, True, True]
    assert "eval@it 2: w1 2" in text[1] and "w1" not in text[2]


# ----------------------------------------------------------------------------- 4. the summary
def test_a_finished_run_prints_a_short_summary_not_its_metrics(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["wgan-gp-grid", *TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert len(lines) <= 5 and '"config"' not in text and "{" not in text
    assert re.match(r"^2 iterations in [0-9.]+ s: modes 3, high_quality 0.5, w1 [0-9.]+$", lines[0]), lines[0]
    assert lines[1].startswith("chance baseline: modes ")
    assert f"all metrics: {out / 'metrics.json'}" in lines
    assert json.loads((out / "metrics.json").read_text())["modes"] == 3          # metrics.json: the machine-readable path


def test_a_multi_run_summary_is_one_line_per_variant(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["sbe-grid", "--quick", "--iters", "2", "--threads", "1", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    lines = lines[lines.index("finished 2 runs of sbe-grid (seeds 0):"):]          # after the runs' announcements
    assert sorted(ln.split(":")[0] for ln in lines[1:3]) == ["  sbe", "  wgan-gp"]
    assert all(" w1 " in ln for ln in lines[1:3]) and lines[3] == f"all metrics: {out / 'metrics.json'}"
    assert len(lines) == 5 and "{" not in "".join(lines)


# ----------------------------------------------------------------------------- 5. quick evaluation size
def test_quick_runs_evaluate_fewer_samples_and_full_runs_the_protocol(tmp_path):
    from refimpl.metrics import N_EVAL
    from toy.gan import QUICK_N_EVAL, n_eval_of
    assert n_eval_of(runs.RunOptions(out=tmp_path, quick=False)) == N_EVAL == 2500
    assert n_eval_of(runs.RunOptions(out=tmp_path, quick=True)) == QUICK_N_EVAL < N_EVAL
    out = tmp_path / "g"
    assert main(["gan", "--method", "rwp", *TINY, "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_eval"] == QUICK_N_EVAL and m["baseline"]["n"] == QUICK_N_EVAL
    assert np.load(out / "samples.npy").shape == (QUICK_N_EVAL, 2)


# ----------------------------------------------------------------------------- 7. multi-run standard fields
def test_every_multi_run_summary_carries_the_standard_fields(tmp_path):
    """A stand-in experiment whose own summary writes a field of its own, an ``experiment`` title
    and a per-variant dict: the harness adds the standard fields beside them."""
    def train(opts, v):
        m = {"dataset": "grid25", "dtype": "float32", "threads": 1, "w1": 1.0 + opts.seed}
        opts.out.mkdir(parents=True, exist_ok=True)
        runs.write_run(opts.out, runs.Outputs(m), {})
        return m

    def summarise(out, variants, finished):
        from refimpl.outputs import write_json
        own = {"mine": 1, "variants": {"b": {"extra": 2}}}
        write_json(out / "metrics.json", own)
        return own
    exp = runs.MultiRun(lambda o: [runs.Variant("a", "A"), runs.Variant("b", "B", base="a")], train, summarise)
    out = tmp_path / "x"
    out.mkdir()
    exp(runs.RunOptions(out=out, experiment="stand-in", quick=True, extra={"seeds": "0,1"}))
    m = json.loads((out / "metrics.json").read_text())
    assert set(runs.SUMMARY_FIELDS) <= set(m) and m["mine"] == 1
    assert m["experiment"] == "stand-in" and m["seeds"] == [0, 1] and m["n_runs"] == 4 and m["quick"] is True
    assert (m["dataset"], m["dtype"], m["threads"], m["backend"]) == ("grid25", "float32", 1, "numpy")
    assert m["variants"]["a"] == {"label": "A", "base": None, "seeds": [0, 1], "folders": ["a-seed0", "a-seed1"]}
    assert m["variants"]["b"]["extra"] == 2 and m["variants"]["b"]["base"] == "a"
