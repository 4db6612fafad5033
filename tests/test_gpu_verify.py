"""gpu.verify (dry run), gpu.bench's FLOP count and output files, the per-test time limit, gpu.launches.

The dry run is the GPU verification script with the NumPy backend and tiny sizes: it
runs in every CI run so the script cannot rot before a GPU runs it (docs/gpu.md).
"""
import collections
import csv
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _fake_wheel(folder):
    """A minimal valid wheel (one empty module), enough for ``pip install --dry-run --no-index``."""
    folder.mkdir()
    path = folder / "verifyprobe-1.0-py3-none-any.whl"
    info = "verifyprobe-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("verifyprobe.py", "")
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: verifyprobe\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", f"verifyprobe.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return folder


def test_verify_dry_run_writes_logs_junit_and_benchmark(tmp_path):
    pytest.importorskip("sklearn", reason="the train step uses the offline digits data (scikit-learn)")
    from gpu.verify import main
    out = tmp_path / "verify"
    assert main(["--dry-run", "--out", str(out), "--wheels", str(_fake_wheel(tmp_path / "wheels"))]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["ok"] and s["dry_run"]
    assert [r["step"] for r in s["steps"]] == ["install", "environment", "tests", "train", "bench"]
    assert all(r["status"] == "passed" for r in s["steps"])
    install = s["steps"][0]["command"]
    assert "--no-index" in install and "--dry-run" in install and "verifyprobe-1.0-py3-none-any.whl" in install
    assert "verifyprobe" in (out / "install.log").read_text()
    assert s["steps"][2]["junit"] == {"tests": 2, "failures": 0, "errors": 0, "skipped": 0}
    env = json.loads((out / "environment.json").read_text())
    assert env["numpy"] == np.__version__ and "nvidia_smi" in env
    m = json.loads((out / "train" / "metrics.json").read_text())
    assert m["iterations"] == 3 and np.isfinite(m["w1_pixels"])
    b = json.loads((out / "bench" / "bench.json").read_text())
    assert b["meta"]["backend"] == "numpy" and b["meta"]["dry_run"] is True
    for key in ("device", "driver", "cuda_runtime", "numpy", "cupy", "torch", "refimpl", "random_source"):
        assert key in b["meta"]
    assert {r["workload"] for r in b["rows"]} == {"critic", "image"}
    for r in b["rows"]:
        assert r["refimpl_ms"] > 0 and r["tflops_refimpl"] > 0
        if r["torch_ms"] is not None:                       # PyTorch CPU installed: paired timings
            assert r["pairs"] == (b["meta"]["repeats"] if r["workload"] == "critic" else b["meta"]["image_repeats"])
            assert r["ratio_q1"] <= r["ratio"] <= r["ratio_q3"] and 0 <= r["pairs_slower"] <= r["pairs"]
    with open(out / "bench" / "bench.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and rows[0]["backend"] == "numpy" and rows[0]["device"] and "tflops_refimpl" in rows[0]


def test_verify_refuses_bad_folders(tmp_path, capsys):
    from gpu.verify import main
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["--dry-run", "--out", str(tmp_path / "o"), "--wheels", str(tmp_path / "empty")])
    assert e.value.code == 2 and "no .whl files" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("a user's file")
    with pytest.raises(SystemExit) as e:
        main(["--dry-run", "--out", str(tmp_path / "full")])
    assert e.value.code == 2 and "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "a user's file"


def test_step_past_its_limit_is_stopped_and_reported(tmp_path):
    from gpu.verify import run_step
    rec = run_step("sleep", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                   tmp_path, 1.5)
    assert rec["status"] == "timeout" and 1.5 <= rec["seconds"] < 30
    assert "started" in (tmp_path / "sleep.log").read_text()
    assert run_step("quick", [sys.executable, "-c", "pass"], tmp_path, 30)["status"] == "passed"
    assert run_step("bad", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path, 30)["rc"] == 3


def test_per_test_time_limit_plugin(tmp_path):
    (tmp_path / "test_sleepy.py").write_text("import time\n\ndef test_sleeps():\n    time.sleep(30)\n\n"
                                            "def test_quick():\n    pass\n")
    env = {**os.environ, "REFIMPL_TEST_TIMEOUT": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "gpu.timeouts", "-p", "no:cacheprovider",
                        str(tmp_path / "test_sleepy.py")], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=60)
    assert p.returncode == 1, p.stdout
    assert "1 failed, 1 passed" in p.stdout and "ran past the per-test limit of 1 s" in p.stdout


