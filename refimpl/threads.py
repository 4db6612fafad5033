"""The CPUs, and the compute threads, this process may use.

* :func:`usable_cpus`: the CPUs the operating system lets this process run on.
* :func:`thread_budget`: those, lowered by the thread limits set in the environment
  (:data:`THREAD_VARIABLES`, the OpenMP and BLAS conventions). ``refimpl.harness.blas_threads``
  (``--threads``) and Dask's nanny (``OMP_NUM_THREADS=1`` per worker) set them, so code that
  starts its own threads (:func:`refimpl.metrics.evaluate`) stays within a run's share.
"""
from __future__ import annotations

import os

__all__ = ["THREAD_VARIABLES", "usable_cpus", "thread_budget"]

#: Environment variables that limit a process's compute threads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask on Linux, else ``os.cpu_count()``), >= 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                       # not on Linux
        return os.cpu_count() or 1


def thread_budget() -> int:
    """:func:`usable_cpus`, lowered to the smallest positive integer among the
    :data:`THREAD_VARIABLES` that are set (values that are not positive integers are ignored)."""
    n = usable_cpus()
    for name in THREAD_VARIABLES:
        try:
            v = int(os.environ.get(name, ""))
        except ValueError:
            continue
        if v >= 1:
            n = min(n, v)
    return n
