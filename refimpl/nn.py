"""Multilayer perceptrons with hand-written forward, backward, input-gradient and double-backward passes.

Parameters are plain lists of ``(W, b)`` tuples, ``W (fan_in, fan_out)``, ``b (fan_out,)``.
Every pass is a pure function of its arguments; caches and tapes are return values.
The maths of the four passes is written out in ``docs/engine.md``.

Layer ``l`` (1..L) computes ``a_l = h_{l-1} W_l + b_l``, ``h_l = s_l(a_l)`` with ``h_0 = x``;
``s_l`` is the hidden activation for ``l < L`` and the output activation for ``l = L``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

from .backend import dtype_of, from_host, namespace


# ----------------------------------------------------------------------------- activations
class Activation(NamedTuple):
    """Value ``f(a)``, first ``f'(a, f(a))`` and second ``f''(a, f(a))`` derivative.

    The derivatives receive both the pre-activation and the value, so tanh and
    sigmoid reuse ``f(a)``. ``smooth`` is False where ``f'' = 0`` almost everywhere
    (the double backward then skips the second-derivative pass).
    """
    f: Callable
    df: Callable
    d2f: Callable | None
    smooth: bool


_XP_OF_TYPE = {}


def _xp(a):
    """``namespace(a)``, memoised per array type (the namespace depends on the type only)."""
    xp = _XP_OF_TYPE.get(type(a))
    return xp if xp is not None else _XP_OF_TYPE.setdefault(type(a), namespace(a))


def _ind(xp, cond, like):
    return xp.astype(cond, like.dtype)


def _sigmoid(a):
    xp = _xp(a)
    e = xp.exp(-xp.abs(a))                       # in (0, 1]: never overflows
    return xp.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(a):
    xp = _xp(a)
    return xp.maximum(a, xp.zeros_like(a)) + xp.log1p(xp.exp(-xp.abs(a)))


def _elu(a):
    xp = _xp(a)
    return xp.where(a > 0, a, xp.expm1(xp.minimum(a, xp.zeros_like(a))))


LEAKY_SLOPE = 0.2

ACTIVATIONS = {
    "relu": Activation(
        lambda a: _xp(a).maximum(a, _xp(a).zeros_like(a)),
        lambda a, y: _ind(_xp(a), a > 0, a),
        None, False),
    "leaky_relu": Activation(
        lambda a: _xp(a).where(a > 0, a, LEAKY_SLOPE * a),
        lambda a, y: _xp(a).where(a > 0, _xp(a).ones_like(a), _xp(a).full_like(a, LEAKY_SLOPE)),
        None, False),
    "linear": Activation(lambda a: a, lambda a, y: _xp(a).ones_like(a), None, False),
    "tanh": Activation(
        lambda a: _xp(a).tanh(a),
        lambda a, y: 1.0 - y * y,
        lambda a, y: -2.0 * y * (1.0 - y * y), True),
    "sigmoid": Activation(
        _sigmoid,
        lambda a, y: y * (1.0 - y),
        lambda a, y: y * (1.0 - y) * (1.0 - 2.0 * y), True),
    "softplus": Activation(
        _softplus,
        lambda a, y: _sigmoid(a),
        lambda a, y: _sigmoid(a) * (1.0 - _sigmoid(a)), True),
    "elu": Activation(
        _elu,
        lambda a, y: _xp(a).where(a > 0, _xp(a).ones_like(a), y + 1.0),
        lambda a, y: _xp(a).where(a > 0, _xp(a).zeros_like(a), y + 1.0), True),
}


def get_activation(name):
    """The :class:`Activation` called ``name``; ``ValueError`` for unknown names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}") from None


def _times_wt(x, W):
    """``x @ W.T``; for a one-unit layer (``W`` (n, 1)) the outer product ``x * W.T``, which is
    exact (one product per entry) and avoids BLAS's slow K = 1 matrix product."""
    return x * W.T if W.shape[1] == 1 else x @ W.T


# ----------------------------------------------------------------------------- parameter trees
def copy_params(params):
    """A real copy (new arrays) of a list of ``(W, b)``."""
    xp = namespace(params)
    return [(xp.asarray(W, copy=True), xp.asarray(b, copy=True)) for W, b in params]


def zeros_like_params(params):
    xp = namespace(params)
    return [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params]


def add_params(p, q, scale=1.0):
    """``p + scale * q`` leafwise (new arrays)."""
    return [(W + scale * V, b + scale * c) for (W, b), (V, c) in zip(p, q)]


def param_count(params):
    return sum(math.prod(W.shape) + math.prod(b.shape) for W, b in params)


