"""Optimisers over parameter lists ``[(W, b), ...]`` with explicit state.

``state = opt.init(params)``; ``params, state = opt.step(params, grads, state)``.
For a parameter list, ``step`` returns new parameter arrays (the old ones are left
untouched, so a copy taken for a proximal term or a test stays valid) and a new state.
For a :class:`refimpl.flat.FlatParams` the state's moments are flat buffers (P,) and the
update is made in place on the parameter buffer and the moments, in a handful of whole-buffer
operations; the same object is returned (bitwise the update of the list path on NumPy).
State holds arrays in the parameters' namespace plus a Python step counter, so it can be
checkpointed with :func:`refimpl.checkpoint.save`.

``init`` and ``step`` validate their parameter lists at entry (:mod:`refimpl.validation`;
``grads`` with ``params``' layout; errors name ``params[l][k]``/``grads[l][k]``);
hyper-parameters are checked when the optimiser is built. ``opt.step.unchecked(params,
grads, state)`` (bound to ``opt``: the optimiser's own unchecked core) skips the checks:
training steps call it, so a step makes no host round trip.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass

from . import validation as checks
from .backend import namespace
from .flat import FlatParams, flat_grads
from .kernels import for_array


def _check_lr(lr):
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate lr must be a finite number > 0, got {lr!r}")


def _in01(v, name):
    """``v`` in [0, 1) (a real, not bool), else ``ValueError`` naming it."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {v!r}")


class _Optimiser(abc.ABC):
    """Shared entry checks of ``init`` and ``step``, checked layers over each optimiser's own
    unchecked cores ``_init`` and ``_step`` (``opt.step.unchecked`` is the subclass's ``_step``)."""
    #: finite parameters and gradients give finite parameters (the update is bounded)
    keeps_finite = False

    @abc.abstractmethod
    def _init(self, params):
        """The unchecked core of :meth:`init`: a fresh state for ``params``."""

    @abc.abstractmethod
    def _step(self, params, grads, state):
        """The unchecked core of :meth:`step`: ``(new params, new state)``."""

    @checks.checked(_init)
    def init(self, params):
        """Fresh state for ``params`` (a finite parameter list)."""
        checked = checks.params(params, "params")
        return self._init(params if isinstance(params, FlatParams) else checked)

    @checks.checked(_step)
    def step(self, params, grads, state):
        """One update; returns ``(new_params, new_state)``.

        ``params`` and ``grads``: finite parameter lists of one layout, namespace and
        dtype; ``state``: from :meth:`init` or a previous step for the same layout.
        """
        flat = params if isinstance(params, FlatParams) else None
        params = checks.params(params, "params")
        grads = checks.params(grads, "grads", xp=namespace(params), dtype=params[0][0].dtype,
                               shapes=[(tuple(W.shape), tuple(b.shape)) for W, b in params], finite=flat is None)
        if flat is not None:                                      # one reduction over the flat gradient
            g = flat_grads(grads)
            try:
                checks.finite_all([g], ["grads"])
            except ValueError:
                checks.params(grads, "grads")                    # name the leaf
            grads = g
        if not isinstance(state, dict) or not isinstance(state.get("t"), int):
            raise TypeError(f"state must be the dict returned by init or step, got {type(state).__name__}")
        moments = [state[k] for k in ("m", "v") if k in state and not (isinstance(state[k], list) and not state[k])]
        if any(isinstance(m, list) == (flat is not None) for m in moments):
            raise TypeError("state does not match params: flat parameters need the state init() made for them")
        was_finite = flat is not None and flat.finite            # checked just above
        out = self._step(flat if flat is not None else params, grads, state)
        if flat is not None:                                      # finite params and gradients stay finite
            flat.finite = was_finite and self.keeps_finite
        return out


def _zeros(params):
    if isinstance(params, FlatParams):
        return namespace(params.buffer).zeros_like(params.buffer)
    xp = namespace(params)
    return [xp.zeros_like(p) for Wb in params for p in Wb]


def _list_state(state, *keys):
    """``TypeError`` unless the moments ``keys`` of ``state`` are lists (a list-path state)."""
    if any(not isinstance(state[k], list) for k in keys):
        raise TypeError("parameter list with a flat optimiser state: the parameters must stay the "
                        "refimpl.flat.FlatParams the state was made for")


