"""Fused critic and generator gradients for MLPs: the fewest array operations per step.

The critic step of a penalised GAN runs **one** forward pass over the real, fake and penalty
rows together (``R = 3B`` rows; ``2B`` without a penalty) and **one** backward pass over those
rows, seeded once with ``s = (-1/B, ..., +1/B, ..., 1, ...)``: on the loss rows it is the
loss backward, on the penalty rows (seed 1) it is the input-gradient pass
``d_l = df/dh_l``, ``e_l = d_l * s'(a_l)``. The double backward (``docs/engine.md``) then runs
on the penalty rows only, and the loss and penalty weight gradients of each layer are one
matrix product over stacked rows:

    dW_l = [h_{l-1}(loss rows); bar d_{l-1}]^T [e_l(loss rows); e_l(penalty rows)]
           (+ h_{l-1}(penalty rows)^T bar a_l for smooth activations)

Activation derivatives are computed once per layer (a mask for the ReLU family), transposes
of the weights are cached views (:class:`refimpl.flat.FlatParams`), and loss seeds are built
once per batch size (:class:`StepConstants`). The results equal
:func:`refimpl.objectives.critic_grads` and :func:`refimpl.objectives.generator_grads` up
to the order of floating-point sums (tests: 1e-12 in float64).

These are training-step internals: inputs are not validated (the public functions of
:mod:`refimpl.objectives` are the checked entry points) and no value leaves the device.
"""
from __future__ import annotations

from .backend import namespace
from .flat import transposes
from .kernels import for_array
from .nn import ACTIVATIONS, LEAKY_SLOPE
from .objectives import critic_scores_loss, generator_scores_loss


# ----------------------------------------------------------------------------- activations
def _kinds(net):
    return [net.activation if l < net.n_layers - 1 else net.output for l in range(net.n_layers)]


def activation_deriv(xp, kind, a, h):
    """What the backward needs of ``s'(a)``: a mask (ReLU family; on CuPy ``a`` itself, read by a
    fused kernel), nothing (linear) or ``s'(a)``."""
    if kind == "relu":
        return for_array(a).relu_mask(a)
    if kind == "leaky_relu":
        return a > 0
    if kind == "linear":
        return None
    return ACTIVATIONS[kind].df(a, h)


def apply_deriv(xp, kind, D, d, owned=False):
    """``d * s'(a)`` from ``D = activation_deriv(...)``; ``owned``: ``d`` is a fresh product the caller may overwrite."""
    if kind == "relu":
        return for_array(d).relu_apply(D, d, owned)
    if kind == "leaky_relu":
        return xp.where(D, d, LEAKY_SLOPE * d)
    if kind == "linear":
        return d
    return d * D


def _times_wt(x, Wt):
    """``x @ W^T`` given the view ``Wt = W^T``; a one-unit layer (``Wt`` (1, n)) as an outer product."""
    return x * Wt if Wt.shape[0] == 1 else x @ Wt


def tdot(a, b):
    """``a^T b`` for ``a`` (R, m), ``b`` (R, n): one matrix product (the kernel table's)."""
    return for_array(a).tdot(a, b)


def forward(net, params, x):
    """``(hs, as_)``: layer inputs/outputs ``hs = [x, h_1, ..., y]`` and pre-activations."""
    xp = namespace(x)
    hs, as_ = [x], []
    h = x
    for (W, b), kind in zip(params, _kinds(net)):
        if kind == "relu":
            a, h = for_array(x).bias_relu(h @ W, b)
        else:
            a = h @ W + b
            h = a if kind == "linear" else ACTIVATIONS[kind].f(a)
        as_.append(a)
        hs.append(h)
    return hs, as_


# ----------------------------------------------------------------------------- constants
class StepConstants:
    """Loss seeds of one batch size, dtype and device, built once per run.

    ``seed`` (R, 1): ``-1/B`` on the real rows, ``+1/B`` on the fake rows, ``1`` on the penalty
    rows (Wasserstein losses); ``ones`` (B, 1); ``gen_seed`` (B, 1) ``-1/B``; ``db_out`` (1,): the
    output bias gradient of the Wasserstein loss, ``sum(seed[:2B])``.
    """

    def __init__(self, xp, B, dtype, device, penalty):
        full = (lambda shape, v: xp.full(shape, v, dtype=dtype, device=device))
        self.B = B
        self.ones = full((B, 1), 1.0)
        loss_seed = xp.concat([full((B, 1), -1.0 / B), full((B, 1), 1.0 / B)], axis=0)   # as critic_scores_loss
        self.loss_seed = loss_seed
        self.seed = xp.concat([loss_seed, self.ones], axis=0) if penalty else loss_seed
        self.db_out = xp.sum(loss_seed, axis=0)
        self.gen_seed = full((B, 1), -1.0 / B)