# ----------------------------------------------------------------------------- the network
class Cache(NamedTuple):
    """Forward cache: per layer the input ``h_{l-1}``, pre-activation ``a_l`` and output ``h_l``."""
    hs: list      # [h_0 .. h_L]   h_l (B, sizes[l])
    as_: list     # [a_1 .. a_L]   a_l (B, sizes[l])


class Tape(NamedTuple):
    """Input-gradient tape: the forward cache and the backward pass with seed 1."""
    cache: Cache
    dacts: list   # [s_l'(a_l)]      (B, sizes[l]), l = 1..L
    ds: list      # [d_l = df/dh_l]  l = 0..L (d_0 is the input gradient)
    es: list      # [e_l = df/da_l]  l = 1..L


@dataclass(frozen=True)
class MLP:
    """A fully connected network spec (holds no arrays).

    Parameters
    ----------
    sizes : tuple of int
        ``(d_in, h_1, ..., h_{L-1}, d_out)``; at least two entries, all >= 1.
    activation : str
        Hidden activation: relu, leaky_relu (slope 0.2), tanh, softplus, elu, sigmoid, linear.
    output : str
        Output activation (same names), ``"linear"`` by default.

    Initialisation: ``W ~ N(0, 2/fan_in)`` (He) for the ReLU family and
    ``W ~ N(0, 2/(fan_in+fan_out))`` (Glorot) otherwise; biases zero. Draws are made on
    the host in float64 and then cast, so every backend and dtype sees the same numbers.
    """
    sizes: tuple
    activation: str = "relu"
    output: str = "linear"

    def __post_init__(self):
        sizes = tuple(self.sizes)
        if len(sizes) < 2 or any((not isinstance(s, int)) or isinstance(s, bool) or s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive integers, got {self.sizes!r}")
        object.__setattr__(self, "sizes", sizes)
        get_activation(self.activation)
        get_activation(self.output)

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    def act(self, layer):
        """Activation of layer ``layer`` (0-based)."""
        return get_activation(self.output if layer == self.n_layers - 1 else self.activation)

    # -- initialisation
    def init(self, rng, xp=None, dtype="float64", device=None):
        """Fresh parameters ``[(W, b), ...]`` drawn from ``rng`` (a ``numpy.random.Generator``)."""
        if xp is None:
            xp = namespace()
        he = self.activation in ("relu", "leaky_relu")
        params = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            std = math.sqrt(2.0 / fan_in) if he else math.sqrt(2.0 / (fan_in + fan_out))
            W = rng.standard_normal((fan_in, fan_out)) * std
            params.append((from_host(W, xp, dtype, device), xp.zeros((fan_out,), dtype=dtype_of(xp, dtype),
                                                                    **({"device": device} if device is not None else {}))))
        return params

    # -- checks (shape and dtype attributes only: no device sync)
    def _check(self, params, x, name="x"):
        if len(params) != self.n_layers:
            raise ValueError(f"params has {len(params)} layers, the network has {self.n_layers}")
        if len(x.shape) != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"{name} must have shape (B, {self.sizes[0]}), got {tuple(x.shape)}")
        if x.dtype != params[0][0].dtype:
            raise ValueError(f"dtype mismatch: {name} is {x.dtype} but the parameters are {params[0][0].dtype}")

    # -- pass 1: forward
    def forward(self, params, x):
        """``y = f(x)``.

        Parameters
        ----------
        x : array (B, sizes[0])

        Returns
        -------
        y : array (B, sizes[-1])
        cache : Cache, for :meth:`backward`.
        """
        self._check(params, x)
        hs, as_ = [x], []
        h = x
        for l, (W, b) in enumerate(params):
            a = h @ W + b                                   # (B, n_l)
            h = self.act(l).f(a)
            as_.append(a)
            hs.append(h)
        return h, Cache(hs, as_)

    # -- pass 2: backward
    def backward(self, params, cache, dy, need_dx=True, need_params=True):
        """Reverse pass: ``dx = dy^T dy/dx`` and ``grads = d<dy, y>/dparams``.

        Parameters
        ----------
        dy : array (B, sizes[-1])
            Seed: the gradient of a scalar loss w.r.t. ``y``.
        need_dx, need_params : bool
            Skip the work for outputs not needed (``None`` is returned in their place).

        Returns
        -------
        dx : array (B, sizes[0]) or None
        grads : list of (dW, db) like ``params``, or None
        """
        y = cache.hs[-1]
        if tuple(dy.shape) != tuple(y.shape):
            raise ValueError(f"dy must have the output's shape {tuple(y.shape)}, got {tuple(dy.shape)}")
        if dy.dtype != y.dtype:
            raise ValueError(f"dtype mismatch: dy is {dy.dtype} but the network output is {y.dtype}")
        xp = namespace(dy)
        grads = [None] * self.n_layers
        dh = dy
        for l in range(self.n_layers - 1, -1, -1):
            W = params[l][0]
            a, h = cache.as_[l], cache.hs[l + 1]
            da = dh * self.act(l).df(a, h)                  # (B, n_l)
            if need_params:
                grads[l] = (cache.hs[l].T @ da, xp.sum(da, axis=0))
            if l > 0 or need_dx:
                dh = _times_wt(da, W)                       # (B, n_{l-1})
        return (dh if need_dx else None), (grads if need_params else None)

    # -- pass 3: input gradient
    def input_gradient(self, params, x):
        """Per-sample input gradient ``g_b = grad_x f(x_b)`` of a scalar-output network.

        Returns
        -------
        g : array (B, sizes[0])
        tape : Tape, for :meth:`input_gradient_vjp`.
        """
        if self.sizes[-1] != 1:
            raise ValueError(f"input_gradient needs a scalar-output network, this one has {self.sizes[-1]} outputs")
        xp = namespace(x)
        _, cache = self.forward(params, x)
        L = self.n_layers
        dacts, es, ds = [None] * L, [None] * L, [None] * (L + 1)
        d = xp.ones_like(cache.hs[-1])                      # d_L = 1, (B, 1)
        ds[L] = d
        for l in range(L - 1, -1, -1):
            dacts[l] = self.act(l).df(cache.as_[l], cache.hs[l + 1])
            es[l] = d * dacts[l]                            # e_l = d_l * s'(a_l)
            d = _times_wt(es[l], params[l][0])              # d_{l-1} = e_l W_l^T
            ds[l] = d
        return d, Tape(cache, dacts, ds, es)

    # -- pass 4: double backward
    def input_gradient_vjp(self, params, tape, u, need_dx=True, need_params=True):
        """Gradients of ``Q = sum_b <u_b, g_b>`` (``g`` from :meth:`input_gradient`).

        Reverse mode through the input-gradient computation. With adjoints ``bar``:
        ``bar d_0 = u``; for ``l = 1..L``: ``bar e_l = bar d_{l-1} W_l``,
        ``bar W_l += bar d_{l-1}^T e_l``, ``bar d_l = bar e_l * s'(a_l)`` and
        ``bar a_l = bar e_l * d_l * s''(a_l)``. Then back through the forward pass
        (``l = L..1``): ``bar a_l += bar h_l * s'(a_l)``, ``bar W_l += h_{l-1}^T bar a_l``,
        ``bar b_l += sum bar a_l``, ``bar h_{l-1} = bar a_l W_l^T``; ``dx = bar h_0``.
        The second pass is skipped when every activation has ``s'' = 0`` (ReLU family).

        Parameters
        ----------
        u : array (B, sizes[0])

        Returns
        -------
        dx : array (B, sizes[0]) or None
        grads : list of (dW, db) like ``params``, or None
        """
        cache, dacts, ds, es = tape
        x = cache.hs[0]
        if tuple(u.shape) != tuple(x.shape):
            raise ValueError(f"u must have the input's shape {tuple(x.shape)}, got {tuple(u.shape)}")
        if u.dtype != x.dtype:
            raise ValueError(f"dtype mismatch: u is {u.dtype} but the input is {x.dtype}")
        xp = namespace(u)
        L = self.n_layers
        gW = [None] * L
        bar_a = [None] * L
        bar_d = u                                           # bar d_0
        for l in range(L):
            W = params[l][0]
            if need_params:
                gW[l] = bar_d.T @ es[l]                     # (n_{l-1}, n_l)
            bar_e = bar_d @ W                               # (B, n_l)
            act = self.act(l)
            if act.smooth:
                bar_a[l] = bar_e * ds[l + 1] * act.d2f(cache.as_[l], cache.hs[l + 1])
            if l < L - 1:
                bar_d = bar_e * dacts[l]                    # bar d_l
        second = any(b is not None for b in bar_a)
        gb = [None] * L
        bar_h = None
        if second or need_dx:
            for l in range(L - 1, -1, -1):
                ba = bar_a[l]
                if bar_h is not None:
                    hh = bar_h * dacts[l]
                    ba = hh if ba is None else ba + hh
                if ba is None:
                    bar_h = None
                    continue
                if need_params:
                    gW[l] = gW[l] + cache.hs[l].T @ ba
                    gb[l] = xp.sum(ba, axis=0)
                if l > 0 or need_dx:
                    bar_h = _times_wt(ba, params[l][0])
        grads = None
        if need_params:
            grads = [(gW[l], gb[l] if gb[l] is not None else xp.zeros_like(params[l][1])) for l in range(L)]
        dx = None
        if need_dx:
            dx = bar_h if bar_h is not None else xp.zeros_like(x)
        return dx, grads
