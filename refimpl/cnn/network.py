"""Convolutional networks with the four passes of :class:`refimpl.nn.MLP`.

Layer ``l`` (0-based) computes ``a_l = op_l(h_l; theta_l)`` and ``h_{l+1} = s_l(a_l)``
(:mod:`refimpl.cnn.layers`); ``h_0 = x``. Parameters are a list of one ``(W, b)`` pair per
layer, so :mod:`refimpl.optim`, :func:`refimpl.nn.copy_params` and the checkpoints take them
as they take an MLP's. Images are NCHW at the public boundary and CHWN inside
(:mod:`refimpl.cnn.conv`). The maths of the passes is written out in ``docs/cnn.md``.

The public methods validate once at entry (:mod:`refimpl.validation`): parameters with the
layer shapes; inputs of the parameters' dtype and of the network's input shape and channel
count. Each pass is a checked layer over an unchecked core, ``net.forward.unchecked(params, x)``
(bound to ``net``; :func:`refimpl.validation.checked`), which skips the checks and makes no
host round trip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as _np

from .. import validation as checks
from ..backend import device_of, dtype_of, from_host, namespace
from ..nn import get_activation
from .layers import LAYERS, RELU_FAMILY, BatchNorm

__all__ = ["CNN", "Cache", "Tape"]


def _inward(h):
    """NCHW -> the internal CHWN for a 4-D array; other arrays unchanged."""
    return namespace(h).permute_dims(h, (1, 2, 3, 0)) if h.ndim == 4 else h


def _outward(h):
    """The internal CHWN -> NCHW for a 4-D array (inverse of :func:`_inward`); other arrays unchanged."""
    return namespace(h).permute_dims(h, (3, 0, 1, 2)) if h.ndim == 4 else h


class Cache(NamedTuple):
    """Forward cache (internal layout): inputs ``h_0..h_L``, pre-activations ``a_l``, layer caches."""
    hs: list
    as_: list
    ops: list


class Tape(NamedTuple):
    """Input-gradient tape: the forward cache and the backward pass seeded with 1."""
    cache: Cache
    dacts: list   # s_l'(a_l)
    ds: list      # d_l = df/dh_l, l = 0..L (d_0 is the input gradient, internal layout)
    es: list      # e_l = df/da_l


@dataclass(frozen=True)
class CNN:
    """A network spec (holds no arrays): an input shape and a tuple of layers.

    Parameters
    ----------
    input_shape : tuple of int
        Per-sample input shape: ``(C, H, W)`` for images (inputs ``(N, C, H, W)``) or
        ``(D,)`` (inputs ``(N, D)``, e.g. a generator's latent code).
    layers : tuple
        :class:`~refimpl.cnn.layers.Dense`, :class:`~refimpl.cnn.layers.Conv2d`,
        :class:`~refimpl.cnn.layers.ConvTranspose2d`, :class:`~refimpl.cnn.layers.LayerNorm`,
        :class:`~refimpl.cnn.layers.BatchNorm`, each with its ``activation``.

    Raises
    ------
    TypeError, ValueError
        An unknown layer or activation, or a kernel, stride, padding or output padding that
        does not fit its input (the message names ``layers[l]``).
    """
    input_shape: tuple
    layers: tuple

    def __post_init__(self):
        shape = self.input_shape
        if not isinstance(shape, (tuple, list)) or len(shape) not in (1, 3) or any(
                isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"input_shape must be (C, H, W) or (D,) of positive integers, got {shape!r}")
        object.__setattr__(self, "input_shape", tuple(shape))
        if not isinstance(self.layers, (tuple, list)) or not self.layers:
            raise TypeError(f"layers must be a non-empty tuple of layers, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        shapes = [self.input_shape]
        for l, layer in enumerate(self.layers):
            if not isinstance(layer, LAYERS):
                raise TypeError(f"layers[{l}] must be one of {', '.join(c.__name__ for c in LAYERS)}, "
                                f"got {type(layer).__name__}")
            layer.check()
            shapes.append(layer.out_shape_of(shapes[-1], f"layers[{l}]"))
        object.__setattr__(self, "_shapes", tuple(shapes))

    @property
    def shapes(self):
        """Per-sample shapes ``[input, after layer 0, ..., output]``."""
        return self._shapes

    @property
    def output_shape(self):
        return self._shapes[-1]

    @property
    def n_layers(self):
        return len(self.layers)

    def param_shapes(self):
        """``[(W shape, b shape), ...]`` per layer."""
        return [layer.param_shapes(s) for layer, s in zip(self.layers, self._shapes)]

    def _bn_layers(self):
        return [l for l, layer in enumerate(self.layers) if isinstance(layer, BatchNorm)]

    # -- initialisation
    @checks.checked()
    def init(self, rng, xp=None, dtype="float64", device=None):
        """Fresh parameters ``[(W, b), ...]`` drawn from ``rng`` (a ``numpy.random.Generator``).

        Affine layers: ``W ~ N(0, gain/fan_in)``, ``gain = 2`` (He) where the layer's
        activation, or that of the norm layer right after it, is ReLU or leaky ReLU, else 1;
        ``fan_in = C_in k^2`` (convolution), ``C_in k^2 / s^2`` (transposed convolution),
        ``D_in`` (dense). Biases 0; norm layers gain 1, offset 0. Draws are made on the host
        in float64 and cast, so every backend and dtype sees the same numbers.

        ``dtype``: ``"float32"``/``"float64"``; ``device``: where
        the arrays are created.
        """
        checks.random_generator(rng, "rng")
        xp = namespace() if xp is None else xp
        dt = dtype_of(xp, dtype)
        if dt not in (xp.float32, xp.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
        params = []
        for l, (layer, (ws, bs)) in enumerate(zip(self.layers, self.param_shapes())):
            if layer.affine:
                act = layer.activation
                nxt = self.layers[l + 1] if l + 1 < self.n_layers else None
                if act == "linear" and nxt is not None and not nxt.affine:
                    act = nxt.activation
                gain = 2.0 if act in RELU_FAMILY else 1.0
                W = rng.standard_normal(ws) * math.sqrt(gain / layer.fan_in(self._shapes[l]))
                b = _np.zeros(bs)
            else:
                W, b = _np.ones(ws), _np.zeros(bs)
            params.append((from_host(W, xp, dt, device), from_host(b, xp, dt, device)))
        return params

    @checks.checked()
    def init_stats(self, params):
        """Running statistics ``[(mean 0, var 1), ...]``, one pair per batch norm layer, like ``params``."""
        params = checks.params(params, "params", shapes=self.param_shapes(), finite=False)
        xp = namespace(params)
        return [(xp.zeros_like(params[l][0]), xp.ones_like(params[l][0])) for l in self._bn_layers()]

    # -- validation at the public entry points (one finiteness reduction for all arrays)
    def _validate(self, params, *items, stats=None):
        params = checks.params(params, "params", shapes=self.param_shapes(), finite=False)
        xp = namespace(params)
        dt, dev = params[0][0].dtype, device_of(params[0][0])
        leaves = [a for Wb in params for a in Wb]
        names = [f"params[{l}][{k}]" for l in range(len(params)) for k in range(2)]
        if stats is not None:
            bn = self._bn_layers()
            stats = checks.params(stats, "stats", xp=xp, dtype=dt, finite=False,
                                   shapes=[(self.param_shapes()[l][0],) * 2 for l in bn])
            leaves += [a for mv in stats for a in mv]
            names += [f"stats[{i}][{k}]" for i in range(len(stats)) for k in range(2)]
        arrs = []
        for name, arr, want in items:
            if checks.is_array(arr) and want is not None and len(want) == 4 and arr.ndim == 4 \
                    and want[1] is not None and arr.shape[1] != want[1]:
                raise ValueError(f"{name} has {arr.shape[1]} channels, the network takes {want[1]} "
                                 f"(per-sample shape {self.input_shape})")
            a = checks.array(arr, name, shape=want, finite=False, xp=xp)
            if a.dtype != dt:
                raise TypeError(f"{name} has dtype {checks.dtype_name(a.dtype)} but the network's parameters "
                                f"are {checks.dtype_name(dt)}; cast {name} with xp.astype")
            if device_of(a) != dev:
                raise ValueError(f"{name} is on device {device_of(a)!r}, the parameters on {dev!r}")
            arrs.append(a)
        checks.finite_all(leaves + arrs, names + [it[0] for it in items])
        return params, stats, arrs

    def _in_shape(self):
        return (None, *self.input_shape)

    # -- pass 1: forward
    def _forward(self, params, x, stats=None):
        stat_of = dict(zip(self._bn_layers(), stats)) if stats is not None else {}
        h = _inward(x)
        hs, as_, ops = [h], [], []
        for l, layer in enumerate(self.layers):
            a, c = layer.fwd(params[l], h, stat_of.get(l))
            h = get_activation(layer.activation).f(a)
            as_.append(a)
            ops.append(c)
            hs.append(h)
        return _outward(h), Cache(hs, as_, ops)

    @checks.checked(_forward)
    def forward(self, params, x, stats=None):
        """``y = f(x)``.

        Parameters
        ----------
        params : list of (W, b), this network's layout, finite
        x : array (N, *input_shape) (NCHW for images), the parameters' dtype, finite
        stats : list of (mean, var), optional
            Batch norm running statistics (:meth:`init_stats`, :meth:`update_stats`): given,
            batch norm runs in evaluation mode; ``None`` (default): training mode, batch statistics.

        Returns
        -------
        y : array (N, *output_shape)
        cache : Cache, for :meth:`backward` and :meth:`update_stats`.

        Raises
        ------
        TypeError, ValueError
            By the input rules below, naming ``params[l][k]``, ``x`` or
            ``stats``; a wrong channel count or image size names ``x``.
        """
        params, stats, (x,) = self._validate(params, ("x", x, self._in_shape()), stats=stats)
        return self._forward(params, x, stats)


    @checks.checked()
    def update_stats(self, stats, cache):
        """New running statistics after a training-mode forward: per batch norm layer
        ``mean <- (1 - m) mean + m mu_batch``, ``var <- (1 - m) var + m var_batch M/(M - 1)``
        (``M`` entries per channel, ``m`` the layer's momentum; PyTorch's rule).

        ``stats`` as from :meth:`init_stats`; ``cache`` from
        a training-mode :meth:`forward`.
        """
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the Cache returned by forward, got {type(cache).__name__}")
        bn = self._bn_layers()
        stats = checks.params(stats, "stats", shapes=[(self.param_shapes()[l][0],) * 2 for l in bn])
        xp = namespace(stats)
        out = []
        for (mean, var), l in zip(stats, bn):
            _, _, mu, bvar, train = cache.ops[l]
            if not train:
                raise ValueError("update_stats needs the cache of a training-mode forward (stats=None)")
            m = self.layers[l].momentum
            M = math.prod(cache.hs[l].shape) // mean.shape[0]
            mu, bvar = xp.reshape(mu, mean.shape), xp.reshape(bvar, mean.shape)
            out.append(((1 - m) * mean + m * mu, (1 - m) * var + (m * M / max(M - 1, 1)) * bvar))
        return out

    # -- pass 2: backward
    def _backward(self, params, cache, dy, need_dx=True, need_params=True):
        grads = [None] * self.n_layers
        dh = _inward(dy)
        for l in range(self.n_layers - 1, -1, -1):
            layer = self.layers[l]
            da = dh * get_activation(layer.activation).df(cache.as_[l], cache.hs[l + 1])
            dh, grads[l] = layer.vjp(params[l], cache.hs[l], cache.ops[l], da, l > 0 or need_dx, need_params)
        return (_outward(dh) if need_dx else None), (grads if need_params else None)

    @checks.checked(_backward)
    def backward(self, params, cache, dy, need_dx=True, need_params=True):
        """Reverse pass: ``dx = dy^T dy/dx`` and ``grads = d<dy, y>/dparams``.

        Parameters
        ----------
        dy : array (N, *output_shape), the output's dtype, finite
        need_dx, need_params : bool
            Skip the work for outputs not needed (``None`` in their place).

        Returns
        -------
        dx : array (N, *input_shape) or None
        grads : list of (dW, db) like ``params``, or None

        Raises
        ------
        TypeError, ValueError
            By the input rules below, naming the argument.
        """
        if not isinstance(cache, Cache):
            raise TypeError(f"cache must be the Cache returned by forward, got {type(cache).__name__}")
        params, _, (dy,) = self._validate(params, ("dy", dy, tuple(_outward(cache.hs[-1]).shape)))
        return self._backward(params, cache, dy, checks.boolean(need_dx, "need_dx"),
                              checks.boolean(need_params, "need_params"))

    # -- pass 3: input gradient
    def _check_critic(self):
        if self.output_shape != (1,):
            raise ValueError(f"input_gradient needs a scalar-output network, this one's output is {self.output_shape}")
        if self._bn_layers():
            raise ValueError("input_gradient: batch norm couples the samples of a batch, so the per-sample "
                             "input gradient of a gradient penalty is undefined; use LayerNorm or no norm")

    def _input_gradient(self, params, x):
        self._check_critic()                                # structural: no array is read
        xp = namespace(x)
        _, cache = self._forward(params, x)
        L = self.n_layers
        dacts, es, ds = [None] * L, [None] * L, [None] * (L + 1)
        d = xp.ones_like(cache.hs[-1])
        ds[L] = d
        for l in range(L - 1, -1, -1):
            layer = self.layers[l]
            dacts[l] = get_activation(layer.activation).df(cache.as_[l], cache.hs[l + 1])
            es[l] = d * dacts[l]
            d = layer.vjp(params[l], cache.hs[l], cache.ops[l], es[l], True, False)[0]
            ds[l] = d
        return _outward(d), Tape(cache, dacts, ds, es)

    @checks.checked(_input_gradient)
    def input_gradient(self, params, x):
        """Per-sample input gradient ``g_n = grad_x f(x_n)`` of a scalar-output critic.

        Parameters
        ----------
        params : list of (W, b); x : array (N, *input_shape), finite

        Returns
        -------
        g : array (N, *input_shape)
        tape : Tape, for :meth:`input_gradient_vjp`.

        Raises
        ------
        ValueError
            The output is not scalar, or the network has batch norm layers; bad inputs as in
            :meth:`forward`.
        """
        params, _, (x,) = self._validate(params, ("x", x, self._in_shape()))
        return self._input_gradient(params, x)

    # -- pass 4: double backward
    def _input_gradient_vjp(self, params, tape, u, need_dx=True, need_params=True):
        cache, dacts, ds, es = tape
        xp = namespace(u)
        L = self.n_layers
        grads = [None] * L
        bar_a = [None] * L
        bar_h = [None] * (L + 1)
        bar_d = _inward(u)
        for l in range(L):                                  # sweep 1: through the input-gradient pass
            layer = self.layers[l]
            bar_e, grads[l], bar_h[l] = layer.dvjp(params[l], cache.hs[l], cache.ops[l], es[l], bar_d, need_params)
            act = get_activation(layer.activation)
            if act.smooth:
                bar_a[l] = bar_e * ds[l + 1] * act.d2f(cache.as_[l], cache.hs[l + 1])
            if l < L - 1:
                bar_d = bar_e * dacts[l]
        for l in range(L - 1, -1, -1):                      # sweep 2: back through the forward pass
            ba, bo = bar_a[l], bar_h[l + 1]
            if bo is not None:
                ba = bo * dacts[l] if ba is None else ba + bo * dacts[l]
            if ba is None:
                continue
            dh, g = self.layers[l].vjp(params[l], cache.hs[l], cache.ops[l], ba, l > 0 or need_dx, need_params)
            if need_params:
                grads[l] = (grads[l][0] + g[0], grads[l][1] + g[1])
            if dh is not None:
                bar_h[l] = dh if bar_h[l] is None else bar_h[l] + dh
        dx = None
        if need_dx:
            dx = _outward(bar_h[0]) if bar_h[0] is not None else xp.zeros_like(u)
        return dx, (grads if need_params else None)

    @checks.checked(_input_gradient_vjp)
    def input_gradient_vjp(self, params, tape, u, need_dx=True, need_params=True):
        """Gradients of ``Q = sum_n <u_n, g_n>`` (``g`` from :meth:`input_gradient`).

        Two sweeps (``docs/cnn.md``): forward over the input-gradient pass, each layer's
        ``dvjp`` giving ``bar e_l``, ``bar theta_l`` and (norm layers) ``bar h_l``, with
        ``bar d_{l+1} = bar e_l * s'(a_l)`` and ``bar a_l = bar e_l * d_{l+1} * s''(a_l)``;
        then backward through the forward pass with those ``bar a_l`` and ``bar h_l`` as seeds.

        Parameters
        ----------
        u : array (N, *input_shape), the input's dtype, finite

        Returns
        -------
        dx : array (N, *input_shape) or None
        grads : list of (dW, db) like ``params``, or None
        """
        if not isinstance(tape, Tape):
            raise TypeError(f"tape must be the Tape returned by input_gradient, got {type(tape).__name__}")
        self._check_critic()
        params, _, (u,) = self._validate(params, ("u", u, tuple(_outward(tape.cache.hs[0]).shape)))
        return self._input_gradient_vjp(params, tape, u, checks.boolean(need_dx, "need_dx"),
                                        checks.boolean(need_params, "need_params"))

