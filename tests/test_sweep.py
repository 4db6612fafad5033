"""``python -m toy sweep``: expansion, statistics, robustness (serial), and real Dask clusters.

The Dask tests skip when ``distributed`` is not installed; they run the fastest experiments:
``wgan-gp-ring --quick --iters 2`` (whose metrics differ between seeds) on the LocalCluster, and
``prox-two-delta --quick`` (deterministic, about 1 s) through a scheduler and for killed workers.
"""
import csv
import json
import math
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from toy import aggregate, sweep
from toy.__main__ import main as toy_main

ROOT = pathlib.Path(__file__).resolve().parents[1]
GAN = ["wgan-gp-ring", "--quick", "--iters", "2"]
# two-sided 97.5% quantiles of Student's t from printed tables (df = 1, 2, 4)
T_TABLE = {1: 12.7062, 2: 4.3027, 4: 2.7764}


# ----------------------------------------------------------------------------- expansion
def test_parse_seeds_ranges_and_lists():
    assert sweep.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert sweep.parse_seeds("0,1,3") == [0, 1, 3]
    assert sweep.parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad in ["", "a", "-1", "3-1", "0,0", "0-2,1", "1.5"]:
        with pytest.raises(ValueError, match="--seeds"):
            sweep.parse_seeds(bad)


def test_expand_is_the_product_of_settings_and_seeds():
    settings = [sweep.parse_setting("lam=1,10"), sweep.parse_setting("n_critic=5")]
    runs = sweep.expand("wgan-gp-ring", [0, 1], settings, ["--quick"])
    assert [r.run_id for r in runs] == ["lam=1,n-critic=5,seed=0", "lam=1,n-critic=5,seed=1",
                                        "lam=10,n-critic=5,seed=0", "lam=10,n-critic=5,seed=1"]
    assert runs[2].variant == "lam=10,n-critic=5"
    assert sweep.run_argv(runs[3], pathlib.Path("D")) == [
        "wgan-gp-ring", "--seed", "1", "--out", str(pathlib.Path("D") / runs[3].run_id),
        "--quick", "--lam", "10", "--n-critic", "5"]
    for bad in ["lam", "lam=", "lam=1,,2", "seed=1,2", "lam=1,1"]:
        with pytest.raises(ValueError, match="--set"):
            sweep.parse_setting(bad)
    with pytest.raises(ValueError, match="--out is set by the sweep"):
        sweep.expand("x", [0], [], ["--out", "y"])
    with pytest.raises(ValueError, match="share the folder"):
        sweep.expand("x", [0], [("data-dir", ["a/b", "a-b"])])


def _exit_status(argv):
    try:
        return toy_main(argv)
    except SystemExit as e:                 # argparse's errors
        return e.code


