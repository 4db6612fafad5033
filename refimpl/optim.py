"""Optimisers over parameter lists ``[(W, b), ...]`` with explicit state.

``state = opt.init(params)``; ``params, state = opt.step(params, grads, state)``.
``step`` returns new parameter arrays (the old ones are left untouched, so a copy
taken for a proximal term or a test stays valid) and a new state. State holds
arrays in the parameters' namespace plus a Python step counter, so it can be
checkpointed with :func:`refimpl.checkpoint.save`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .backend import namespace


def _check_lr(lr):
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")


def _zeros(params):
    xp = namespace(params)
    return [xp.zeros_like(p) for Wb in params for p in Wb]


def _flat(params):
    return [p for Wb in params for p in Wb]


def _unflat(leaves):
    return [(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]


@dataclass(frozen=True)
class SGD:
    """``v <- mu v + g``; ``p <- p - lr v`` (``mu = 0``: plain SGD, ``p <- p - lr g``)."""
    lr: float = 1e-3
    momentum: float = 0.0

    def __post_init__(self):
        _check_lr(self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")

    def init(self, params):
        return {"t": 0, "v": _zeros(params) if self.momentum else []}

    def step(self, params, grads, state):
        ps, gs = _flat(params), _flat(grads)
        if self.momentum:
            vs = [self.momentum * v + g for v, g in zip(state["v"], gs)]
            new = [p - self.lr * v for p, v in zip(ps, vs)]
        else:
            vs = []
            new = [p - self.lr * g for p, g in zip(ps, gs)]
        return _unflat(new), {"t": state["t"] + 1, "v": vs}


@dataclass(frozen=True)
class Adam:
    """Kingma & Ba (2015), with bias correction:
    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    """
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    eps: float = 1e-8

    def __post_init__(self):
        _check_lr(self.lr)
        for n in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, n) < 1.0:
                raise ValueError(f"{n} must be in [0, 1), got {getattr(self, n)!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")

    def init(self, params):
        return {"t": 0, "m": _zeros(params), "v": _zeros(params)}

    def step(self, params, grads, state):
        xp = namespace(params)
        t = state["t"] + 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        eps_hat = self.eps * math.sqrt(1.0 - b2 ** t)   # same update as eps added to sqrt(v_hat)
        ms, vs, new = [], [], []
        for p, g, m, v in zip(_flat(params), _flat(grads), state["m"], state["v"]):
            m = b1 * m + (1.0 - b1) * g
            v = b2 * v + (1.0 - b2) * (g * g)
            new.append(p - step_size * (m / (xp.sqrt(v) + eps_hat)))
            ms.append(m)
            vs.append(v)
        return _unflat(new), {"t": t, "m": ms, "v": vs}


@dataclass(frozen=True)
class RMSprop:
    """``v <- rho v + (1-rho) g^2``; ``p <- p - lr g / (sqrt(v) + eps)`` (PyTorch's form)."""
    lr: float = 1e-4
    rho: float = 0.99
    eps: float = 1e-8

    def __post_init__(self):
        _check_lr(self.lr)
        if not 0.0 <= self.rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {self.rho!r}")

    def init(self, params):
        return {"t": 0, "v": _zeros(params)}

    def step(self, params, grads, state):
        xp = namespace(params)
        vs, new = [], []
        for p, g, v in zip(_flat(params), _flat(grads), state["v"]):
            v = self.rho * v + (1.0 - self.rho) * (g * g)
            new.append(p - self.lr * g / (xp.sqrt(v) + self.eps))
            vs.append(v)
        return _unflat(new), {"t": state["t"] + 1, "v": vs}


OPTIMISERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def make_optimiser(name, **kw):
    """Build an optimiser by name (sgd, adam, rmsprop); ``ValueError`` for unknown names."""
    try:
        cls = OPTIMISERS[name]
    except KeyError:
        raise ValueError(f"unknown optimiser {name!r}; choose one of {', '.join(OPTIMISERS)}") from None
    return cls(**kw)
