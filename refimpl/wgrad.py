"""Discrete Wasserstein-2 metric tensor on the pixel graph of an image (WWGAN).

An image with ``C`` channels of ``H x W`` pixels is a nonnegative mass ``X`` on the
``n = C*H*W`` vertices of a pixel graph; edges join nearby pixels of the *same*
channel. The Wasserstein gradient of a function ``f`` at ``X`` is ``L(X) g`` with
``g = grad_X f(X)`` (Dukler et al. 2019, "Wasserstein of Wasserstein loss", Prop. 5)
and the 1-Lipschitz condition reads ``g^T L(X) g <= 1``. With the degrees

    d_i = sum_j w_ij / sum_i' sum_j' w_i'j'        (every edge counted from both ends)

and ``theta_ij = X_i/d_i + X_j/d_j`` the quadratic form is (Remark 6, summed over
unordered edges as fixed in ``shared/conventions.md``)

    g^T L(X) g = sum_{i~j} w_ij (g_i - g_j)^2 theta_ij / 2,

and Remark 7 / eq. (9) adds ``alpha * (sum_i g_i)^2`` for ``L~ = alpha 11^T + L``.

:func:`laplacian_dense` builds the ``n x n`` matrix (reference, small images only);
:func:`wasserstein_norm_sq`, :func:`wasserstein_gradient` and
:func:`wasserstein_norm_sq_and_gradient` work by shifted slices of the image, one
pass per neighbour offset, ``O(B*n)`` work for a batch. Flattening is C-H-W
row-major: vertex ``c*H*W + y*W + x`` is pixel ``(y, x)`` of channel ``c``.

The authors' public code uses another quadratic form; it is offered as
``PixelGraph(..., variant="authors")``:
``sum_{i~j} w_ij (g_i - g_j)^2 (X_i + X_j)``, no degree normalisation (with
``X = (x + 1)/2`` the edge factor ``X_i + X_j`` is their ``1 + (x_i + x_j)/2``).

Public functions validate at entry (:mod:`refimpl.validation`): the mass ``X`` must be
>= 0; ``alpha`` and ``gamma`` finite and >= 0, since the tensor must stay positive
semidefinite. The unchecked cores (``f.unchecked``, :func:`refimpl.validation.checked`) skip the checks; WWGAN's
training step calls them. The graph
(:class:`PixelGraph`) is in :mod:`refimpl.pixel_graph`, re-exported here; its
constant ``1/d_i`` is uploaded once per (namespace, dtype, device) and cached.
"""
from __future__ import annotations

from refimpl import validation as checks
from refimpl.backend import device_of, namespace
from refimpl.pixel_graph import NEIGHBOUR_PATTERNS, PixelGraph, offset_slices  # noqa: F401 (re-exported)

__all__ = ["PixelGraph", "laplacian_dense", "wasserstein_norm_sq", "wasserstein_gradient",
           "wasserstein_norm_sq_and_gradient", "image_norm_sq_and_gradient", "image_to_mass",
           "NEIGHBOUR_PATTERNS"]

#: Named neighbour patterns, one offset ``(dy, dx)`` per unordered pair of directions
#: (the opposite offset is implied). ``"two-step"``: every pixel reachable in at most
#: two 4-neighbour steps (the 8 neighbours plus ``(0, +-2)``, ``(+-2, 0)``; 12 in all),
#: the "diamond" pattern of the authors' code.


def _pad2(xp, a, top, bottom, left, right):
    """Zero-pad the last two axes of ``a`` (Array API: concat with zeros)."""
    dev = device_of(a)
    if top or bottom:
        parts = []
        if top:
            parts.append(xp.zeros((*a.shape[:-2], top, a.shape[-1]), dtype=a.dtype, device=dev))
        parts.append(a)
        if bottom:
            parts.append(xp.zeros((*a.shape[:-2], bottom, a.shape[-1]), dtype=a.dtype, device=dev))
        a = xp.concat(parts, axis=-2)
    if left or right:
        parts = []
        if left:
            parts.append(xp.zeros((*a.shape[:-1], left), dtype=a.dtype, device=dev))
        parts.append(a)
        if right:
            parts.append(xp.zeros((*a.shape[:-1], right), dtype=a.dtype, device=dev))
        a = xp.concat(parts, axis=-1)
    return a


def _place(xp, t, rows, cols, H, W):
    """Embed ``t`` (values on ``[..., rows, cols]``) into a zero (..., H, W) array."""
    return _pad2(xp, t, rows.start, H - rows.stop, cols.start, W - cols.stop)


