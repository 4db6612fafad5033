"""toy.bench_im2col: every alternative layout returns the library's bits, up to the order of its
axes (so the benchmark times the same work), and the script runs."""
import numpy as np
import pytest

from toy import bench_im2col as b


@pytest.mark.parametrize("C,H", [(3, 8), (2, 6), (4, 5)])
def test_the_alternatives_equal_the_library(C, H):
    rng = np.random.default_rng(C * H)
    x = rng.standard_normal((C, 3, H, H)).astype("float32")
    Ho, Wo = b._sizes(H, H)
    assert b.check(x, rng.standard_normal((C * b.K * b.K, 3 * Ho * Wo)).astype("float32")) == 8


def test_the_check_can_fail(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    cols = rng.standard_normal((2 * 25, 3 * 16)).astype("float32")
    def im2col_polyphase(x):                  # one entry one ulp off
        out = b.im2col_cnhw(x)
        out[0, 0] = np.nextafter(out[0, 0], np.float32(np.inf))
        return out
    monkeypatch.setattr(b, "im2col_polyphase", im2col_polyphase)
    with pytest.raises(AssertionError, match="im2col_polyphase"):
        b.check(x, cols)


def test_the_script_prints_every_layer(capsys):
    pytest.importorskip("threadpoolctl")
    assert b.main(["--rows", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("im2col") == 3 and out.count("col2im") == 3 and "spatial-first" in out


def test_the_check_compares_the_library_too(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    cols = rng.standard_normal((2 * 25, 3 * 16)).astype("float32")
    real = b.conv.col2im

    def col2im(*args):                        # the library one ulp off
        out = real(*args)
        out[0, 0, 0, 0] = np.nextafter(out[0, 0, 0, 0], np.float32(np.inf))
        return out
    monkeypatch.setattr(b.conv, "col2im", col2im)
    with pytest.raises(AssertionError, match="col2im_cnhw"):
        b.check(x, cols)
