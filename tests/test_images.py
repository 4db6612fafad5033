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


# ---------------------------------------------------------------- issue 12 item 5: every mode, protocol 5
def _unit8(v):
    return np.asarray(v, np.float32) / np.float32(127.5) - np.float32(1)


def test_png_16bit_ramp_is_not_saturated(tmp_path):
    """A 64-step 16-bit ramp (Pillow mode I;16) keeps 64 distinct values, v / 65535 * 2 - 1."""
    Image = pytest.importorskip("PIL.Image")
    ramp = np.round(np.linspace(0, 65535, 64)).astype(np.uint16).reshape(8, 8)
    im = Image.fromarray(ramp)
    assert im.mode == "I;16"
    im.save(tmp_path / "ramp.png")
    with Image.open(tmp_path / "ramp.png") as back:
        assert back.mode == "I;16"                        # the file really is 16-bit
    want = ramp.astype(np.float64) / 65535 * 2 - 1
    for channels in (1, 3):
        x, _ = load_folder(tmp_path, size=None, channels=channels)
        assert x.shape == (1, channels, 8, 8)
        assert len(np.unique(x)) == 64                    # was 2 before (everything above 255 -> +1)
        for c in range(channels):
            np.testing.assert_allclose(x[0, c], want, atol=2e-7, rtol=0)
    assert x.min() == -1.0 and x.max() == 1.0


