"""Image data sets as float32 arrays in [-1, 1] of shape (N, C, H, W) (host I/O).

Loaders read files from a directory the user gives; nothing is downloaded.

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (offline default,
  needs ``pip install scikit-learn``, extra ``refimpl[digits]``);
* ``mnist``: IDX files ``train-images-idx3-ubyte[.gz]`` etc. (gzipped or not);
* ``cifar10``: the python pickle batches ``cifar-10-batches-py/data_batch_1..5``,
  ``test_batch``;
* ``folder``: PNG/JPEG files of a folder (CelebA style), centre-cropped and resized
  (needs Pillow).

8-bit values ``v`` map to ``v / 127.5 - 1``; digits (0..16) to ``v / 8 - 1``; image
files of deeper modes by their nominal range (see :func:`load_folder`). Every
loader returns ``(images, labels)`` (labels ``None`` for a folder) as NumPy arrays,
or moved to ``xp`` (and ``device``) with :func:`refimpl.backend.from_host`.
"""
from __future__ import annotations

import gzip
import pathlib
import pickle

import numpy as np

from refimpl import validation as checks
from refimpl.backend import from_host

__all__ = ["load_images", "load_digits", "load_mnist", "load_cifar10", "load_folder", "read_idx",
           "DATASETS"]

DATASETS = ("digits", "mnist", "cifar10", "folder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _u8_to_unit(a):
    """uint8 0..255 -> float32 in [-1, 1]."""
    return (a.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def _limit(limit):
    return None if limit is None else checks.integer(limit, "limit", ge=1)


def _finish(x, y, xp, device, limit):
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    x = np.ascontiguousarray(x, dtype=np.float32)
    if xp is not None:
        x = from_host(x, xp, dtype="float32", device=device)
        y = None if y is None else from_host(np.ascontiguousarray(y), xp, device=device)
    return x, y


def _check_split(split, allowed=("train", "test")):
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; choose one of {allowed}")


def _data_dir(data_dir, name):
    if data_dir is None:
        raise ValueError(f"data set {name!r} needs data_dir: the folder holding its files "
                         "(nothing is downloaded)")
    p = pathlib.Path(data_dir).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"data folder {str(p)!r} for {name!r} does not exist")
    return p


# ---------------------------------------------------------------- digits (scikit-learn)
@checks.checked()
def load_digits(split="all", xp=None, device=None, limit=None):
    """scikit-learn's bundled 8x8 digits (1797 images, no download), shape (N, 1, 8, 8).

    Values 0..16 map to ``v/8 - 1`` in [-1, 1]. ``split``: ``"all"``, ``"train"``
    (indices ``i % 5 != 0``, 1437 images) or ``"test"`` (``i % 5 == 0``, 360).
    Returns ``(images float32, labels int64)``.
    """
    _check_split(split, ("all", "train", "test"))
    limit = _limit(limit)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:
        raise ImportError("the 'digits' data set needs scikit-learn: pip install scikit-learn "
                          "(or pip install 'refimpl[digits]')") from e
    d = _sk_load_digits()
    x = (np.asarray(d.images, dtype=np.float32) / np.float32(8.0) - np.float32(1.0))[:, None]
    y = np.asarray(d.target, dtype=np.int64)
    if split != "all":
        keep = (np.arange(len(y)) % 5 == 0) == (split == "test")
        x, y = x[keep], y[keep]
    return _finish(x, y, xp, device, limit)


# ---------------------------------------------------------------- MNIST (IDX)
@checks.checked()
def read_idx(path):
    """Read an IDX file (gzipped or raw, detected from the magic bytes) as a NumPy array.

    Format: two zero bytes, a type code (0x08 uint8 ... 0x0E float64), the number of
    dimensions, the dimensions as big-endian int32, then the big-endian data.
    Raises ``FileNotFoundError`` or ``ValueError`` naming ``path``.
    """
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file {str(path)!r} not found") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise ValueError(f"IDX file {str(path)!r}: corrupt gzip data ({e})") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"IDX file {str(path)!r}: bad magic number {raw[:4].hex() or '(empty)'}")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"IDX file {str(path)!r}: truncated header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dt = np.dtype(_IDX_DTYPES[raw[2]])
    want = int(np.prod(shape)) * dt.itemsize
    if len(raw) - head != want:
        raise ValueError(f"IDX file {str(path)!r}: {len(raw) - head} data bytes, header "
                         f"{shape} of {dt} needs {want}")
    return np.frombuffer(raw, dtype=dt, offset=head).reshape(shape).astype(dt.newbyteorder("="))


def _find(folder, stems):
    tried = []
    for stem in stems:
        for name in (stem, stem + ".gz"):
            p = folder / name
            tried.append(str(p))
            if p.is_file():
                return p
    raise FileNotFoundError(f"none of these files exists: {', '.join(tried)}")


@checks.checked()
def load_mnist(data_dir, split="train", xp=None, device=None, limit=None):
    """MNIST from IDX files in ``data_dir``: images (N, 1, 28, 28) in [-1, 1], labels int64.

    Looks for ``{train,t10k}-images-idx3-ubyte`` and ``-labels-idx1-ubyte`` (also
    the ``images.idx3-ubyte`` spelling), each raw or with ``.gz``.
    """
    _check_split(split)
    limit = _limit(limit)
    folder = _data_dir(data_dir, "mnist")
    pre = "train" if split == "train" else "t10k"
    ipath = _find(folder, [f"{pre}-images-idx3-ubyte", f"{pre}-images.idx3-ubyte"])
    lpath = _find(folder, [f"{pre}-labels-idx1-ubyte", f"{pre}-labels.idx1-ubyte"])
    img, lab = read_idx(ipath), read_idx(lpath)
    if img.ndim != 3 or img.dtype != np.uint8:
        raise ValueError(f"IDX file {str(ipath)!r}: expected uint8 images (N, H, W), got {img.dtype} {img.shape}")
    if lab.ndim != 1 or lab.shape[0] != img.shape[0]:
        raise ValueError(f"IDX file {str(lpath)!r}: {lab.shape} labels for {img.shape[0]} images in {str(ipath)!r}")
    return _finish(_u8_to_unit(img)[:, None], lab.astype(np.int64), xp, device, limit)


# ---------------------------------------------------------------- CIFAR-10 (pickle)
class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays (CIFAR batches need nothing else).

    Allowed: exactly the reconstruction functions NumPy's own pickles reference, under
    their NumPy 2 (``numpy._core``) and NumPy 1 (``numpy.core``) module names:
    ``_reconstruct`` with ``ndarray`` and ``dtype`` (protocols 2-4), ``_frombuffer``
    (protocol 5, the default from Python 3.14), ``scalar`` (NumPy scalars) and
    ``_codecs.encode`` (bytes in protocol 2). Everything else raises ``UnpicklingError``.
    """

    _ALLOWED = {(f"numpy.{core}.{mod}", name) for core in ("core", "_core")
                for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                                  ("numeric", "_frombuffer"))} \
        | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path):
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise FileNotFoundError(f"CIFAR-10 batch {str(path)!r} not found") from None
    except Exception as e:  # truncated or not a pickle
        raise ValueError(f"CIFAR-10 batch {str(path)!r} is corrupt ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict):
        raise ValueError(f"CIFAR-10 batch {str(path)!r}: expected a dict, got {type(d).__name__}")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"CIFAR-10 batch {str(path)!r}: keys 'data' and 'labels' missing ({sorted(d)})")
    data, labels = np.asarray(d["data"]), np.asarray(d["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or labels.shape != (data.shape[0],):
        raise ValueError(f"CIFAR-10 batch {str(path)!r}: data {data.dtype} {data.shape} and "
                         f"labels {labels.shape}; expected uint8 (N, 3072) and (N,)")
    return data.reshape(-1, 3, 32, 32), labels


@checks.checked()
def load_cifar10(data_dir, split="train", xp=None, device=None, limit=None):
    """CIFAR-10 from the python batches: images (N, 3, 32, 32) in [-1, 1], labels int64.

    ``data_dir`` is ``cifar-10-batches-py`` or its parent. ``train`` reads
    ``data_batch_1`` .. ``data_batch_5``, ``test`` reads ``test_batch``. The pickles
    are read with an unpickler that only accepts NumPy arrays.
    """
    _check_split(split)
    limit = _limit(limit)
    folder = _data_dir(data_dir, "cifar10")
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        x, y = _read_cifar_batch(folder / name)
        xs.append(x), ys.append(y)
        if limit is not None and sum(map(len, ys)) >= limit:
            break
    return _finish(_u8_to_unit(np.concatenate(xs)), np.concatenate(ys), xp, device, limit)


# ---------------------------------------------------------------- folder of PNG/JPEG
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


class _RangeError(ValueError):
    """Pixel values outside their mode's range (the message names the file)."""


def _crop_resize(im, size, crop):
    """Centre-crop ``im`` to the aspect ratio of ``size`` (H, W) (``crop=True``), then resize (bicubic)."""
    from PIL import Image
    if size is None or im.size == (size[1], size[0]):
        return im
    if crop:
        w, h = im.size
        r = size[1] / size[0]                  # target width / height
        cw, ch = (min(w, round(h * r)), min(h, round(w / r)))
        left, top = (w - cw) // 2, (h - ch) // 2
        im = im.crop((left, top, left + cw, top + ch))
    return im.resize((size[1], size[0]), Image.Resampling.BICUBIC)


def _decode(im, size, channels, crop, path):
    """A PIL image of any mode as float32 (H, W, channels) in [-1, 1], by the mode's nominal range.

    * 8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``LA``, ``PA``, ``CMYK``,
      ``YCbCr``, ...): Pillow's conversion to ``L`` (ITU-R 601-2 luma) or ``RGB``
      (palette looked up, alpha dropped, CMYK by ``255 (1 - c)(1 - k)``), then
      ``v / 127.5 - 1``; resized in 8 bits.
    * 16-bit greyscale (``I;16*``): ``v / 65535 * 2 - 1``.
    * 32-bit integer (``I``): from a PNG the samples are 16-bit (older Pillow opens
      16-bit PNGs as ``I``), scaled as above; otherwise the range ``0 .. 2**31 - 1``,
      negative values refused.
    * float (``F``): the range ``[0, 1]``; values outside it or NaN refused.

    Deeper modes are single-band: ``channels=3`` repeats the grey band. They are
    resized in float32 and clipped to the range (bicubic overshoots).
    """
    from PIL import Image
    mode = im.mode
    if mode not in _SIXTEEN_BIT + ("I", "F"):
        if mode == "P":
            im = im.convert("RGBA")        # palette with transparency: no Pillow warning
        im = _crop_resize(im.convert("L" if channels == 1 else "RGB"), size, crop)
        a = np.asarray(im, dtype=np.uint8)
        a = a[..., None] if a.ndim == 2 else a
        return _u8_to_unit(a)
    if mode in _SIXTEEN_BIT or (mode == "I" and im.format == "PNG"):
        top = 65535.0
    elif mode == "I":
        top = 2.0 ** 31 - 1
    else:
        top = 1.0
    v = np.asarray(im).astype(np.float64)
    if not np.all(np.isfinite(v)) or v.min(initial=0.0) < 0 or v.max(initial=0.0) > top:
        raise _RangeError(f"image file {str(path)!r} (mode {mode}) has values outside its range [0, {top:g}]"
                         + (" or NaN" if mode == "F" else ""))
    g = Image.fromarray((v / top).astype(np.float32), mode="F")
    g = np.clip(np.asarray(_crop_resize(g, size, crop), dtype=np.float32), 0.0, 1.0)
    unit = (g * np.float32(2.0) - np.float32(1.0))[..., None]
    return np.repeat(unit, channels, axis=-1) if channels == 3 else unit


def _read_image_pil(path, size, channels, crop):
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            return _decode(im, size, channels, crop, path)
    except _RangeError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"image file {str(path)!r} is corrupt or unreadable ({e})") from e


