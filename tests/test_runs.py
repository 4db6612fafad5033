"""The run layer (refimpl/harness) through both command lines: every lifecycle fault of issue 16.

Signals are tested in subprocesses; everything else runs ``main(argv)`` in-process on tiny runs.
"""
import errno
import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from refimpl import checkpoint
from refimpl.harness import MARKER
from toy.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--quick", "--batch-size", "16"]


def _grid(out, *extra, name="wgan-gp-grid"):
    return main([name, *TINY, "--out", str(out), *extra])


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def _env():
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _cheap_evaluate(samples, dataset, rng, **kw):
    """Stands in for the exact-W1 protocol (seconds per call) where only the lifecycle is tested."""
    from refimpl.backend import to_numpy
    return {"w1": float(np.mean(np.abs(to_numpy(samples)))), "modes": 0, "high_quality": 0.0}


@pytest.fixture(autouse=True)
def cheap_eval(monkeypatch):
    import toy.gan
    monkeypatch.setattr(toy.gan, "evaluate", _cheap_evaluate)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A completed 2-iteration wgan-gp-grid run (shared, read-only for the tests that use it)."""
    import toy.gan
    out = tmp_path_factory.mktemp("done") / "run"
    old, real = os.umask(0o022), toy.gan.evaluate
    toy.gan.evaluate = _cheap_evaluate
    try:
        assert _grid(out, "--iters", "2", "--threads", "1") == 0
    finally:
        os.umask(old)
        toy.gan.evaluate = real
    return out


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- outputs
def test_outputs_follow_the_umask_and_record_the_threads(done):
    for f in ("metrics.json", "curve.csv", "samples.npy", "samples.png", "curves.png", "checkpoint.npz", MARKER):
        assert (done / f).stat().st_mode & 0o777 == 0o644, f
    m = json.loads((done / "metrics.json").read_text())
    assert m["threads"] == 1 and m["iterations"] == 2


# ----------------------------------------------------------------------------- 1. interrupted evaluations
def test_interrupt_during_final_evaluation_is_recovered(tmp_path, monkeypatch, capsys):
    import toy.gan
    out = tmp_path / "r"
    real = toy.gan.evaluate
    calls = []

    def once(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(toy.gan, "evaluate", once)
    assert _grid(out, "--iters", "2") == 130
    assert "resume with: python -m toy wgan-gp-grid" in capsys.readouterr().err
    assert checkpoint.load(out / "checkpoint.npz")["iteration"] == 2 and not (out / "metrics.json").exists()
    event = json.loads((out / "progress.json").read_text())         # a stopped run does not read as running
    assert event["status"] == "interrupted" and event["iteration"] == 2 and event["left_seconds"] is None
    assert event["elapsed_seconds"] > 0 and set(event["metrics"]) >= {"critic_loss"}

    from refimpl.train import GANMethod

    def no_training(*a):
        raise AssertionError("a completed run must not train again")
    monkeypatch.setattr(GANMethod, "outer_step", no_training)
    assert _grid(out, "--iters", "2", "--resume") == 0
    rows = (out / "curve.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("2,")
    m = json.loads((out / "metrics.json").read_text())
    assert m["iterations"] == 2 and "w1" in m
    # resuming the completed run again rewrites its outputs and trains nothing
    (out / "metrics.json").unlink()
    assert _grid(out, "--iters", "2", "--resume") == 0
    assert json.loads((out / "metrics.json").read_text())["w1"] == m["w1"]


# ----------------------------------------------------------------------------- 2, 14. fingerprints
def test_resume_refuses_another_experiments_run(done, tmp_path, capsys):
    out = _copy(done, tmp_path / "x")
    assert _grid(out, "--iters", "3", "--resume", name="wgan-gp-ring") == 2
    assert "holds a run of wgan-gp-grid, not wgan-gp-ring" in _err(capsys)
    (out / MARKER).unlink()                           # the checkpoint's fingerprint refuses it too
    assert _grid(out, "--iters", "3", "--resume", name="wgan-gp-ring") == 2
    line = _err(capsys)
    assert "experiment: 'wgan-gp-grid' -> 'wgan-gp-ring'" in line and "dataset: 'grid25' -> 'ring8'" in line
    assert _grid(out, "--iters", "3", "--resume", "--lam", "5") == 2
    line = _err(capsys)
    assert "config.lam: 10.0 -> 5.0" in line and "batch_size" not in line and len(line) < 300
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "grid25"


def test_a_full_run_refuses_to_resume_a_quick_runs_checkpoint(done, tmp_path, capsys):
    """--quick writes to the full run's default folder; its checkpoint must not seed the full run."""
    out = _copy(done, tmp_path / "x")
    full = ["wgan-gp-grid", "--batch-size", "16", "--out", str(out), "--iters", "3", "--resume"]
    assert checkpoint.load(out / "checkpoint.npz")["fingerprint"]["quick"] is True       # TINY is --quick
    assert main(full) == 2
    assert "quick: True -> False" in _err(capsys)
    assert checkpoint.load(out / "checkpoint.npz")["iteration"] == 2          # kept as it was
    ck = checkpoint.load(out / "checkpoint.npz")
    del ck["fingerprint"]["quick"]                   # a checkpoint written before the field existed
    checkpoint.save(out / "checkpoint.npz", ck)
    assert _grid(out, "--iters", "3", "--resume") == 0


