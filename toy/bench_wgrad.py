"""Benchmark of the squared Wasserstein gradient norm ``g^T L(X) g`` (WWGAN, Prop. 5).

Three implementations on one batch (default 64 images of 3x32x32), same process,
same thread count:

* ``stencil``: :func:`refimpl.wgrad.wasserstein_norm_sq` (NumPy, shifted slices);
* ``dense``: :func:`refimpl.wgrad.laplacian_dense` per image, then ``g^T L g``;
* ``torch``: Algorithm 2 of Dukler et al. 2019 written with ``conv2d`` (PyTorch CPU),
  with the conventions' fix ``W = H*H*V`` (the paper multiplies by ``V`` twice).

Usage: ``python -m toy.bench_wgrad [--threads 1] [--batch 64] [--size 32]``.
Thread limits are set before NumPy and PyTorch are imported.
"""
from __future__ import annotations

import argparse
import os
import time


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7, help="timing repeats (median) for stencil/torch")
    p.add_argument("--dense-images", type=int, default=64, help="images timed with the dense matrix")
    p.add_argument("--neighbours", nargs="+", default=["4", "8", "two-step"])
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def torch_algorithm2(torch, g, X, offsets, weights):
    """Algorithm 2 with grouped ``conv2d`` kernels; g, X (B, C, H, W) tensors -> (B,).

    Degrees and the edge-validity masks are convolutions of an all-ones image, so
    nothing here is shared with :mod:`refimpl.wgrad`.
    """
    F = torch.nn.functional
    B, C, H, W = g.shape
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    k = 2 * r + 1
    nk = len(offsets)
    opts = dict(dtype=g.dtype)
    ones = torch.ones(1, 1, H, W, **opts)
    kd = torch.zeros(1, 1, k, k, **opts)                  # weighted neighbour count kernel
    sel = torch.zeros(nk, 1, k, k, **opts)                # picks the neighbour p + O_k
    for o, ((dy, dx), w) in enumerate(zip(offsets, weights)):
        kd[0, 0, r + dy, r + dx] += w
        kd[0, 0, r - dy, r - dx] += w
        sel[o, 0, r + dy, r + dx] = 1.0
    deg = F.conv2d(ones, kd, padding=r)[0, 0]             # sum_j w_ij
    d = deg / (C * deg.sum())                              # d_i, total over all channels
    mask = F.conv2d(ones, sel, padding=r)[0]               # 1 where p + O_k is inside
    wmask = mask * torch.tensor(weights, **opts)[:, None, None]
    centre = torch.zeros(nk, 1, k, k, **opts)
    centre[:, 0, r, r] = 1.0
    Kk = (centre - sel).repeat(C, 1, 1, 1)                 # g_i - g_{O_k(i)}, per channel
    Mk = (0.5 * (centre + sel)).repeat(C, 1, 1, 1)         # X_i/(2d_i) + X_j/(2d_j)

    def run(g, X):
        Hh = F.conv2d(g, Kk, padding=r, groups=C).view(B, C, nk, H, W)
        V = F.conv2d(X / d, Mk, padding=r, groups=C).view(B, C, nk, H, W)
        return (Hh * Hh * V * wmask).sum(dim=(1, 2, 3, 4))   # W = H*H*V (fixed line 8)
    return run


def _median_time(fn, repeats):
    fn()                                                   # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main(argv=None):
    args = _parse(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass
    torch.set_num_threads(args.threads)
    from refimpl.wgrad import PixelGraph, image_to_mass, laplacian_dense, wasserstein_norm_sq
    from refimpl.wgrad import wasserstein_norm_sq_and_gradient

    B, C, S = args.batch, args.channels, args.size
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1, 1, (B, C, S, S))
    g64 = rng.standard_normal((B, C, S, S))
    X64 = image_to_mass(x)
    print(f"batch {B} of {C}x{S}x{S}, threads {args.threads}, numpy {np.__version__}, "
          f"torch {torch.__version__}; median of {args.repeats} (stencil, torch)")
    rows = []
    for nb in args.neighbours:
        nb = int(nb) if nb.isdigit() else nb
        graph = PixelGraph(S, S, C, nb)
        alg2 = torch_algorithm2(torch, torch.from_numpy(g64), torch.from_numpy(X64),
                                graph.offsets, graph.weights)
        # agreement in float64
        s_st = wasserstein_norm_sq(graph, X64, g64)
        s_t = alg2(torch.from_numpy(g64), torch.from_numpy(X64)).numpy()
        nd = min(args.dense_images, B)
        s_d = np.array([g64[b].ravel() @ laplacian_dense(graph, X64[b]) @ g64[b].ravel() for b in range(min(nd, 4))])
        err_t = np.max(np.abs(s_t - s_st) / np.abs(s_st))
        err_d = np.max(np.abs(s_d - s_st[:len(s_d)]) / np.abs(s_st[:len(s_d)]))
        # timings in float32
        X32, g32 = X64.astype(np.float32), g64.astype(np.float32)
        tX, tg = torch.from_numpy(X32), torch.from_numpy(g32)
        alg2_32 = torch_algorithm2(torch, tg, tX, graph.offsets, graph.weights)
        # timed: the unchecked twin a training step calls (the torch side validates nothing either)
        t_st = _median_time(lambda: wasserstein_norm_sq_and_gradient.unchecked(graph, X32, g32, need_gradient=False),
                            args.repeats)
        t_stg = _median_time(lambda: wasserstein_norm_sq_and_gradient.unchecked(graph, X32, g32), args.repeats)
        with torch.no_grad():
            t_t = _median_time(lambda: alg2_32(tg, tX), args.repeats)
        gf = g32.reshape(B, -1)
        t0 = time.perf_counter()
        Ls = []
        for b in range(nd):
            Ls.append(laplacian_dense(graph, X32[b]))
        t_build = (time.perf_counter() - t0) / nd * B
        t0 = time.perf_counter()
        for b in range(nd):
            float(gf[b] @ Ls[b] @ gf[b])
        t_quad = (time.perf_counter() - t0) / nd * B
        del Ls
        rows.append((nb, t_st, t_stg, t_t, t_build, t_quad, err_t, err_d))
        print(f"\nneighbours={nb!r} ({len(graph.offsets)} offsets, {graph.n_edges} edges/image)")
        print(f"  stencil  s2           {t_st * 1e3:9.2f} ms")
        print(f"  stencil  s2 + L g     {t_stg * 1e3:9.2f} ms")
        print(f"  torch    Alg. 2 conv  {t_t * 1e3:9.2f} ms   (torch / stencil = {t_t / t_st:.2f})")
        print(f"  dense    build L      {t_build * 1e3:9.2f} ms   (dense / stencil = {t_build / t_st:.0f}; "
              f"{nd} images timed, scaled to {B})")
        print(f"  dense    g^T L g only {t_quad * 1e3:9.2f} ms   (given L; / stencil = {t_quad / t_st:.1f})")
        print(f"  float64 agreement: max rel. diff torch {err_t:.1e}, dense {err_d:.1e}")
    return rows


if __name__ == "__main__":
    main()
