"""Shared host helpers of :mod:`refimpl.testing`: the :class:`Bound` of a statement, the
independent cost matrix, the lazy POT import and small weight/ratio helpers."""
from __future__ import annotations

from typing import NamedTuple

import numpy as _np

from ..backend import to_numpy

EPS64 = float(_np.finfo(_np.float64).eps)


class Bound(NamedTuple):
    """A measured quantity and the bound a statement puts on it: the claim is ``value <= bound``.

    ``slack`` is the absolute allowance for float64 rounding and solver tolerance, derived
    by the predicate from the sizes of the quantities involved (never a tuned constant).
    """
    value: float
    bound: float
    slack: float = 0.0

    def holds(self, rtol=1e-9):
        """``value <= bound * (1 + rtol) + slack``."""
        return self.value <= self.bound * (1.0 + rtol) + self.slack

    def check(self, what="bound", rtol=1e-9):
        """Raise ``AssertionError`` naming ``what`` unless :meth:`holds`; return ``self``."""
        if not self.holds(rtol):
            raise AssertionError(f"{what}: measured {self.value!r} > bound {self.bound!r} "
                                 f"(rtol {rtol:g}, slack {self.slack:.3g})")
        return self


def cost_matrix_host(x, y, cost="euclidean"):
    """Host float64 cost matrix ``C_ij = c(x_i, y_j)``, written independently of ``refimpl.ot``.

    ``cost``: ``"l1"`` (``sum |x - y|``), ``"euclidean"`` (``|x - y|_2``),
    ``"sqeuclidean"`` (``|x - y|_2^2``). ``x`` (M, d), ``y`` (N, d). Returns (M, N).
    """
    x, y = _np.asarray(to_numpy(x), float), _np.asarray(to_numpy(y), float)
    diff = x[:, None, :] - y[None, :, :]
    if cost == "l1":
        return _np.abs(diff).sum(-1)
    sq = (diff ** 2).sum(-1)
    if cost == "sqeuclidean":
        return sq
    if cost == "euclidean":
        return _np.sqrt(sq)
    raise ValueError(f"unknown cost {cost!r}")


def import_pot():
    try:
        import ot
    except ImportError as e:  # pragma: no cover
        raise ImportError("this predicate needs POT (pip install 'refimpl[test]')") from e
    return ot


def solve_host(C, lam, reg, a, b, tol=1e-10):
    from ..ot import solve_regularized
    res = solve_regularized(C, lam, reg, a=a, b=b, tol=tol)
    if not res.converged:
        raise RuntimeError(f"solve_regularized did not converge ({reg}, lam={lam:g}, gap {float(res.gap):.3g})")
    return res


def weights_host(w, n):
    return _np.full(n, 1.0 / n) if w is None else _np.asarray(to_numpy(w), float)


def dual_resolution(phi, psi, C, lam, reg, a=None, b=None):
    """Float64 resolution of one evaluation of the dual ``F`` (SWGAN eq. 12) at ``(phi, psi)``.

    A bound on ``|fl(F) - F|``: the summation bound ``gamma_K sum |terms|`` (``K = M N + M + N``
    terms, ``gamma_K = K u / (1 - K u)``, ``u`` the unit roundoff) plus the rounding of
    ``V = phi - psi - C`` propagated through ``f_lam`` (``|f_lam'(V)| = m``):
    ``3 u sum a_i b_j m_ij (|phi_i| + |psi_j| + C_ij)``. Host float64; returns a float.
    """
    phi, psi, C = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    M, N = C.shape
    a, b = weights_host(a, M), weights_host(b, N)
    V = phi[:, None] - psi[None, :] - C
    if reg == "kl":
        m = _np.exp(V / lam - 1.0)
        fv = lam * m
    else:
        m = _np.maximum(V, 0.0) / lam
        fv = 0.5 * lam * m * m
    w = a[:, None] * b[None, :]
    u = EPS64 / 2
    K = M * N + M + N
    gamma = K * u / (1 - K * u)
    terms = _np.sum(_np.abs(a * phi)) + _np.sum(_np.abs(b * psi)) + _np.sum(w * fv)
    return float(gamma * terms + 3 * u * _np.sum(w * m * (_np.abs(phi)[:, None] + _np.abs(psi)[None, :] + C)))


def density_ratio_host(phi, psi, C, lam, reg):
    V = phi[:, None] - psi[None, :] - C
    return _np.exp(V / lam - 1.0) if reg == "kl" else _np.maximum(V, 0.0) / lam


def ratio_resolution(phi, psi, C, lam, reg):
    """Entrywise float64 resolution of the density ratio ``m`` (SWGAN eq. 11) computed from
    ``(phi, psi, C)``: three roundings of ``V = phi - psi - C`` propagated through ``m(V)``
    (slope ``1/lam`` for L2, ``m/lam`` for KL) plus the rounding of ``m`` itself. Host (M, N)."""
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    m = density_ratio_host(ph, ps, Ch, lam, reg)
    return 3 * (EPS64 / 2) * (_np.abs(ph)[:, None] + _np.abs(ps)[None, :] + Ch) / lam * (m if reg == "kl" else 1.0) \
        + (EPS64 * m)


def regularizer_host(P, a, b, reg):
    q = a[:, None] * b[None, :]
    if reg == "kl":
        nz = P > 0
        return float(_np.sum(P[nz] * _np.log(P[nz] / q[nz])))
    return float(0.5 * _np.sum(P * P / q))
