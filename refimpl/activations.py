"""The activations of :class:`refimpl.nn.MLP` and :mod:`refimpl.cnn`: each a value with its first and
second derivatives (the double backward of the gradient penalty needs the second), written on
the Array API. Re-exported by :mod:`refimpl.nn`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from .backend import namespace
from . import validation as checks


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
    "leaky_relu": Activation(             # max and a 0/1 mask, not where(): NumPy's where is ~10x slower
        lambda a: _xp(a).maximum(a, LEAKY_SLOPE * a),
        lambda a, y: _ind(_xp(a), a > 0, a) * (1.0 - LEAKY_SLOPE) + LEAKY_SLOPE,
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


@checks.checked()
def get_activation(name):
    """The :class:`Activation` called ``name``; ``ValueError`` for unknown names.
    """
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}") from None
