"""Hypothesis strategies for the project's objects. ``hypothesis`` is imported when a strategy
is built (a test-time extra), never when this module is imported."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as _np

from .common import cost_matrix_host

__all__ = ["Cloud", "OTProblem", "TwoDelta", "Image", "MLPSpec", "point_clouds", "ot_problems",
           "two_delta_models", "images", "mlp_specs"]


def _st():
    try:
        import hypothesis.strategies as st
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("refimpl.testing strategies need hypothesis (pip install 'refimpl[test]')") from e
    return st


class Cloud(NamedTuple):
    x: _np.ndarray     # (M, d) generated points
    y: _np.ndarray     # (N, d) data points
    a: _np.ndarray     # (M,) weights, positive, sum 1
    b: _np.ndarray     # (N,) weights


class OTProblem(NamedTuple):
    C: _np.ndarray     # (M, N) costs >= 0
    a: _np.ndarray     # (M,)
    b: _np.ndarray     # (N,)
    lam: float         # > 0
    reg: str           # "kl" or "l2"
    x: _np.ndarray
    y: _np.ndarray
    cost: str


def _weights(rng, n, kind):
    if kind == "uniform" or n == 1:
        return _np.full(n, 1.0 / n)
    w = rng.random(n) + (1e-3 if kind == "degenerate" else 0.1)
    if kind == "degenerate":          # one weight dominates the rest
        w[rng.integers(n)] += 1e3
    return w / w.sum()


def point_clouds(min_points=1, max_points=12, dims=(1, 5), scale=(1e-2, 1e2), duplicates=True,
                 weights=("uniform", "random", "degenerate")):
    """Strategy of :class:`Cloud` ``(x, y, a, b)``: two host float64 clouds with marginals.

    Parameters
    ----------
    min_points, max_points : int
        Sizes ``M`` and ``N`` are drawn independently in this range (``M != N`` allowed).
    dims : (int, int)
        Range of the dimension ``d``.
    scale : (float, float)
        Range of the overall length scale (drawn log-uniformly); ``y`` is also shifted.
    duplicates : bool
        Allow shared points between ``x`` and ``y`` (zero costs), repeated points within
        ``x`` and a lattice mode with ties (integer coordinates).
    weights : tuple of {"uniform", "random", "degenerate"}
        Kinds of marginals drawn; "degenerate" puts almost all mass on one point.
    """
    st = _st()

    @st.composite
    def strat(draw):
        M, N = draw(st.integers(min_points, max_points)), draw(st.integers(min_points, max_points))
        d = draw(st.integers(*dims))
        rng = _np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        s = 10.0 ** draw(st.floats(math.log10(scale[0]), math.log10(scale[1])))
        lattice = duplicates and draw(st.booleans())
        if lattice:      # integer coordinates: many equal costs (ties)
            x = rng.integers(-2, 3, (M, d)).astype(float)
            y = rng.integers(-2, 3, (N, d)).astype(float)
        else:
            x = rng.standard_normal((M, d))
            y = draw(st.floats(0.3, 2.0)) * rng.standard_normal((N, d)) + draw(st.floats(0.0, 3.0))
        if duplicates:
            k = draw(st.integers(0, min(M, N)))
            y[:k] = x[:k]                                   # shared points
            if M > 1 and draw(st.booleans()):
                x[-1] = x[0]                                # a repeated point
        wk = draw(st.sampled_from(list(weights)))
        return Cloud(s * x, s * y, _weights(rng, M, wk), _weights(rng, N, draw(st.sampled_from(list(weights)))))

    return strat()


def ot_problems(min_points=1, max_points=10, dims=(1, 4), costs=("l1", "euclidean", "sqeuclidean"),
                regs=("kl", "l2"), lam_rel=(1e-4, 10.0), scale=(1e-2, 1e2), duplicates=True,
                weights=("uniform", "random", "degenerate")):
    """Strategy of :class:`OTProblem` ``(C, a, b, lam, reg, x, y, cost)`` (host float64).

    ``lam = r * median(C)`` (``median`` of the positive costs, 1 if there are none) with
    ``r`` drawn log-uniformly in ``lam_rel``; ``1e-4`` is the smallest ratio the
    project's theorem tests use. Other parameters as in :func:`point_clouds`.
    """
    st = _st()

    @st.composite
    def strat(draw):
        cl = draw(point_clouds(min_points, max_points, dims, scale, duplicates, weights))
        cost = draw(st.sampled_from(list(costs)))
        C = cost_matrix_host(cl.x, cl.y, cost)
        pos = C[C > 0]
        med = float(_np.median(pos)) if pos.size else 1.0
        lam = med * 10.0 ** draw(st.floats(math.log10(lam_rel[0]), math.log10(lam_rel[1])))
        return OTProblem(C, cl.a, cl.b, lam, draw(st.sampled_from(list(regs))), cl.x, cl.y, cost)

    return strat()


class TwoDelta(NamedTuple):
    theta: _np.ndarray       # (2,) (a, b), a < 0 < b
    theta_star: _np.ndarray  # (2,)
    alpha: float             # mass at a, in [0, 1]
    h: float                 # step size > 0


def two_delta_models(h=(1e-3, 10.0), alpha_edges=True):
    """Strategy of :class:`TwoDelta` models ``rho = alpha delta_a + (1 - alpha) delta_b``
    (Wasserstein proximal of GANs, Sec. 2.3) on ``Theta = {a < 0 < b}``, with a target, a
    mass ``alpha`` (``0``, ``1`` and ``1/2`` included when ``alpha_edges``) and a step ``h``
    drawn log-uniformly in ``h``."""
    st = _st()
    side = lambda sgn: st.floats(1e-3, 10.0).map(lambda v: sgn * v)
    al = st.floats(0.0, 1.0)
    if alpha_edges:
        al = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), al)
    return st.builds(lambda a, b, a2, b2, alpha, lh: TwoDelta(_np.array([a, b]), _np.array([a2, b2]), alpha, 10.0 ** lh),
                     side(-1), side(1), side(-1), side(1), al, st.floats(math.log10(h[0]), math.log10(h[1])))


class Image(NamedTuple):
    X: _np.ndarray    # (C, H, W) nonnegative mass
    mass: float       # X.sum()


def images(channels=(1, 2), side=(1, 6), zeros=True, max_value=2.0):
    """Strategy of small nonnegative images :class:`Image` ``(X, mass)`` (host float64).

    Shapes ``(C, H, W)`` with ``H, W`` in ``side`` (``H * W >= 2``) and ``C`` in ``channels``;
    with ``zeros`` some pixels are exactly 0 (and sometimes all but one: a one-hot image).
    """
    st = _st()

    @st.composite
    def strat(draw):
        C = draw(st.integers(*channels))
        H, W = draw(st.integers(*side)), draw(st.integers(*side))
        if H * W < 2:
            W = 2
        rng = _np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        X = rng.random((C, H, W)) * max_value
        if zeros:
            mode = draw(st.sampled_from(["dense", "sparse", "onehot"]))
            if mode == "sparse":
                X[rng.random(X.shape) < 0.5] = 0.0
            elif mode == "onehot":
                X = _np.zeros_like(X)
                X[tuple(rng.integers(0, s) for s in X.shape)] = 1.0
        return Image(X, float(X.sum()))

    return strat()


class MLPSpec(NamedTuple):
    mlp: object          # refimpl.nn.MLP
    params: list         # host float64 [(W, b), ...]
    x: _np.ndarray       # (B, sizes[0]) host float64


def mlp_specs(out_dim=None, depth=(1, 3), width=(1, 16), in_dim=(1, 4), batch=(1, 8), activations=None,
              output_activations=("linear", "tanh", "softplus", "sigmoid")):
    """Strategy of :class:`MLPSpec` ``(mlp, params, x)``: an MLP, host float64 parameters
    (biases perturbed so no pre-activation sits on a ReLU kink by construction) and a batch.
    ``out_dim=1`` gives scalar-output networks (all four passes of :func:`check_mlp`)."""
    st = _st()
    from ..nn import ACTIVATIONS, MLP
    acts = sorted(ACTIVATIONS) if activations is None else list(activations)

    @st.composite
    def strat(draw):
        widths = [draw(st.integers(*width)) for _ in range(draw(st.integers(*depth)))]
        sizes = (draw(st.integers(*in_dim)), *widths, out_dim or draw(st.integers(1, 3)))
        mlp = MLP(sizes, draw(st.sampled_from(acts)), draw(st.sampled_from(list(output_activations))))
        rng = _np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        params = [(_np.asarray(W), _np.asarray(b) + rng.uniform(-0.5, 0.5, tuple(b.shape)))
                  for W, b in mlp.init(rng, xp=_np, dtype="float64")]
        return MLPSpec(mlp, params, rng.standard_normal((draw(st.integers(*batch)), sizes[0])))

    return strat()


# ============================================================================ predicates
