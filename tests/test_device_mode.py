"""The device test mode of tests/conftest.py (``REFIMPL_BACKENDS=array_api_strict:device1``) catches what it should.

These tests build the mode's namespace directly, so they run in every invocation.
"""
import numpy as np
import pytest

from refimpl.backend import from_host, namespace
from refimpl.datasets import sample
from refimpl.train import GANConfig, GANMethod
from tests.conftest import DeviceNamespace, assert_xp, make_xp, parse_backend

xps = pytest.importorskip("array_api_strict")
DEV1 = xps.Device("device1")


@pytest.fixture
def dxp():
    return make_xp("array_api_strict:device1")


def test_creation_functions_default_to_the_device(dxp):
    x = dxp.asarray([1.0, 2.0])
    made = [x, dxp.zeros(3), dxp.ones((2, 2)), dxp.empty(2), dxp.full((2,), 1.5), dxp.arange(4), dxp.eye(3),
            dxp.linspace(0.0, 1.0, 5), dxp.zeros_like(xps.asarray([1.0])), dxp.ones_like(x), dxp.full_like(x, 2.0),
            dxp.empty_like(x), dxp.from_dlpack(xps.asarray([1.0]))]
    assert all(a.device == DEV1 for a in made)
    assert dxp.zeros(2, device=xps.Device("device2")).device == xps.Device("device2")   # an explicit device wins
    assert dxp.__name__ == "array_api_strict" and dxp.float32 is xps.float32 and dxp.sum is xps.sum
    assert namespace(x) is xps                     # library code sees the real module


def test_refimpl_helpers_given_the_namespace_put_inputs_on_the_device(dxp):
    rng = np.random.default_rng(0)
    assert from_host(rng.standard_normal((3, 2)), dxp, "float32").device == DEV1
    assert sample("ring8", 5, rng, xp=dxp, dtype="float32").device == DEV1
    state = GANMethod(GANConfig(gen_hidden=(4,), critic_hidden=(4,))).init_state(rng, dxp, "float32")
    assert_xp(state, dxp, "float32")


def test_assert_xp_catches_an_array_created_without_device(dxp):
    x = from_host(np.ones((2, 3)), dxp)
    xp = namespace(x)
    good = xp.zeros(x.shape, dtype=x.dtype, device=x.device) + x
    assert_xp([x, good], dxp, "float64")
    with pytest.raises(AssertionError, match="output leaf 1 .* is on .*CPU_DEVICE"):
        assert_xp([x, xp.zeros(3, dtype=x.dtype)], dxp)          # the bug the mode exists to catch
    with pytest.raises(ValueError, match="different devices"):
        x + xp.ones(3, dtype=x.dtype)                            # mixing fails at once, as on a GPU


def test_assert_xp_without_a_device_wants_one_device_for_all_leaves():
    a, b = xps.asarray([1.0]), xps.asarray([1.0], device=DEV1)
    assert_xp([a, xps.asarray([2.0])], xps)
    with pytest.raises(AssertionError, match="output leaf 1"):
        assert_xp([a, b], xps)


def test_backend_specs():
    assert parse_backend("numpy") == ("numpy", None)
    assert parse_backend("array_api_strict:device1") == ("array_api_strict", "device1")
    with pytest.raises(pytest.UsageError, match="only array_api_strict"):
        parse_backend("numpy:device1")
    assert isinstance(make_xp("array_api_strict:device2"), DeviceNamespace)
    with pytest.raises(ValueError, match="not a valid choice"):
        make_xp("array_api_strict:gpu7")


def test_gpu_data_stays_on_the_requested_device():
    pytest.importorskip("sklearn", reason="the offline digits data needs scikit-learn")
    from gpu.data import device_dataset, noise
    data, shape = device_dataset("digits", xps, device=DEV1, limit=50)
    batch = data.sample(np.random.default_rng(0), 8)
    z = noise(np.random.default_rng(1), 8, 3, batch)
    assert shape == (1, 8, 8) and data.array.device == DEV1
    assert batch.device == DEV1 and batch.shape == (8, 64) and z.device == DEV1 and z.dtype == xps.float32