# ----------------------------------------------------------------------------- 3. fewer iterations
def test_resume_refuses_fewer_iterations(done, tmp_path, capsys):
    out = _copy(done, tmp_path / "x")
    assert _grid(out, "--iters", "1", "--resume") == 2
    assert "at iteration 2, beyond the requested 1" in _err(capsys)
    assert checkpoint.load(out / "checkpoint.npz")["iteration"] == 2


# ----------------------------------------------------------------------------- 4. ownership of --out
def test_a_run_never_overwrites_another(done, tmp_path, capsys):
    out = _copy(done, tmp_path / "x")
    before = (out / "metrics.json").read_bytes()
    assert main(["prox-two-delta", "--quick", "--out", str(out)]) == 2
    assert "not empty (it holds a run of wgan-gp-grid)" in _err(capsys)
    assert _grid(out, "--iters", "2") == 2
    assert "pass --resume" in _err(capsys)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["prox-two-delta", "--quick", "--out", str(foreign)]) == 2
    assert "files this experiment did not write" in _err(capsys)
    assert (out / "metrics.json").read_bytes() == before and (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as e:
        main(["prox-two-delta", "--out", ""])
    assert e.value.code == 2 and "empty path" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 5. OS errors
def test_out_below_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["prox-two-delta", "--quick", "--out", str(tmp_path / "f" / "sub")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"python -m toy prox-two-delta: error: --out {tmp_path / 'f' / 'sub'}: cannot create the folder: Not a directory"
    from toy.__main__ import main as toy_main
    assert toy_main(["sweep", "prox-two-delta", "--seeds", "0", "--quick", "--out", str(tmp_path / "f" / "sub")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"error: --out {tmp_path / 'f' / 'sub'}: cannot create the sweep folder: Not a directory"


def test_shape_errors_print_tuples():
    import numpy as np
    from refimpl import validation as checks
    with pytest.raises(ValueError, match=r"^x must have shape \(50,\), got \(50, 2\)$"):
        checks.array(np.zeros((50, 2)), "x", shape=(50,))
    with pytest.raises(ValueError, match=r"^x must have shape \(\*, 2\), got \(50,\)$"):
        checks.array(np.zeros(50), "x", shape=(None, 2))


def test_read_only_filesystem_is_one_line(tmp_path, capsys, monkeypatch):
    def readonly(self, *a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
    monkeypatch.setattr(pathlib.Path, "mkdir", readonly)
    assert main(["prox-two-delta", "--quick", "--out", str(tmp_path / "ro")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"python -m toy prox-two-delta: error: --out {tmp_path / 'ro'}: cannot create the folder: Read-only file system"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the file being synced")
def test_full_disk_keeps_the_last_checkpoint_and_removes_the_temp(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    real, seen = os.fsync, []

    def fsync(fd):
        if ".checkpoint.npz." in os.readlink(f"/proc/self/fd/{fd}"):
            seen.append(fd)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    assert _grid(out, "--iters", "3", "--checkpoint-every", "1") == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == f"python -m toy wgan-gp-grid: error: {out / 'checkpoint.npz'}: No space left on device"
    assert checkpoint.load(out / "checkpoint.npz")["iteration"] == 1
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(os, "fsync", real)
    assert _grid(out, "--iters", "3", "--resume") == 0


# ----------------------------------------------------------------------------- 6. non-finite loss
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_non_finite_loss_message_is_true_and_no_folder_is_left(tmp_path, capsys):
    out = tmp_path / "nf"
    assert _grid(out, "--iters", "3", "--lr-critic", "1e30", "--lr-gen", "1e30") == 2
    line = _err(capsys)
    assert "non-finite" in line and "no checkpoint was written" in line
    assert not out.exists()


# ----------------------------------------------------------------------------- 7, 16. bad checkpoints
@pytest.mark.parametrize("payload", [[1, 2], {"iteration": 3, "other": 1}])
def test_wrong_checkpoint_is_unreadable_not_a_traceback(tmp_path, capsys, payload):
    out = tmp_path / "w"
    out.mkdir()
    (out / "checkpoint.pkl").write_bytes(pickle.dumps(payload))
    assert _grid(out, "--iters", "3", "--resume") == 2
    assert _err(capsys).startswith("python -m toy wgan-gp-grid: error: checkpoint unreadable: ")


def test_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    out, marker = tmp_path / "evil", tmp_path / "PWNED"
    out.mkdir()
    # the bytes a pickle of os.system("touch PWNED") produces, written without defining a class
    cmd = f"touch {marker}".encode()
    evil = b"\x80\x04cposix\nsystem\n\x8c" + bytes([len(cmd)]) + cmd + b"\x85R."
    (out / "checkpoint.pkl").write_bytes(evil)
    r = subprocess.run([sys.executable, "-m", "toy", "wgan-gp-grid", *TINY, "--iters", "2", "--out", str(out),
                        "--resume"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "checkpoint unreadable" in r.stderr and "refused to load posix.system" in r.stderr
    assert "Traceback" not in r.stderr and not marker.exists()
    assert not (out / "metrics.json").exists()


# ----------------------------------------------------------------------------- 8. stale temporary files
def test_stale_temporary_files_are_removed_on_start(done, tmp_path):
    out = _copy(done, tmp_path / "x")
    stale = out / ".checkpoint.pkl.k3j4h5g6.tmp"
    stale.write_bytes(b"\0" * 1000)
    assert _grid(out, "--iters", "2", "--resume") == 0
    assert not stale.exists()


# ----------------------------------------------------------------------------- 9. signals
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_checkpoint_like_ctrl_c(tmp_path, sig):
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "toy", "wgan-gp-grid", *TINY, "--iters", "100000", "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in p.stderr:                         # the first progress line: iteration 1 is done
            if line.startswith("it "):
                break
        time.sleep(0.5)
        p.send_signal(sig)
        rest = p.stderr.read()
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 128 + sig, rest
    assert "resume with: python -m toy wgan-gp-grid" in rest
    it = checkpoint.load(out / "checkpoint.npz")["iteration"]
    assert it >= 1
    assert main(["wgan-gp-grid", *TINY, "--iters", str(it + 1), "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["iterations"] == it + 1


# ----------------------------------------------------------------------------- 12. install extras
def test_missing_optional_package_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    out = tmp_path / "d"
    assert main(["wwgan-digits", "--quick", "--iters", "1", "--out", str(out)]) == 2
    line = _err(capsys)
    assert "scikit-learn" in line and ".[toy]" in line and not out.exists()


def test_toy_extra_covers_every_experiment():
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for pkg in ("matplotlib", "POT", "scipy", "scikit-learn", "threadpoolctl"):
        assert pkg in extras["toy"], pkg
    assert "threadpoolctl" in extras["test"]


# ----------------------------------------------------------------------------- per-experiment help
def test_help_shows_the_experiments_own_flags(capsys):
    with pytest.raises(SystemExit) as e:
        main(["wgan-gp-grid", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    assert "--lam" in text and "(default 10.0 (GANConfig.lam))" in " ".join(text.split()) and "3000" in text and "--threads" in text
    assert "--h " not in text and "--seeds" not in text
    assert "0 (default): at every evaluation" in " ".join(text.split())
    with pytest.raises(SystemExit):
        main(["prox-two-delta", "--help"])
    text = capsys.readouterr().out
    assert "--h H" in text and "(default 0.5)" in text and "--lam" not in text
    with pytest.raises(SystemExit) as e:
        main(["prox-two-delta", "--lam", "3"])
    assert e.value.code == 2


def test_help_defaults_match_the_experiments():
    """The --help defaults are read from the experiments' homes (tests/test_toy_help.py, per experiment)."""
    from toy import prox_two_delta, rwp_experiments, swgan_grid, w1fe_ring, wgan_gp, wwgan_digits
    from toy.registry import FLAGS
    for name, iters in (("wgan-gp-grid", wgan_gp.DEFAULT_ITERS), ("wwgan-digits", wwgan_digits.DEFAULT_ITERS),
                        ("w1fe-ring", w1fe_ring.DEFAULT_ITERS), ("swgan-grid", swgan_grid.DEFAULT_ITERS)):
        assert FLAGS[name]["iters"]().startswith(f"{iters} "), name                  # read when --help is built
    from refimpl.train import GANConfig
    g = GANConfig()
    for k in ("lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic"):
        assert FLAGS["wgan-gp-grid"][k] == f"{getattr(g, k)} (GANConfig.{k})", k          # read from the dataclass
    assert FLAGS["rwp-grid"]["batch_size"]() == str(rwp_experiments.BATCH)
    assert prox_two_delta.__doc__ and f"default {prox_two_delta.DEFAULT_H}" in prox_two_delta.__doc__


# ----------------------------------------------------------------------------- 13. the gpu command line
def test_gpu_seed_is_validated_by_name_and_leaves_nothing(tmp_path, capsys):
    from gpu.__main__ import main as gpu_main
    out = tmp_path / "g"
    with pytest.raises(SystemExit) as e:
        gpu_main(["wgan-gp", "--quick", "--backend", "numpy", "--seed", "-1", "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --seed: must be >= 0" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["wgan-gp-grid", "--seed", "-1", "--out", str(out)])
    err = capsys.readouterr().err
    assert "argument --seed: must be >= 0" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_gpu_quick_runs_offline_with_the_default_dataset(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from gpu.__main__ import main as gpu_main
    out = tmp_path / "g"
    assert gpu_main(["wgan-gp", "--quick", "--backend", "numpy", "--iters", "2", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["run"]["dataset"] == "digits" and m["iterations"] == 2 and "threads" in m
    assert gpu_main(["wgan-gp", "--quick", "--backend", "numpy", "--iters", "2", "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_toy_and_gpu_share_no_private_names():
    import ast
    for pkg, other in (("toy", "gpu"), ("gpu", "toy")):
        for f in (ROOT / pkg).glob("*.py"):            # benchmarks too: their shared workload is refimpl's
            for node in ast.walk(ast.parse(f.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for n in names:
                    assert n.split(".")[0] != other, f"{f} imports {n}"


# ----------------------------------------------------------------------------- 15. lazy modules
def test_refimpl_modules_are_lazy_attributes():
    code = ("import sys, refimpl; assert 'refimpl.ot' not in sys.modules; "
            "m = refimpl.ot; assert m.__name__ == 'refimpl.ot' and 'refimpl.ot' in sys.modules; "
            "assert 'harness' in dir(refimpl) and 'runs' not in dir(refimpl)\n"
            "try:\n    refimpl.nope\nexcept AttributeError: pass\nelse: raise SystemExit(1)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_checkpoint_format_is_npz_that_numpy_reads_without_pickle(done):
    with np.load(done / "checkpoint.npz", allow_pickle=False) as z:
        tree = json.loads(z["__tree__"].tobytes())
    assert "dict" in tree


# ----------------------------------------------------------------------------- the layer's pieces
def test_execute_runs_resumes_each_run_from_its_own_checkpoint(tmp_path):
    from refimpl.harness import Run, RunOptions, execute_runs
    seen = []

    def train(sub):
        seen.append((sub.out.name, sub.seed, sub.resume))
        sub.out.mkdir(parents=True, exist_ok=True)
        if sub.out.name == "b" and not (sub.out / "checkpoint.npz").exists():
            checkpoint.save(sub.out / "checkpoint.npz", {"iteration": 1})
            raise KeyboardInterrupt
        checkpoint.save(sub.out / "checkpoint.npz", {"iteration": 2})
        return {"seed": sub.seed}
    plan = [Run("a", 0, train), Run("b", 1, train), Run("c", 2, train)]
    with pytest.raises(KeyboardInterrupt):
        execute_runs(RunOptions(out=tmp_path), plan)
    got = execute_runs(RunOptions(out=tmp_path, resume=True), plan, lambda r: sorted(r.items()))
    assert seen == [("a", 0, False), ("b", 1, False), ("a", 0, True), ("b", 1, True), ("c", 2, False)]
    assert got == [("a", {"seed": 0}), ("b", {"seed": 1}), ("c", {"seed": 2})]
    with pytest.raises(ValueError, match="distinct"):
        execute_runs(RunOptions(out=tmp_path), [plan[0], plan[0]])


def test_seeds_and_threads_defaults():
    from refimpl.harness import RunOptions, default_threads, seeds_of
    o = RunOptions(out=pathlib.Path("x"), seed=4)
    assert seeds_of(o) == [4] and seeds_of(o, (0, 1)) == [0, 1]
    assert seeds_of(RunOptions(out=o.out, seed=4, quick=True), (0, 1)) == [4]
    assert seeds_of(RunOptions(out=o.out, extra={"seeds": "3,1"})) == [3, 1]
    for bad in ("1,1", "a", "-1", ""):
        with pytest.raises(ValueError, match="--seeds"):
            seeds_of(RunOptions(out=o.out, extra={"seeds": bad}))
    assert default_threads() >= 1 and default_threads(10 ** 6) == 1
    assert default_threads(2) == max(1, default_threads() // 2)


def test_gpu_device_option_reaches_the_run():
    from gpu.__main__ import build_parser
    from gpu.experiments import ImageRun
    assert build_parser().parse_args(["wgan-gp", "--device", "1"]).device == 1
    assert build_parser().parse_args(["wgan-gp"]).device is None
    assert ImageRun(device=1).device == 1
    with pytest.raises(ValueError, match="device"):
        ImageRun(device=-1)
    with pytest.raises(ValueError, match="seed"):
        ImageRun(seed=-1)


def test_a_run_of_an_earlier_version_resumes_from_its_pickle(done, tmp_path):
    out = _copy(done, tmp_path / "old")
    payload = checkpoint.load(out / "checkpoint.npz")
    for k in ("experiment", "dataset"):                   # not recorded by earlier versions
        del payload["fingerprint"][k]
    (out / "checkpoint.pkl").write_bytes(pickle.dumps(payload))
    (out / "checkpoint.npz").unlink()
    (out / MARKER).unlink()
    assert _grid(out, "--iters", "3", "--resume") == 0
    assert checkpoint.load(out / "checkpoint.npz")["iteration"] == 3
    assert json.loads((out / MARKER).read_text()) == {"experiment": "wgan-gp-grid"}


@pytest.mark.parametrize("argv, flag", [(["wgan-gp", "--K", "5", "--h", "0.1"], "--K"), (["wgan-gp", "--h", "0.1"], "--h"),
                                        (["swgan", "--lam", "3"], "--lam"), (["rwp", "--K=2"], "--K")])
def test_gpu_refuses_a_flag_its_method_does_not_use(tmp_path, capsys, argv, flag):
    from gpu.__main__ import main as gpu_main
    with pytest.raises(SystemExit) as e:
        gpu_main([*argv, "--backend", "numpy", "--quick", "--out", str(tmp_path / "g")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"error: {flag}: {argv[0]} does not use it" in err
    assert not (tmp_path / "g").exists()


def test_gpu_method_help_shows_that_methods_flags(capsys):
    from gpu.__main__ import main as gpu_main, method_flags
    METHOD_FLAGS = method_flags()              # derived from the registry: the methods' options and configs
    assert METHOD_FLAGS == {"h": ("rwp", "sbe"), "l": ("rwp",), "K": ("w1fe",),
                            "lam": ("wgan-gp", "rwp", "sbe", "w1fe", "wwgan")}
    for name in ("wgan-gp", "rwp", "w1fe", "swgan"):
        with pytest.raises(SystemExit) as e:
            gpu_main([name, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: python -m gpu {name} ")
        for flag, users in METHOD_FLAGS.items():
            assert (f"--{flag} " in out) == (name in users), (name, flag)
    # and a used flag still reaches the run
    from gpu.__main__ import build_parser
    assert build_parser("w1fe").parse_args(["--K", "5"]).K == 5 and build_parser("rwp").parse_args([]).K == 3


def test_blas_threads_reach_libraries_loaded_inside_the_block():
    """numpy and scipy each ship an OpenBLAS; scipy's is loaded on first use, after the limit is
    set: it must start with the limit too (found by the grid tour recording openblas: 2)."""
    pytest.importorskip("threadpoolctl")
    pytest.importorskip("scipy")
    code = ("import numpy, json\n"
            "from refimpl.harness import blas_threads\n"
            "from threadpoolctl import threadpool_info\n"
            "with blas_threads(1):\n"
            "    import scipy.linalg\n"
            "    inside = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
            "print(json.dumps(inside))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                       env={k: v for k, v in _env().items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    inside = json.loads(r.stdout)
    assert len(inside) >= 1 and all(n == 1 for n in inside), inside


def test_an_interrupt_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path, capsys):
    from refimpl.harness import RunOptions, execute

    def run(opts):
        (opts.out / "progress.json").write_text("{}")                # an event, no checkpoint yet
        raise KeyboardInterrupt
    out = tmp_path / "r"
    status, _ = execute(run, RunOptions(out=out, experiment="x"), resume_command="python -m toy x --resume")
    err = capsys.readouterr().err
    assert status == 130 and not out.exists()                        # nothing a run produced: removed
    assert "nothing to resume" in err and "--resume" not in err.replace("without --resume", "")

    def run_with_checkpoint(opts):
        (opts.out / "checkpoint.npz").write_bytes(b"")
        raise KeyboardInterrupt
    status, _ = execute(run_with_checkpoint, RunOptions(out=out, experiment="x"), resume_command="python -m toy x --resume")
    assert status == 130 and "resume with: python -m toy x --resume" in capsys.readouterr().err
