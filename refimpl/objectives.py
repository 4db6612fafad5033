"""GAN objectives: critic and generator losses with their parameter gradients.

Sign convention (``shared/conventions.md``): the critic ``f`` maximises
``E_data f - E_gen f``, so every critic loss below is *minimised* and reads
``mean f(fake) - mean f(real) + penalty`` for the Wasserstein family.

- ``wgan``: Arjovsky et al. (2017), weight clipping to ``[-c, c]`` after each critic step.
- ``wgan-gp``: Gulrajani et al. (2017), ``lam * mean((||grad f(x_hat)|| - 1)^2)`` at
  ``x_hat = eps x + (1 - eps) G(z)``, ``eps ~ U[0, 1]`` per sample.
- ``wgan-lp``: Petzka et al. (2018), one-sided ``lam * mean(max(0, ||grad f(x_hat)|| - 1)^2)``.
- ``dragan``: Kodali et al. (2017), the two-sided penalty at ``x + c * std(x) * u``,
  ``u ~ U[0, 1]`` (``c = 0.5``, ``std`` over the whole real batch), with the standard GAN loss.
- ``standard``: Goodfellow et al. (2014), critic loss ``mean softplus(-f(real)) + mean softplus(f(fake))``
  on logits, non-saturating generator loss ``mean softplus(-f(G(z)))``.

Random draws (``eps``, ``u``) come from the host ``numpy.random.Generator`` passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .backend import from_host, namespace
from .nn import _sigmoid, _softplus, add_params

OBJECTIVES = ("wgan", "wgan-gp", "wgan-lp", "dragan", "standard")


@dataclass(frozen=True)
class Objective:
    """Which GAN loss, and its constants.

    Parameters
    ----------
    name : one of ``OBJECTIVES``.
    lam : penalty weight (``wgan-gp``, ``wgan-lp``, ``dragan``), > 0.
    clip : weight-clipping bound ``c`` of ``wgan``, > 0.
    dragan_scale : perturbation scale ``c`` of DRAGAN's ``x + c std(x) u``.
    """
    name: str = "wgan-gp"
    lam: float = 10.0
    clip: float = 0.01
    dragan_scale: float = 0.5

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.name!r}; choose one of {', '.join(OBJECTIVES)}")
        for k in ("lam", "clip", "dragan_scale"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{k} must be a finite number > 0, got {v!r}")

    @property
    def logistic(self):
        """True for the losses on logits (standard GAN, DRAGAN)."""
        return self.name in ("standard", "dragan")

    @property
    def penalty(self):
        return {"wgan-gp": "two-sided", "dragan": "two-sided", "wgan-lp": "one-sided"}.get(self.name)


# ----------------------------------------------------------------------------- penalties
def gradient_penalty(critic, cparams, x_hat, lam, kind="two-sided"):
    """``P = lam * mean_b r_b^2`` with ``r_b = ||g_b|| - 1`` (two-sided) or ``max(0, ||g_b|| - 1)``
    (one-sided), ``g_b = grad_x f(x_hat_b)``, and ``dP/dparams`` through the double backward.

    ``dP/dg_b = (2 lam / B) r_b g_b / ||g_b||``; where ``||g_b|| = 0`` the direction is
    undefined and the (sub)gradient 0 is used, so the result is always finite.

    Parameters
    ----------
    x_hat : array (B, d)

    Returns
    -------
    penalty : 0-d array
    grads : list of (dW, db) like ``cparams``
    norms : array (B,), the gradient norms ``||g_b||``
    """
    if kind not in ("two-sided", "one-sided"):
        raise ValueError(f"unknown penalty kind {kind!r}; use 'two-sided' or 'one-sided'")
    xp = namespace(x_hat)
    B = x_hat.shape[0]
    g, tape = critic.input_gradient(cparams, x_hat)          # (B, d)
    norm = xp.sqrt(xp.sum(g * g, axis=1))                    # (B,)
    r = norm - 1.0
    if kind == "one-sided":
        r = xp.maximum(r, xp.zeros_like(r))
    pen = lam * xp.mean(r * r)
    pos = norm > 0
    coef = xp.where(pos, (2.0 * lam / B) * r / xp.where(pos, norm, xp.ones_like(norm)), xp.zeros_like(norm))
    _, grads = critic.input_gradient_vjp(cparams, tape, coef[:, None] * g, need_dx=False)
    return pen, grads, norm


def penalty_points(obj, real, fake, rng):
    """Where the penalty is evaluated: interpolates (WGAN-GP, WGAN-LP) or perturbed data (DRAGAN)."""
    xp = namespace(real)
    B = real.shape[0]
    if obj.name == "dragan":
        u = from_host(rng.uniform(size=tuple(real.shape)), xp, real.dtype, real.device)
        return real + (obj.dragan_scale * xp.std(real)) * u
    if fake.shape[0] != B:
        raise ValueError(f"the interpolate penalty needs equal real and fake batches, got {B} and {fake.shape[0]}")
    eps = from_host(rng.uniform(size=(B, 1)), xp, real.dtype, real.device)
    return eps * real + (1.0 - eps) * fake


# ----------------------------------------------------------------------------- losses
def critic_scores_loss(obj, f_real, f_fake):
    """Critic loss from the scores and its gradient w.r.t. them.

    Parameters
    ----------
    f_real : (Br, 1), f_fake : (Bf, 1)

    Returns
    -------
    loss : 0-d array; d_real : (Br, 1); d_fake : (Bf, 1)
    """
    xp = namespace(f_real, f_fake)
    br, bf = f_real.shape[0], f_fake.shape[0]
    if obj.logistic:
        loss = xp.mean(_softplus(-f_real)) + xp.mean(_softplus(f_fake))
        return loss, -_sigmoid(-f_real) / br, _sigmoid(f_fake) / bf
    loss = xp.mean(f_fake) - xp.mean(f_real)
    return loss, xp.full_like(f_real, -1.0 / br), xp.full_like(f_fake, 1.0 / bf)


def generator_scores_loss(obj, f_fake):
    """Generator loss from the critic's scores on ``G(z)`` and its gradient w.r.t. them:
    ``-mean f`` (Wasserstein family) or the non-saturating ``mean softplus(-f)``."""
    xp = namespace(f_fake)
    b = f_fake.shape[0]
    if obj.logistic:
        return xp.mean(_softplus(-f_fake)), -_sigmoid(-f_fake) / b
    return -xp.mean(f_fake), xp.full_like(f_fake, -1.0 / b)


def critic_grads(obj, critic, cparams, real, fake, rng):
    """Critic loss (to minimise) and its parameter gradients on one batch.

    Parameters
    ----------
    real : (Br, d) data; fake : (Bf, d) generated samples (treated as constants).
    rng : numpy.random.Generator for the penalty's random points.

    Returns
    -------
    loss : 0-d array; grads : list of (dW, db); logs : dict of 0-d arrays
    """
    xp = namespace(real, fake)
    br = real.shape[0]
    scores, cache = critic.forward(cparams, xp.concat([real, fake], axis=0))   # one pass, (Br+Bf, 1)
    loss, d_real, d_fake = critic_scores_loss(obj, scores[:br, :], scores[br:, :])
    _, grads = critic.backward(cparams, cache, xp.concat([d_real, d_fake], axis=0), need_dx=False)
    logs = {"critic_loss": loss}
    if obj.penalty is not None:
        pen, pgrads, _ = gradient_penalty(critic, cparams, penalty_points(obj, real, fake, rng), obj.lam, obj.penalty)
        grads = add_params(grads, pgrads)
        loss = loss + pen
        logs = {"critic_loss": loss, "penalty": pen}
    return loss, grads, logs


def clip_params(params, c):
    """WGAN weight clipping: every weight and bias into ``[-c, c]``."""
    xp = namespace(params)
    return [(xp.clip(W, -c, c), xp.clip(b, -c, c)) for W, b in params]


def generator_dfake(obj, critic, cparams, fake):
    """Generator loss and its gradient w.r.t. the generated samples (through the critic's input gradient).

    Returns
    -------
    loss : 0-d array; dfake : (B, d)
    """
    scores, cache = critic.forward(cparams, fake)
    loss, dscores = generator_scores_loss(obj, scores)
    dfake, _ = critic.backward(cparams, cache, dscores, need_params=False)
    return loss, dfake


def generator_grads(obj, gen, gparams, critic, cparams, z):
    """Generator loss and its parameter gradients: ``G``'s backward seeded with ``dL/dG(z)``.

    Returns
    -------
    loss : 0-d array; grads : list of (dW, db); fake : (B, d)
    """
    fake, gcache = gen.forward(gparams, z)
    loss, dfake = generator_dfake(obj, critic, cparams, fake)
    _, grads = gen.backward(gparams, gcache, dfake, need_dx=False)
    return loss, grads, fake
