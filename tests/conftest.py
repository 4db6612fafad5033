"""Shared fixtures: one ``xp`` fixture runs every test on every backend.

``REFIMPL_BACKENDS`` (comma list) restricts the run, e.g.
``REFIMPL_BACKENDS=array_api_strict pytest``. The default is numpy and
array_api_strict, plus cupy where a CUDA device is present. Hypothesis profiles:
``ci`` (default, fast) and ``long`` (``HYPOTHESIS_PROFILE=long``).

Device mode: ``REFIMPL_BACKENDS=array_api_strict:device1`` runs the
array_api_strict parametrisation with every test input on the non-default device
``array_api_strict.Device("device1")``. The ``xp`` fixture is then a
:class:`DeviceNamespace`: array_api_strict whose creation functions put arrays on
that device unless told otherwise. Library code takes the *real* module from its
input arrays, so an array it creates without ``device=`` lands on the default
device and fails as it would on a GPU: array_api_strict refuses to combine arrays
of two devices, and :func:`assert_xp` checks every output's device. This is how CI
catches device bugs without a GPU (``.ci/run``, second pytest run)::

    REFIMPL_BACKENDS=array_api_strict:device1 python -m pytest -q -m "not slow" -k device1
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from refimpl.backend import backend_name, cuda_available, get_namespace, namespace

settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Array API creation functions that take ``device=``; the ``*_like`` ones default to their input's device.
_CREATION = ("arange", "asarray", "empty", "eye", "from_dlpack", "full", "linspace", "ones", "zeros")
_CREATION_LIKE = ("empty_like", "full_like", "ones_like", "zeros_like")


class DeviceNamespace:
    """A namespace whose creation functions default to ``device`` (everything else: ``module``'s).

    ``backend_name``, ``refimpl.backend.from_host``, ``datasets.sample(xp=...)`` and the
    ``init`` methods take it where they take a namespace, so test inputs made through
    refimpl's own helpers land on ``device`` too. ``device`` and ``module`` are attributes.
    """

    def __init__(self, module, device):
        self.module, self.device = module, device
        self.__name__ = module.__name__

    def __getattr__(self, name):
        fn = getattr(self.module, name)
        if name in _CREATION or name in _CREATION_LIKE:
            def create(*args, device=None, **kwargs):
                return fn(*args, device=self.device if device is None else device, **kwargs)
            create.__name__ = name
            return create
        return fn

    def __repr__(self):
        return f"<{self.__name__} with arrays on {self.device!r}>"


def parse_backend(spec):
    """``"name"`` or ``"name:device"`` -> ``(name, device name or None)``; only array_api_strict has devices."""
    name, _, dev = spec.partition(":")
    if dev and name != "array_api_strict":
        raise pytest.UsageError(f"REFIMPL_BACKENDS: device {dev!r} given for {name!r}; only "
                                f"array_api_strict:<device> is supported (e.g. array_api_strict:device1)")
    return name, (dev or None)


def _default_backends():
    names = ["numpy", "array_api_strict"]
    if cuda_available()[0]:
        names.append("cupy")
    return names


def selected_backends():
    env = os.environ.get("REFIMPL_BACKENDS", "").strip()
    return [b.strip() for b in env.split(",") if b.strip()] if env else _default_backends()


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (cupy backend)")
    config.addinivalue_line("markers", "slow: long-running test (experiments, training)")
    for spec in selected_backends():
        parse_backend(spec)


def _backend_param(spec):
    marks = [pytest.mark.gpu] if spec == "cupy" else []
    return pytest.param(spec, id=spec, marks=marks)


def make_xp(spec):
    """The namespace of a backend spec (``"numpy"``, ``"array_api_strict:device1"``, ...)."""
    name, dev = parse_backend(spec)
    xp = get_namespace(name)
    if dev is None:
        return xp
    return DeviceNamespace(xp, xp.Device(dev))


@pytest.fixture(params=[_backend_param(b) for b in selected_backends()])
def xp(request):
    """The Array API namespace of one backend; GPU backends skip with the reason when absent."""
    spec = request.param
    if spec == "cupy":
        ok, reason = cuda_available()
        if not ok:
            pytest.skip(f"cupy backend skipped: {reason}")
    return make_xp(spec)


@pytest.fixture
def device(xp):
    """The device test inputs live on: ``xp.device`` in device mode, else ``None`` (the default device)."""
    return getattr(xp, "device", None) if isinstance(xp, DeviceNamespace) else None


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_xp(out, xp, dtype=None):
    """Assert every array leaf of ``out`` lives in ``xp``, on one device, and has ``dtype`` if given.

    The device is the inputs' one: ``xp.device`` for a :class:`DeviceNamespace`;
    otherwise all leaves must share a device.
    """
    from refimpl.backend import _leaves, device_of, dtype_of
    got = namespace(out)
    assert backend_name(got) == backend_name(xp), f"output namespace {got.__name__}, expected {xp.__name__}"
    leaves = list(_leaves(out))
    want_dev = xp.device if isinstance(xp, DeviceNamespace) else (device_of(leaves[0]) if leaves else None)
    for i, leaf in enumerate(leaves):
        assert device_of(leaf) == want_dev, f"output leaf {i} (shape {tuple(leaf.shape)}) is on " \
                                            f"{device_of(leaf)!r}, the inputs on {want_dev!r}"
    if dtype is not None:
        want = dtype_of(xp, dtype)
        for leaf in leaves:
            assert leaf.dtype == want, f"output dtype {leaf.dtype}, expected {want}"
