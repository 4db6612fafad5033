"""2-D convolution and transposed convolution as im2col plus one matrix product.

Internal layout: every image tensor here is **CHWN** ``(C, H, W, N)`` (channels first, the
batch innermost), so that the im2col matrix of a whole batch is ``(C*k*k, Ho*Wo*N)`` and each
convolution is one matrix product ``(C_out, C*k*k) @ (C*k*k, Ho*Wo*N)`` whose result is
already CHWN: no transpose between layers. Every strided slice of im2col and col2im then
copies or adds runs of ``N`` contiguous values (the layouts compared: ``docs/cnn.md``).
:class:`refimpl.cnn.CNN` converts from and to NCHW at its public boundary only. Weights use PyTorch's layouts: a convolution ``W``
``(C_out, C_in, k, k)``, a transposed convolution ``W`` ``(C_in, C_out, k, k)``.

Convolution with stride ``s`` and zero padding ``p`` (cross-correlation, as in PyTorch)::

    a[o, i, j, n] = b[o] + sum_{c, u, v} W[o, c, u, v] * xpad[c, s*i + u, s*j + v, n]
    Ho = floor((H + 2p - k) / s) + 1

In matrix form ``A = W2 @ cols(x)`` with ``W2 = reshape(W, (C_out, C_in*k*k))``, so

* input gradient ``dx = col2im(W2^T @ dA)`` (a transposed convolution of ``dA``),
* weight gradient ``dW = reshape(dA2 @ cols(x)^T, W.shape)``, ``db = sum_{n,i,j} dA``.

The transposed convolution is the adjoint of that map: ``y = col2im(W2^T @ x2) + b`` with
the output size ``(H - 1) s - 2p + k + output_padding``; its input gradient is a convolution
``dx = W2 @ cols(dy)``, its weight gradient ``dW = reshape(x2 @ cols(dy)^T, W.shape)``.

These functions skip validation (the network's public methods validate,
:mod:`refimpl.validation`). Every array they create is made on the input's device.
"""
from __future__ import annotations

from ..backend import namespace


def conv_out_size(n, kernel, stride, padding):
    """Output length of a convolution along one axis: ``floor((n + 2p - k)/s) + 1``."""
    return (n + 2 * padding - kernel) // stride + 1


def conv_transpose_out_size(n, kernel, stride, padding, output_padding=0):
    """Output length of a transposed convolution: ``(n - 1) s - 2p + k + output_padding``."""
    return (n - 1) * stride - 2 * padding + kernel + output_padding


def pad(x, p):
    """Zero-pad the two spatial axes of a CHWN tensor by ``p`` on each side."""
    if p == 0:
        return x
    xp = namespace(x)
    C, H, W, N = x.shape
    out = xp.zeros((C, H + 2 * p, W + 2 * p, N), dtype=x.dtype, device=x.device)
    out[:, p:p + H, p:p + W, :] = x
    return out


def im2col(x, kernel, stride, padding):
    """Patch matrix of a CHWN tensor: ``(C*k*k, Ho*Wo*N)``, rows ordered ``(c, u, v)``, columns ``(i, j, n)``.

    Built from ``k*k`` strided slices of the padded input, stacked: the Array API has no
    stride tricks, and slicing works on every backend (``docs/cnn.md`` compares the
    alternatives).
    """
    xp = namespace(x)
    C, H, W, N = x.shape
    k, s = kernel, stride
    Ho, Wo = conv_out_size(H, k, s, padding), conv_out_size(W, k, s, padding)
    xp_ = pad(x, padding)
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    cols = xp.stack([xp_[:, u:u + hi:s, v:v + wi:s, :] for u in range(k) for v in range(k)], axis=1)
    return xp.reshape(cols, (C * k * k, Ho * Wo * N))


