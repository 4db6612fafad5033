"""Checkpoints: nested params/optimiser states moved to the host, pickled, written atomically.

A checkpoint is a dict; its array leaves (any backend) are stored as NumPy arrays and
moved back to the requested namespace on load. Writes go to a temporary file in the
same folder, are flushed to disk, and then renamed over the old file, so a crash
never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
import pathlib
import pickle
import tempfile

import numpy as _np

from .backend import from_host, to_numpy

_SCALARS = (int, float, bool, str, bytes, type(None))


def tree_to_host(obj):
    """Copy of a nested list/tuple/dict with every array leaf as a NumPy array."""
    if isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, list):
        return [tree_to_host(o) for o in obj]
    if isinstance(obj, tuple):
        return tuple(tree_to_host(o) for o in obj)
    if isinstance(obj, dict):
        return {k: tree_to_host(v) for k, v in obj.items()}
    if isinstance(obj, _np.generic):
        return obj.item()
    return _np.array(to_numpy(obj), copy=True)


def tree_from_host(obj, xp, device=None):
    """Inverse of :func:`tree_to_host`: NumPy leaves moved to ``xp`` (dtype kept)."""
    if isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, list):
        return [tree_from_host(o, xp, device) for o in obj]
    if isinstance(obj, tuple):
        return tuple(tree_from_host(o, xp, device) for o in obj)
    if isinstance(obj, dict):
        return {k: tree_from_host(v, xp, device) for k, v in obj.items()}
    return from_host(obj, xp, None, device)


def atomic_write(path, data: bytes):
    """Write bytes to ``path`` via a temporary file and ``os.replace``."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(path, payload: dict):
    """Atomically write ``payload`` (arrays of any backend) to ``path``."""
    atomic_write(path, pickle.dumps(tree_to_host(payload), protocol=pickle.HIGHEST_PROTOCOL))


def load(path, xp=None, device=None):
    """Read a checkpoint; array leaves are moved to ``xp`` (host NumPy when ``xp`` is None)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except Exception as e:
        raise ValueError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})") from e
    return payload if xp is None else tree_from_host(payload, xp, device)