@checks.checked()
def load_folder(data_dir, size=64, channels=3, crop=True, xp=None, device=None, limit=None):
    """Images of a folder (``.png``, ``.jpg``, ``.jpeg``, sorted by name), CelebA style.

    Each image is converted to ``channels`` (1: grey, 3: RGB), centre-cropped to
    the target aspect ratio (``crop=True``) and resized (bicubic) to ``size``
    (int >= 1 or (H, W); ``None`` keeps the size, which must then agree). Every Pillow
    mode is scaled from its nominal range: 8-bit ``v / 127.5 - 1``, 16-bit
    ``v / 65535 * 2 - 1``, 32-bit integer and float as described in ``_decode``
    (palette looked up, alpha dropped, CMYK converted to RGB). Needs Pillow
    (imported lazily; matplotlib depends on it too).
    Returns ``(images (N, C, H, W) float32 in [-1, 1], None)``.

    Raises ``ValueError`` for ``channels`` not 1 or 3, a bad ``size`` or ``limit``
    (an integer >= 1), and for unreadable files or values outside a mode's range.
    """
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    crop = checks.boolean(crop, "crop")
    limit = _limit(limit)
    if size is not None:
        pair = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
        if len(pair) != 2:
            raise ValueError(f"size must be an int or (H, W), got {size!r}")
        size = tuple(checks.integer(v, "size", ge=1) for v in pair)
    folder = _data_dir(data_dir, "folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if limit is not None:
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_EXTENSIONS)} images in folder {str(folder)!r}")
    try:
        import PIL.Image  # noqa: F401
    except ImportError as e:
        raise ImportError("reading PNG/JPEG files needs Pillow: pip install pillow "
                          "(it is also a dependency of matplotlib)") from e
    imgs = []
    for p in files:
        a = _read_image_pil(p, size, channels, crop)
        if imgs and a.shape != imgs[0].shape:
            raise ValueError(f"image {str(p)!r} has shape {a.shape}, others {imgs[0].shape}; "
                             "give size= to resize them all")
        imgs.append(a)
    x = np.stack(imgs).transpose(0, 3, 1, 2)
    return _finish(x, None, xp, device, None)


# ---------------------------------------------------------------- dispatcher
@checks.checked()
def load_images(name, data_dir=None, split="train", xp=None, device=None, limit=None, **kwargs):
    """Load a data set by name: ``"digits"``, ``"mnist"``, ``"cifar10"`` or ``"folder"``.

    Returns ``(images, labels)``: float32 (N, C, H, W) in [-1, 1] and int64 (N,)
    (``None`` for ``folder``). ``digits`` needs no ``data_dir`` (its ``split``
    accepts ``"all"`` too); ``folder`` ignores ``split`` and takes ``size``,
    ``channels``, ``crop`` as keywords.
    """
    if kwargs and name != "folder":
        raise ValueError(f"options {sorted(kwargs)} only apply to name='folder'")
    if name == "digits":
        return load_digits(split, xp=xp, device=device, limit=limit)
    if name == "mnist":
        return load_mnist(data_dir, split, xp=xp, device=device, limit=limit)
    if name == "cifar10":
        return load_cifar10(data_dir, split, xp=xp, device=device, limit=limit)
    if name == "folder":
        return load_folder(data_dir, xp=xp, device=device, limit=limit, **kwargs)
    raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