def constants(cache, obj, like, B):
    """The :class:`StepConstants` for ``B`` rows like ``like`` (memoised in the dict ``cache``)."""
    key = (B, str(like.dtype), str(getattr(like, "device", None)))
    c = cache.get(key)
    if c is None:
        c = cache[key] = StepConstants(namespace(like), B, like.dtype, getattr(like, "device", None),
                                       obj.penalty is not None)
    return c


# ----------------------------------------------------------------------------- critic
def critic_loss_grads(obj, critic, cparams, real, fake, noise, consts, penalty_seed=None):
    """Critic loss (to minimise), its parameter gradients and logs, in one fused pass.

    Parameters
    ----------
    obj : Objective; critic : MLP with scalar output; cparams : its parameters
    real, fake : (B, d) in the parameters' dtype (equal ``B``)
    noise : (B, 1) interpolation weights ``eps`` (WGAN-GP, WGAN-LP), (B, d) DRAGAN's ``u``,
        or ``None`` (no penalty); drawn as :func:`refimpl.objectives.penalty_points` draws them.
    consts : :class:`StepConstants` for ``B``.
    penalty_seed : callable ``(g, x_hat) -> (penalty, u, logs)``, optional
        Another penalty on the same rows: from ``g = grad_x f(x_hat)`` (B, d) and the points
        ``x_hat`` (B, d), the penalty (0-d), its seed ``u = dP/dg`` (B, d) and extra logs (WWGAN's
        Wasserstein norm, :mod:`refimpl.wwgan`). Default: the objective's gradient penalty.

    Returns
    -------
    loss : 0-d array; grads : list of (dW, db); logs : dict of 0-d arrays
    """
    xp = namespace(real)
    B = real.shape[0]
    L = critic.n_layers
    kinds = _kinds(critic)
    wt = transposes(cparams)
    pen_rows = obj.penalty is not None
    if pen_rows:
        if obj.name == "dragan":
            x_hat = real + (obj.dragan_scale * xp.std(real)) * noise
        else:
            x_hat = noise * real + (1.0 - noise) * fake
        X = xp.concat([real, fake, x_hat], axis=0)                    # (3B, d)
    else:
        X = xp.concat([real, fake], axis=0)                           # (2B, d)
    hs, as_ = forward(critic, cparams, X)
    D = [activation_deriv(xp, k, a, h) for k, a, h in zip(kinds, as_, hs[1:])]
    scores = hs[-1]                                                   # (R, 1)
    if obj.logistic:
        loss, d_real, d_fake = critic_scores_loss.unchecked(obj, scores[:B, :], scores[B:2 * B, :])
        seed = xp.concat([d_real, d_fake, consts.ones] if pen_rows else [d_real, d_fake], axis=0)
    else:
        loss = xp.sum(scores[:2 * B, :] * consts.loss_seed)
        seed = consts.seed
    # one backward over every row: the loss backward and, on the penalty rows, the input gradient
    es, ds = [None] * L, [None] * (L + 1)
    ds[L] = seed
    for l in range(L - 1, -1, -1):
        es[l] = apply_deriv(xp, kinds[l], D[l], ds[l + 1], owned=l < L - 1)
        if l > 0:
            ds[l] = _times_wt(es[l], wt[l])
        elif pen_rows:
            ds[0] = _times_wt(es[0][2 * B:, :], wt[0])               # g = grad_x f(x_hat), (B, d)
    logs = {"critic_loss": loss}
    if not pen_rows:
        grads = [(tdot(hs[l], es[l]), xp.sum(es[l], axis=0)) for l in range(L)]
        return loss, grads, logs
    # penalty and its seed u = dP/dg
    P = (slice(2 * B, 3 * B), slice(None))
    if penalty_seed is None:
        pen, bar_d = for_array(real).penalty_seed(ds[0], obj.lam, obj.penalty == "one-sided")   # bar d_0, (B, d)
        more = {}
    else:
        pen, bar_d, more = penalty_seed(ds[0], x_hat)
    # double backward on the penalty rows
    bar_ds, bar_as = [bar_d], [None] * L
    smooth = [ACTIVATIONS[k].smooth for k in kinds]
    for l in range(L):
        if l == L - 1 and not smooth[l]:
            break                                                     # bar e_L is dead for a linear output
        W = cparams[l][0]
        bar_e = bar_d @ W                                             # (B, n_l)
        if smooth[l]:
            bar_as[l] = bar_e * ds[l + 1][P] * ACTIVATIONS[kinds[l]].d2f(as_[l][P], hs[l + 1][P])
        if l < L - 1:
            bar_d = apply_deriv(xp, kinds[l], D[l][P], bar_e, owned=True)
            bar_ds.append(bar_d)
    second = [None] * L                                               # bar a_l of the pass back through the forward
    if any(smooth):
        bar_h = None
        for l in range(L - 1, -1, -1):
            ba = bar_as[l]
            if bar_h is not None:
                hh = apply_deriv(xp, kinds[l], D[l][P], bar_h, owned=True)
                ba = hh if ba is None else ba + hh
            if ba is None:
                bar_h = None
                continue
            second[l] = ba
            if l > 0:
                bar_h = _times_wt(ba, wt[l])
    # one matrix product per layer for the loss and penalty weight gradients
    grads = []
    for l in range(L):
        if second[l] is None:                                         # the penalty rows of h_l are spent:
            left = hs[l]                                              # they take bar d_l in place
            left[2 * B:, :] = bar_ds[l]
            gW = tdot(left, es[l])
            gb = consts.db_out if (l == L - 1 and kinds[l] == "linear" and not obj.logistic) \
                else xp.sum(es[l][:2 * B, :], axis=0)
        else:
            ba = second[l]
            gW = tdot(xp.concat([hs[l], bar_ds[l]], axis=0),
                       xp.concat([es[l][:2 * B, :], ba, es[l][P]], axis=0))
            gb = xp.sum(xp.concat([es[l][:2 * B, :], ba], axis=0), axis=0)
        grads.append((gW, gb))
    loss = loss + pen
    return loss, grads, {"critic_loss": loss, "penalty": pen, **more}


