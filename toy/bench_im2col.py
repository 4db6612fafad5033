"""Benchmark: im2col and col2im of :mod:`refimpl.cnn.conv` against four alternatives, per layer.

The DCGAN critic's three 5x5 stride-2 convolutions (``dcgan_critic((3, 32, 32), 64)``) at the
rows of its critic step (``3B = 192``: real, fake and penalty images; ``--rows``), float32, NumPy,
one BLAS thread. Each alternative returns the same bits as the library's functions, up to the
order of its axes (asserted before timing; ``tests/test_bench_im2col.py``), so only the time
differs:

* ``library``: CHWN ``(C, H, W, N)``, the batch innermost; ``k^2`` strided slices stacked /
  slice-additions, each a run of ``N`` contiguous values;
* ``CNHW``: the library's earlier layout ``(C, N, H, W)``: the same slices, in runs of ``Wo``;
* ``polyphase`` (on CNHW): the padded input split once into its ``s^2`` stride phases (copies),
  then the ``k^2`` windows are unit-stride slices of the phases; col2im accumulates into the
  phases and interleaves them once;
* ``spatial-first`` (on CNHW): the same slices on a ``(H, W, C, N)`` copy, permuted back to the
  CNHW matrix (im2col) or image (col2im) layout;
* ``HWNC``: an internal layout ``(H, W, N, C)`` (patch matrix ``(Ho Wo N, k^2 C)``), with the
  forward product of each layout for scale.

    python -m toy.bench_im2col [--rows N] [--repeats R]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from refimpl.cnn import conv

#: (C_in, H, C_out) of the critic's convolutions at width 64 on 3x32x32; kernel 5, stride 2, padding 2
LAYERS = ((3, 32, 64), (64, 16, 128), (128, 8, 256))
K, S, P = 5, 2, 2


def _sizes(H, W):
    return conv.conv_out_size(H, K, S, P), conv.conv_out_size(W, K, S, P)


def _pad_cnhw(x, p):
    C, N, H, W = x.shape
    out = np.zeros((C, N, H + 2 * p, W + 2 * p), x.dtype)
    out[:, :, p:p + H, p:p + W] = x
    return out


def im2col_cnhw(x, k=K, s=S, p=P):
    """CNHW ``x`` -> ``(C k^2, N Ho Wo)``."""
    C, N, H, W = x.shape
    Ho, Wo = _sizes(H, W)
    xp_ = _pad_cnhw(x, p)
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    return np.stack([xp_[:, :, u:u + hi:s, v:v + wi:s] for u in range(k) for v in range(k)], axis=1).reshape(
        C * k * k, N * Ho * Wo)


def col2im_cnhw(cols, shape, k=K, s=S, p=P):
    """Adjoint of :func:`im2col_cnhw`."""
    C, N, H, W = shape
    Ho, Wo = _sizes(H, W)
    c6 = cols.reshape(C, k * k, N, Ho, Wo)
    out = np.zeros((C, N, H + 2 * p, W + 2 * p), cols.dtype)
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    for u in range(k):
        for v in range(k):
            out[:, :, u:u + hi:s, v:v + wi:s] += c6[:, u * k + v]
    return out[:, :, p:p + H, p:p + W]


def chwn_cols(cols, C, N, Ho, Wo):
    """A CNHW patch matrix (C k^2, N Ho Wo) in the library's CHWN column order (C k^2, Ho Wo N)."""
    return np.ascontiguousarray(np.permute_dims(cols.reshape(C * K * K, N, Ho, Wo), (0, 2, 3, 1))).reshape(
        C * K * K, Ho * Wo * N)


