"""Parameters as views into one flat buffer per network.

A :class:`FlatParams` is a list of ``(W, b)`` pairs (so every pass, optimiser and checkpoint
that takes a parameter list takes it unchanged) whose leaves are views into one 1-D
``buffer`` (P,). An optimiser updates the whole buffer in a handful of operations, in place
(:mod:`refimpl.optim`); the views, and their cached transposes ``wt[l] = W_l^T``, stay valid
across steps, so a step creates no per-leaf arrays.

In-place updates mean that an old reference to a ``FlatParams`` sees the new values: a
method that needs the parameters of an earlier step takes a copy (:func:`refimpl.nn.copy_params`).
:func:`refimpl.train.train` defers interrupts to the end of an outer step, so a checkpoint never
holds a half-updated state.

These are training-state internals: arguments are not validated (the optimisers' and the
networks' public methods are the checked entry points).
"""
from __future__ import annotations

import math

from .backend import namespace


class FlatParams(list):
    """``[(W_1, b_1), ...]`` with every leaf a view into ``buffer`` (P,); ``wt[l]`` is ``W_l^T``.

    Build with :func:`flatten`. ``offsets[i]`` is where leaf ``i`` (W_1, b_1, W_2, ...) starts.
    ``layout`` (the leaves' shapes) is fixed when made, so a check of the structure is one comparison.
    ``finite`` is True while the buffer is known finite: set by the public entry points' check
    (one reduction), kept by a public optimiser step that checked its gradients and cannot
    overflow (Adam, RMSprop), cleared by every other update, so the parameters are not checked
    again on every call. Writing into the buffer directly is the writer's to check.
    """
    __slots__ = ("buffer", "offsets", "wt", "finite", "layout")


def _views(buffer, shapes):
    xp = namespace(buffer)
    leaves, offsets, off = [], [], 0
    for shape in shapes:
        n = math.prod(shape)
        flat = buffer[off:off + n]
        leaves.append(flat if len(shape) == 1 else xp.reshape(flat, shape))
        offsets.append(off)
        off += n
    return leaves, offsets


def flatten(params):
    """A :class:`FlatParams` holding a copy of ``params`` (a list of ``(W, b)``; new buffer on their device).

    The buffer has the leaves' dtype; ``W`` leaves are 2-D, ``b`` leaves 1-D (any shapes work).
    """
    xp = namespace(params)
    leaves = [a for Wb in params for a in Wb]
    buffer = xp.concat([xp.reshape(a, (-1,)) for a in leaves], axis=0)
    return from_buffer(buffer, [tuple(a.shape) for a in leaves], [len(Wb) for Wb in params])


def from_buffer(buffer, shapes, group=None):
    """A :class:`FlatParams` of views into ``buffer`` (no copy): leaf shapes ``shapes``, grouped into
    tuples of ``group[l]`` leaves (default: pairs)."""
    leaves, offsets = _views(buffer, shapes)
    group = group or [2] * (len(leaves) // 2)
    out, i = FlatParams(), 0
    for g in group:
        out.append(tuple(leaves[i:i + g]))
        i += g
    out.buffer, out.offsets, out.finite = buffer, offsets, False
    out.layout = [tuple(tuple(a.shape) for a in Wb) for Wb in out]
    out.wt = [Wb[0].T if Wb[0].ndim == 2 else None for Wb in out]
    return out


def is_flat(params):
    return isinstance(params, FlatParams)


def flat_grads(grads):
    """The gradient leaves of a parameter list concatenated in the buffer's order, (P,)."""
    xp = namespace(grads[0][0])
    return xp.concat([a if a.ndim == 1 else xp.reshape(a, (-1,)) for Wb in grads for a in Wb], axis=0)


def assign(params, values):
    """Write the parameter list ``values`` into the :class:`FlatParams` ``params`` in place."""
    xp = namespace(params.buffer)
    params.buffer[...] = xp.astype(flat_grads(values), params.buffer.dtype)
    params.finite = False
    return params


def transposes(params):
    """``[W_l^T]``: cached for a :class:`FlatParams`, made here (views) for a plain list."""
    return params.wt if isinstance(params, FlatParams) else [Wb[0].T for Wb in params]


def _is_param_list(v):
    return isinstance(v, list) and len(v) > 0 and all(isinstance(Wb, tuple) for Wb in v)


def adopt_flat(state):
    """``state`` (a dict of parameter lists and their optimiser states ``opt_<key>``, as loaded from
    a checkpoint) in the layout it was saved in: a parameter list whose optimiser moments are flat
    arrays becomes a :class:`FlatParams` again (bitwise the values given); one whose moments are
    lists stays a list."""
    out = dict(state)
    for key, v in state.items():
        opt = state.get(f"opt_{key}")
        if isinstance(v, FlatParams) or not _is_param_list(v) or not isinstance(opt, dict):
            continue
        if any(hasattr(opt.get(k), "ndim") for k in ("m", "v")):
            out[key] = flatten(v)
    return out


def copy_state(state):
    """A deep copy of a training state (nested dicts, lists and tuples of arrays; a
    :class:`FlatParams` gets a buffer of its own). Training steps update :class:`FlatParams` and
    flat optimiser moments in place (they *donate* their input state, as JAX's
    ``donate_argnums``): copy a state first to keep it."""
    if isinstance(state, FlatParams):
        return flatten(state)
    if isinstance(state, dict):
        return {k: copy_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(copy_state(v) for v in state)
    if hasattr(state, "shape") and hasattr(state, "dtype"):
        return namespace(state).asarray(state, copy=True)
    return state
