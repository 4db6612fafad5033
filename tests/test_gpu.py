"""GPU path: clean failures without a GPU (always run) and NumPy/CuPy parity (marked gpu).

The whole suite runs on CuPy with ``REFIMPL_BACKENDS=cupy python -m pytest`` where a
CUDA device is present; without one every cupy-parametrised test skips with the
reason given by :func:`refimpl.backend.cuda_available`.
"""
import pathlib

import numpy as np
import pytest

from refimpl.backend import cuda_available, get_namespace, to_numpy
from refimpl.train import GANConfig, GANMethod, ToyData, train

HAS_GPU, REASON = cuda_available()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason=f"needs a CUDA device: {REASON}")


@pytest.mark.skipif(HAS_GPU, reason="a CUDA device is present")
def test_cupy_namespace_fails_at_once_with_the_reason():
    with pytest.raises(RuntimeError) as e:
        get_namespace("cupy")
    msg = str(e.value)
    assert "backend 'cupy' is unavailable" in msg
    assert "no CUDA device was found" in msg or ("cupy is not installed" in msg and "pip install" in msg)


@pytest.mark.skipif(HAS_GPU, reason="a CUDA device is present")
def test_skip_reason_names_the_problem():
    ok, reason = cuda_available()
    assert not ok and ("no CUDA device was found" in reason or "cupy is not installed" in reason)


@pytest.mark.skipif(HAS_GPU, reason="a CUDA device is present")
def test_gpu_benchmark_fails_cleanly_without_gpu():
    from gpu.bench import main
    with pytest.raises(RuntimeError, match="backend 'cupy' is unavailable"):
        main(["--quick"])


def test_gpu_package_imports_without_cupy():
    import gpu
    import gpu.bench
    import gpu.data
    assert callable(gpu.require_cupy) and callable(gpu.data.device_dataset)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        get_namespace("tpu")


def _fifty_steps(xp):
    cfg = GANConfig(gen_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64)
    res = train(GANMethod(cfg), ToyData("grid25", xp, "float64"), xp=xp, dtype="float64", seed=11, iters=10,
                progress=False)     # 10 outer iterations = 50 critic + 10 generator steps
    return res.state


@pytest.mark.gpu
@needs_gpu
def test_numpy_and_cupy_runs_agree():
    a = _fifty_steps(get_namespace("numpy"))
    b = _fifty_steps(get_namespace("cupy"))
    for key in ("gen", "critic"):
        for (W1, b1), (W2, b2) in zip(a[key], b[key]):
            np.testing.assert_allclose(to_numpy(W2), W1, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(to_numpy(b2), b1, rtol=1e-9, atol=1e-9)


@pytest.mark.gpu
@needs_gpu
def test_device_dataset_stays_on_device():
    import cupy
    from gpu.data import noise
    from refimpl.train import ArrayData
    xp = get_namespace("cupy")
    data = ArrayData(xp.asarray(np.arange(40.0).reshape(20, 2)))
    batch = data.sample(np.random.default_rng(0), 8)
    assert isinstance(batch, cupy.ndarray)
    np.testing.assert_array_equal(to_numpy(batch), np.arange(40.0).reshape(20, 2)[np.random.default_rng(0).integers(0, 20, 8)])
    z = noise(np.random.default_rng(1), 4, 3, batch)
    assert isinstance(z, cupy.ndarray) and z.dtype == batch.dtype


@pytest.mark.parametrize("method", ["wgan-gp", "rwp", "sbe", "w1fe", "wwgan", "swgan"])
def test_image_experiment_smoke_on_numpy(tmp_path, method):
    """The image-scale runner of gpu/ on the CPU (same code as on CuPy): every method, 8x8 digits."""
    pytest.importorskip("sklearn", reason="the offline digits data needs scikit-learn")
    import json
    from gpu.__main__ import main
    out = tmp_path / method
    assert main([method, "--dataset", "digits", "--backend", "numpy", "--quick", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["iterations"] == 3 and m["image_shape"] == [1, 8, 8] and np.isfinite(m["w1_pixels"])
    assert np.load(out / "samples.npy").shape == (100, 64)
    assert (out / "samples.png").exists() and (out / "curve.csv").exists()


def test_image_experiment_bad_input(tmp_path, capsys):
    from gpu.__main__ import main
    if not HAS_GPU:
        assert main(["wgan-gp", "--dataset", "digits", "--out", str(tmp_path / "x")]) == 2
        assert "backend 'cupy' is unavailable" in capsys.readouterr().err
    assert main(["wgan-gp", "--dataset", "mnist", "--backend", "numpy", "--out", str(tmp_path / "y")]) == 2
    assert "data_dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nope"])


def test_synchronize_is_a_noop_on_cpu_backends(xp):
    from refimpl.backend import synchronize
    assert synchronize(xp) is None


def test_gpu_benchmark_refuses_a_non_empty_out_and_bad_flags_in_one_line(tmp_path, capsys):
    from gpu.bench import main
    out = tmp_path / "b"
    out.mkdir()
    (out / "bench.json").write_text("a user's result")
    with pytest.raises(SystemExit) as e:
        main(["--dry-run", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0 and "is not an empty folder" in err
    assert (out / "bench.json").read_text() == "a user's result"
    with pytest.raises(SystemExit) as e:
        main(["--repeats", "0"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err == "python -m gpu.bench: error: --repeats must be >= 1, got 0 (see python -m gpu.bench --help)"


@pytest.mark.skipif(HAS_GPU, reason="a CUDA device is present")
def test_gpu_benchmark_command_without_gpu_exits_2_with_one_line():
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "gpu.bench", "--quick"], capture_output=True, text=True,
                       cwd=pathlib.Path(__file__).resolve().parent.parent, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("python -m gpu.bench: error: backend 'cupy' is unavailable") and p.stderr.count("\n") == 1
