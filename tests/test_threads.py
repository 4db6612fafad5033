"""refimpl.threads: the thread budget, and evaluate() keeping to it (issue 15: a run limited to
one thread must not start a second solver thread, or 2 single-threaded workers run 4)."""
import os

import numpy as np
import pytest

from refimpl import metrics
from refimpl.datasets import sample
from refimpl.threads import THREAD_VARIABLES, thread_budget, usable_cpus

pytest.importorskip("ot")


@pytest.fixture
def clean_env(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_budget_is_the_cpus_without_limits(clean_env):
    assert thread_budget() == usable_cpus() >= 1
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("name", THREAD_VARIABLES)
def test_each_variable_lowers_the_budget(clean_env, name):
    clean_env.setenv(name, "1")
    assert thread_budget() == 1


def test_smallest_limit_wins_and_junk_is_ignored(clean_env):
    clean_env.setattr("refimpl.threads.usable_cpus", lambda: 16)
    assert thread_budget() == 16
    clean_env.setenv("OMP_NUM_THREADS", "8")
    clean_env.setenv("OPENBLAS_NUM_THREADS", "3")
    assert thread_budget() == 3
    clean_env.setenv("MKL_NUM_THREADS", "64")             # above the CPUs: the CPUs and 3 stay
    assert thread_budget() == 3
    for junk in ("", "0", "-2", "four", "2.5"):
        clean_env.setenv("OPENBLAS_NUM_THREADS", junk)
        assert thread_budget() == 8


class _Counting:
    """Stands in for ThreadPoolExecutor and counts how often it is entered."""
    made = 0

    def __init__(self, max_workers):
        type(self).made += 1
        from concurrent.futures import ThreadPoolExecutor
        self._ex = ThreadPoolExecutor(max_workers=max_workers)

    def __enter__(self):
        return self._ex.__enter__()

    def __exit__(self, *exc):
        return self._ex.__exit__(*exc)


def test_evaluate_keeps_to_the_budget_and_gives_the_same_values(clean_env):
    clean_env.setattr(metrics, "ThreadPoolExecutor", _Counting)
    s = sample("grid25", 300, np.random.default_rng(1))
    one = metrics.evaluate(s, "grid25", np.random.default_rng(2), n_target=300, threads=1)
    assert _Counting.made == 0
    two = metrics.evaluate(s, "grid25", np.random.default_rng(2), n_target=300, threads=2)
    assert _Counting.made == 1
    assert one == two and one["w1"] > 0
    clean_env.setenv("OMP_NUM_THREADS", "1")               # a Dask worker's environment
    assert metrics.evaluate(s, "grid25", np.random.default_rng(2), n_target=300) == one
    assert _Counting.made == 1
    clean_env.delenv("OMP_NUM_THREADS")
    clean_env.setattr("refimpl.metrics.thread_budget", lambda: 2)
    metrics.evaluate(s, "grid25", np.random.default_rng(2), n_target=300)
    assert _Counting.made == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_evaluate_refuses_bad_threads(bad):
    s = sample("grid25", 10, np.random.default_rng(1))
    with pytest.raises((ValueError, TypeError), match="threads"):
        metrics.evaluate(s, "grid25", np.random.default_rng(2), n_target=10, threads=bad)


def test_a_run_with_threads_1_evaluates_in_one_thread(clean_env):
    """The run layer's --threads 1 reaches the evaluation (through blas_threads' environment)."""
    from refimpl.harness import blas_threads
    pytest.importorskip("threadpoolctl")
    with blas_threads(1):
        assert thread_budget() == 1
    assert thread_budget() == usable_cpus()


def test_threads_n_overrides_a_dask_workers_limit_for_the_run_only(clean_env):
    """A Dask worker starts with OMP_NUM_THREADS=1; a run given --threads 2 there may use 2
    threads for its evaluation too, and the worker's limit is back afterwards."""
    from refimpl.harness import blas_threads
    pytest.importorskip("threadpoolctl")
    clean_env.setattr("refimpl.threads.usable_cpus", lambda: 8)
    for name in THREAD_VARIABLES:
        clean_env.setenv(name, "1")
    assert thread_budget() == 1
    with blas_threads(2):
        assert thread_budget() == 2
        assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)
    assert thread_budget() == 1 and all(os.environ[name] == "1" for name in THREAD_VARIABLES)
