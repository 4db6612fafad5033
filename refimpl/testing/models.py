"""Small exact models on which the papers' statements are checked: SWGAN's linear generator
(Appendix E) and Algorithm 1 with an injected oracle error (Thm 5.2), an exact Kantorovich
potential (W1-FE eq. 2.2) and the W2 ground metric between images (WWGAN eq. 2)."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as _np

from ..backend import to_numpy

from .common import EPS64, Bound, import_pot, weights_host, cost_matrix_host

__all__ = ["LinearGenerator", "Smoothness", "linear_generator", "smoothness_bound", "kantorovich_potential",
           "nonconvex_sgd", "sgd_rate_bound", "image_w2"]


def kantorovich_potential(x, y, a=None, b=None, cost="euclidean"):
    """An exact Kantorovich pair from POT's LP duals and its c-transform (W1-FE eq. 2.2).

    Parameters
    ----------
    x : array (M, d)
        Particles (weights ``a``, default uniform).
    y : array (N, d)
        Data (weights ``b``).
    cost : {"l1", "euclidean", "sqeuclidean"}

    Returns
    -------
    f : callable
        ``f(z) = min_j (C(z, y_j) - v_j)`` on host arrays (K, d) -> (K,); 1-Lipschitz for a
        metric cost, ``f(x_i) >= u_i`` and ``f(y_j) <= -v_j``, so
        ``E_x f - E_y f = d_c``. The project's critic (large on data) is ``-f``.
    d_c : float
        POT's optimal cost.
    u, v : numpy.ndarray
        POT ``emd`` duals, ``u_i + v_j <= C_ij`` and ``<a, u> + <b, v> = d_c``.
    """
    ot = import_pot()
    x, y = _np.asarray(to_numpy(x), float), _np.asarray(to_numpy(y), float)
    M, N = x.shape[0], y.shape[0]
    ah, bh = weights_host(a, M), weights_host(b, N)
    Ch = cost_matrix_host(x, y, cost)
    P, log = ot.emd(ah, bh, Ch, log=True, numItermax=max(10**6, 50 * M * N))
    u, v = _np.asarray(log["u"], float), _np.asarray(log["v"], float)
    f = lambda z: (cost_matrix_host(_np.atleast_2d(z), y, cost) - v[None, :]).min(1)
    return f, float(log["cost"]), u, v


# ---------------------------------------------------------------- SWGAN Appendix E (linear generator)


class LinearGenerator(NamedTuple):
    h: float              # h_lam(Theta) = d_{c,lam}(Theta q, p), c = |z - y|^2 / 2
    grad: _np.ndarray     # envelope gradient sum P*_ij (Theta x_i - y_j) x_i^T, shape (d, n)
    plan: _np.ndarray     # (M, N)


def linear_generator(Theta, x, y, lam, reg, tol=1e-10):
    """``h_lam(Theta)`` of SWGAN Appendix E and its gradient by the envelope formula.

    Generator ``G(x) = Theta x`` (``Theta`` (d, n), latent ``x`` (M, n), data ``y`` (N, d)),
    cost ``c(z, y) = |z - y|^2 / 2``, uniform weights. ``grad h = sum P*_ij (Theta x_i - y_j) x_i^T``
    (Danskin / eq. 33, the ``E_pi*[grad c]`` formula, valid for KL and L2).
    """
    from ..ot import solve_regularized
    T, x, y = (_np.asarray(to_numpy(v), float) for v in (Theta, x, y))
    z = x @ T.T                                                      # (M, d)
    C = 0.5 * cost_matrix_host(z, y, "sqeuclidean")
    res = solve_regularized(C, lam, reg, tol=tol)
    if not res.converged:
        raise RuntimeError("solve_regularized did not converge")
    P = _np.asarray(to_numpy(res.plan), float)
    R = z[:, None, :] - y[None, :, :]                                # (M, N, d)
    grad = _np.einsum("ij,ijd,in->dn", P, R, x)
    return LinearGenerator(float(to_numpy(res.primal)), grad, P)


class Smoothness(NamedTuple):
    gap: Bound            # ||grad h(T1) - grad h(T2)|| <= L ||T1 - T2||, Thm 3.3 (KL) / D.1 (L2)
    L1: float
    L0: float             # sup |grad_theta c| over pairs and the segment (Thm 3.3)
    ell0: float           # RMS of sup |grad_theta c| (Remark D.1.1's normalised l0_hat)
    L: float


def smoothness_bound(T1, T2, x, y, lam, reg, tol=1e-10):
    """SWGAN Thm 3.3 (KL) / Thm D.1 with Remark D.1.1 (L2, uniform) on the linear generator.

    For ``c = |Theta x - y|^2/2``: ``grad_Theta c = (Theta x - y) x^T`` so
    ``L1 = max_i |x_i|^2`` (Lipschitz constant of ``grad_Theta c`` in Frobenius norm) and, on
    the segment ``[T1, T2]`` (where the argument needs them), ``L0 = max |Theta x_i - y_j| |x_i|``
    (convex in ``Theta``: attained at an end point). KL: ``L = L1 + L0^2/lam``; L2:
    ``L = L1 + ell0^2/lam`` with ``ell0^2 = mean_ij max_end |grad c_ij|^2``.
    Gradients by :func:`linear_generator` (exact plans); slack from the solver tolerance.

    Returns
    -------
    Smoothness
    """
    T1, T2, x, y = (_np.asarray(to_numpy(v), float) for v in (T1, T2, x, y))
    g1, g2 = linear_generator(T1, x, y, lam, reg, tol), linear_generator(T2, x, y, lam, reg, tol)
    xn = _np.linalg.norm(x, axis=1)                                  # (M,)
    L1 = float((xn ** 2).max())
    gn = [_np.linalg.norm((x @ T.T)[:, None, :] - y[None, :, :], axis=2) * xn[:, None] for T in (T1, T2)]
    gmax = _np.maximum(gn[0], gn[1])                                 # (M, N)
    L0 = float(gmax.max())
    ell0 = float(_np.sqrt(_np.mean(gmax ** 2)))
    L = L1 + (L0 ** 2 if reg == "kl" else ell0 ** 2) / lam
    dT = float(_np.linalg.norm(T1 - T2))
    scale = L0 * (1 + float(_np.abs(g1.plan).sum() + _np.abs(g2.plan).sum()))
    return Smoothness(Bound(float(_np.linalg.norm(g1.grad - g2.grad)), L * dT, 8 * tol * scale + 64 * EPS64 * scale),
                      L1, L0, ell0, L)


def nonconvex_sgd(grad, theta0, alpha, T, error=None):
    """Algorithm 1 with an exact gradient oracle plus an injected error: ``theta <- theta - alpha g_t``,
    ``g_t = grad(theta_t) + error(t, theta_t)``. Returns ``(thetas (T+1, p), grad norms^2 (T,))``,
    the squared norms at ``t = 0..T-1`` (the paper's sum, up to its index shift)."""
    th = _np.array(theta0, dtype=float).ravel()
    out, norms = [th.copy()], []
    for t in range(T):
        g = _np.asarray(grad(th), float).ravel()
        norms.append(float(g @ g))
        e = _np.zeros_like(g) if error is None else _np.asarray(error(t, th), float).ravel()
        th = th - alpha * (g + e)
        out.append(th.copy())
    return _np.array(out), _np.array(norms)


def sgd_rate_bound(norms, L, Delta, eps2, sigma2=0.0):
    """SWGAN Thm 5.2, first regime (``alpha = 1/L``): ``mean_t |grad h(theta_t)|^2 <= 2 L Delta / T
    + eps^2 + sigma^2``; ``eps2`` may be the mean of per-step squared errors (Remark 5.2.3).

    Returns
    -------
    Bound
    """
    norms = _np.asarray(norms, float)
    T = norms.size
    v = float(norms.mean())
    return Bound(v, 2 * L * Delta / T + eps2 + sigma2, 64 * T * EPS64 * (v + L * abs(Delta) / T))


# ---------------------------------------------------------------- WWGAN ground metric
def image_w2(X, Y):
    """Wasserstein-2 distance between two images seen as histograms over their pixel grid
    (WWGAN eq. 2 with ``q = 2`` and ``d_Omega`` the Euclidean distance of pixel positions;
    POT ``emd2``). ``X``, ``Y`` (H, W) nonnegative with equal positive mass (normalised here)."""
    ot = import_pot()
    X, Y = _np.asarray(to_numpy(X), float), _np.asarray(to_numpy(Y), float)
    H, W = X.shape
    yy, xx = _np.meshgrid(_np.arange(H), _np.arange(W), indexing="ij")
    pos = _np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    M = cost_matrix_host(pos, pos, "sqeuclidean")
    return math.sqrt(max(float(ot.emd2(X.ravel() / X.sum(), Y.ravel() / Y.sum(), M)), 0.0))
