"""The harness (the run layer): one lifecycle for every experiment of both command lines (``toy``, ``gpu``).

An experiment provides a function ``run(opts: RunOptions) -> dict`` that builds its methods
and trains one run with the runner, :func:`run_and_write` (train, then write the standard folder
from what the experiment's ``finish`` returns as :class:`Outputs`); or it is a :class:`MultiRun`: its variants
(:class:`Variant`), how to train one run of a variant and seed, and its summary as a function of
finished run folders. :func:`execute_multi` runs exactly one of them (``--variant KEY --seed S``,
the unit a sweep distributes) or all variant x seed in order (:func:`execute_runs`), then the
summary, whose ``metrics.json`` the harness completes with the standard fields of every
multi-run experiment (:func:`summarise_multi`, :data:`SUMMARY_FIELDS`). Everything around that
is done here, once:

* option types for ``argparse`` (:func:`positive_int`, ...) and the flags every experiment
  shares (:func:`add_common_flags`), so a bad flag exits 2 with one line naming it;
* ownership of the output folder (:func:`claim_output`): a marker file records which
  experiment wrote it; a non-empty folder it did not write is refused, and so is its own
  unless ``--resume`` is given; ``--out ""`` is refused; stale temporary files are removed;
  a folder this invocation created is removed again if the run fails before writing anything;
* the checkpoint (:func:`train_run`): its file, the run's fingerprint (experiment, dataset,
  method, every config field, seed, dtype), the cadences (every N iterations and every
  ``checkpoint_seconds`` of wall clock), legacy ``checkpoint.pkl`` files on resume;
* signals (:func:`interrupts`): SIGTERM and SIGHUP are handled like Ctrl-C, so the loop
  checkpoints the last completed iteration before the process exits (128 + signal);
* BLAS threads (:func:`blas_threads`, ``--threads``), recorded in ``metrics.json``;
* errors (:func:`execute`): OS errors, unreadable checkpoints, non-finite losses, missing
  optional packages end in one line on stderr and exit status 2, ``PROG: error: REASON``, the
  form of ``argparse``'s usage errors (:func:`print_error`).

Modules: :mod:`.flags` (options and flag types), :mod:`.folders` (output folders),
:mod:`.process` (threads, signals, errors, allocator), :mod:`.runner` (one run and its
folder) and :mod:`.experiments` (multi-run experiments); every name is re-exported here. The library's maths never imports
this package (a test checks it): it serves the command lines ``toy`` and ``gpu``, which share
it and never import each other. See docs/runs.md for the layout.
"""
from .flags import ArgumentParser, CHECKPOINT_SECONDS, RunOptions, add_common_flags, default_threads, nonneg_float, nonneg_int, out_dir, positive_float, positive_int, seed_list  # noqa: F401
from .folders import CHECKPOINT, LEGACY_CHECKPOINT, MARKER, PROGRESS, OutputError, checkpoint_file, claim_output, finished_run, has_checkpoint, mark_output, only_marker, read_fingerprint, run_folder  # noqa: F401
from .process import INSTALL, Interrupted, blas_threads, execute, interrupts, print_error, prog_of, summary_lines, tune_allocator  # noqa: F401
from .experiments import SUMMARY_FIELDS, MultiRun, Run, Variant, execute_multi, execute_runs, parse_peers, seeds_of, standard_summary, summarise_multi  # noqa: F401
from .runner import Outputs, run_and_write, run_record, train_run, write_run  # noqa: F401

__all__ = ["ArgumentParser", "CHECKPOINT", "CHECKPOINT_SECONDS", "INSTALL", "Interrupted", "LEGACY_CHECKPOINT", "MARKER", "MultiRun", "PROGRESS", "OutputError", "Outputs", "Run", "RunOptions", "Variant", "add_common_flags", "blas_threads", "checkpoint_file", "claim_output", "default_threads", "execute", "execute_multi", "execute_runs", "finished_run", "has_checkpoint", "interrupts", "mark_output", "nonneg_float", "nonneg_int", "only_marker", "out_dir", "parse_peers", "positive_float", "positive_int", "print_error", "prog_of", "read_fingerprint", "run_and_write", "run_folder", "run_record", "SUMMARY_FIELDS", "seed_list", "seeds_of", "standard_summary", "summarise_multi", "summary_lines", "train_run", "tune_allocator", "write_run"]
