"""What every toy experiment receives and the helpers it uses to write its outputs.

An experiment is a function ``run(opts: RunOptions) -> dict`` registered in
``toy/registry.py``. It writes its files into ``opts.out`` (created by the CLI) and
returns the final metrics, which the CLI also prints.
"""
from __future__ import annotations

import csv
import json
import pathlib
from dataclasses import dataclass, field

from refimpl.checkpoint import atomic_write as atomic_write_bytes


@dataclass
class RunOptions:
    out: pathlib.Path                    # output folder; the experiment creates it after validating its config
    backend: str = "numpy"               # numpy | cupy (array_api_strict also works, slowly)
    seed: int = 0
    iters: int | None = None             # None: the experiment's default
    quick: bool = False                  # short smoke run (CI)
    checkpoint_every: int = 0            # 0: the experiment's default
    resume: bool = False
    extra: dict = field(default_factory=dict)   # experiment-specific flags, e.g. latent_dim, data_dir


def tune_allocator():
    """Raise glibc's mmap and trim thresholds so the ~1 MB temporaries of every step are reused
    from the heap instead of being mapped fresh (and page-faulted) each time.

    A process-level setting for the command lines and benchmarks (never done by the library);
    a no-op where glibc's ``mallopt`` is unavailable. See docs/performance.md for its effect.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)      # glibc's maximum
        libc.mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024)
    except (OSError, AttributeError):
        pass


def write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, pathlib.Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_npy(path, array):
    """``numpy.save`` to ``path``, atomically."""
    import io

    import numpy as np
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def write_csv(path, rows: list[dict]):
    """Write a list of dicts as CSV, atomically. The columns are every key that appears, in order
    of first appearance (rows from a resumed older run may lack newer columns: left empty)."""
    import io
    buf = io.StringIO()
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def plt():
    """matplotlib.pyplot with the headless Agg backend, or a clear error."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError as e:
        raise RuntimeError("plots need matplotlib: pip install 'refimpl[toy]'") from e
    return pyplot
