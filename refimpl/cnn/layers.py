"""Layer specs of :class:`refimpl.cnn.CNN` and their passes on the internal layout.

A layer maps its input ``h`` to a pre-activation ``a = op(h; W, b)``, then ``h' = s(a)`` with
``s`` one of :data:`refimpl.nn.ACTIVATIONS` (``activation``). Every layer has exactly one
parameter pair ``(W, b)``, so a network's parameters are a list of pairs like an MLP's and
the optimisers of :mod:`refimpl.optim` take them unchanged:

=====================  ======================  =====================
layer                  ``W``                   ``b``
=====================  ======================  =====================
:class:`Dense`         ``(D_in, D_out)``       ``(D_out,)`` or ``(0,)``
:class:`Conv2d`        ``(C_out, C_in, k, k)`` ``(C_out,)`` or ``(0,)``
:class:`ConvTranspose2d` ``(C_in, C_out, k, k)`` ``(C_out,)`` or ``(0,)``
:class:`LayerNorm`     gamma, input's shape    beta, input's shape
:class:`BatchNorm`     gamma ``(C,)``          beta ``(C,)``
=====================  ======================  =====================

A ``(0,)`` bias means "no bias" (``bias=False``). Per-sample shapes are NCHW-style
``(C, H, W)`` or ``(D,)``; the arrays inside the passes are CHWN ``(C, H, W, N)`` or
``(N, D)`` (:mod:`refimpl.cnn.conv`).

Each layer has three passes, none of which validates (the network's public methods do):

* ``fwd(theta, h, stat) -> (a, cache)``; ``stat`` is ``None`` (training) or a batch norm's
  running ``(mean, var)`` (evaluation);
* ``vjp(theta, h, cache, da, need_dx, need_params) -> (dh, (dW, db))``: the backward map
  ``B: da -> dh`` and the parameter gradient;
* ``dvjp(theta, h, cache, e, bar_d, need_params) -> (bar_e, (bar_W, bar_b), bar_h)``: the
  gradients of ``<bar_d, B(e; h, theta)>`` w.r.t. ``e``, ``theta`` and ``h`` (the double
  backward's step through this layer's part of the input-gradient pass). For the affine
  layers ``B`` does not depend on ``h`` (``bar_h`` is ``None``) and ``bar_e`` is the layer
  without its bias applied to ``bar_d``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..backend import namespace
from ..nn import get_activation
from . import conv
from . import norms

RELU_FAMILY = ("relu", "leaky_relu")


def _int(v, name, lo):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


def _to_flat(h):
    """CHWN ``(C, H, W, N)`` -> ``(N, C*H*W)`` in NCHW order; ``(N, D)`` unchanged."""
    xp = namespace(h)
    if h.ndim == 4:
        return xp.reshape(xp.permute_dims(h, (3, 0, 1, 2)), (h.shape[3], -1))
    return h


def _from_flat(a, shape):
    """``(N, D)`` -> CHWN when ``shape`` is ``(C, H, W)``; unchanged when it is ``(D,)``."""
    xp = namespace(a)
    if len(shape) == 3:
        return xp.permute_dims(xp.reshape(a, (a.shape[0], *shape)), (1, 2, 3, 0))
    return a


def _like_input(gf, h):
    """``(N, D)`` gradient -> the layout of the layer input ``h`` (CHWN or flat)."""
    if h.ndim == 4:
        return _from_flat(gf, h.shape[:3])
    return gf


class _Layer:
    affine = True
    has_bias = True

    def check(self):
        get_activation(self.activation)

    def fan_in(self, ishape):
        return None


# ----------------------------------------------------------------------------- affine layers
@dataclass(frozen=True)
class Dense:
    """Fully connected layer ``a = flat(h) W + b``; ``out_shape`` (C, H, W) reshapes the output to an image.

    ``flat`` is the NCHW row-major flattening (PyTorch's ``x.flatten(1)``).
    """
    out_features: int
    activation: str = "linear"
    out_shape: tuple | None = None
    bias: bool = True

    affine = True
    check = _Layer.check

    def out_shape_of(self, ishape, where):
        _int(self.out_features, f"{where}.out_features", 1)
        if self.out_shape is None:
            return (self.out_features,)
        shape = tuple(self.out_shape)
        if len(shape) != 3 or math.prod(shape) != self.out_features:
            raise ValueError(f"{where}.out_shape must be (C, H, W) with C*H*W = out_features "
                             f"{self.out_features}, got {self.out_shape!r}")
        return shape

    def param_shapes(self, ishape):
        return (math.prod(ishape), self.out_features), ((self.out_features,) if self.bias else (0,))

    def fan_in(self, ishape):
        return math.prod(ishape)

    def fwd(self, theta, h, stat=None):
        W, b = theta
        hf = _to_flat(h)
        a = hf @ W
        if b.shape[0]:
            a = a + b
        return _from_flat(a, self.out_shape or (self.out_features,)), hf

    def vjp(self, theta, h, cache, da, need_dx=True, need_params=True):
        xp = namespace(da)
        W, b = theta
        daf = _to_flat(da)
        grads = None
        if need_params:
            grads = (cache.T @ daf, xp.sum(daf, axis=0) if b.shape[0] else xp.zeros_like(b))
        return (_like_input(daf @ W.T, h) if need_dx else None), grads

    def dvjp(self, theta, h, cache, e, bar_d, need_params=True):
        xp = namespace(e)
        W, b = theta
        bdf = _to_flat(bar_d)
        bar_e = _from_flat(bdf @ W, self.out_shape or (self.out_features,))
        grads = (bdf.T @ _to_flat(e), xp.zeros_like(b)) if need_params else None
        return bar_e, grads, None


@dataclass(frozen=True)
class Conv2d:
    """2-D convolution (cross-correlation, PyTorch's ``conv2d``), square kernel, zero padding."""
    out_channels: int
    kernel: int = 5
    stride: int = 2
    padding: int = 2
    activation: str = "linear"
    bias: bool = True

    affine = True
    check = _Layer.check

    def out_shape_of(self, ishape, where):
        for n, lo in (("out_channels", 1), ("kernel", 1), ("stride", 1), ("padding", 0)):
            _int(getattr(self, n), f"{where}.{n}", lo)
        if len(ishape) != 3:
            raise ValueError(f"{where} (Conv2d) needs an image input (C, H, W), got shape {ishape}")
        k, s, p = self.kernel, self.stride, self.padding
        if p >= k:
            raise ValueError(f"{where}: padding {p} does not fit kernel {k} (need padding < kernel)")
        if ishape[1] + 2 * p < k or ishape[2] + 2 * p < k:
            raise ValueError(f"{where}: kernel {k} with padding {p} does not fit the "
                             f"{ishape[1]}x{ishape[2]} input")
        return (self.out_channels, conv.conv_out_size(ishape[1], k, s, p), conv.conv_out_size(ishape[2], k, s, p))

    def param_shapes(self, ishape):
        return (self.out_channels, ishape[0], self.kernel, self.kernel), ((self.out_channels,) if self.bias else (0,))

    def fan_in(self, ishape):
        return ishape[0] * self.kernel ** 2

    def fwd(self, theta, h, stat=None):
        return conv.conv2d(h, theta[0], theta[1], self.stride, self.padding)

    def vjp(self, theta, h, cache, da, need_dx=True, need_params=True):
        W, b = theta
        grads = (conv.conv2d_weight_grad(da, cache, W.shape), conv.bias_grad(da, b)) if need_params else None
        dh = conv.conv2d_input_grad(da, W, h.shape, self.stride, self.padding) if need_dx else None
        return dh, grads

    def dvjp(self, theta, h, cache, e, bar_d, need_params=True):
        W, b = theta
        bar_e, cols = conv.conv2d(bar_d, W, b[:0], self.stride, self.padding)
        grads = (conv.conv2d_weight_grad(e, cols, W.shape), namespace(e).zeros_like(b)) if need_params else None
        return bar_e, grads, None


@dataclass(frozen=True)
class ConvTranspose2d:
    """2-D transposed convolution (PyTorch's ``conv_transpose2d``), square kernel.

    Output size ``(H - 1) s - 2p + k + output_padding``; ``output_padding < stride``.
    """
    out_channels: int
    kernel: int = 5
    stride: int = 2
    padding: int = 2
    output_padding: int = 0
    activation: str = "linear"
    bias: bool = True

    affine = True
    check = _Layer.check

    def out_shape_of(self, ishape, where):
        for n, lo in (("out_channels", 1), ("kernel", 1), ("stride", 1), ("padding", 0), ("output_padding", 0)):
            _int(getattr(self, n), f"{where}.{n}", lo)
        if len(ishape) != 3:
            raise ValueError(f"{where} (ConvTranspose2d) needs an image input (C, H, W), got shape {ishape}")
        k, s, p, op = self.kernel, self.stride, self.padding, self.output_padding
        if op >= s:
            raise ValueError(f"{where}: output_padding {op} does not fit stride {s} (need output_padding < stride)")
        if p >= k:
            raise ValueError(f"{where}: padding {p} does not fit kernel {k} (need padding < kernel)")
        Ho = conv.conv_transpose_out_size(ishape[1], k, s, p, op)
        Wo = conv.conv_transpose_out_size(ishape[2], k, s, p, op)
        if Ho < 1 or Wo < 1:
            raise ValueError(f"{where}: padding {p} does not fit: the output of the {ishape[1]}x{ishape[2]} "
                             f"input would be {Ho}x{Wo}")
        return (self.out_channels, Ho, Wo)

    def param_shapes(self, ishape):
        return (ishape[0], self.out_channels, self.kernel, self.kernel), ((self.out_channels,) if self.bias else (0,))

    def fan_in(self, ishape):
        return max(1, ishape[0] * self.kernel ** 2 // self.stride ** 2)

    def fwd(self, theta, h, stat=None):
        return conv.conv_transpose2d(h, theta[0], theta[1], self.stride, self.padding, self.output_padding), None

    def vjp(self, theta, h, cache, da, need_dx=True, need_params=True):
        W, b = theta
        dh, cols = conv.conv_transpose2d_input_grad(da, W, self.stride, self.padding)
        grads = (conv.conv_transpose2d_weight_grad(h, cols, W.shape), conv.bias_grad(da, b)) if need_params else None
        return (dh if need_dx else None), grads

    def dvjp(self, theta, h, cache, e, bar_d, need_params=True):
        W, b = theta
        bar_e = conv.conv_transpose2d(bar_d, W, b[:0], self.stride, self.padding, self.output_padding)
        grads = None
        if need_params:
            cols = conv.im2col(e, self.kernel, self.stride, self.padding)
            grads = (conv.conv_transpose2d_weight_grad(bar_d, cols, W.shape), namespace(e).zeros_like(b))
        return bar_e, grads, None


# ----------------------------------------------------------------------------- normalisation layers
class _Norm:
    """Shared passes of :class:`LayerNorm` and :class:`BatchNorm` (:mod:`refimpl.cnn.norms`)."""
    affine = False

    def _geometry(self, h):
        """(normalised axes, broadcast shape of gamma, axes summed for the parameter gradients);
        each norm (:class:`LayerNorm`, :class:`BatchNorm`) defines its own."""

    def _bcast(self, p, h):
        return namespace(p).reshape(p, self._geometry(h)[1])

    def _reduce(self, t, like):
        xp = namespace(t)
        return xp.reshape(xp.sum(t, axis=self._geometry(t)[2]), like.shape)

    def fwd(self, theta, h, stat=None):
        g, beta = (self._bcast(p, h) for p in theta)
        axes = self._geometry(h)[0]
        if stat is None:
            n, r, mu, var = norms.normalize(h, axes, self.eps)
        else:
            xp = namespace(h)
            mu, var = (self._bcast(s, h) for s in stat)
            r = 1.0 / xp.sqrt(var + self.eps)
            n = (h - mu) * r
        return g * n + beta, (n, r, mu, var, stat is None)

    def vjp(self, theta, h, cache, da, need_dx=True, need_params=True):
        n, r, _, _, train = cache
        grads = (self._reduce(da * n, theta[0]), self._reduce(da, theta[1])) if need_params else None
        dh = None
        if need_dx:
            w = self._bcast(theta[0], h) * da
            dh = norms.jvp(n, r, self._geometry(h)[0], w) if train else r * w
        return dh, grads

    def dvjp(self, theta, h, cache, e, bar_d, need_params=True):
        n, r, _, _, train = cache
        xp = namespace(e)
        g = self._bcast(theta[0], h)
        axes = self._geometry(h)[0]
        jv = norms.jvp(n, r, axes, bar_d) if train else r * bar_d
        grads = (self._reduce(e * jv, theta[0]), xp.zeros_like(theta[1])) if need_params else None
        bar_h = norms.second(n, r, axes, g * e, bar_d) if train else None
        return g * jv, grads, bar_h


@dataclass(frozen=True)
class LayerNorm(_Norm):
    """Layer norm (Ba et al. 2016) per sample over all of its ``(C, H, W)`` (or ``(D,)``) entries,
    with an elementwise gain and offset of that shape (PyTorch's ``layer_norm`` with
    ``normalized_shape`` the per-sample shape). Allowed in a gradient-penalty critic: samples
    do not interact."""
    activation: str = "linear"
    eps: float = 1e-5

    check = _Layer.check

    def out_shape_of(self, ishape, where):
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not self.eps > 0:
            raise ValueError(f"{where}.eps must be a number > 0, got {self.eps!r}")
        return tuple(ishape)

    def param_shapes(self, ishape):
        return tuple(ishape), tuple(ishape)

    def _geometry(self, h):
        if h.ndim == 4:
            C, H, W, _ = h.shape
            return (0, 1, 2), (C, H, W, 1), (3,)
        return (1,), (1, h.shape[1]), (0,)


@dataclass(frozen=True)
class BatchNorm(_Norm):
    """Batch norm (Ioffe & Szegedy 2015) per channel over ``(N, H, W)`` (per feature over ``N``
    for a flat input), PyTorch's ``batch_norm``. Training mode normalises by the batch's
    statistics (biased variance); evaluation mode (``stats`` given to the network) by running
    ones, updated by :meth:`refimpl.cnn.CNN.update_stats` with ``momentum`` and the unbiased
    batch variance, as PyTorch does."""
    activation: str = "linear"
    eps: float = 1e-5
    momentum: float = 0.1

    check = _Layer.check

    def out_shape_of(self, ishape, where):
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not self.eps > 0:
            raise ValueError(f"{where}.eps must be a number > 0, got {self.eps!r}")
        m = self.momentum
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1:
            raise ValueError(f"{where}.momentum must be in [0, 1], got {m!r}")
        return tuple(ishape)

    def param_shapes(self, ishape):
        return (ishape[0],), (ishape[0],)

    def _geometry(self, h):
        if h.ndim == 4:
            return (1, 2, 3), (h.shape[0], 1, 1, 1), (1, 2, 3)
        return (0,), (1, h.shape[1]), (0,)


LAYERS = (Dense, Conv2d, ConvTranspose2d, LayerNorm, BatchNorm)
