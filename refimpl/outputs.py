"""The standard output files of a run, written atomically with the user's umask.

JSON, CSV, ``.npy``/``.npz`` writers on top of :func:`refimpl.checkpoint.atomic_write`,
headless matplotlib (imported only when a plot is drawn, so the library's core keeps
NumPy as its only dependency) and a tiling of images into one grid. Used by both
command lines (``toy`` and ``gpu``) through :mod:`refimpl.harness`.
"""
from __future__ import annotations

import csv
import io
import json
import pathlib

import numpy as np

from .checkpoint import atomic_write


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, pathlib.Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path, obj):
    """``obj`` as indented, key-sorted JSON (arrays as lists, paths as strings), atomically."""
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())


def write_npy(path, array):
    """``numpy.save`` to ``path``, atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write(path, buf.getvalue())


def write_npz(path, **arrays):
    """``numpy.savez`` to ``path``, atomically (no pickled objects)."""
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write(path, buf.getvalue())


def write_csv(path, rows: list[dict], columns=None):
    """Write a list of dicts as CSV, atomically. The columns are ``columns`` if given, then every
    other key that appears, in order of first appearance (rows from a resumed older run may lack
    newer columns: left empty). No rows: the header of ``columns`` only (an empty file without)."""
    buf = io.StringIO()
    fields = list(dict.fromkeys([*(columns or ()), *(k for r in rows for k in r)]))
    if fields:
        w = csv.DictWriter(buf, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    atomic_write(path, buf.getvalue().encode())


def plt():
    """matplotlib.pyplot with the headless Agg backend; ``ImportError`` naming the extra if absent."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install -e '.[toy]'", name="matplotlib") from e
    return pyplot


def grid_image(images, ncol=8, gap=1):
    """Tile images (N, C, H, W) in [-1, 1] into a ``rows x ncol`` grid in [0, 1], ``gap`` grey
    pixels between tiles; returns (rows*(H+gap), ncol*(W+gap)), with a trailing C axis if C > 1."""
    x = np.clip((np.asarray(images, float) + 1) / 2, 0, 1)
    N, C, H, W = x.shape
    rows = -(-N // ncol)
    x = np.concatenate([x, np.full((rows * ncol - N, C, H, W), 0.5)])
    x = np.pad(x, ((0, 0), (0, 0), (0, gap), (0, gap)), constant_values=0.5)
    h, w = H + gap, W + gap
    x = x.reshape(rows, ncol, C, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, ncol * w, C)
    return x[..., 0] if C == 1 else x
