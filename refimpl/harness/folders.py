"""Ownership of an output folder: the marker naming the experiment that wrote it, the checkpoint
file names, and the rules for reusing a folder (``docs/runs.md``).
"""
from __future__ import annotations

import json
import pathlib

from ..checkpoint import remove_stale_temps


MARKER = ".refimpl-run.json"          # in every output folder: which experiment wrote it
CHECKPOINT = "checkpoint.npz"
LEGACY_CHECKPOINT = "checkpoint.pkl"  # written by earlier versions; read on resume only
PROGRESS = "progress.json"            # the last progress event of the run's training loop (train_run)


def finished_run(folder, fingerprint, config=None):
    """The ``metrics.json`` of a finished run in ``folder`` that recorded the run ``fingerprint``, else ``None``.

    ``metrics.json`` is written last (:func:`refimpl.harness.write_run`), so it marks a finished
    run. It is the same run when its ``"fingerprint"`` field differs from ``fingerprint`` in no
    field, by :func:`refimpl.checkpointer.fingerprint_diff` (a config field added since then
    matches at its default; ``config``: the config dataclass). A file without the field is
    compared by its top-level fields of the fingerprint's names; an unreadable one is no run.
    """
    from ..checkpointer import fingerprint_diff
    try:
        metrics = json.loads((pathlib.Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict):
        return None
    recorded = metrics.get("fingerprint", {k: metrics[k] for k in fingerprint if k in metrics})
    return None if fingerprint_diff(recorded, json.loads(json.dumps(fingerprint)), config) else metrics


# ----------------------------------------------------------------------------- output folder
class OutputError(ValueError):
    """An output folder that may not be used; the message says why."""


def _owner(out: pathlib.Path):
    try:
        return json.loads((out / MARKER).read_text()).get("experiment")
    except (OSError, ValueError, AttributeError):
        return None


def has_checkpoint(folder) -> bool:
    folder = pathlib.Path(folder)
    return (folder / CHECKPOINT).exists() or (folder / LEGACY_CHECKPOINT).exists()


def checkpoint_file(folder) -> pathlib.Path:
    """The checkpoint to read in ``folder``: ``checkpoint.npz``, else a legacy ``checkpoint.pkl``."""
    folder = pathlib.Path(folder)
    return folder / LEGACY_CHECKPOINT if not (folder / CHECKPOINT).exists() and (folder / LEGACY_CHECKPOINT).exists() \
        else folder / CHECKPOINT


def _any_checkpoint(out):
    return has_checkpoint(out) or any(has_checkpoint(p.parent) for p in out.glob("**/checkpoint.*"))


def claim_output(out, experiment, resume) -> bool:
    """Make ``out`` this run's folder; returns whether it was created now.

    Raises
    ------
    OutputError
        ``out`` is non-empty and not written by ``experiment``; or written by it but
        ``resume`` is not set; or ``resume`` is set without any checkpoint in it.
        The folder cannot be created (below a file, read-only, ...): the message names ``--out``
        and the reason.
    OSError
        The folder's contents cannot be read.
    """
    out = pathlib.Path(out)
    if str(out).strip() in ("", "."):
        raise OutputError("--out must name a folder, not the current directory or an empty path")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    if out.is_dir():
        remove_stale_temps(out)
    contents = [p for p in out.iterdir()] if out.is_dir() else []
    owner = _owner(out)
    if resume:
        if owner is not None and owner != experiment:
            raise OutputError(f"{out} holds a run of {owner}, not {experiment}; resume it with "
                              f"'{owner}', or choose another --out")
        if not _any_checkpoint(out):
            fix = ("run without --resume to start the run" if not contents else
                   f"to start a new run, use --out ANOTHER_DIR, or delete {out} yourself and run without --resume")
            raise OutputError(f"--resume given but there is no checkpoint in {out} ({CHECKPOINT}, or "
                              f"*/{CHECKPOINT} for multi-run experiments); {fix}")
    elif contents:
        if owner == experiment:
            raise OutputError(f"{out} already holds a run of {experiment}: pass --resume to continue it "
                              f"(or to rewrite its outputs), or choose another --out")
        who = f"a run of {owner}" if owner else "files this experiment did not write"
        raise OutputError(f"{out} is not empty (it holds {who}); choose another --out")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        at = f" ({e.filename})" if e.filename and pathlib.Path(e.filename) != out else ""
        raise OutputError(f"--out {out}: cannot create the folder: {e.strerror or e}{at}") from None
    if not contents:
        mark_output(out, experiment)
    return created


def mark_output(out, experiment):
    """Record ``experiment`` as the owner of ``out`` (a folder without a marker is adopted only
    after a successful run, so a refused resume leaves it as it was)."""
    if _owner(out) is None:
        from ..outputs import write_json
        write_json(pathlib.Path(out) / MARKER, {"experiment": experiment})


def only_marker(out: pathlib.Path):
    """Whether ``out`` holds nothing a run produced: markers and progress events only."""
    return all(p.name in (MARKER, PROGRESS) or (p.is_dir() and only_marker(p)) for p in out.iterdir())


def run_folder(out, key, seed) -> pathlib.Path:
    """Where :func:`execute_multi` puts the run (``key``, ``seed``): ``out / f"{key}-seed{seed}"``."""
    return pathlib.Path(out) / f"{key}-seed{seed}"


def read_fingerprint(folder):
    """The fingerprint of the run in ``folder`` (from its checkpoint), or None without a checkpoint."""
    from ..checkpoint import load
    return load(checkpoint_file(folder))["fingerprint"] if has_checkpoint(folder) else None
