"""Where a sweep's tasks run: one after the other in this process, or on a ``dask.distributed`` cluster
(a ``LocalCluster`` of single-threaded workers, or a scheduler's address) (:mod:`toy.sweep`)."""
from __future__ import annotations

import contextlib
import os

from .sweep_task import run_task

# the LocalCluster's configuration. Scheduler: when Dask queues the tasks (more than twice the
# worker threads), a worker holds only the run it executes (the default saturation 1.1 sends a
# second one, which a dying worker would take down with it). Workers: no statistical profiler (it
# samples the running task's stack every 10 ms for the dashboard's Profile page, of no use for
# tasks that are whole runs; off, a sbe-grid sweep took about 3% less time, undecided over 7
# pairs: docs/performance.md)
CLUSTER_CONFIG = {"distributed.scheduler.worker-saturation": 1.0, "distributed.worker.profile.enabled": False}


def dask_available():
    try:
        import distributed  # noqa: F401
        return True
    except ImportError:
        return False


#: a run's exit status after the signal it caught (the harness checkpoints, then exits 128 + it)
INTERRUPTS = {130: "Ctrl-C", 143: "SIGTERM", 129: "SIGHUP"}


def execute_serial(jobs, record):
    for run, spec in jobs:
        res = run_task(spec)
        if res["rc"] in INTERRUPTS:    # the run caught the signal and checkpointed: stop the sweep, resumable
            record(run, {**res, "status": "interrupted", "error": f"interrupted ({INTERRUPTS[res['rc']]})"})
            raise KeyboardInterrupt
        record(run, res)


def dashboard_link(client):
    """The scheduler's dashboard link, or "" when it has none (Dask returns "" or raises then)."""
    try:
        return client.dashboard_link or ""
    except (KeyError, AttributeError):
        return ""


def execute_dask(jobs, record, workers, scheduler, progress):
    import dask
    from distributed import Client, LocalCluster, as_completed
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout="30s"))
        else:
            with dask.config.set(CLUSTER_CONFIG):
                cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True))
            client = stack.enter_context(Client(cluster))
        progress.slots = max(sum(client.nthreads().values()), 1)
        link = dashboard_link(client)
        print(f"sweep: Dask scheduler {client.scheduler.address}, {progress.slots} worker threads"
              + (f", dashboard {link}" if link else ""), file=progress.stream, flush=True)
        futures, by_id = {}, {}
        for run, spec in jobs:          # a run waits for the runs it builds on (jobs are in dependency order)
            after = [by_id[rid] for _, rid in run.peers if rid in by_id]
            fut = client.submit(run_task, spec, *after, key=f"sweep-{run.run_id}-{os.urandom(4).hex()}", retries=1,
                                pure=False)
            futures[fut], by_id[run.run_id] = run, fut
        try:
            with progress.heartbeat():
                for fut in as_completed(futures):
                    run = futures[fut]
                    if fut.status == "error":
                        exc = fut.exception()
                        record(run, {"status": "failed", "rc": None, "error": f"{type(exc).__name__}: {exc}"})
                    else:
                        record(run, fut.result())
        except BaseException:
            client.cancel(list(futures))
            raise
