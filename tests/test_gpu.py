"""GPU path: clean failures without a GPU (always run) and NumPy/CuPy parity (marked gpu).

The whole suite runs on CuPy with ``REFIMPL_BACKENDS=cupy python -m pytest`` where a
CUDA device is present; without one every cupy-parametrised test skips with the
reason given by :func:`refimpl.backend.cuda_available`.
"""
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
