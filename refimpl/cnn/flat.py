"""A :class:`~refimpl.cnn.network.CNN` seen through flat rows, as the GAN methods see every network.

The methods of :mod:`refimpl.train` (and RWP, SBE, W1-FE, WWGAN) hold data and samples as rows
``(N, D)`` and use a network through ``sizes[0]``/``sizes[-1]`` and the four passes of
:class:`refimpl.nn.MLP`. :class:`FlatIO` gives a CNN that interface: rows of
``prod(input_shape)`` in, rows of ``prod(output_shape)`` out, each row an image in C-order (the
layout of ``x.reshape(N, C, H, W)``). Reshapes are views; the maths is the CNN's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import validation as checks
from ..backend import namespace
from .network import CNN

__all__ = ["FlatIO"]


def _rows_to(x, shape):
    return namespace(x).reshape(x, (x.shape[0], *shape))


def _to_rows(y):
    return namespace(y).reshape(y, (y.shape[0], math.prod(y.shape[1:])))


@dataclass(frozen=True)
class FlatIO:
    """``net`` with inputs ``(N, prod(net.input_shape))`` and outputs ``(N, prod(net.output_shape))``.

    Parameters
    ----------
    net : CNN

    Attributes
    ----------
    sizes : (int, int)
        Row widths of the input and the output (the ends of an MLP's ``sizes``).

    Passes as :class:`refimpl.nn.MLP`'s (same signatures and errors, the same checked layers over
    unchecked cores: ``flat.forward.unchecked`` ...); parameters are ``net``'s.
    """
    net: CNN

    def __post_init__(self):
        if not isinstance(self.net, CNN):
            raise TypeError(f"net must be a refimpl.cnn.CNN, got {type(self.net).__name__}")

    @property
    def sizes(self):
        return (math.prod(self.net.input_shape), math.prod(self.net.output_shape))

    @property
    def n_layers(self):
        return self.net.n_layers

    def init(self, rng, xp=None, dtype="float64", device=None):
        return self.net.init(rng, xp=xp, dtype=dtype, device=device)

    def param_shapes(self):
        """``[(W shape, b shape), ...]`` per layer (``net``'s)."""
        return self.net.param_shapes()

    @checks.checked()
    def validate(self, params, *items, pname="params", nonempty=False):
        """``(params, *arrays)`` validated as :meth:`refimpl.nn.MLP.validate` does."""
        params = checks.params(params, pname, shapes=self.param_shapes(), finite=False)
        xp = namespace(params)
        dt = params[0][0].dtype
        arrs = []
        for name, arr, want in items:
            arr = checks.array(arr, name, shape=want, nonempty=nonempty, finite=False, xp=xp)
            if arr.dtype != dt:
                raise TypeError(f"{name} has dtype {checks.dtype_name(arr.dtype)} but the network's parameters "
                                f"are {checks.dtype_name(dt)}; cast {name} with xp.astype")
            arrs.append(arr)
        leaves = [a for Wb in params for a in Wb]
        checks.finite_all(leaves + arrs, [f"{pname}[{i // 2}][{i % 2}]" for i in range(len(leaves))]
                           + [it[0] for it in items])
        return (params, *arrs)

    # -- the four passes: unchecked cores (``net``'s, through rows), each under its checked layer
    def _forward(self, params, x):
        y, cache = self.net.forward.unchecked(params, _rows_to(x, self.net.input_shape))
        return _to_rows(y), cache

    @checks.checked(_forward)
    def forward(self, params, x):
        """``(y (N, sizes[-1]), cache)`` for ``x`` (N, sizes[0])."""
        params, x = self.validate(params, ("x", x, (None, self.sizes[0])))
        return self._forward(params, x)

    def _backward(self, params, cache, dy, need_dx=True, need_params=True):
        dx, grads = self.net.backward.unchecked(params, cache, _rows_to(dy, self.net.output_shape), need_dx,
                                                need_params)
        return (None if dx is None else _to_rows(dx)), grads

    @checks.checked(_backward)
    def backward(self, params, cache, dy, need_dx=True, need_params=True):
        """``(dx (N, sizes[0]) or None, grads or None)`` for ``dy`` (N, sizes[-1])."""
        params, dy = self.validate(params, ("dy", dy, (None, self.sizes[-1])))
        return self._backward(params, cache, dy, checks.boolean(need_dx, "need_dx"),
                              checks.boolean(need_params, "need_params"))

    def _input_gradient(self, params, x):
        g, tape = self.net.input_gradient.unchecked(params, _rows_to(x, self.net.input_shape))
        return _to_rows(g), tape

    @checks.checked(_input_gradient)
    def input_gradient(self, params, x):
        """``(g (N, sizes[0]), tape)``: the per-row input gradient of a scalar-output critic."""
        params, x = self.validate(params, ("x", x, (None, self.sizes[0])))
        return self._input_gradient(params, x)

    def _input_gradient_vjp(self, params, tape, u, need_dx=True, need_params=True):
        dx, grads = self.net.input_gradient_vjp.unchecked(params, tape, _rows_to(u, self.net.input_shape), need_dx,
                                                          need_params)
        return (None if dx is None else _to_rows(dx)), grads

    @checks.checked(_input_gradient_vjp)
    def input_gradient_vjp(self, params, tape, u, need_dx=True, need_params=True):
        """Gradients of ``sum_n <u_n, g_n>``, ``u`` (N, sizes[0])."""
        params, u = self.validate(params, ("u", u, (None, self.sizes[0])))
        return self._input_gradient_vjp(params, tape, u, checks.boolean(need_dx, "need_dx"),
                                        checks.boolean(need_params, "need_params"))
