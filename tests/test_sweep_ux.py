"""``python -m toy sweep`` as a user meets it: Ctrl-C leaves runs *interrupted* (resumable), not
failed, and the relaunch resumes them; one duration format; no interval where n cannot decide,
and an interval cut to the quantity's range only with a flag; the results on stdout at the end.

The Ctrl-C tests send SIGINT to the sweep's own process group (as a terminal does; the sweep is
started in a session of its own, as with ``set -m``) and run ``wgan-gp-ring --quick``.
"""
import csv
import json
import math
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from refimpl.progress import fmt_time
from toy import aggregate, sweep
from toy.__main__ import main as toy_main

ROOT = pathlib.Path(__file__).resolve().parents[1]
T_975 = {1: 12.7062, 2: 4.3027}         # two-sided 97.5% quantiles of Student's t, printed tables
RING = ["wgan-gp-ring", "--seeds", "0-1", "--quick"]


def _manifest(out):
    return json.loads((out / "sweep.json").read_text())


def _last_status(err):
    return [ln for ln in err.splitlines() if ln.startswith("sweep: ") and " done (" in ln][-1]


# ----------------------------------------------------------------------------- 1. interrupted, not failed
def _interrupt(args, out, started, timeout=180):
    """Launch ``python -m toy sweep ARGS --out OUT`` in a process group of its own, send SIGINT to
    the group once every path of ``started(out)`` exists; returns (exit status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "toy", "sweep", *args, "--out", str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not all(f.exists() for f in started(out)):
            assert p.poll() is None, f"the sweep ended before it was interrupted: {p.communicate()}"
            assert time.monotonic() < deadline, "the runs did not start"
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGINT)
        stdout, stderr = p.communicate(timeout=timeout)
        return p.returncode, stdout, stderr
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        try:
            os.killpg(p.pid, signal.SIGKILL)       # what the sweep started (Dask workers), if anything is left
        except ProcessLookupError:
            pass


def test_ctrl_c_of_a_serial_sweep_counts_the_run_interrupted_and_the_relaunch_resumes_it(tmp_path, capsys):
    out = tmp_path / "sw"
    args = [*RING, "--iters", "20", "--workers", "0"]
    rc, stdout, err = _interrupt(args, out, lambda o: [o / "seed=0" / "progress.json"])
    assert rc == 130, err
    assert "  interrupted: seed=0 (interrupted (Ctrl-C))" in err
    line = _last_status(err)
    assert re.search(r"0/2 done \(0 skipped\), 0 running, 1 queued, 0 failed, 1 interrupted \| \S+ elapsed, stopped$",
                     line), line
    assert "failed" not in err.replace("0 failed", "")
    runs = _manifest(out)["runs"]
    assert (runs["seed=0"]["status"], runs["seed=1"]["status"]) == ("interrupted", "queued")
    assert sweep.has_checkpoint(out / "seed=0") and not (out / "seed=0" / "metrics.json").exists()
    assert stdout == ""                                  # no results: nothing was aggregated

    assert toy_main(["sweep", *args, "--out", str(out)]) == 0          # the same command again
    got = capsys.readouterr()
    assert "(0 finished before, 1 interrupted before: resumed)" in got.err
    attempts = [ln for ln in (out / "logs" / "seed=0.log").read_text().splitlines() if ln.startswith("== attempt")]
    assert len(attempts) == 2 and "--resume" not in attempts[0] and attempts[1].endswith("--resume")
    assert json.loads((out / "seed=0" / "metrics.json").read_text())["iterations"] == 20
    assert {v["status"] for v in _manifest(out)["runs"].values()} == {"done"}
    assert "default" in got.out and str(out / "summary.csv") in got.out


def test_ctrl_c_of_a_dask_sweep_counts_the_running_runs_interrupted(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "sw"
    rc, stdout, err = _interrupt([*RING, "--iters", "300", "--workers", "2"], out,
                                 lambda o: [o / f"seed={s}" / "progress.json" for s in (0, 1)])
    assert rc == 130, err
    line = _last_status(err)
    assert re.search(r"0/2 done \(0 skipped\), 0 running, 0 queued, 0 failed, 2 interrupted \| \S+ elapsed, stopped$",
                     line), line
    runs = _manifest(out)["runs"]
    assert {(v["status"], v["error"]) for v in runs.values()} == {("interrupted", "interrupted (Ctrl-C)")}
    assert stdout == ""


def terminated(argv):
    """Runner standing in for a run that caught SIGTERM and checkpointed (exit status 143)."""
    return 143


def test_a_run_ended_by_sigterm_is_interrupted_and_stops_a_serial_sweep(tmp_path, capsys):
    out = tmp_path / "sw"
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep("x", [0, 1], out=out, workers=0, runner="tests.test_sweep_ux:terminated")
    runs = _manifest(out)["runs"]
    assert runs["seed=0"]["status"] == "interrupted" and runs["seed=0"]["error"] == "interrupted (SIGTERM)"
    assert runs["seed=1"]["status"] == "queued"                        # not started: the sweep stopped
    assert _last_status(capsys.readouterr().err).startswith(
        "sweep: 0/2 done (0 skipped), 0 running, 1 queued, 0 failed, 1 interrupted |")


# ----------------------------------------------------------------------------- 2. one duration format
def test_every_duration_of_the_sweep_is_the_runs_format(tmp_path):
    """The runs print refimpl.progress.fmt_time (``1m36s``, ``1h02m``); so does the sweep's line."""
    import io
    assert sweep.fmt_duration is fmt_time
    folders = {f"seed={i}": tmp_path / f"seed={i}" for i in range(5)}
    p = sweep.Progress(total=5, skipped=0, slots=2, stream=io.StringIO(), folders=folders)
    p.t0 -= 3725                                                        # 1 h 2 min 5 s ago
    for rid, (el, left) in (("seed=0", (120, 120)), ("seed=1", (60, 3720))):
        folders[rid].mkdir()
        (folders[rid] / "progress.json").write_text(json.dumps({"elapsed_seconds": el, "left_seconds": left,
                                                                "time": time.time()}))
    # 3720 s left + 2 rounds of the mean run (2010 s): 7740 s
    assert p.line().endswith("| 1h02m elapsed, ETA ~2h09m (from the runs' own estimates)"), p.line()
    done = sweep.Progress(total=2, skipped=2, slots=1, stream=io.StringIO())
    assert done.line().endswith("| 0m00s elapsed, ETA 0m00s"), done.line()


