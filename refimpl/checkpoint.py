"""Checkpoints that cannot execute code, and atomic writes that follow the user's umask.

Format (``save``): one ``.npz`` archive written with ``allow_pickle=False``. Every array
leaf of the payload is stored as a NumPy array ``a0, a1, ...``; the tree around them
(dicts, lists, tuples, numbers, strings; the RNG state; the run's fingerprint) is JSON in
the member ``__tree__`` (UTF-8 bytes as a ``uint8`` array). Loading reads it back with
``numpy.load(allow_pickle=False)`` and ``json.loads``: neither can run code.

Checkpoints written by earlier versions (pickles) are read only through a restricted
unpickler that admits NumPy arrays, dtypes and scalars and the plain containers, and
refuses every other global before it is imported, so a crafted file's payload never runs.

Writes go to a temporary file ``.NAME.<pid>.<random>.tmp`` in the same folder (created
with mode 0666 minus the umask, like any file the user creates), are flushed to disk and
renamed over the target, so a crash never leaves a half-written file; on any error the
temporary file is removed and the old file kept. :func:`remove_stale_temps` clears the
temporary files of a process killed mid-write.
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import re
import secrets

import numpy as _np

from .backend import from_host, to_numpy

_SCALARS = (int, float, bool, str, bytes, type(None))
_TREE = "__tree__"
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


class CheckpointError(ValueError):
    """A checkpoint exists but cannot be used; the message starts with "checkpoint unreadable"."""


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


# ----------------------------------------------------------------------------- atomic writes
def atomic_write(path, data: bytes):
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    The file's mode is 0666 minus the process umask. On any error (``OSError`` such as a full
    disk, or an interrupt) the temporary file is removed, the old file kept, and the error
    re-raised (an ``OSError`` that names no file is re-raised naming ``path``).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e    # name the file (e.g. a full disk)
        raise


def remove_stale_temps(folder) -> list:
    """Delete the temporary files of interrupted atomic writes under ``folder`` (recursively);
    returns their paths. Call it only on a folder no other process is writing to."""
    folder = pathlib.Path(folder)
    gone = []
    if folder.is_dir():
        for p in folder.rglob(".*.tmp"):
            if _TEMP.match(p.name) and p.is_file():
                p.unlink()
                gone.append(p)
    return gone


# ----------------------------------------------------------------------------- format
def _encode(obj, arrays):
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, bytes):
        return {"bytes": obj.hex()}
    if isinstance(obj, list):
        return {"list": [_encode(o, arrays) for o in obj]}
    if isinstance(obj, tuple):
        return {"tuple": [_encode(o, arrays) for o in obj]}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, _np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("object arrays cannot be checkpointed")
        arrays[f"a{len(arrays)}"] = obj
        return {"array": len(arrays) - 1}
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def _decode(node, arrays):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict) and len(node) == 1:
        (kind, v), = node.items()
        if kind in ("list", "tuple") and isinstance(v, list):
            items = [_decode(o, arrays) for o in v]
            return items if kind == "list" else tuple(items)
        if kind == "dict" and isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 for p in v):
            return {_decode(k, arrays): _decode(x, arrays) for k, x in v}
        if kind == "array" and isinstance(v, int) and not isinstance(v, bool):
            try:
                return arrays[f"a{v}"]
            except KeyError:
                raise CheckpointError(f"checkpoint unreadable: array a{v} is missing") from None
        if kind == "bytes" and isinstance(v, str):
            return bytes.fromhex(v)
    raise CheckpointError(f"checkpoint unreadable: unexpected node {str(node)[:60]!r}")


def dumps(payload) -> bytes:
    """The bytes of a checkpoint of ``payload`` (a tree of containers, scalars and arrays)."""
    arrays = {}
    tree = json.dumps(_encode(tree_to_host(payload), arrays)).encode()
    buf = io.BytesIO()
    _np.savez(buf, allow_pickle=False, **arrays, **{_TREE: _np.frombuffer(tree, dtype=_np.uint8)})
    return buf.getvalue()


def save(path, payload: dict):
    """Atomically write ``payload`` (arrays of any backend) to ``path`` in the safe format."""
    atomic_write(path, dumps(payload))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, dtypes and scalars inside plain containers, nothing else."""
    ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
    ALLOWED |= {(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only NumPy arrays and plain containers)")


def _check_plain(obj):
    if isinstance(obj, _SCALARS):
        return
    if isinstance(obj, (list, tuple)):
        for o in obj:
            _check_plain(o)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k)
            _check_plain(v)
    elif isinstance(obj, _np.ndarray) and not obj.dtype.hasobject:
        return
    elif isinstance(obj, _np.generic) and not isinstance(obj, _np.object_):
        return
    else:
        raise CheckpointError(f"checkpoint unreadable: it holds a {type(obj).__name__}")


def loads(data: bytes):
    """Inverse of :func:`dumps`; also reads the pickles of earlier versions (restricted).

    Raises
    ------
    CheckpointError
        "checkpoint unreadable: <reason>" for a truncated, foreign or malicious file.
    """
    if data[:4] == b"PK\x03\x04":
        try:
            with _np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            tree = json.loads(arrays.pop(_TREE).tobytes().decode())
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"checkpoint unreadable: {type(e).__name__}: {e}") from None
        return _decode(tree, arrays)
    try:
        payload = _RestrictedUnpickler(io.BytesIO(data)).load()
    except Exception as e:
        raise CheckpointError(f"checkpoint unreadable: {type(e).__name__}: {e}") from None
    _check_plain(payload)
    return payload


def load(path, xp=None, device=None):
    """Read a checkpoint; array leaves are moved to ``xp`` (host NumPy when ``xp`` is None).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError (a ValueError)
        The file is not a checkpoint this library wrote (see :func:`loads`); names ``path``.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = loads(path.read_bytes())
    except CheckpointError as e:
        raise CheckpointError(f"{e} ({path})") from None
    return payload if xp is None else tree_from_host(payload, xp, device)