@pytest.mark.parametrize("argv, msg", [
    (["nope", "--seeds", "0"], "unknown experiment"),
    (["prox-two-delta", "--seeds", "2-1"], "empty range"),
    (["prox-two-delta", "--seeds", "0", "--workers", "-1"], "--workers must be >= 0"),
    (["prox-two-delta", "--seeds", "0", "--set", "lam"], "--set: expected key=v1,v2"),
    (["prox-two-delta", "--seeds", "0", "--seed", "3"], "--seed is set by the sweep"),
    # the experiment's own flags and --set values are parsed once, before any run is launched
    (["prox-two-delta", "--seeds", "0-2", "--workers", "0", "--lam", "1"],
     "prox-two-delta: unrecognized arguments: --lam 1"),
    (["prox-two-delta", "--seeds", "0", "--set", "h=0.5,-1"], "argument --h: "),
    (["prox-two-delta", "--seeds", "0", "--set", "lam=1,2"], "unrecognized arguments: --lam 1"),
    (["wgan-gp-grid", "--seeds", "0", "--objective", "nope"], "argument --objective: invalid choice"),
    (["prox-two-delta", "--seeds", "0", "--set", "h=1", "--set", "h=2"], "--set: the key h is given twice"),
    (["prox-two-delta", "--seeds", "0", "--scheduler", "nothere"], "--scheduler"),     # checked before writing
])
def test_bad_sweep_flags_exit_2_and_write_nothing(tmp_path, capsys, argv, msg):
    assert _exit_status(["sweep", *argv, "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "sw").exists()


# ----------------------------------------------------------------------------- statistics
def test_t_interval_against_printed_tables():
    for values in ([1.0, 3.0], [2.0, 4.0, 9.0], [0.1, 0.5, 0.2, 0.9, 0.3]):
        n = len(values)
        s = aggregate.t_interval(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = T_TABLE[n - 1] * std / math.sqrt(n)
        assert s["n"] == n and s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(std)
        assert s["ci_high"] - s["mean"] == pytest.approx(half, rel=5e-5)     # tables give 5 digits
        assert s["mean"] - s["ci_low"] == pytest.approx(half, rel=5e-5)
    assert aggregate.t_interval([2.0, float("nan")]) == {"n": 1, "mean": 2.0, "std": None, "ci_low": None, "ci_high": None}
    assert aggregate.t_interval([])["n"] == 0


def test_numeric_metrics_flatten_and_skip_bookkeeping():
    m = {"w1": 0.5, "seed": 3, "seconds": 9.0, "ok": True, "config": {"lam": 10}, "rows": [1, 2],
         "LP-K1": {"w1": 0.25, "modes": 8}, "bad": float("nan"), "name": "x"}
    assert aggregate.numeric_metrics(m) == {"w1": 0.5, "LP-K1/w1": 0.25, "LP-K1/modes": 8.0}
    # settings and bookkeeping are not results, at any depth (issue: h, steps, threads, baseline/n)
    m = {"h": 0.5, "steps": 5, "threads": 1, "n_eval": 300, "budget_cpu_seconds": 0.25, "iterations": 7,
         "baseline": {"n": 300, "w1": 1.5}, "eval_seeds": {"latent": [0, 7919, 7]}, "blas_threads": {"openblas": 1},
         "modes": 20}
    assert aggregate.numeric_metrics(m) == {"iterations": 7.0, "baseline/w1": 1.5, "modes": 20.0}


def test_every_flag_of_the_command_line_is_a_setting_not_a_metric():
    from toy.cli import OVERRIDE_FLAGS
    from toy.registry import FLAGS
    flags = set(OVERRIDE_FLAGS) | {k for f in FLAGS.values() for k in f} | {
        "seed", "iters", "threads", "checkpoint_every", "checkpoint_seconds", "quick"}
    assert flags <= aggregate.NOT_METRICS, flags - aggregate.NOT_METRICS


def test_curve_bands_on_iterations_and_interpolated_seconds():
    a = {"iteration": np.array([1.0, 2, 3]), "train_seconds": np.array([0.0, 1, 2]), "w1": np.array([0.0, 1, 2])}
    b = {"iteration": np.array([2.0, 3, 4]), "train_seconds": np.array([0.5, 1.5, 2.5]), "w1": np.array([1.0, 2, np.nan])}
    rows = aggregate.curve_bands([a, b], "w1", "iteration")
    assert [r["x"] for r in rows] == [2.0, 3.0]                        # iterations both runs have
    assert [r["mean"] for r in rows] == [1.0, 2.0] and rows[0]["std"] == 0.0
    rows = aggregate.curve_bands([a, b], "w1", "train_seconds")
    x = np.array([r["x"] for r in rows])
    assert x[0] == 0.5 and x[-1] == 1.5 and len(x) == aggregate.GRID_POINTS   # b's NaN row left out
    # a: w1 = t, b: w1 = 2 t - 0 on [0.5, 1.5] (points (0.5, 1), (1.5, 2)) -> w1 = t + 0.5
    np.testing.assert_allclose([r["mean"] for r in rows], x + 0.25)
    np.testing.assert_allclose([r["std"] for r in rows], np.full_like(x, 0.5 / math.sqrt(2)))


# ----------------------------------------------------------------------------- serial sweeps
def _manifest(out):
    return json.loads((out / "sweep.json").read_text())


def test_serial_sweep_records_failures_skips_finished_runs_and_sets_aside(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "dask_available", lambda: False)
    from toy import prox_two_delta
    real = prox_two_delta.run

    def fails_at_h_2(opts):                                             # a run failing after its flags parsed
        if opts.extra.get("h") == 2.0:
            raise ValueError("--h: 2 diverges (a stand-in failure)")
        return real(opts)
    monkeypatch.setattr(prox_two_delta, "run", fails_at_h_2)
    out = tmp_path / "sw"
    argv = ["sweep", "prox-two-delta", "--seeds", "0-1", "--set", "h=0.5,2", "--quick", "--out", str(out)]
    assert toy_main(argv) == 1                                          # the h=2 runs fail
    err = capsys.readouterr().err
    assert "note: Dask is not installed" in err and "serially" in err and "2 run(s) failed" in err
    runs = _manifest(out)["runs"]
    assert {k: v["status"] for k, v in runs.items()} == {"h=0.5,seed=0": "done", "h=0.5,seed=1": "done",
                                                         "h=2,seed=0": "failed", "h=2,seed=1": "failed"}
    assert "--h" in runs["h=2,seed=0"]["error"] and "exit status 2" in runs["h=2,seed=0"]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["variants"]) == ["h=0.5"]
    assert summary["variants"]["h=0.5"]["metrics"]["w_prox_steps_to_target_predicted"]["mean"] == 6.0
    assert set(summary["variants"]["h=0.5"]["metrics"]) == {"w_prox_steps_to_target_predicted"}   # not h, steps, threads
    # prox-two-delta writes no curve.csv: curves.csv is its header only, and the sweep says so
    assert (out / "curves.csv").read_text().strip() == ",".join(aggregate.CURVE_COLUMNS)
    assert "curves.csv holds its header only" in err

    done = out / "h=0.5,seed=0" / "metrics.json"
    stamp = done.stat().st_mtime_ns
    assert toy_main(argv) == 1                                          # relaunch: finished runs skipped
    assert "2 finished before" in capsys.readouterr().err
    assert done.stat().st_mtime_ns == stamp
    assert _manifest(out)["runs"]["h=0.5,seed=0"]["attempts"] == 1

    # other arguments for the same run ids: the old folders are kept aside, the runs redone
    (out / "h=0.5,seed=1" / "note.txt").write_text("mine")
    assert toy_main(["sweep", "prox-two-delta", "--seeds", "0-1", "--set", "h=0.5", "--quick", "--iters", "3",
                     "--out", str(out)]) == 0
    assert (out / "h=0.5,seed=1.old-1" / "note.txt").read_text() == "mine"
    assert json.loads((out / "h=0.5,seed=1" / "metrics.json").read_text())["steps"] == 3
    # every run of a toy sweep gets one BLAS thread, recorded in its metrics.json by the run layer
    assert json.loads((out / "h=0.5,seed=1" / "metrics.json").read_text())["threads"] == 1
    argv = _manifest(out)["runs"]["h=0.5,seed=1"]["argv"]
    assert argv[argv.index("--threads") + 1] == "1"
    assert json.loads((out / "h=0.5,seed=0.old-1" / "metrics.json").read_text())["steps"] == 5


def write_metrics(argv):
    """Runner standing in for an experiment: records its argv in the run folder's metrics.json."""
    folder = pathlib.Path(argv[argv.index("--out") + 1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"argv": argv, "x": 1.0}))
    return 0


def test_interrupted_run_resumes_from_its_checkpoint_or_is_set_aside(tmp_path):
    out = tmp_path / "sw"
    runs = sweep.expand("x", [0, 1], [], ["--quick"])
    (out / "seed=0").mkdir(parents=True)
    (out / "seed=0" / "checkpoint.pkl").write_bytes(b"state")        # interrupted after a checkpoint
    (out / "seed=1").mkdir()
    (out / "seed=1" / "curve.csv").write_text("partial")               # interrupted before one
    sweep.write_json(out / "sweep.json", {"runs": {r.run_id: {"argv": sweep.run_argv(r, out)} for r in runs}})
    manifest = sweep.sweep("x", [0, 1], [], ["--quick"], out=out, workers=0, runner="tests.test_sweep:write_metrics")
    assert {v["status"] for v in manifest["runs"].values()} == {"done"}
    got = {r: json.loads((out / r / "metrics.json").read_text())["argv"] for r in ("seed=0", "seed=1")}
    assert got["seed=0"][-1] == "--resume" and (out / "seed=0" / "checkpoint.pkl").exists()
    assert "--resume" not in got["seed=1"] and (out / "seed=1.old-1" / "curve.csv").read_text() == "partial"


def interrupted(argv):
    """Runner standing in for a run that caught Ctrl-C (exit status 130)."""
    return 130


def test_ctrl_c_in_a_serial_run_stops_the_sweep_and_a_second_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "sw"
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep("x", [0, 1], out=out, workers=0, runner="tests.test_sweep:interrupted")
    runs = _manifest(out)["runs"]
    assert runs["seed=0"]["status"] == "interrupted" and runs["seed=1"]["status"] == "queued"
    assert not (out / ".sweep.lock").exists()
    (out / ".sweep.lock").write_text(f"{os.getpid()}@{socket.gethostname()}")   # a live sweep holds it
    with pytest.raises(RuntimeError, match="another sweep"):
        sweep.sweep("x", [0], out=out, workers=0, runner="tests.test_sweep:write_metrics")
    (out / ".sweep.lock").write_text(f"{2**22 + 1}@{socket.gethostname()}")       # no such pid: taken over
    assert sweep.sweep("x", [0], out=out, workers=0, runner="tests.test_sweep:write_metrics")["runs"]["seed=0"]["status"] == "done"


# ----------------------------------------------------------------------------- real Dask
def _check_aggregates(out, variant, keys):
    """summary.json against values computed here from each run's own metrics.json."""
    summary = json.loads((out / "summary.json").read_text())
    runs = summary["variants"][variant]["runs"]
    per_run = [json.loads((out / r / "metrics.json").read_text()) for r in runs]
    n = len(runs)
    assert n == 2
    for key in keys:
        vals = [m[key] for m in per_run]
        mean = sum(vals) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
        s = summary["variants"][variant]["metrics"][key]
        assert s["n"] == n and s["mean"] == pytest.approx(mean, rel=1e-12) and s["std"] == pytest.approx(std, rel=1e-12)
        # two seeds cannot decide: no interval (the t-interval from 3 seeds: tests/test_sweep_ux.py)
        assert (s["ci_low"], s["ci_high"], s["interval"]) == (None, None, "undecided (n = 2 < 3)")
    return per_run


def _check_gan_aggregates(out):
    per_run = _check_aggregates(out, "default", ("w1", "w2", "sliced_w1", "modes", "high_quality"))
    assert len({m["w1"] for m in per_run}) == len(per_run)             # the seeds differ: the check has teeth
    with open(out / "curves.csv", newline="") as fh:
        w1_rows = [r for r in csv.DictReader(fh) if r["metric"] == "w1" and r["axis"] == "iteration"]
    assert len(w1_rows) == 1 and float(w1_rows[0]["mean"]) == pytest.approx(np.mean([m["w1"] for m in per_run]))
    assert (out / "curve-w1.png").stat().st_size > 0


def test_local_cluster_of_two_workers(tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "sw"
    assert toy_main(["sweep", *GAN[:1], "--seeds", "0-1", "--workers", "2", *GAN[1:], "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "LocalCluster of 2 workers" in err and "2/2 done" in err and "ETA" in err
    runs = _manifest(out)["runs"]
    assert {v["status"] for v in runs.values()} == {"done"}
    assert os.getpid() not in {v["pid"] for v in runs.values()}        # ran in worker processes
    _check_gan_aggregates(out)


def test_existing_scheduler_and_worker_subprocesses(tmp_path, capsys):
    pytest.importorskip("distributed")
    from distributed import Client
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    sfile = tmp_path / "scheduler.json"
    common = ["--dashboard-address", "127.0.0.1:0"]
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--scheduler-file", str(sfile), *common], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while not sfile.exists() or not sfile.read_text().strip():
            assert time.monotonic() < deadline and procs[0].poll() is None, "dask scheduler did not start"
            time.sleep(0.2)
        address = json.loads(sfile.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                       "--nworkers", "1", "--host", "127.0.0.1", *common], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(1, timeout=60)
        out = tmp_path / "sw"
        assert toy_main(["sweep", "prox-two-delta", "--seeds", "0-1", "--scheduler", address, "--quick",
                         "--set", "h=0.5,1", "--out", str(out)]) == 0
        assert f"scheduler {address}" in capsys.readouterr().err
        runs = _manifest(out)["runs"]
        assert {v["status"] for v in runs.values()} == {"done"} and len(runs) == 4
        assert os.getpid() not in {v["pid"] for v in runs.values()}
        for h, steps in (("0.5", 6), ("1", 3)):                        # ceil(d0 / h), d0 = 3 (Prop. 5)
            per_run = _check_aggregates(out, f"h={h}", ("w_prox_steps_to_target_predicted",))
            assert not {"h", "steps", "threads"} & set(json.loads((out / "summary.json").read_text())
                                                       ["variants"][f"h={h}"]["metrics"])
            assert [m["w_prox_steps_to_target_predicted"] for m in per_run] == [steps, steps]
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def die_on_first_attempts(argv):
    """Runner for the killed-worker test: seed 0 kills its worker process on its first attempt,
    seed 1 on every attempt (each death appends a line to ``RUN_ID.deaths`` beside the run)."""
    folder = pathlib.Path(argv[argv.index("--out") + 1])
    deaths = folder.with_name(folder.name + ".deaths")
    seed = argv[argv.index("--seed") + 1]
    if seed == "1" or not deaths.exists():
        with open(deaths, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return toy_main(argv)


def test_a_killed_worker_is_retried_once(tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "sw"
    manifest = sweep.sweep("prox-two-delta", [0, 1], [], ["--quick"], out=out, workers=2,
                           runner="tests.test_sweep:die_on_first_attempts")
    runs = manifest["runs"]
    assert len((out / "seed=0.deaths").read_text().split()) == 1
    assert runs["seed=0"]["status"] == "done" and runs["seed=0"]["attempts"] == 2
    assert (out / "seed=0" / "metrics.json").exists()
    assert len((out / "seed=1.deaths").read_text().split()) == 2     # retried once, not more
    assert runs["seed=1"]["status"] == "failed" and "worker process died" in runs["seed=1"]["error"]
    assert runs["seed=1"]["attempts"] == 2
    assert list(json.loads((out / "summary.json").read_text())["variants"]["default"]["runs"]) == ["seed=0"]


def record_worker_settings(argv):
    """Runner that records, as its metrics, what the process it runs in gives it."""
    import dask
    from refimpl.threads import thread_budget
    folder = pathlib.Path(argv[argv.index("--out") + 1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({
        "profiler": int(dask.config.get("distributed.worker.profile.enabled", True)),
        "thread_budget": thread_budget(), "pid": os.getpid()}))
    return 0


def test_the_local_clusters_workers_run_single_threaded_without_the_profiler(tmp_path):
    """The sweep's LocalCluster: each worker's thread budget is 1 (Dask's nanny sets
    OMP_NUM_THREADS=1, which refimpl.threads reads) and Dask's statistical profiler is off
    (docs/performance.md); this process's own configuration is untouched."""
    pytest.importorskip("distributed")
    import dask
    out = tmp_path / "sw"
    manifest = sweep.sweep("prox-two-delta", [0, 1], [], ["--quick"], out=out, workers=2,
                           runner="tests.test_sweep:record_worker_settings")
    assert {v["status"] for v in manifest["runs"].values()} == {"done"}
    for seed in (0, 1):
        m = json.loads((out / f"seed={seed}" / "metrics.json").read_text())
        assert m == {"profiler": 0, "thread_budget": 1, "pid": m["pid"]} and m["pid"] != os.getpid()
    assert dask.config.get("distributed.worker.profile.enabled") is True


def test_progress_heartbeat_prints_while_runs_are_silent():
    """Dask runs log to files: the sweep itself prints its state every ``every`` seconds meanwhile."""
    import io
    out = io.StringIO()
    p = sweep.Progress(total=3, skipped=0, slots=2, stream=out)
    with p.heartbeat(every=0.05):
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2 and all(l.startswith("sweep: 0/3 done") and "2 running" in l for l in lines)
    n = len(lines)
    time.sleep(0.15)
    assert len(out.getvalue().splitlines()) == n          # stopped with the block


def _event(folder, elapsed, left, when=None):
    import json
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "progress.json").write_text(json.dumps({"iteration": 1, "iterations": 9, "elapsed_seconds": elapsed,
                                                      "left_seconds": left, "time": when or time.time()}))


def test_eta_before_the_first_run_ends_comes_from_the_runs_own_estimates(tmp_path):
    """The ETA is the longest time left of the running runs plus the queued ones in rounds of
    ``slots``, each as long as the running ones' mean (elapsed + left), read from the runs' progress
    events; the throughput of the finished runs only when no running run has an estimate."""
    import io
    folders = {f"seed={i}": tmp_path / f"seed={i}" for i in range(5)}
    p = sweep.Progress(total=5, skipped=0, slots=2, stream=io.StringIO(), folders=folders)
    assert p.line().endswith("ETA ?")                               # nothing has started
    _event(folders["seed=0"], 120, 120)
    _event(folders["seed=1"] / "wgan-gp-seed1", 60, 3720)           # a multi-run experiment's run, one level down
    _event(folders["seed=2"], 5, None)                              # no estimate yet: left out
    # running: (120 s, 120 s) and (60 s, 3720 s); mean run 2010 s; 3 queued -> ceil(3 / 2) rounds
    assert sweep.run_estimate(folders["seed=1"]) == (60, 3720)
    assert sweep.run_estimate(folders["seed=2"]) is None
    assert p.line().endswith(f"ETA ~{sweep.fmt_duration(3720 + 2 * 2010)} (from the runs' own estimates)")
    p.update("done", "seed=1")          # still the running run's estimate: 120 s + ceil(3 / 2) x 240 s
    assert p.line().endswith(f"ETA ~{sweep.fmt_duration(120 + 2 * 240)} (from the runs' own estimates)")
    p.update("done", "seed=0")          # no running run has an estimate: the throughput decides
    assert "(from the runs' own estimates)" not in p.line() and "ETA ~" in p.line()
    p2 = sweep.Progress(total=5, skipped=0, slots=2, stream=io.StringIO(), folders=folders)
    p2.started = time.time() + 60                                   # events older than the sweep: ignored
    assert p2.line().endswith("ETA ?")


def test_a_run_writes_its_progress_events_and_the_sweep_reads_them(tmp_path):
    """train_run writes the loop's last progress event to progress.json (the printed line is formatted
    from the same event); the sweep's estimate is that event's elapsed and left seconds."""
    import json
    from toy.__main__ import main
    since = time.time()
    out = tmp_path / "run"
    assert main(["wgan-gp-grid", "--quick", "--iters", "4", "--out", str(out)]) == 0
    event = json.loads((out / "progress.json").read_text())
    assert event["iteration"] == event["iterations"] == 4 and event["left_seconds"] == 0.0
    assert event["status"] == "finished" and "train_cpu_seconds" not in event["metrics"]      # one name, one value
    assert event["elapsed_seconds"] > 0 and event["time"] >= since and "critic_loss" in event["metrics"]
    assert sweep.run_estimate(out, since) == (event["elapsed_seconds"], 0.0)
    assert sweep.run_estimate(out, time.time() + 60) is None


@pytest.mark.slow
def test_benchmark_script_prints_every_side_and_the_bound(capsys):
    """python -m toy.bench_sweep end to end on the smallest workload (numbers: docs/performance.md)."""
    pytest.importorskip("distributed")
    from toy import bench_sweep
    assert bench_sweep.main(["--seeds", "0-1", "--workers", "2", "wgan-gp-ring", "--quick", "--iters", "1"]) == 0
    out = capsys.readouterr().out
    assert "serial, 1 thread:" in out and "dask, 2 workers:" in out and "2 plain processes:" in out
    assert "bound for equal runs without overhead 0.50" in out and "ratio dask / fastest serial" in out
    assert "dask / 2 plain processes" in out and "for 2 runs" in out


def test_benchmark_script_refuses_bad_flags_in_one_line_before_any_run(monkeypatch, capsys):
    """python -m toy.bench_sweep: a bad seed list, experiment name, worker count or experiment flag
    exits 2 with one line on stderr, and no side (no run, no cluster) starts."""
    from toy import bench_sweep

    def no_run(*a, **k):
        raise AssertionError("a benchmark side started")
    monkeypatch.setattr(bench_sweep, "command_side", no_run)
    monkeypatch.setattr(bench_sweep, "plain_processes", no_run)
    for argv, says in [(["--seeds", "x"], "--seeds"), (["--seeds", "3-1"], "--seeds"),
                       (["nosuch"], "unknown experiment 'nosuch'"), (["--iters", "5"], "experiment NAME"),
                       (["--workers", "0"], "--workers must be >= 1"), (["--workers", "-1"], "--workers"),
                       (["--workers", "x"], "--workers"),
                       (["wgan-gp-ring", "--bogus"], "--bogus"), (["wgan-gp-ring", "--lam", "-1"], "--lam"),
                       (["wgan-gp-ring", "--seed", "3"], "--seed"),
                       (["wgan-gp-ring", "--threads", "2"], "--threads"), (["wgan-gp-ring", "--threads=2"], "--threads"),
                       (["w1fe-ring", "--objective", "dragan"], "--objective")]:
        with pytest.raises(SystemExit) as e:
            bench_sweep.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2, argv
        assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err, (argv, err)
    monkeypatch.setattr(bench_sweep, "dask_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        bench_sweep.main([])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "needs Dask" in err


def test_benchmark_control_side_that_fails_says_why_and_leaves_no_process(monkeypatch, tmp_path):
    """A control process that exits non-zero: RuntimeError with its status and the end of its output,
    raised only after every control process has ended (their folder is removed next)."""
    from toy import bench_sweep
    started = []
    real_popen = bench_sweep.subprocess.Popen

    def popen(*a, **k):
        started.append(real_popen(*a, **k))
        return started[-1]
    monkeypatch.setattr(bench_sweep.subprocess, "Popen", popen)
    monkeypatch.setattr(bench_sweep, "_SHARE", "import sys, time\nprint('boom')\n"
                                               "time.sleep(0 if sys.argv[1].endswith('-0.json') else 1); sys.exit(3)")
    with pytest.raises(RuntimeError, match=r"status 3: boom"):
        bench_sweep.plain_processes("wgan-gp-ring", [0, 1], ["--quick"], 2, tmp_path)
    assert len(started) == 2 and all(p.poll() is not None for p in started)


def test_the_sweep_folder_is_never_a_users_or_another_experiments(tmp_path, capsys):
    """Nothing a user produced is overwritten: a non-empty folder without a sweep, or another
    experiment's sweep, is refused (exit 2, one line) before anything is written."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.csv").write_text("my notes")
    assert toy_main(["sweep", "prox-two-delta", "--quick", "--seeds", "0", "--workers", "0", "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty and holds no sweep (summary.csv)" in err
    assert sorted(p.name for p in mine.iterdir()) == ["summary.csv"] and (mine / "summary.csv").read_text() == "my notes"
    out = tmp_path / "sw"
    assert toy_main(["sweep", "prox-two-delta", "--quick", "--seeds", "0", "--workers", "0", "--out", str(out)]) == 0
    before = (out / "sweep.json").read_text()
    capsys.readouterr()
    assert toy_main(["sweep", *GAN, "--seeds", "0", "--workers", "0", "--out", str(out)]) == 2
    assert "holds a sweep of prox-two-delta, not wgan-gp-ring" in capsys.readouterr().err
    assert (out / "sweep.json").read_text() == before


def test_flag_order_does_not_redo_runs_and_old_aggregates_are_kept(tmp_path, capsys):
    out = tmp_path / "sw"
    base = ["sweep", "prox-two-delta", "--seeds", "0", "--workers", "0", "--out", str(out)]
    assert toy_main([*base, "--quick", "--iters", "3"]) == 0
    stamp = (out / "seed=0" / "metrics.json").stat().st_mtime_ns
    old_summary = (out / "summary.json").read_text()
    capsys.readouterr()
    assert toy_main([*base, "--iters=3", "--quick"]) == 0               # same flags, other order and spelling
    assert "1 finished before" in capsys.readouterr().err
    assert (out / "seed=0" / "metrics.json").stat().st_mtime_ns == stamp
    assert sweep._same_args(["prox-two-delta", "--seed", "0", "--out", "a", "--quick", "--iters", "3"],
                            ["prox-two-delta", "--seed", "0", "--out", "b", "--iters=3", "--quick"])
    assert not sweep._same_args(["prox-two-delta", "--seed", "0", "--out", "a", "--iters", "3"],
                                ["prox-two-delta", "--seed", "0", "--out", "a", "--iters", "4"])
    assert toy_main([*base, "--quick", "--iters", "4"]) == 0            # other arguments: old ones kept aside
    err = capsys.readouterr().err
    assert "aggregates are kept in" in err and (out / "seed=0.old-1").is_dir()
    assert (out / "aggregates.old-1" / "summary.json").read_text() == old_summary
    assert (out / "summary.json").exists() and not (out / "aggregates.old-2").exists()
    assert json.loads((out / "seed=0" / "metrics.json").read_text())["steps"] == 4


def test_run_fingerprints_are_settings_not_metrics():
    flat = aggregate.numeric_metrics({"w1": 0.5, "fingerprint": {"eval_every": 2, "exact_every": 3}})
    assert flat == {"w1": 0.5}


# ----------------------------------------------------------------------------- the sweep as a client
def test_the_sweep_and_its_benchmark_never_import_the_command_line(tmp_path):
    """toy.sweep, toy.sweep_task and toy.bench_sweep use toy.cli, never toy.__main__: importing them
    and running one task through the toy runner leave it out of sys.modules (no import cycle)."""
    code = ("import json, sys\n"
            "import toy.sweep, toy.sweep_task, toy.bench_sweep\n"
            "imported = 'toy.__main__' in sys.modules\n"
            "out = sys.argv[1]\n"
            "res = toy.sweep_task.run_task({'argv': ['prox-two-delta', '--seed', '0', '--out', out + '/run', '--quick'],"
            " 'folder': out + '/run', 'log': out + '/run.log', 'attempts': out + '/run.attempts',"
            " 'runner': toy.sweep.DEFAULT_RUNNER})\n"
            "print(json.dumps([imported, res['status'], 'toy.__main__' in sys.modules]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [False, "done", False], (tmp_path / "run.log").read_text()
    assert (tmp_path / "run" / "metrics.json").exists()


def test_the_toy_runner_calls_the_command_line_layer(tmp_path, monkeypatch):
    """A toy task is toy.cli.run(NAME, flags): no "module:function" string is loaded."""
    from toy import cli, sweep_task
    calls = []

    def run(name, argv, **kw):
        calls.append((name, list(argv)))
        return write_metrics([name, *argv])
    monkeypatch.setattr(cli, "run", run)
    monkeypatch.setattr(sweep_task.importlib, "import_module", lambda *a: pytest.fail("a runner was imported"))
    for runner in (sweep.DEFAULT_RUNNER, "toy.__main__:main"):
        folder = tmp_path / runner
        res = sweep.run_task({"argv": ["x", "--seed", "0", "--out", str(folder)], "folder": str(folder),
                              "log": str(tmp_path / f"{runner}.log"), "attempts": str(tmp_path / f"{runner}.n"),
                              "runner": runner})
        assert res["status"] == "done" and calls[-1] == ("x", ["--seed", "0", "--out", str(folder)])


def test_a_sweep_folder_whose_manifest_names_the_entry_point_is_relaunched_as_the_toy_runners(tmp_path, capsys):
    """A manifest recording the runner as "toy.__main__:main" is the toy runner's: its finished runs
    are skipped on relaunch; a manifest of another runner's runs has them redone, the old ones kept."""
    out = tmp_path / "sw"
    base = ["sweep", "prox-two-delta", "--seeds", "0", "--workers", "0", "--quick", "--out", str(out)]
    assert toy_main(base) == 0
    stamp = (out / "seed=0" / "metrics.json").stat().st_mtime_ns
    manifest = _manifest(out)
    assert manifest["runner"] == sweep.DEFAULT_RUNNER
    sweep.write_json(out / "sweep.json", {**manifest, "runner": "toy.__main__:main"})
    capsys.readouterr()
    assert toy_main(base) == 0
    assert "1 finished before" in capsys.readouterr().err
    assert (out / "seed=0" / "metrics.json").stat().st_mtime_ns == stamp
    assert _manifest(out)["runner"] == sweep.DEFAULT_RUNNER
    assert sweep._same_args(manifest["runs"]["seed=0"]["argv"], manifest["runs"]["seed=0"]["argv"], "toy.__main__:main")
    sweep.write_json(out / "sweep.json", {**manifest, "runner": "tests.test_sweep:write_metrics"})
    assert toy_main(base) == 0
    assert "0 finished before" in capsys.readouterr().err and (out / "seed=0.old-1" / "metrics.json").exists()
