"""Tests of refimpl.images: tiny files of each format written to tmp_path and read back."""
import gzip
import pickle
import struct

import numpy as np
import pytest

from refimpl.backend import to_numpy
from refimpl.images import load_cifar10, load_digits, load_folder, load_images, load_mnist, read_idx
from tests.conftest import assert_xp


def _idx_bytes(a):
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float64: 0x0E}[a.dtype.type]
    be = a.astype(a.dtype.newbyteorder(">"))
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + be.tobytes()


def _write_mnist(folder, rng, split="train", n=5, gz=True):
    pre = "train" if split == "train" else "t10k"
    img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    img[0, 0, :2] = (0, 255)
    lab = rng.integers(0, 10, n).astype(np.uint8)
    for name, a in ((f"{pre}-images-idx3-ubyte", img), (f"{pre}-labels-idx1-ubyte", lab)):
        data = _idx_bytes(a)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return img, lab


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_roundtrip(tmp_path, gz, split):
    img, lab = _write_mnist(tmp_path, np.random.default_rng(0), split, gz=gz)
    x, y = load_mnist(tmp_path, split)
    assert x.dtype == np.float32 and x.shape == (5, 1, 28, 28) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], img.astype(np.float32) / np.float32(127.5) - np.float32(1))
    np.testing.assert_array_equal(y, lab)
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 1] == 1.0
    x2, _ = load_images("mnist", tmp_path, split, limit=3)
    np.testing.assert_array_equal(x2, x[:3])


def test_read_idx_other_types(tmp_path):
    for a in (np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 7, np.linspace(-1, 1, 6)):
        p = tmp_path / "a.idx"
        p.write_bytes(_idx_bytes(a))
        np.testing.assert_array_equal(read_idx(p), a)


def test_mnist_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path, np.random.default_rng(1), gz=False)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-10])                     # truncated data
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    p.write_bytes(b"\x1f\x8b\x08\x00garbage")               # corrupt gzip
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*gzip"):
        load_mnist(tmp_path)
    p.write_bytes(b"\x01\x02\x03\x04")                      # bad magic
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path, np.random.default_rng(1), gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope")


def _write_cifar(folder, rng, n=3):
    d = folder / "cifar-10-batches-py"
    d.mkdir()
    out = {}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(d / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels}, f, protocol=2)
        out[name] = (data, labels)
    return d, out


def test_cifar_roundtrip(tmp_path):
    d, out = _write_cifar(tmp_path, np.random.default_rng(2))
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32
    want = np.concatenate([out[f"data_batch_{k}"][0] for k in range(1, 6)]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(x, want.astype(np.float32) / np.float32(127.5) - np.float32(1))
    np.testing.assert_array_equal(y, sum((out[f"data_batch_{k}"][1] for k in range(1, 6)), []))
    xt, yt = load_images("cifar10", d, "test")              # the batches folder itself
    np.testing.assert_array_equal(xt, out["test_batch"][0].reshape(-1, 3, 32, 32) / np.float32(127.5) - np.float32(1))
    np.testing.assert_array_equal(yt, out["test_batch"][1])
    assert load_cifar10(tmp_path, limit=4)[0].shape[0] == 4


def test_cifar_missing_and_corrupt(tmp_path):
    d, _ = _write_cifar(tmp_path, np.random.default_rng(3))
    (d / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path)
    (d / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_3.*corrupt"):
        load_cifar10(tmp_path)
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="data_batch_3"):
        load_cifar10(tmp_path)
    with open(d / "data_batch_3", "wb") as f:                # not only numpy: refused
        pickle.dump({b"data": pathlib_obj(), b"labels": []}, f)
    with pytest.raises(ValueError, match="data_batch_3.*refusing"):
        load_cifar10(tmp_path)


def pathlib_obj():
    import fractions
    return fractions.Fraction(1, 3)


def _write_pngs(folder, rng, shape=(6, 5, 3)):
    from PIL import Image
    imgs = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2)]
    for k, a in enumerate(imgs):
        Image.fromarray(a).save(folder / f"img{k}.png")
    return imgs


def test_folder_roundtrip(tmp_path):
    pytest.importorskip("PIL")
    imgs = _write_pngs(tmp_path, np.random.default_rng(4))
    (tmp_path / "notes.txt").write_text("ignored")
    x, y = load_folder(tmp_path, size=(6, 5))
    assert y is None and x.shape == (2, 3, 6, 5) and x.dtype == np.float32
    want = np.stack(imgs).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - np.float32(1)
    np.testing.assert_array_equal(x, want)
    np.testing.assert_array_equal(load_images("folder", tmp_path, size=None)[0], want)
    xs, _ = load_images("folder", tmp_path, size=4)         # centre crop 5x5, resize to 4x4
    assert xs.shape == (2, 3, 4, 4) and xs.min() >= -1 and xs.max() <= 1
    xg, _ = load_folder(tmp_path, size=(6, 5), channels=1)
    assert xg.shape == (2, 1, 6, 5)


def test_folder_jpeg(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    yy, xx = np.mgrid[0:16, 0:16]
    a = np.stack([yy * 16, xx * 16, np.full_like(yy, 128)], -1).astype(np.uint8)   # smooth: JPEG-friendly
    Image.fromarray(a).save(tmp_path / "a.jpg", quality=100)
    x, _ = load_images("folder", tmp_path, size=16)
    with Image.open(tmp_path / "a.jpg") as im:               # lossy codec: compare with its decode
        dec = np.asarray(im.convert("RGB"))
    want = dec.transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - np.float32(1)
    assert x.shape == (1, 3, 16, 16)
    np.testing.assert_array_equal(x[0], want)


def test_folder_without_pillow(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    _write_pngs(tmp_path, np.random.default_rng(5))
    import builtins
    real_import = builtins.__import__

    def no_pil(name, *args, **kw):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("no PIL")
        return real_import(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(ImportError, match="pip install pillow"):
        load_folder(tmp_path, size=None)


def test_folder_missing_and_corrupt(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(FileNotFoundError, match="no .png"):
        load_folder(tmp_path)
    _write_pngs(tmp_path, np.random.default_rng(6))
    (tmp_path / "img9.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(ValueError, match="img9.jpg"):
        load_folder(tmp_path)


def test_dispatcher_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown data set"):
        load_images("imagenet", tmp_path)
    with pytest.raises(ValueError, match="data_dir"):
        load_images("mnist")
    with pytest.raises(ValueError, match="split"):
        load_images("mnist", tmp_path, split="val")
    with pytest.raises(ValueError, match="folder"):
        load_images("mnist", tmp_path, size=3)


def test_digits(xp):
    pytest.importorskip("sklearn")
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == -1.0 and x.max() == 1.0
    from sklearn.datasets import load_digits as sk
    np.testing.assert_array_equal(x[:, 0], sk().images / 8.0 - 1.0)
    xtr, _ = load_images("digits", split="train")
    xte, _ = load_images("digits", split="test")
    assert len(xtr) + len(xte) == 1797 and len(xte) == 360
    xd, yd = load_images("digits", split="test", xp=xp, limit=10)
    assert_xp(xd, xp, "float32")
    np.testing.assert_array_equal(to_numpy(xd), xte[:10])
    assert yd.shape == (10,)


def test_digits_without_sklearn(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_sk(name, *args, **kw):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", no_sk)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()