# ----------------------------------------------------------------------------- generator
def critic_input_grad(obj, critic, cparams, fake, consts):
    """Generator loss on ``fake`` (B, d) and ``dL/dfake`` (B, d) through the critic (no critic gradients)."""
    xp = namespace(fake)
    kinds = _kinds(critic)
    wt = transposes(cparams)
    hs, as_ = forward(critic, cparams, fake)
    if obj.logistic:
        loss, d = generator_scores_loss.unchecked(obj, hs[-1])
    else:
        loss, d = -xp.mean(hs[-1]), consts.gen_seed
    for l in range(critic.n_layers - 1, -1, -1):
        d = _times_wt(apply_deriv(xp, kinds[l], activation_deriv(xp, kinds[l], as_[l], hs[l + 1]), d, owned=l < critic.n_layers - 1),
                      wt[l])
    return loss, d


def backward_params(net, params, hs, as_, d):
    """Parameter gradients ``[(dW, db)]`` of ``<d, net(x)>`` from a forward's ``(hs, as_)``."""
    xp = namespace(d)
    kinds = _kinds(net)
    wt = transposes(params)
    grads = [None] * net.n_layers
    for l in range(net.n_layers - 1, -1, -1):
        e = apply_deriv(xp, kinds[l], activation_deriv(xp, kinds[l], as_[l], hs[l + 1]), d, owned=l < net.n_layers - 1)
        grads[l] = (tdot(hs[l], e), xp.sum(e, axis=0))
        if l > 0:
            d = _times_wt(e, wt[l])
    return grads


def generator_loss_grads(obj, gen, gparams, critic, cparams, z, consts):
    """Generator loss, its parameter gradients and ``G(z)``: the fused twin of
    :func:`refimpl.objectives.generator_grads` (``z`` (B, latent), ``consts`` for ``B``)."""
    hs, as_ = forward(gen, gparams, z)
    fake = hs[-1]
    loss, dfake = critic_input_grad(obj, critic, cparams, fake, consts)
    return loss, backward_params(gen, gparams, hs, as_, dfake), fake