@pytest.mark.parametrize("channels", [1, 3])
def test_every_8bit_mode_from_png(tmp_path, channels):
    """L, LA, P (palette), RGB, RGBA and 1-bit PNGs: Pillow's conversion, then v / 127.5 - 1."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    base = Image.fromarray(rgb)
    images = {"L": base.convert("L"), "LA": base.convert("LA"), "P": base.convert("P"),
              "RGB": base, "RGBA": base.convert("RGBA"), "1": base.convert("1")}
    for mode, im in images.items():
        d = tmp_path / mode
        d.mkdir()
        im.save(d / "a.png")
        with Image.open(d / "a.png") as back:
            assert back.mode == mode
            ref = back.convert("RGBA") if mode == "P" else back
            want = np.asarray(ref.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
        x, _ = load_folder(d, size=None, channels=channels)
        want = want[..., None] if want.ndim == 2 else want
        np.testing.assert_array_equal(x[0], _unit8(want).transpose(2, 0, 1), err_msg=mode)
    # RGBA: alpha is dropped, colours kept exactly; palette: looked up
    xa, _ = load_folder(tmp_path / "RGBA", size=None, channels=3)
    np.testing.assert_array_equal(xa[0], _unit8(rgb).transpose(2, 0, 1))
    if channels == 3:
        xb, _ = load_folder(tmp_path / "1", size=None)
        assert set(np.unique(xb)) <= {-1.0, 1.0}


def test_cmyk_int32_float_modes():
    """CMYK (pure values), 32-bit integer and float images decoded by their nominal range."""
    Image = pytest.importorskip("PIL.Image")
    from refimpl.images import _decode
    cyan = Image.new("CMYK", (2, 2), (255, 0, 0, 0))
    np.testing.assert_array_equal(_decode(cyan, None, 3, True, "c")[0, 0], [-1.0, 1.0, 1.0])
    grey = Image.new("CMYK", (2, 2), (0, 0, 0, 255))
    np.testing.assert_array_equal(_decode(grey, None, 1, True, "k")[..., 0], -np.ones((2, 2)))
    # mode I from a PNG (how Pillow < 10 opened 16-bit PNGs): 16-bit samples
    ramp = np.arange(0, 65536, 4096, dtype=np.int32).reshape(4, 4)
    im = Image.fromarray(ramp)
    assert im.mode == "I"
    im.format = "PNG"
    np.testing.assert_allclose(_decode(im, None, 1, True, "i")[..., 0], ramp / 65535 * 2 - 1, atol=2e-7)
    # mode I otherwise: 0 .. 2**31 - 1
    big = np.array([[0, 2 ** 30], [2 ** 31 - 1, 12345]], dtype=np.int32)
    out = _decode(Image.fromarray(big), None, 3, True, "i")
    np.testing.assert_allclose(out[..., 0], big / (2.0 ** 31 - 1) * 2 - 1, atol=2e-7)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    with pytest.raises(ValueError, match="i32.*outside"):
        _decode(Image.fromarray(np.array([[-1, 0]], dtype=np.int32)), None, 1, True, "i32")
    f = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(_decode(Image.fromarray(f), None, 1, True, "f")[..., 0], f * 2 - 1, atol=1e-7)
    for bad in (np.array([[0.5, 1.5]], np.float32), np.array([[np.nan, 0.5]], np.float32)):
        with pytest.raises(ValueError, match="fbad.*outside"):
            _decode(Image.fromarray(bad), None, 1, True, "fbad")
    # resizing a 16-bit image works in float and stays in range
    r = _decode(Image.fromarray(np.full((8, 8), 65535, np.uint16)), (4, 4), 1, True, "r")
    assert r.shape == (4, 4, 1) and np.all(r == 1.0)


def test_load_folder_argument_domains(tmp_path):
    pytest.importorskip("PIL")
    _write_pngs(tmp_path, np.random.default_rng(8))
    for kw, err in ((dict(channels=True), ValueError), (dict(channels=2), ValueError),
                    (dict(size=0), ValueError), (dict(size=2.5), TypeError), (dict(size=(3, 4, 5)), ValueError),
                    (dict(limit=0), ValueError), (dict(crop=1), TypeError)):
        with pytest.raises(err, match=next(iter(kw))):
            load_folder(tmp_path, **kw)


def _cifar_dict(rng, n=3):
    return {b"batch_label": b"x", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)]}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_every_pickle_protocol(tmp_path, protocol):
    """Protocol 5 (pickle.HIGHEST_PROTOCOL; numpy rebuilds through numeric._frombuffer) is accepted."""
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(protocol)
    batch = _cifar_dict(rng)
    (d / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    if protocol == 5:
        assert b"_frombuffer" in (d / "test_batch").read_bytes()
    x, y = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(x, _unit8(batch[b"data"]).reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(y, batch[b"labels"])


def _rename_global(raw, old, new):
    """Rename a module string inside a framed pickle, fixing the enclosing frame's length."""
    import pickletools
    pos = raw.index(old)
    frames = [p for op, _, p in pickletools.genops(raw) if op.name == "FRAME" and p < pos]
    out = bytearray(raw[:pos - 1] + bytes([len(new)]) + new + raw[pos + len(old):])
    if frames:
        f = frames[-1]
        n = int.from_bytes(out[f + 1:f + 9], "little") + len(new) - len(old)
        out[f + 1:f + 9] = n.to_bytes(8, "little")
    return bytes(out)


def test_cifar_numpy1_frombuffer_name_accepted(tmp_path):
    """NumPy 1.x writes numpy.core.numeric._frombuffer: accepted under that name too."""
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    batch = _cifar_dict(np.random.default_rng(9))
    raw = _rename_global(pickle.dumps(batch, protocol=5), b"numpy._core.numeric", b"numpy.core.numeric")
    assert b"numpy.core.numeric" in raw and b"numpy._core" not in raw.split(b"dtype")[0]
    (d / "test_batch").write_bytes(raw)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # numpy.core is NumPy 2's shim
        x, _ = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(x, _unit8(batch[b"data"]).reshape(-1, 3, 32, 32))


class _Evil:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_malicious_pickle_refused(tmp_path, protocol):
    """Anything but NumPy's reconstruction functions is refused, and never called."""
    import os
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    marker = tmp_path / "pwned"
    for k, (fn, args) in enumerate([(os.mkdir, (str(marker),)), (np.save, (str(marker), np.zeros(1))),
                                    (eval, ("1+1",))]):
        (d / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(fn, args), b"labels": []}, protocol=protocol))
        with pytest.raises(ValueError, match="test_batch.*refusing"):
            load_cifar10(tmp_path, "test")
        assert not marker.exists() and not (tmp_path / "pwned.npy").exists()
