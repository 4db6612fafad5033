"""The pixel graph of WWGAN's discrete Wasserstein metric: vertices the ``C*H*W`` pixels, edges
between nearby pixels of one channel, with the neighbourhoods and edge weights of the paper and
of the authors' code (:mod:`refimpl.wgrad`, which computes on it, gives the maths).
"""
from __future__ import annotations

import numbers

import numpy as _np  # host side only: graph constants (offsets, degrees)

from refimpl.backend import from_host
from refimpl import validation as checks

NEIGHBOUR_PATTERNS = {
    4: ((0, 1), (1, 0)),
    8: ((0, 1), (1, 0), (1, 1), (1, -1)),
    "two-step": ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0)),
}
_VARIANTS = ("paper", "authors")


def _canonical(off):
    dy, dx = off
    if dy < 0 or (dy == 0 and dx < 0):
        dy, dx = -dy, -dx
    return (dy, dx)


class PixelGraph:
    """Pixel graph ``G = (V, E, w)`` of ``channels x height x width`` images (WWGAN Sec. 3.2).

    Parameters
    ----------
    height, width : int
        Image size in pixels (``height * width >= 2``).
    channels : int, default 1
        Number of channels; each channel is its own copy of the grid, no edges between
        channels.
    neighbours : {4, 8, "two-step"} or sequence of (dy, dx)
        Neighbour pattern (see :data:`NEIGHBOUR_PATTERNS`), or explicit offsets; an
        offset and its opposite describe the same edges, give one of them.
    weights : float or sequence of float, optional
        Positive edge weight ``w_ij`` per offset (in the order of :attr:`offsets`);
        default 1 for every edge.
    variant : {"paper", "authors"}, default "paper"
        ``"paper"``: Prop. 5 with degree-normalised ``theta_ij = X_i/d_i + X_j/d_j``
        and the factor 1/2. ``"authors"``: the public code's form, edge factor
        ``X_i + X_j`` with no degrees and no 1/2 (not the paper's tensor).

    Attributes
    ----------
    offsets : tuple of (int, int)
        Canonical offsets ``(dy, dx)`` with ``dy > 0`` or ``dy == 0, dx > 0``.
    weights : tuple of float
    n : int
        Number of vertices ``C*H*W``.
    degree : numpy.ndarray, shape (H, W)
        Normalised degree ``d_i`` (same in every channel; host float64).
    total_weight : float
        ``sum_i sum_j w_ij`` over the whole graph (each edge counted twice).

    Raises
    ------
    ValueError
        Unknown pattern or variant, bad sizes or weights, or a pixel with no
        neighbour (degree 0: ``theta`` would divide by zero, e.g. ``H = W = 1``).
    """

    def __init__(self, height, width, channels=1, neighbours=4, weights=None, variant="paper"):
        for name, v in (("height", height), ("width", width), ("channels", channels)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.height, self.width, self.channels = int(height), int(width), int(channels)
        if variant not in _VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {_VARIANTS}")
        self.variant = variant
        self.neighbours = neighbours
        if isinstance(neighbours, (str, numbers.Integral)) and not isinstance(neighbours, bool):
            if neighbours not in NEIGHBOUR_PATTERNS:
                raise ValueError(f"unknown neighbours {neighbours!r}; choose 4, 8, 'two-step' "
                                 "or give a sequence of (dy, dx) offsets")
            offsets = NEIGHBOUR_PATTERNS[neighbours]
        else:
            try:
                offsets = tuple(_canonical((int(a), int(b))) for a, b in neighbours)
            except (TypeError, ValueError) as e:
                raise ValueError(f"unknown neighbours {neighbours!r}; choose 4, 8, 'two-step' "
                                 "or give a sequence of (dy, dx) offsets") from e
            if not offsets or (0, 0) in offsets or len(set(offsets)) != len(offsets):
                raise ValueError(f"offsets must be nonempty, nonzero and distinct up to sign: {neighbours!r}")
        self.offsets = tuple(offsets)
        if weights is None:
            weights = 1.0
        if isinstance(weights, numbers.Real):
            weights = (weights,) * len(self.offsets)
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(self.offsets) or not all(_np.isfinite(w) and w > 0 for w in weights):
            raise ValueError(f"weights must be {len(self.offsets)} positive finite numbers "
                             f"(one per offset {self.offsets}), got {weights!r}")
        self.weights = weights
        H, W = self.height, self.width
        deg = _np.zeros((H, W))
        n_edges = 0
        for (dy, dx), w in zip(self.offsets, self.weights):
            ys, yd, xs, xd = offset_slices(dy, dx, H, W)
            m = _np.zeros((H, W), dtype=bool)
            m[ys, xs] = True
            n_edges += int(m.sum())
            deg[ys, xs] += w
            deg[yd, xd] += w
        if not (deg > 0).all():
            y, x = map(int, _np.argwhere(deg <= 0)[0])
            raise ValueError(f"pixel graph {H}x{W} with neighbours {neighbours!r} has isolated "
                             f"pixels (degree 0, e.g. pixel ({y}, {x})); theta_ij = X_i/d_i + X_j/d_j "
                             "is undefined there")
        self.n = self.channels * H * W
        self.n_edges = n_edges * self.channels
        self.total_weight = float(deg.sum()) * self.channels
        self.degree = deg / self.total_weight
        self._inv_degree = self.total_weight / deg        # 1/d_i, host float64 (H, W)
        self._inv_degree_cache = {}                       # (namespace, dtype, device) -> array

    @checks.checked()
    def inv_degree(self, xp, dtype, device=None):
        """``1/d_i`` as an (H, W) array of ``xp`` with ``dtype`` on ``device``, uploaded once
        per (namespace, dtype, device) and cached, so a training step uploads nothing.
        """
        key = (xp.__name__, str(dtype), str(device))
        a = self._inv_degree_cache.get(key)
        if a is None:
            a = self._inv_degree_cache[key] = from_host(self._inv_degree, xp, dtype=dtype, device=device)
        return a

    @checks.checked()
    def image_edge_scale(self, xp, dtype, device=None):
        """The factor ``c`` with ``kappa Y = max(x + 1, 0) c`` for images ``x`` in [-1, 1], their mass
        ``X = max((x + 1)/2, 0)`` and the edge factor ``theta_ij / 2 = kappa (Y_i + Y_j)``: paper
        ``Y = X/d`` and ``kappa = 1/2``, so ``c = 1/(4 d)`` ((H, W), cached as :meth:`inv_degree`);
        authors ``Y = X``, ``kappa = 1``, so ``c = 1/2``. Powers of two: ``kappa Y`` is exactly the
        product of the two-step computation.
        """
        if self.variant == "authors":
            return 0.5
        key = ("image_edge_scale", xp.__name__, str(dtype), str(device))
        a = self._inv_degree_cache.get(key)
        if a is None:
            a = self._inv_degree_cache[key] = from_host(0.25 * self._inv_degree, xp, dtype=dtype, device=device)
        return a

    def __repr__(self):
        return (f"PixelGraph(height={self.height}, width={self.width}, channels={self.channels}, "
                f"neighbours={self.neighbours!r}, variant={self.variant!r})")

    @checks.checked()
    def edge_list(self):
        """Unordered edges as host arrays ``(i, j, w)`` of flat C-H-W indices and weights.
        """
        H, W = self.height, self.width
        idx = _np.arange(self.n).reshape(self.channels, H, W)
        src, dst, wts = [], [], []
        for (dy, dx), w in zip(self.offsets, self.weights):
            ys, yd, xs, xd = offset_slices(dy, dx, H, W)
            s, d = idx[:, ys, xs].ravel(), idx[:, yd, xd].ravel()
            src.append(s), dst.append(d), wts.append(_np.full(s.shape, w))
        return _np.concatenate(src), _np.concatenate(dst), _np.concatenate(wts)


def offset_slices(dy, dx, H, W):
    """``(rows_src, rows_dst, cols_src, cols_dst)``: the slices pairing pixel ``p`` of an ``H x W``
    image with ``p + (dy, dx)`` (empty when no edge of that offset fits). Integers in, slices out: no
    arrays to validate (a geometry helper of the graph)."""
    ys, yd = slice(0, max(H - dy, 0)), slice(dy, H)
    if dx >= 0:
        xs, xd = slice(0, max(W - dx, 0)), slice(dx, W)
    else:
        xs, xd = slice(-dx, W), slice(0, max(W + dx, 0))
    if H - dy <= 0 or W - abs(dx) <= 0:             # no edge of this offset fits
        ys = yd = slice(0, 0)
    return ys, yd, xs, xd