# ----------------------------------------------------------------------------- 3. undecided at n < 3
def counts(argv):
    """Runner standing in for an experiment: per seed a count of modes (0, 2, 0), a W1 and a paired
    difference of W1s (negative: its name ends in w1, but it is no distance)."""
    folder = pathlib.Path(argv[argv.index("--out") + 1])
    seed = int(argv[argv.index("--seed") + 1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"modes": [0, 2, 0][seed], "w1": [0.5, 0.6, 0.8][seed],
                                                     "paired": {"w1": [-0.3, -0.1, 0.2][seed]}}))
    return 0


def _t(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, T_975[n - 1] * std / math.sqrt(n)


def test_two_seeds_are_undecided_and_three_give_the_interval_clipped_to_the_range_with_a_flag(tmp_path):
    two, three = tmp_path / "two", tmp_path / "three"
    sweep.sweep("x", [0, 1], out=two, workers=0, runner="tests.test_sweep_ux:counts")
    sweep.sweep("x", [0, 1, 2], out=three, workers=0, runner="tests.test_sweep_ux:counts")

    s2 = json.loads((two / "summary.json").read_text())["variants"]["default"]["metrics"]
    for key, vals in (("modes", [0, 2]), ("w1", [0.5, 0.6]), ("paired/w1", [-0.3, -0.1])):
        mean, std, half = _t(vals)
        assert half > 0 and (key != "modes" or mean - half < 0)    # the t-interval a sweep of n = 2 gave before
        s = s2[key]
        assert (s["n"], s["ci_low"], s["ci_high"], s["interval"]) == (2, None, None, "undecided (n = 2 < 3)")
        assert s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(std)   # n, mean and spread stay
    with open(two / "summary.csv", newline="") as fh:
        rows = {r["metric"]: r for r in csv.DictReader(fh)}
    assert (rows["modes"]["ci_low"], rows["modes"]["ci_high"], rows["modes"]["interval"]) == \
        ("", "", "undecided (n = 2 < 3)")

    s3 = json.loads((three / "summary.json").read_text())["variants"]["default"]["metrics"]
    mean, std, half = _t([0, 2, 0])                                  # mean 0.67, half 2.87: low end -2.2
    assert mean - half < 0
    assert s3["modes"]["ci_low"] == 0.0 and s3["modes"]["ci_high"] == pytest.approx(mean + half, rel=5e-5)
    assert s3["modes"]["interval"] == "t, clipped to [0, inf)"
    for key, vals in (("w1", [0.5, 0.6, 0.8]), ("paired/w1", [-0.3, -0.1, 0.2])):   # inside its range; no range
        mean, std, half = _t(vals)
        assert (s3[key]["ci_low"], s3[key]["ci_high"]) == pytest.approx((mean - half, mean + half), rel=5e-5)
        assert s3[key]["interval"] == "t"
    assert s3["paired/w1"]["ci_low"] < 0                               # a difference is not cut at 0

    # a fraction lies in [0, 1]: clipped at both ends where the interval crosses them, and says so
    t = aggregate.t_interval([0.0, 1.0, 1.0])
    assert t["ci_low"] < 0 and t["ci_high"] > 1
    d = aggregate.decided(t, aggregate.domain("baseline/high_quality", [0.0, 1.0, 1.0]))
    assert (d["ci_low"], d["ci_high"], d["interval"]) == (0.0, 1.0, "t, clipped to [0, 1]")
    assert aggregate.decided(aggregate.t_interval([2.0]))["interval"] == "undecided (n = 1 < 3)"


# ----------------------------------------------------------------------------- 4. results on stdout
def test_the_sweep_prints_its_results_table_on_stdout_and_its_progress_on_stderr(tmp_path, capsys):
    out = tmp_path / "sw"
    assert toy_main(["sweep", "prox-two-delta", "--seeds", "0-2", "--set", "h=0.5,1", "--quick", "--workers", "0",
                     "--out", str(out)]) == 0
    got = capsys.readouterr()
    lines = got.out.splitlines()
    assert lines[0] == "prox-two-delta: mean [95% t-interval] over seeds", lines
    assert lines[1].split() == ["variant", "n", "seeds", "w_prox_steps_to_target_predicted"]
    assert lines[2].split() == ["h=0.5", "3", "0-2", "6", "[6,", "6]"]           # ceil(d0 / h), d0 = 3, every seed
    assert lines[3].split() == ["h=1", "3", "0-2", "3", "[3,", "3]"]
    assert lines[4] == f"summary of every metric: {out / 'summary.csv'} (and summary.json, curves.csv)"
    assert len(lines) == 5
    assert "sweep: 6/6 done" in got.err and "sweep:" not in got.out and "variant" not in got.err


def test_the_results_table_names_each_group_and_says_undecided():
    stats = {"modes": aggregate.decided(aggregate.t_interval([0.0, 3.0]), (0.0, None)),
             "w1": aggregate.decided(aggregate.t_interval([0.5, 0.6, 0.8]), (0.0, None)),
             "baseline/modes": aggregate.decided(aggregate.t_interval([1.0, 0.0, 5.0]), (0.0, None)),
             "steps": aggregate.decided(aggregate.t_interval([4.0, 4.0, 4.0]))}
    table = aggregate.results_table({"variants": {"lam=1": {"metrics": stats}}}, {"lam=1": [0, 1, 2, 7]})
    mean, _, half = _t([0.5, 0.6, 0.8])
    assert [ln.split("  ")[0].strip() for ln in table] == ["variant", "lam=1", "lam=1 (baseline)"]
    assert table[0].split() == ["variant", "n", "seeds", "modes", "w1"]              # the main metrics only
    assert table[1].split() == ["lam=1", "3", "0-2,7", "1.5", "(sd", "2.1)", "undecided", "(n=2)",
                                f"{mean:.4g}", f"[{mean - half:.4g},", f"{mean + half:.4g}]"]
    _, _, half = _t([1.0, 0.0, 5.0])                                  # mean 2, low end 2 - 6.7 < 0: clipped
    assert table[2].split() == ["lam=1", "(baseline)", "3", "0-2,7", "2", "[0,", f"{2 + half:.4g}]*", "-"]
