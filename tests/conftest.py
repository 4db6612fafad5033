"""Shared fixtures: one ``xp`` fixture runs every test on every backend.

``REFIMPL_BACKENDS`` (comma list) restricts the run, e.g.
``REFIMPL_BACKENDS=array_api_strict pytest``. The default is numpy and
array_api_strict, plus cupy where a CUDA device is present. Hypothesis profiles:
``ci`` (default, fast) and ``long`` (``HYPOTHESIS_PROFILE=long``).
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


def _backend_param(name):
    marks = [pytest.mark.gpu] if name == "cupy" else []
    return pytest.param(name, id=name, marks=marks)


@pytest.fixture(params=[_backend_param(b) for b in selected_backends()])
def xp(request):
    """The Array API namespace of one backend; GPU backends skip with the reason when absent."""
    name = request.param
    if name == "cupy":
        ok, reason = cuda_available()
        if not ok:
            pytest.skip(f"cupy backend skipped: {reason}")
    return get_namespace(name)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_xp(out, xp, dtype=None):
    """Assert every array leaf of ``out`` lives in ``xp`` (and has ``dtype`` if given)."""
    got = namespace(out)
    assert backend_name(got) == backend_name(xp), f"output namespace {got.__name__}, expected {xp.__name__}"
    if dtype is not None:
        from refimpl.backend import _leaves, dtype_of
        want = dtype_of(xp, dtype)
        for leaf in _leaves(out):
            assert leaf.dtype == want, f"output dtype {leaf.dtype}, expected {want}"
