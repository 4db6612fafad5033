"""Normalisation over a set of axes: the shared kernel of layer norm and batch norm.

For a group of ``D`` entries ``x`` (the reduction ``axes``: per sample over ``(C, H, W)``
for layer norm, per channel over ``(N, H, W)`` for batch norm; Ba et al. 2016, Ioffe &
Szegedy 2015)::

    mu = mean x,   xc = x - mu,   var = mean xc^2 (biased),   r = (var + eps)^(-1/2),
    n = xc * r,    a = gamma * n + beta.

Its Jacobian is symmetric, ``J = r (I - 11^T/D - n n^T/D)``, so the forward-mode product
(JVP) and the backward one (VJP) are one function::

    J v = r (v - mean v - n mean(n v)).

The double backward needs the derivative of ``Q(x) = <w, J(x) v>`` w.r.t. ``x`` (``w``, ``v``
held fixed). With ``S = mean(w v) - mean w mean v - mean(n w) mean(n v)`` and
``dr/dx = -r^2 n / D``::

    dQ/dx = -r^2 [ S n + mean(n v) (w - mean w - n mean(n w)) + mean(n w) (v - mean v - n mean(n v)) ].

All means are over ``axes`` with ``keepdims``; ``gamma``/``beta`` broadcast against ``x``.
No validation here (the network's public methods validate).
"""
from __future__ import annotations

from ..backend import namespace


def normalize(x, axes, eps):
    """``(n, r, mu, var)`` of ``x`` over ``axes`` (``r``, ``mu``, ``var`` keep the reduced axes as 1)."""
    xp = namespace(x)
    mu = xp.mean(x, axis=axes, keepdims=True)
    xc = x - mu
    var = xp.mean(xc * xc, axis=axes, keepdims=True)
    r = 1.0 / xp.sqrt(var + eps)
    return xc * r, r, mu, var


def jvp(n, r, axes, v):
    """``J v = r (v - mean v - n mean(n v))``: the normaliser's Jacobian (symmetric) times ``v``."""
    xp = namespace(v)
    return r * (v - xp.mean(v, axis=axes, keepdims=True) - n * xp.mean(n * v, axis=axes, keepdims=True))


def second(n, r, axes, w, v):
    """``d<w, J(x) v>/dx`` for fixed ``w`` and ``v`` (module docstring)."""
    xp = namespace(v)
    mw, mv = xp.mean(w, axis=axes, keepdims=True), xp.mean(v, axis=axes, keepdims=True)
    mnw, mnv = xp.mean(n * w, axis=axes, keepdims=True), xp.mean(n * v, axis=axes, keepdims=True)
    S = xp.mean(w * v, axis=axes, keepdims=True) - mw * mv - mnw * mnv
    return -(r * r) * (S * n + mnv * (w - mw - n * mnw) + mnw * (v - mv - n * mnv))