def im2col_polyphase(x, k=K, s=S, p=P):
    C, N, H, W = x.shape
    Ho, Wo = _sizes(H, W)
    xp_ = _pad_cnhw(x, p)
    ph = [[np.ascontiguousarray(xp_[:, :, a::s, b::s]) for b in range(s)] for a in range(s)]
    cols = np.stack([ph[u % s][v % s][:, :, u // s:u // s + Ho, v // s:v // s + Wo]
                     for u in range(k) for v in range(k)], axis=1)
    return cols.reshape(C * k * k, N * Ho * Wo)


def col2im_polyphase(cols, shape, k=K, s=S, p=P):
    C, N, H, W = shape
    Ho, Wo = _sizes(H, W)
    c6 = cols.reshape(C, k * k, N, Ho, Wo)
    Hp, Wp, m = H + 2 * p, W + 2 * p, -(-k // s)
    ph = [[np.zeros((C, N, Ho + m - 1, Wo + m - 1), cols.dtype) for _ in range(s)] for _ in range(s)]
    for u in range(k):
        for v in range(k):
            ph[u % s][v % s][:, :, u // s:u // s + Ho, v // s:v // s + Wo] += c6[:, u * k + v]
    out = np.zeros((C, N, Hp, Wp), cols.dtype)
    for a in range(s):
        for b in range(s):
            out[:, :, a::s, b::s] = ph[a][b][:, :, :len(range(a, Hp, s)), :len(range(b, Wp, s))]
    return out[:, :, p:p + H, p:p + W]


def im2col_spatial_first(x, k=K, s=S, p=P):
    C, N, H, W = x.shape
    Ho, Wo = _sizes(H, W)
    xh = np.zeros((H + 2 * p, W + 2 * p, C, N), x.dtype)
    xh[p:p + H, p:p + W] = np.permute_dims(x, (2, 3, 0, 1))
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    cols = np.stack([xh[u:u + hi:s, v:v + wi:s] for u in range(k) for v in range(k)], axis=0)   # (kk, Ho, Wo, C, N)
    return np.ascontiguousarray(np.permute_dims(cols, (3, 0, 4, 1, 2))).reshape(C * k * k, N * Ho * Wo)


def col2im_spatial_first(cols, shape, k=K, s=S, p=P):
    C, N, H, W = shape
    Ho, Wo = _sizes(H, W)
    c6 = np.ascontiguousarray(np.permute_dims(cols.reshape(C, k * k, N, Ho, Wo), (1, 3, 4, 0, 2)))
    out = np.zeros((H + 2 * p, W + 2 * p, C, N), cols.dtype)
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    for u in range(k):
        for v in range(k):
            out[u:u + hi:s, v:v + wi:s] += c6[u * k + v]
    return np.ascontiguousarray(np.permute_dims(out[p:p + H, p:p + W], (2, 3, 0, 1)))


def im2col_hwnc(xh, k=K, s=S, p=P):
    """``xh`` (H, W, N, C) -> ``(Ho Wo N, k^2 C)``."""
    H, W, N, C = xh.shape
    Ho, Wo = _sizes(H, W)
    xp_ = np.zeros((H + 2 * p, W + 2 * p, N, C), xh.dtype)
    xp_[p:p + H, p:p + W] = xh
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    return np.stack([xp_[u:u + hi:s, v:v + wi:s] for u in range(k) for v in range(k)], axis=3).reshape(
        Ho * Wo * N, k * k * C)


def col2im_hwnc(cols, shape, k=K, s=S, p=P):
    """Adjoint of :func:`im2col_hwnc`: ``(Ho Wo N, k^2 C)`` -> (H, W, N, C)."""
    H, W, N, C = shape
    Ho, Wo = _sizes(H, W)
    c6 = cols.reshape(Ho, Wo, N, k * k, C)
    out = np.zeros((H + 2 * p, W + 2 * p, N, C), cols.dtype)
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    for u in range(k):
        for v in range(k):
            out[u:u + hi:s, v:v + wi:s] += c6[:, :, :, u * k + v]
    return out[p:p + H, p:p + W]


def hwnc_cols(cols, C, N, Ho, Wo):
    """A CNHW patch matrix (C k^2, N Ho Wo) in the HWNC order (Ho Wo N, k^2 C)."""
    return np.ascontiguousarray(np.permute_dims(cols.reshape(C, K * K, N, Ho, Wo), (3, 4, 2, 1, 0))).reshape(
        Ho * Wo * N, K * K * C)


def check(x, cols):
    """Assert every alternative equals the library bit for bit (its axes permuted) on CNHW ``x`` and
    patch-matrix-shaped ``cols`` (CNHW column order); returns the number of comparisons (8)."""
    C, N, H, W = x.shape
    Ho, Wo = _sizes(H, W)
    ref_cols, ref_img = im2col_cnhw(x), col2im_cnhw(cols, x.shape)
    xc = np.ascontiguousarray(np.permute_dims(x, (0, 2, 3, 1)))                      # (C, H, W, N)
    assert np.array_equal(conv.im2col(xc, K, S, P), chwn_cols(ref_cols, C, N, Ho, Wo)), "im2col_cnhw"
    assert np.array_equal(conv.col2im(chwn_cols(cols, C, N, Ho, Wo), xc.shape, K, S, P),
                          np.permute_dims(ref_img, (0, 2, 3, 1))), "col2im_cnhw"
    for f in (im2col_polyphase, im2col_spatial_first):
        assert np.array_equal(f(x), ref_cols), f.__name__
    for f in (col2im_polyphase, col2im_spatial_first):
        assert np.array_equal(f(cols, x.shape), ref_img), f.__name__
    xh = np.ascontiguousarray(np.permute_dims(x, (2, 3, 1, 0)))                      # (H, W, N, C)
    assert np.array_equal(im2col_hwnc(xh), hwnc_cols(ref_cols, C, N, Ho, Wo))
    assert np.array_equal(col2im_hwnc(hwnc_cols(cols, C, N, Ho, Wo), xh.shape), np.permute_dims(ref_img, (2, 3, 1, 0)))
    return 8                                          # the number of comparisons made


def _median_ms(f, repeats):
    f()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m toy.bench_im2col", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=192, help="images per call (default 192: the critic step's 3B)")
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args(argv)
    if a.rows < 1 or a.repeats < 1:
        ap.error("--rows and --repeats must be >= 1")
    from threadpoolctl import threadpool_info, threadpool_limits
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        blas = [(i["internal_api"], i.get("architecture"), i["version"]) for i in threadpool_info()]
        print(f"float32, NumPy {np.__version__}, BLAS {blas}, 1 thread; median of {a.repeats} calls, ms")
        print(f"{'layer':>16} {'op':>7} {'library':>8} {'CNHW':>6} {'polyphase':>9} {'spatial-first':>13} {'HWNC':>6}")
        for C, H, Co in LAYERS:
            x = rng.standard_normal((C, a.rows, H, H)).astype("float32")
            Ho, Wo = _sizes(H, H)
            cols = rng.standard_normal((C * K * K, a.rows * Ho * Wo)).astype("float32")
            check(x, cols)
            xc = np.ascontiguousarray(np.permute_dims(x, (0, 2, 3, 1)))
            colsc = chwn_cols(cols, C, a.rows, Ho, Wo)
            xh = np.ascontiguousarray(np.permute_dims(x, (2, 3, 1, 0)))
            colsh = hwnc_cols(cols, C, a.rows, Ho, Wo)
            W2 = rng.standard_normal((Co, C * K * K)).astype("float32")
            name = f"{C}x{H}x{H}->{Co}"
            rows = [("im2col", lambda: conv.im2col(xc, K, S, P), lambda: im2col_cnhw(x), lambda: im2col_polyphase(x),
                     lambda: im2col_spatial_first(x), lambda: im2col_hwnc(xh)),
                    ("col2im", lambda: conv.col2im(colsc, xc.shape, K, S, P), lambda: col2im_cnhw(cols, x.shape),
                     lambda: col2im_polyphase(cols, x.shape), lambda: col2im_spatial_first(cols, x.shape),
                     lambda: col2im_hwnc(colsh, xh.shape)),
                    ("matmul", lambda: W2 @ colsc, lambda: W2 @ cols, None, None, lambda: colsh @ W2.T)]
            for op, *fs in rows:
                ms = [f"{_median_ms(f, a.repeats):.1f}" if f is not None else "" for f in fs]
                print(f"{name:>16} {op:>7} {ms[0]:>8} {ms[1]:>6} {ms[2]:>9} {ms[3]:>13} {ms[4]:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
