"""What every toy experiment receives and the helpers it uses to write its outputs.

An experiment is a function ``run(opts: RunOptions) -> dict`` registered in
``toy/registry.py``. The run layer (:mod:`refimpl.harness`) claims ``opts.out`` before it
runs; the experiment trains one run with :func:`refimpl.harness.run_and_write` (the runner: train, then
write the standard folder from what its ``finish`` returns) or is a
:class:`refimpl.harness.MultiRun` (variants x seeds, one run per ``--variant``), writes its files with the
writers below (atomic, following the umask) and returns the final metrics, which the CLI
also prints. These names are re-exported from :mod:`refimpl.harness` and
:mod:`refimpl.outputs` for the experiments' convenience.
"""
from __future__ import annotations

import sys

from refimpl.checkpoint import atomic_write as atomic_write_bytes
from refimpl.outputs import grid_image, plt, write_csv, write_json, write_npy, write_npz
from refimpl.harness import MultiRun, Outputs, Run, RunOptions, Variant, execute_runs, run_and_write, seeds_of, train_run, tune_allocator

__all__ = ["RunOptions", "Outputs", "run_and_write", "MultiRun", "Variant", "Run", "execute_runs", "seeds_of", "train_run", "tune_allocator", "write_json", "write_csv",
           "write_npy", "write_npz", "plt", "grid_image", "atomic_write_bytes", "parse_names"]


def parse_names(ap, argv, known, what):
    """Parse ``argv`` with ``ap`` (a :class:`refimpl.harness.ArgumentParser` with a positional
    ``names``) and check every name against ``known``. Returns ``(args, None)``, or
    ``(None, status)``: the parser's exit status, or 2 after one line naming the unknown
    ``what``."""
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return None, int(e.code or 0)
    bad = [n for n in args.names if n not in known]
    if bad:
        print(f"{ap.prog}: unknown {what} {', '.join(bad)}; choose from {', '.join(known)}", file=sys.stderr)
        return None, 2
    return args, None
