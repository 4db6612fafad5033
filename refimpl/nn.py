"""Multilayer perceptrons with hand-written forward, backward, input-gradient and double-backward passes.

Parameters are plain lists of ``(W, b)`` tuples, ``W (fan_in, fan_out)``, ``b (fan_out,)``.
Every pass is a pure function of its arguments; caches and tapes are return values.
The maths of the four passes is written out in ``docs/engine.md``.

Every public function and method validates its arrays at entry (:mod:`refimpl.validation`):
parameters with the layer shapes; inputs of a network must have its parameters' dtype
(integer inputs are promoted to float64 first). Each pass is a checked layer over an unchecked
core, ``net.forward.unchecked(params, x)`` (bound to ``net``; :func:`refimpl.validation.checked`),
which skips the checks; training steps call those, so a step makes no host round trip.

Layer ``l`` (1..L) computes ``a_l = h_{l-1} W_l + b_l``, ``h_l = s_l(a_l)`` with ``h_0 = x``;
``s_l`` is the hidden activation for ``l < L`` and the output activation for ``l = L``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as _np

from . import validation as checks
from .activations import ACTIVATIONS, LEAKY_SLOPE, Activation, get_activation  # noqa: F401 (re-exported)
from .backend import dtype_of, from_host, namespace


def _times_wt(x, W):
    """``x @ W.T``; for a one-unit layer (``W`` (n, 1)) the outer product ``x * W.T``, which is
    exact (one product per entry) and avoids BLAS's slow K = 1 matrix product."""
    return x * W.T if W.shape[1] == 1 else x @ W.T


# ----------------------------------------------------------------------------- parameter trees
def _shapes_of(p):
    return [(tuple(W.shape), tuple(b.shape)) for W, b in p]


def _copy_params(params):
    xp = namespace(params)
    return [(xp.asarray(W, copy=True), xp.asarray(b, copy=True)) for W, b in params]


@checks.checked(_copy_params)
def copy_params(params):
    """A real copy (new arrays) of a list of ``(W, b)``.

    ``params``: float32/float64
    arrays, finite; ``TypeError``/``ValueError`` naming ``params[l][k]`` otherwise.
    """
    return _copy_params(checks.params(params, "params"))


@checks.checked()
def zeros_like_params(params):
    """Zero arrays shaped like ``params`` (same namespace, dtype, device) (non-finite values are allowed: only shapes are read)."""
    params = checks.params(params, "params", finite=False)
    xp = namespace(params)
    return [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params]


def _add_params(p, q, scale=1.0):
    return [(W + scale * V, b + scale * c) for (W, b), (V, c) in zip(p, q)]


@checks.checked(_add_params)
def add_params(p, q, scale=1.0):
    """``p + scale * q`` leafwise (new arrays).

    ``p`` and ``q``: parameter lists of one namespace, dtype and layout; ``scale``: a
    finite real. Errors name ``p``, ``q`` or ``scale``.
    """
    p = checks.params(p, "p")
    q = checks.params(q, "q", xp=namespace(p), shapes=_shapes_of(p), dtype=p[0][0].dtype)
    return _add_params(p, q, checks.real(scale, "scale"))


@checks.checked()
def param_count(params):
    """Number of scalars in ``params`` (structure checked as in :mod:`refimpl.validation`; values not read)."""
    params = checks.params(params, "params", finite=False)
    return sum(math.prod(W.shape) + math.prod(b.shape) for W, b in params)