def _flat_g(grads):
    """A gradient as one flat array (P,): a flat array as it is, a parameter list concatenated."""
    return grads if hasattr(grads, "ndim") else flat_grads(grads)


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
        if isinstance(params, FlatParams):
            params.finite = False
            g = _flat_g(grads)
            if self.momentum:
                v = state["v"]
                v *= self.momentum
                v += g
                g = v
            params.buffer -= self.lr * g
            return params, {"t": state["t"] + 1, "v": state["v"]}
        _list_state(state, "v")
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

    ``capturable=True`` (flat parameters only) keeps the step count as a 0-d array on the
    device (state entry ``"step"``) and computes the bias corrections there, so a step
    captured in a CUDA graph stays correct on replay (PyTorch's ``capturable``); the update
    then equals the host-scalar one to rounding of the 0-d arithmetic in the parameters' dtype.
    """
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    eps: float = 1e-8
    capturable: bool = False
    keeps_finite = True          # m / sqrt(v) is bounded (0 where v overflows): a bounded update

    def __post_init__(self):
        _check_lr(self.lr)
        for n in ("beta1", "beta2"):
            _in01(getattr(self, n), n)
        checks.real(self.eps, "eps", gt=0)
        checks.boolean(self.capturable, "capturable")

    def _init(self, params):
        state = {"t": 0, "m": _zeros(params), "v": _zeros(params)}
        if self.capturable:
            if not isinstance(params, FlatParams):
                raise TypeError("capturable=True needs flat parameters (refimpl.flat.flatten)")
            b = params.buffer
            state["step"] = namespace(b).zeros((), dtype=b.dtype, device=b.device)
        return state

    def _step(self, params, grads, state):
        t = state["t"] + 1
        b1, b2 = self.beta1, self.beta2
        if isinstance(params, FlatParams):
            params.finite = False
            xp = namespace(params.buffer)
            g, m, v = _flat_g(grads), state["m"], state["v"]
            if self.capturable:
                st = state["step"]
                st += 1.0
                bc2 = xp.sqrt(1.0 - b2 ** st)
                step_size, eps_hat = (self.lr * bc2) / (1.0 - b1 ** st), self.eps * bc2
            else:
                step_size = self.lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
                eps_hat = self.eps * math.sqrt(1.0 - b2 ** t)
            for_array(m).adam(params.buffer, m, v, g, b1, b2, step_size, eps_hat)
            return params, {**state, "t": t}
        _list_state(state, "m", "v")
        xp = namespace(params)
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
    keeps_finite = True          # |g| / sqrt(v) <= 1 / sqrt(1 - rho): a bounded update
    lr: float = 1e-4
    rho: float = 0.99
    eps: float = 1e-8

    def __post_init__(self):
        _check_lr(self.lr)
        _in01(self.rho, "rho")
        checks.real(self.eps, "eps", gt=0)

    def _init(self, params):
        return {"t": 0, "v": _zeros(params)}

    def _step(self, params, grads, state):
        if isinstance(params, FlatParams):
            params.finite = False
            xp = namespace(params.buffer)
            g, v = _flat_g(grads), state["v"]
            v *= self.rho
            v += (1.0 - self.rho) * (g * g)
            params.buffer -= self.lr * g / (xp.sqrt(v) + self.eps)
            return params, {"t": state["t"] + 1, "v": v}
        _list_state(state, "v")
        xp = namespace(params)
        vs, new = [], []
        for p, g, v in zip(_flat(params), _flat(grads), state["v"]):
            v = self.rho * v + (1.0 - self.rho) * (g * g)
            new.append(p - self.lr * g / (xp.sqrt(v) + self.eps))
            vs.append(v)
        return _unflat(new), {"t": state["t"] + 1, "v": vs}


OPTIMISERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


@checks.checked()
def make_optimiser(name, **kw):
    """Build an optimiser by name (sgd, adam, rmsprop); ``ValueError`` for unknown names.
    """
    try:
        cls = OPTIMISERS[name]
    except KeyError:
        raise ValueError(f"unknown optimiser {name!r}; choose one of {', '.join(OPTIMISERS)}") from None
    return cls(**kw)