def test_image_step_flops_count_the_products_refimpl_makes():
    """Every matrix product of one refimpl outer step, counted on array_api_strict, against the formula."""
    xps = pytest.importorskip("array_api_strict")
    from gpu.bench import image_step_flops, image_step_shapes
    from refimpl.backend import from_host
    from refimpl.train import ArrayData, GANConfig, GANMethod
    width, batch, d, latent = 6, 5, 7, 3
    A = type(xps.asarray(0.0))
    seen = []
    orig, orig_td = A.__matmul__, xps.tensordot

    def counted(a, b):
        seen.append((a.shape[0], a.shape[1], b.shape[1]))
        return orig(a, b)

    def counted_td(a, b, /, *, axes=2):
        assert axes == ([0], [0])                      # the only tensordot refimpl makes: a^T b
        seen.append((a.shape[1], a.shape[0], b.shape[1]))
        return orig_td(a, b, axes=axes)
    cfg = GANConfig(data_dim=d, latent_dim=latent, gen_hidden=(width,) * 3, critic_hidden=(width,) * 3,
                    batch_size=batch)
    m = GANMethod(cfg)
    rng = np.random.default_rng(0)
    data = ArrayData(from_host(rng.uniform(-1, 1, (50, d)), xps, "float32"))
    state = m.init_state(rng, xps, "float32")
    A.__matmul__, xps.tensordot = counted, counted_td
    try:
        m.outer_step(state, rng, data)
    finally:
        A.__matmul__, xps.tensordot = orig, orig_td
    # products with a unit dimension (the critic's 1-wide output) refimpl may do by broadcasting instead
    full = lambda shapes: collections.Counter(s for s in shapes if 1 not in s)
    assert len(seen) > 100 and full(seen) == full(image_step_shapes(width, batch, d, latent))
    got = sum(2 * a * b * c for a, b, c in seen)
    unit = sum(2 * a * b * c for a, b, c in image_step_shapes(width, batch, d, latent) if 1 in (a, b, c))
    assert abs(image_step_flops(width, batch, d, latent) - got) <= unit


def test_launch_counts_script(tmp_path, capsys):
    pytest.importorskip("array_api_strict")
    from gpu.launches import main
    assert main(["--methods", "wgan-gp,swgan", "--top", "2", "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "launches.json").read_text())["rows"]}
    assert rows["wgan-gp"]["arrays"] > 100 and rows["wgan-gp"]["namespace"] > 0
    assert rows["swgan"]["arrays"] > rows["wgan-gp"]["arrays"]
    assert "top namespace() sites" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--methods", "nope"])


@pytest.mark.parametrize("ratios", [[1.2] * 12, [0.9] * 3 + [1.1] * 9, [0.5, 2.0, 1.0, 3.0, 0.7], [1.0, 1.0]])
def test_sign_test_matches_scipys_binomial_test(ratios):
    from gpu.bench import sign_test
    slower, n, p = sign_test(ratios)
    assert slower == sum(r > 1 for r in ratios) and n == sum(r != 1 for r in ratios)
    if n:
        stats = pytest.importorskip("scipy.stats")
        assert p == pytest.approx(stats.binomtest(slower, n, 0.5).pvalue, rel=1e-12)
    else:
        assert p == 1.0


def test_a_benchmark_row_pairs_the_two_sides_and_gives_a_verdict():
    from gpu.bench import _row, verdict
    ta = [2.0, 2.2, 1.8, 2.4, 2.0, 2.6]      # seconds
    tb = [1.0, 2.0, 1.5, 2.0, 1.6, 2.0]
    r = _row("critic", 1024, 1024, ta, tb, None, None, 1024, 1e12, 1e13)
    ratios = sorted(a / b for a, b in zip(ta, tb))             # 1.1 1.2 1.2 1.25 1.3 2.0
    assert r["ratio"] == pytest.approx((ratios[2] + ratios[3]) / 2, abs=1e-4)
    assert r["refimpl_ms"] == pytest.approx(2100.0) and r["torch_ms"] == pytest.approx(1800.0)
    assert r["pairs"] == 6 and r["pairs_slower"] == 6 and r["sign_test_p"] == pytest.approx(2 / 64, abs=1e-6)
    assert r["ratio_q1"] == pytest.approx(ratios[1] + 0.25 * (ratios[2] - ratios[1]), abs=1e-4)   # inclusive:
    assert r["ratio_q3"] == pytest.approx(ratios[3] + 0.75 * (ratios[4] - ratios[3]), abs=1e-4)   # within the data
    assert verdict(r) == "not met" and r["target"] == 0.7
    assert verdict(_row("critic", 1024, 1024, [t / 2 for t in tb], ta, None, None, 1, 1.0, 1.0)) == "met"
    assert verdict(_row("critic", 1024, 1024, tb, ta, None, None, 1, 1.0, 1.0, target=1.0)) == "met"
    assert verdict(_row("critic", 1024, 1024, tb, ta, None, None, 1, 1.0, 1.0)) == "undecided"   # ratios 0.5-0.91
    assert verdict(_row("critic", 1024, 1024, ta[:4], tb[:4], None, None, 1, 1.0, 1.0)) == "undecided"  # p = 0.125
    no_peer = _row("critic", 8, 16, ta, None, None, None, 8, 1.0, 1.0)
    assert no_peer["ratio"] is None and verdict(no_peer) is None


def test_paired_times_alternate_the_two_sides():
    from gpu.bench import paired_times
    calls = []
    ta, tb = paired_times(lambda: calls.append("a"), lambda: calls.append("sa"),
                          lambda: calls.append("b"), lambda: calls.append("sb"), repeats=3, warmup=1)
    assert calls == ["a", "sa", "b", "sb"] * 2 + ["b", "sb", "a", "sa"] + ["a", "sa", "b", "sb"]
    assert len(ta) == len(tb) == 3 and all(t >= 0 for t in ta + tb)


def test_paired_times_give_each_side_its_own_time_whatever_the_order(monkeypatch):
    from gpu.bench import paired_times
    import types
    import gpu.bench as bench
    clock = [0.0]
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    ta, tb = paired_times(lambda: clock.__setitem__(0, clock[0] + 2.0), lambda: None,
                          lambda: clock.__setitem__(0, clock[0] + 5.0), lambda: None, repeats=4, warmup=0)
    assert ta == [2.0] * 4 and tb == [5.0] * 4
