"""A pytest plugin: per-test time limit without pytest-timeout (absent on the GPU image).

Load it with ``-p gpu.timeouts``; ``REFIMPL_TEST_TIMEOUT`` (seconds, default 120) sets
the limit. A test that runs longer fails with ``TestTimeout`` naming the limit (the
rest of the run goes on). Uses ``SIGALRM``, so POSIX and the main thread only; elsewhere
it does nothing.
"""
from __future__ import annotations

import os
import signal

import pytest


class TestTimeout(Exception):
    """A test ran past ``REFIMPL_TEST_TIMEOUT`` seconds."""
    __test__ = False


def _limit():
    return float(os.environ.get("REFIMPL_TEST_TIMEOUT", "120"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = _limit()
    if limit <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise TestTimeout(f"{item.nodeid} ran past the per-test limit of {limit:g} s (REFIMPL_TEST_TIMEOUT)")
    try:
        old = signal.signal(signal.SIGALRM, expire)
    except ValueError:          # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
