"""Optimisers over parameter lists ``[(W, b), ...]`` with explicit state.

``state = opt.init(params)``; ``params, state = opt.step(params, grads, state)``.
``step`` returns new parameter arrays (the old ones are left untouched, so a copy
taken for a proximal term or a test stays valid) and a new state. State holds
arrays in the parameters' namespace plus a Python step counter, so it can be
checkpointed with :func:`refimpl.checkpoint.save`.

Input rules: ``init`` and ``step`` validate their parameter lists at entry by the rules
of :mod:`refimpl._checks` (float32/float64 arrays, one namespace and dtype, finite;
``grads`` with ``params``' layout; errors name ``params[l][k]``/``grads[l][k]``);
hyper-parameters are checked when the optimiser is built. ``_step`` skips the checks:
training steps call it, so a step makes no host round trip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import _checks
from .backend import namespace


def _check_lr(lr):
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate lr must be a finite number > 0, got {lr!r}")


def _in01(v, name):
    """``v`` in [0, 1) (a real, not bool), else ``ValueError`` naming it."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {v!r}")


class _Optimiser:
    """Shared entry checks of ``init`` and ``step``."""

    def init(self, params):
        """Fresh state for ``params`` (a finite parameter list, input rules of :mod:`refimpl._checks`)."""
        return self._init(_checks.params(params, "params"))

    def step(self, params, grads, state):
        """One update; returns ``(new_params, new_state)``.

        ``params`` and ``grads``: finite parameter lists of one layout, namespace and
        dtype; ``state``: from :meth:`init` or a previous step for the same layout.
        Input rules of :mod:`refimpl._checks`; errors name the argument.
        """
        params = _checks.params(params, "params")
        grads = _checks.params(grads, "grads", xp=namespace(params), dtype=params[0][0].dtype,
                               shapes=[(tuple(W.shape), tuple(b.shape)) for W, b in params])
        if not isinstance(state, dict) or not isinstance(state.get("t"), int):
            raise TypeError(f"state must be the dict returned by init or step, got {type(state).__name__}")
        return self._step(params, grads, state)


def _zeros(params):
    xp = namespace(params)
    return [xp.zeros_like(p) for Wb in params for p in Wb]


def _flat(params):
    return [p for Wb in params for p in Wb]


def _unflat(leaves):
    return [(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]


@dataclass(frozen=True)
class SGD(_Optimiser):
    """``v <- mu v + g``; ``p <- p - lr v`` (``mu = 0``: plain SGD, ``p <- p - lr g``)."""
    lr: float = 1e-3
    momentum: float = 0.0

    def __post_init__(self):
        _check_lr(self.lr)
        _in01(self.momentum, "momentum")

    def _init(self, params):
        return {"t": 0, "v": _zeros(params) if self.momentum else []}

    def _step(self, params, grads, state):
        ps, gs = _flat(params), _flat(grads)
        if self.momentum:
            vs = [self.momentum * v + g for v, g in zip(state["v"], gs)]
            new = [p - self.lr * v for p, v in zip(ps, vs)]
        else:
            vs = []
            new = [p - self.lr * g for p, g in zip(ps, gs)]
        return _unflat(new), {"t": state["t"] + 1, "v": vs}


@dataclass(frozen=True)
class Adam(_Optimiser):
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
            _in01(getattr(self, n), n)
        _checks.real(self.eps, "eps", gt=0)

    def _init(self, params):
        return {"t": 0, "m": _zeros(params), "v": _zeros(params)}

    def _step(self, params, grads, state):
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
class RMSprop(_Optimiser):
    """``v <- rho v + (1-rho) g^2``; ``p <- p - lr g / (sqrt(v) + eps)`` (PyTorch's form)."""
    lr: float = 1e-4
    rho: float = 0.99
    eps: float = 1e-8

    def __post_init__(self):
        _check_lr(self.lr)
        _in01(self.rho, "rho")
        _checks.real(self.eps, "eps", gt=0)

    def _init(self, params):
        return {"t": 0, "v": _zeros(params)}

    def _step(self, params, grads, state):
        xp = namespace(params)
        vs, new = [], []
        for p, g, v in zip(_flat(params), _flat(grads), state["v"]):
            v = self.rho * v + (1.0 - self.rho) * (g * g)
            new.append(p - self.lr * g / (xp.sqrt(v) + self.eps))
            vs.append(v)
        return _unflat(new), {"t": state["t"] + 1, "v": vs}


OPTIMISERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def make_optimiser(name, **kw):
    """Build an optimiser by name (sgd, adam, rmsprop); ``ValueError`` for unknown names.

    Input rules of :mod:`refimpl._checks` (module docstring).
    """
    try:
        cls = OPTIMISERS[name]
    except KeyError:
        raise ValueError(f"unknown optimiser {name!r}; choose one of {', '.join(OPTIMISERS)}") from None
    return cls(**kw)