def col2im(cols, shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: scatter-add ``cols`` ``(C*k*k, Ho*Wo*N)`` into a CHWN tensor of ``shape``.

    ``Ho, Wo`` are those of a convolution of an input of ``shape``; ``k*k`` strided
    slice-additions into a zero padded tensor, then the padding is cropped.
    """
    xp = namespace(cols)
    C, H, W, N = shape
    k, s, p = kernel, stride, padding
    Ho, Wo = conv_out_size(H, k, s, p), conv_out_size(W, k, s, p)
    c6 = xp.reshape(cols, (C, k * k, Ho, Wo, N))
    out = xp.zeros((C, H + 2 * p, W + 2 * p, N), dtype=cols.dtype, device=cols.device)
    hi, wi = s * (Ho - 1) + 1, s * (Wo - 1) + 1
    for u in range(k):
        for v in range(k):
            out[:, u:u + hi:s, v:v + wi:s, :] += c6[:, u * k + v, ...]
    return out[:, p:p + H, p:p + W, :] if p else out


def _flat2(a):
    """``(C, H, W, N) -> (C, H*W*N)``."""
    return namespace(a).reshape(a, (a.shape[0], -1))


def _add_bias(a, b):
    if b.shape[0] == 0:
        return a
    return a + namespace(a).reshape(b, (-1, 1, 1, 1))


# ----------------------------------------------------------------------------- convolution
def conv2d(x, W, b, stride, padding):
    """Convolution of CHWN ``x`` ``(C_in, H, W, N)``; returns ``(a (C_out, Ho, Wo, N), cols)``.

    ``b`` ``(C_out,)`` or ``(0,)`` (no bias); ``cols`` is the im2col matrix, kept for the
    weight gradient.
    """
    xp = namespace(x)
    Co, k = W.shape[0], W.shape[2]
    cols = im2col(x, k, stride, padding)
    Ho = conv_out_size(x.shape[1], k, stride, padding)
    Wo = conv_out_size(x.shape[2], k, stride, padding)
    a = xp.reshape(xp.reshape(W, (Co, -1)) @ cols, (Co, Ho, Wo, x.shape[3]))
    return _add_bias(a, b), cols


def conv2d_input_grad(da, W, x_shape, stride, padding):
    """``dx`` ``x_shape`` of :func:`conv2d` for the output gradient ``da`` (a transposed convolution)."""
    xp = namespace(da)
    Co, k = W.shape[0], W.shape[2]
    return col2im(xp.reshape(W, (Co, -1)).T @ _flat2(da), x_shape, k, stride, padding)


def conv2d_weight_grad(da, cols, W_shape):
    """``dW`` ``W_shape`` of :func:`conv2d` from the output gradient ``da`` and the input's ``cols``."""
    return namespace(da).reshape(_flat2(da) @ cols.T, W_shape)


def bias_grad(da, b):
    """``db = sum over (H, W, N)`` of ``da``; ``(0,)`` when the layer has no bias."""
    xp = namespace(da)
    if b.shape[0] == 0:
        return xp.zeros_like(b)
    return xp.sum(da, axis=(1, 2, 3))


# ----------------------------------------------------------------------------- transposed convolution
def conv_transpose2d(x, W, b, stride, padding, output_padding=0):
    """Transposed convolution of CHWN ``x`` ``(C_in, H, W, N)`` with ``W`` ``(C_in, C_out, k, k)``.

    Returns ``y`` ``(C_out, Ho, Wo, N)``, ``Ho = (H - 1) s - 2p + k + output_padding``.
    """
    xp = namespace(x)
    Ci, Co, k = W.shape[0], W.shape[1], W.shape[2]
    H, Wd, N = x.shape[1], x.shape[2], x.shape[3]
    Ho = conv_transpose_out_size(H, k, stride, padding, output_padding)
    Wo = conv_transpose_out_size(Wd, k, stride, padding, output_padding)
    y = col2im(xp.reshape(W, (Ci, -1)).T @ _flat2(x), (Co, Ho, Wo, N), k, stride, padding)
    return _add_bias(y, b)


def conv_transpose2d_input_grad(dy, W, stride, padding):
    """``(dx, cols(dy))`` of :func:`conv_transpose2d`: ``dx`` is a convolution of ``dy`` with ``W``."""
    xp = namespace(dy)
    Ci, k = W.shape[0], W.shape[2]
    cols = im2col(dy, k, stride, padding)
    Ho = conv_out_size(dy.shape[1], k, stride, padding)
    Wo = conv_out_size(dy.shape[2], k, stride, padding)
    return xp.reshape(xp.reshape(W, (Ci, -1)) @ cols, (Ci, Ho, Wo, dy.shape[3])), cols


def conv_transpose2d_weight_grad(x, dy_cols, W_shape):
    """``dW`` of :func:`conv_transpose2d` from its input ``x`` and ``cols(dy)``."""
    return namespace(x).reshape(_flat2(x) @ dy_cols.T, W_shape)