def _check_mass(graph, X, batched_ok, xp=None):
    """Entry check of a mass (:mod:`refimpl.validation`): the graph's shape, >= 0."""
    if not isinstance(graph, PixelGraph):
        raise TypeError(f"graph must be a PixelGraph, got {type(graph).__name__}")
    X = checks.array(X, "X", xp=xp)
    xp = namespace(X)
    C, H, W = graph.channels, graph.height, graph.width
    ok_shape = tuple(X.shape[-3:]) == (C, H, W) and (X.ndim == 3 or (batched_ok and X.ndim == 4))
    if not ok_shape:
        want = "(C, H, W) or (B, C, H, W)" if batched_ok else "(C, H, W)"
        raise ValueError(f"mass X has shape {tuple(X.shape)}; expected {want} with "
                         f"(C, H, W) = {(C, H, W)} from {graph!r}")
    if not bool(xp.all(X >= 0)):
        raise ValueError("mass X must be nonnegative; map images in [-1, 1] with image_to_mass first")
    return X


def _coef(alpha, gamma):
    return checks.real(alpha, "alpha", ge=0), checks.real(gamma, "gamma", ge=0)


def _edge_factor(xp, graph, X):
    """``Y`` with edge factor ``kappa * (Y_i + Y_j)``: paper ``Y = X/d``, kappa 1/2."""
    if graph.variant == "authors":
        return X, 1.0
    return X * graph.inv_degree(xp, X.dtype, device_of(X)), 0.5


@checks.checked()
def laplacian_dense(graph, X, alpha=0.0, gamma=0.0):
    """Dense metric tensor ``alpha 11^T + gamma I + L(X)`` (reference for small images).

    Dukler et al. 2019, Prop. 5 (``L``) and eq. (9) (``alpha 11^T``):
    ``L_ij = -w_ij theta_ij / 2`` for ``j ~ i``, ``L_ii = sum_{k~i} w_ik theta_ik / 2``.

    Parameters
    ----------
    graph : PixelGraph
    X : array, shape (C, H, W)
        Nonnegative finite mass (see :func:`image_to_mass`).
    alpha, gamma : float >= 0
        Weights of ``11^T`` (Remark 7) and of the identity (authors' ``gamma||g||^2``).

    Returns
    -------
    array, shape (n, n)
        Symmetric, in ``X``'s namespace and dtype; rows follow C-H-W row-major order.
        ``O(n^2)`` memory: meant for tests and small images.

    Raises
    ------
    TypeError, ValueError
        By the input rules below, naming the argument.
    """
    alpha, gamma = _coef(alpha, gamma)
    X = _check_mass(graph, X, batched_ok=False)
    xp = namespace(X)
    H, W = graph.height, graph.width
    n, dev = graph.n, device_of(X)
    Y, kappa = _edge_factor(xp, graph, X)
    A = xp.zeros((n, n), dtype=X.dtype, device=dev)
    for (dy, dx), w in zip(graph.offsets, graph.weights):
        ys, yd, xs, xd = offset_slices(dy, dx, H, W)
        if ys.stop <= ys.start:
            continue
        a = (w * kappa) * (Y[:, ys, xs] + Y[:, yd, xd])          # a_ij on the edges (C, h, w)
        v = xp.reshape(_place(xp, a, ys, xs, H, W), (n, 1))      # at source pixel i
        A = A + xp.eye(n, k=dy * W + dx, dtype=X.dtype, device=dev) * v   # A[i, i + k] = a_ij
    A = A + xp.matrix_transpose(A)
    L = xp.eye(n, dtype=X.dtype, device=dev) * xp.sum(A, axis=1)[:, None] - A
    if alpha != 0:
        L = L + alpha * xp.ones((n, n), dtype=X.dtype, device=dev)
    if gamma != 0:
        L = L + gamma * xp.eye(n, dtype=X.dtype, device=dev)
    return L


def _validate_pair(graph, X, g):
    X = _check_mass(graph, X, batched_ok=True)
    xp = namespace(X)
    g = checks.array(g, "g", xp=xp)
    if g.ndim != 4 or tuple(g.shape[1:]) != (graph.channels, graph.height, graph.width):
        raise ValueError(f"g has shape {tuple(g.shape)}; expected (B, {graph.channels}, "
                         f"{graph.height}, {graph.width}) from {graph!r}")
    if X.ndim == 4 and X.shape[0] != g.shape[0]:
        raise ValueError(f"batch sizes differ: X {tuple(X.shape)}, g {tuple(g.shape)}")
    dt = xp.result_type(X, g)
    return xp, xp.astype(X, dt, copy=False), xp.astype(g, dt, copy=False)