# ----------------------------------------------------------------------------- the network
#: weight initialisations of :class:`MLP` (``weight_init``)
INITS = ("default", "orthogonal")


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

    weight_init : str
        ``"default"``: ``W ~ N(0, 2/fan_in)`` (He) for the ReLU family and
        ``W ~ N(0, 2/(fan_in+fan_out))`` (Glorot) otherwise. ``"orthogonal"``: ``W = gain * Q``
        with ``Q`` the orthonormal factor of a Gaussian matrix (columns or rows orthonormal,
        signs fixed by ``diag(R) > 0``), as TensorFlow's ``orthogonal_initializer``.
    init_gain : float
        The gain of ``"orthogonal"`` (GDPP's toy code uses 1.4); ignored by ``"default"``.

    Biases are zero. Draws are made on the host in float64 and then cast, so every backend
    and dtype sees the same numbers.
    """
    sizes: tuple
    activation: str = "relu"
    output: str = "linear"
    weight_init: str = "default"
    init_gain: float = 1.0

    def __post_init__(self):
        if not isinstance(self.sizes, (tuple, list)):
            raise TypeError(f"sizes must be a tuple of at least two positive integers, got {self.sizes!r}")
        sizes = tuple(self.sizes)
        if len(sizes) < 2 or any((not isinstance(s, int)) or isinstance(s, bool) or s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive integers, got {self.sizes!r}")
        object.__setattr__(self, "sizes", sizes)
        get_activation(self.activation)
        get_activation(self.output)
        if self.weight_init not in INITS:
            raise ValueError(f"unknown weight_init {self.weight_init!r}; choose one of {', '.join(INITS)}")
        object.__setattr__(self, "init_gain", checks.real(self.init_gain, "init_gain", gt=0))

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    @checks.checked()
    def act(self, layer):
        """Activation of layer ``layer`` (0-based).
        """
        return get_activation(self.output if layer == self.n_layers - 1 else self.activation)

    # -- initialisation
    @checks.checked()
    def init(self, rng, xp=None, dtype="float64", device=None):
        """Fresh parameters ``[(W, b), ...]`` drawn from ``rng`` (a ``numpy.random.Generator``).

        ``dtype``: ``"float32"``/``"float64"`` or such a dtype of ``xp`` (float16 is
        refused, ``TypeError``); ``device``: where the arrays are created.
        """
        checks.random_generator(rng, "rng")
        if xp is None:
            xp = namespace()
        dt = dtype_of(xp, dtype)
        if dt not in (xp.float32, xp.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
        he = self.activation in ("relu", "leaky_relu")
        params = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            if self.weight_init == "orthogonal":
                q, r = _np.linalg.qr(rng.standard_normal((max(fan_in, fan_out), min(fan_in, fan_out))))
                q = q * _np.sign(_np.diag(r))        # a unique factor: diag(R) > 0
                W = self.init_gain * (q if fan_in >= fan_out else q.T)
            else:
                std = math.sqrt(2.0 / fan_in) if he else math.sqrt(2.0 / (fan_in + fan_out))
                W = rng.standard_normal((fan_in, fan_out)) * std
            params.append((from_host(W, xp, dt, device), xp.zeros((fan_out,), dtype=dt,
                                                                  **({"device": device} if device is not None else {}))))
        return params

    # -- checks at the public entry points (one host round trip for all finiteness checks)
    def param_shapes(self):
        """``[((fan_in, fan_out), (fan_out,)), ...]`` per layer: the shapes of ``(W, b)``."""
        return [((a, b), (b,)) for a, b in zip(self.sizes[:-1], self.sizes[1:])]

    @checks.checked()
    def validate(self, params, *items, pname="params", nonempty=False):
        """Validated ``(params, *arrays)`` for ``items = (name, array, shape), ...``: the
        parameters with this network's layout, each array of its ``shape`` (``None``
        entries free; no zero-length axis when ``nonempty``) and the parameters' dtype; one
        finiteness reduction for all. The entry check of the passes, and of other modules'
        checked functions that take this network's parameters (``pname`` names them)."""
        flat = params if hasattr(params, "buffer") else None   # flat parameters: one reduction over the buffer,
        buffer = None if flat is None or flat.finite else flat.buffer   # none while known finite
        params = checks.params(params, pname, shapes=self.param_shapes(), finite=False)
        xp = namespace(params)
        dt = params[0][0].dtype
        arrs = []
        for name, arr, want_shape in items:
            arr = checks.array(arr, name, shape=want_shape, nonempty=nonempty, finite=False, xp=xp)
            if arr.dtype != dt:
                promoted = " (integers and bool are promoted to float64)" if arr is not items[len(arrs)][1] else ""
                raise TypeError(f"{name} has dtype {checks.dtype_name(arr.dtype)}{promoted} but the network's "
                                f"parameters are {checks.dtype_name(dt)}; cast {name} with xp.astype")
            arrs.append(arr)
        leaves = [a for Wb in params for a in Wb]
        names = [f"{pname}[{i // 2}][{i % 2}]" for i in range(len(leaves))]
        if flat is not None and flat.finite:
            checks.finite_all(arrs, [it[0] for it in items])
            return (params, *arrs)
        try:
            if buffer is None:
                raise ValueError
            checks.finite_all([buffer] + arrs, [pname] + [it[0] for it in items])
        except ValueError:
            checks.finite_all(leaves + arrs, names + [it[0] for it in items])
        if flat is not None:
            flat.finite = True
        return (params, *arrs)

    # -- pass 1: forward
    def _forward(self, params, x):
        hs, as_ = [x], []
        h = x
        for l, (W, b) in enumerate(params):
            a = h @ W + b                                   # (B, n_l)
            h = self.act(l).f(a)
            as_.append(a)
            hs.append(h)
        return h, Cache(hs, as_)

    @checks.checked(_forward)
    def forward(self, params, x):
        """``y = f(x)``.

        Parameters
        ----------
        params : list of (W, b), this network's layout, finite
        x : array (B, sizes[0]), finite, the parameters' dtype

        Returns
        -------
        y : array (B, sizes[-1])
        cache : Cache, for :meth:`backward`.

        Raises
        ------
        TypeError, ValueError
            By the input rules below, naming ``params[l][k]`` or ``x``.
        """
        params, x = self.validate(params, ("x", x, (None, self.sizes[0])))
        return self._forward(params, x)

    # -- pass 2: backward
    def _backward(self, params, cache, dy, need_dx=True, need_params=True):
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

    @checks.checked(_backward)
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

        Raises
        ------
        TypeError, ValueError
            By the input rules below (``dy`` finite, the output's
            shape and dtype), naming the argument.
        """
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the Cache returned by forward, got {type(cache).__name__}")
        y = cache.hs[-1]
        params, dy = self.validate(params, ("dy", dy, tuple(y.shape)))
        return self._backward(params, cache, dy, checks.boolean(need_dx, "need_dx"),
                              checks.boolean(need_params, "need_params"))

    # -- pass 3: input gradient
    def _input_gradient(self, params, x):
        xp = namespace(x)
        _, cache = self._forward(params, x)
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

    @checks.checked(_input_gradient)
    def input_gradient(self, params, x):
        """Per-sample input gradient ``g_b = grad_x f(x_b)`` of a scalar-output network.

        Parameters
        ----------
        params : list of (W, b); x : array (B, sizes[0]), finite

        Returns
        -------
        g : array (B, sizes[0])
        tape : Tape, for :meth:`input_gradient_vjp`.
        """
        if self.sizes[-1] != 1:
            raise ValueError(f"input_gradient needs a scalar-output network, this one has {self.sizes[-1]} outputs")
        params, x = self.validate(params, ("x", x, (None, self.sizes[0])))
        return self._input_gradient(params, x)

    # -- pass 4: double backward
    def _input_gradient_vjp(self, params, tape, u, need_dx=True, need_params=True):
        cache, dacts, ds, es = tape
        x = cache.hs[0]
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

    @checks.checked(_input_gradient_vjp)
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
        u : array (B, sizes[0]), finite, the input's dtype

        Returns
        -------
        dx : array (B, sizes[0]) or None
        grads : list of (dW, db) like ``params``, or None
        """
        if not isinstance(tape, Tape):
            raise TypeError(f"tape must be the Tape returned by input_gradient, got {type(tape).__name__}")
        params, u = self.validate(params, ("u", u, tuple(tape.cache.hs[0].shape)))
        return self._input_gradient_vjp(params, tape, u, checks.boolean(need_dx, "need_dx"),
                                        checks.boolean(need_params, "need_params"))