def _wasserstein_norm_sq_and_gradient(graph, X, g, alpha=0.0, gamma=0.0, need_gradient=True):
    xp = namespace(X, g)
    Y, kappa = _edge_factor(xp, graph, X)
    return _quadratic_form(graph, Y * kappa, g, alpha, gamma, need_gradient)


@checks.checked(_wasserstein_norm_sq_and_gradient)
def wasserstein_norm_sq_and_gradient(graph, X, g, alpha=0.0, gamma=0.0, need_gradient=True):
    """``s2 = g^T L~(X) g`` and ``L~(X) g`` in one stencil pass, batched.

    Dukler et al. 2019, Remark 6 and eq. (9): per image
    ``s2 = sum_{i~j} w_ij (g_i - g_j)^2 theta_ij / 2 + alpha (sum_i g_i)^2 + gamma ||g||^2``,
    with ``L~ = alpha 11^T + gamma I + L(X)``; ``L~ g`` is the gradient of ``s2 / 2``
    in ``g``. For the WWGAN penalty ``lambda*mean((sqrt(s2) - 1)^2)`` the double
    backward seed is ``lambda * 2 (s - 1)/s * L~ g / B`` with ``s = sqrt(s2)``.

    Parameters
    ----------
    graph : PixelGraph
    X : array, shape (B, C, H, W) or (C, H, W)
        Nonnegative mass (one per image, or one shared by the batch).
    g : array, shape (B, C, H, W)
        Euclidean gradients ``grad_X f``.
    alpha, gamma : float
        Weights of ``11^T`` (Remark 7) and ``I`` (authors' code).
    need_gradient : bool
        When False the second output is ``None`` (cheaper).

    Returns
    -------
    s2 : array, shape (B,)
    Lg : array, shape (B, C, H, W) or None
        Both in the inputs' namespace and promoted floating dtype (float32 with float64
        gives float64).

    Raises
    ------
    TypeError, ValueError
        By the input rules below: non-finite ``X``
        or ``g``, negative mass, ``alpha`` or ``gamma`` negative or not finite, shapes.
    """
    alpha, gamma = _coef(alpha, gamma)
    xp, X, g = _validate_pair(graph, X, g)
    return _wasserstein_norm_sq_and_gradient(graph, X, g, alpha, gamma, checks.boolean(need_gradient,
                                                                                        "need_gradient"))


def _image_norm_sq_and_gradient(graph, x, g, alpha=0.0, gamma=0.0):
    """:func:`wasserstein_norm_sq_and_gradient` (unchecked) at the mass of images ``x`` (B, C, H, W) in
    [-1, 1] (``image_to_mass(x, clip=True)``), with the mass map folded into the edge factor
    (:meth:`PixelGraph.image_edge_scale`): the same values, bit for bit, in fewer operations."""
    xp = namespace(x, g)
    m = x + 1.0
    Yk = xp.where(m < 0, 0.0, m) * graph.image_edge_scale(xp, x.dtype, device_of(x))
    return _quadratic_form(graph, Yk, g, alpha, gamma, True)


@checks.checked(_image_norm_sq_and_gradient)
def image_norm_sq_and_gradient(graph, x, g, alpha=0.0, gamma=0.0):
    """:func:`wasserstein_norm_sq_and_gradient` at the mass of images: WWGAN's penalty term.

    Equals ``wasserstein_norm_sq_and_gradient(graph, image_to_mass(x, clip=True), g, alpha,
    gamma)`` bit for bit, with the mass map folded into the edge factor
    (:meth:`PixelGraph.image_edge_scale`), which saves operations in the training step.

    Parameters
    ----------
    graph : PixelGraph
    x : array, shape (B, C, H, W)
        Images in [-1, 1] (values below -1 carry no mass), the graph's channels and size.
    g : array, shape (B, C, H, W)
        The critic's input gradient at ``x``.
    alpha, gamma : float >= 0, finite

    Returns
    -------
    (norm_sq (B,), gradient (B, C, H, W)), as :func:`wasserstein_norm_sq_and_gradient`.

    Raises
    ------
    TypeError, ValueError
        By the input rules below: non-finite ``x`` or ``g``, shapes
        that are not the graph's, ``alpha`` or ``gamma`` negative or not finite.
    """
    alpha, gamma = _coef(alpha, gamma)
    x = checks.array(x, "x", ndim=4)
    if tuple(x.shape[1:]) != (graph.channels, graph.height, graph.width):
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (B, {graph.channels}, {graph.height}, "
                         f"{graph.width}) from {graph!r}")
    xp, _, g = _validate_pair(graph, image_to_mass.unchecked(x, clip=True), g)
    if tuple(x.shape) != tuple(g.shape):
        raise ValueError(f"x has shape {tuple(x.shape)} and g {tuple(g.shape)}; they must agree")
    return _image_norm_sq_and_gradient(graph, xp.astype(x, g.dtype, copy=False), g, alpha, gamma)


def _quadratic_form(graph, Yk, g, alpha, gamma, need_gradient):
    """``(g^T L~ g, L~ g)`` per image from ``Yk = kappa Y`` (B, C, H, W): edge ``(i, j)`` of weight
    ``w`` adds ``w (Yk_i + Yk_j) (g_i - g_j)^2`` (= ``w theta_ij/2 (g_i - g_j)^2``)."""
    xp = namespace(Yk, g)
    H, W = graph.height, graph.width
    s2 = None
    Lg = xp.zeros_like(g) if need_gradient else None
    for (dy, dx), w in zip(graph.offsets, graph.weights):
        ys, yd, xs, xd = offset_slices(dy, dx, H, W)
        if ys.stop <= ys.start:
            continue
        D = g[..., ys, xs] - g[..., yd, xd]                          # g_i - g_j
        e = Yk[..., ys, xs] + Yk[..., yd, xd]
        T = (e if w == 1.0 else w * e) * D                           # w theta/2 (g_i - g_j)
        q = xp.sum(T * D, axis=(-3, -2, -1))
        s2 = q if s2 is None else s2 + q
        if need_gradient:                                            # +T at the source pixels, -T at the targets
            Lg[..., ys, xs] += T
            Lg[..., yd, xd] -= T
    if s2 is None:                                                   # no edge fits the image
        s2 = xp.zeros((g.shape[0],), dtype=g.dtype, device=device_of(g))
    if alpha != 0:
        S = xp.sum(g, axis=(-3, -2, -1))
        s2 = s2 + alpha * S * S
        if need_gradient:
            Lg = Lg + alpha * S[:, None, None, None]
    if gamma != 0:
        s2 = s2 + gamma * xp.sum(g * g, axis=(-3, -2, -1))
        if need_gradient:
            Lg = Lg + gamma * g
    return s2, Lg


@checks.checked()
def wasserstein_norm_sq(graph, X, g, alpha=0.0, gamma=0.0):
    """Squared Wasserstein norm ``g^T (alpha 11^T + gamma I + L(X)) g`` per image.

    Dukler et al. 2019, Prop. 5 / Remark 6 (quadratic form) and eq. (9). Shapes,
    arguments, input rules and errors as :func:`wasserstein_norm_sq_and_gradient`;
    returns shape (B,), >= 0.
    """
    return wasserstein_norm_sq_and_gradient(graph, X, g, alpha, gamma, need_gradient=False)[0]


@checks.checked()
def wasserstein_gradient(graph, X, g, alpha=0.0, gamma=0.0):
    """Wasserstein gradient ``(alpha 11^T + gamma I + L(X)) g`` per image.

    Dukler et al. 2019, Prop. 5: ``grad f(X) = L(X) grad_X f(X)``; exactly the
    gradient in ``g`` of ``0.5 * wasserstein_norm_sq``. ``X`` (B, C, H, W) or
    (C, H, W), ``g`` (B, C, H, W) -> (B, C, H, W). Input rules and errors as
    :func:`wasserstein_norm_sq_and_gradient`.
    """
    return wasserstein_norm_sq_and_gradient(graph, X, g, alpha, gamma)[1]


def _image_to_mass(x, clip=False):
    xp = namespace(x)
    m = (x + 1) / 2
    if clip:
        m = xp.where(m < 0, 0.0, m)
    return m


@checks.checked(_image_to_mass)
def image_to_mass(x, clip=False):
    """Mass of images in [-1, 1]: ``X = (x + 1) / 2`` in [0, 1] (conventions, WWGAN).

    The affine map keeps interpolates ``eps*x + (1-eps)*y`` of images in [-1, 1]
    nonnegative and makes the paper's edge factor equal the authors'
    ``1 + (x_i + x_j)/2 = X_i + X_j``. The mass is not normalised to total 1
    (Remark 7's ``alpha`` term is the paper's answer to unnormalised intensity).
    Values below -1 give negative mass, which the operators reject; ``clip=True``
    sets them to 0 instead. Any shape; same namespace and dtype (integers promoted to
    float64; NaN/inf refused).
    """
    x = checks.array(x, "x", nonempty=False)
    return _image_to_mass(x, checks.boolean(clip, "clip"))


