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

Every public function validates its arrays and scalars at entry (:mod:`refimpl.validation`;
network inputs in the parameters' dtype). Their unchecked cores (``f.unchecked``, :func:`refimpl.validation.checked`) skip the checks and
are what training steps call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


from . import validation as checks
from .backend import from_host, namespace
from .activations import ACTIVATIONS
from .nn import MLP, add_params

_sigmoid, _softplus = ACTIVATIONS["sigmoid"].f, ACTIVATIONS["softplus"].f

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
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{k} must be a finite number > 0, got {v!r}")

    @property
    def logistic(self):
        """True for the losses on logits (standard GAN, DRAGAN)."""
        return self.name in ("standard", "dragan")

    @property
    def penalty(self):
        return {"wgan-gp": "two-sided", "dragan": "two-sided", "wgan-lp": "one-sided"}.get(self.name)


# ----------------------------------------------------------------------------- entry checks
def _obj(obj):
    if not isinstance(obj, Objective):
        raise TypeError(f"obj must be an Objective, got {type(obj).__name__}")
    return obj


def _scores(name, f, xp=None):
    return checks.array(f, name, shape=(None, 1), nonempty=True, xp=xp)


# ----------------------------------------------------------------------------- penalties
def _gradient_penalty(critic, cparams, x_hat, lam, kind="two-sided"):
    xp = namespace(x_hat)
    B = x_hat.shape[0]
    g, tape = critic.input_gradient.unchecked(cparams, x_hat)  # (B, d)
    norm = xp.sqrt(xp.sum(g * g, axis=1))                    # (B,)
    r = norm - 1.0
    if kind == "one-sided":
        r = xp.maximum(r, xp.zeros_like(r))
    pen = lam * xp.mean(r * r)
    pos = norm > 0
    coef = xp.where(pos, (2.0 * lam / B) * r / xp.where(pos, norm, xp.ones_like(norm)), xp.zeros_like(norm))
    _, grads = critic.input_gradient_vjp.unchecked(cparams, tape, coef[:, None] * g, need_dx=False)
    return pen, grads, norm


@checks.checked(_gradient_penalty)
def gradient_penalty(critic, cparams, x_hat, lam, kind="two-sided"):
    """``P = lam * mean_b r_b^2`` with ``r_b = ||g_b|| - 1`` (two-sided) or ``max(0, ||g_b|| - 1)``
    (one-sided), ``g_b = grad_x f(x_hat_b)``, and ``dP/dparams`` through the double backward.

    ``dP/dg_b = (2 lam / B) r_b g_b / ||g_b||``; where ``||g_b|| = 0`` the direction is
    undefined and the (sub)gradient 0 is used, so the result is always finite.

    Parameters
    ----------
    critic : MLP with scalar output; cparams : its parameters
    x_hat : array (B, d), B >= 1, finite
    lam : float > 0
    kind : "two-sided" or "one-sided"

    Returns
    -------
    penalty : 0-d array
    grads : list of (dW, db) like ``cparams``
    norms : array (B,), the gradient norms ``||g_b||``
    """
    checks.choice(kind, "kind", ("two-sided", "one-sided"))
    checks.network(critic, "critic")
    lam = checks.real(lam, "lam", gt=0)
    cparams, x_hat = critic.validate(cparams, ("x_hat", x_hat, (None, critic.sizes[0])), pname="cparams")
    if x_hat.shape[0] == 0:
        raise ValueError("x_hat must be non-empty, got shape (0, ...)")
    return _gradient_penalty(critic, cparams, x_hat, lam, kind)


def _pair(real, fake):
    """Validated ``(real, fake)``: 2-D, non-empty, finite, one namespace, common float dtype."""
    real = checks.array(real, "real", ndim=2)
    fake = checks.array(fake, "fake", ndim=2, xp=namespace(real))
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"fake must have shape (*, {real.shape[1]}) like real, got {tuple(fake.shape)}")
    return checks.common_float(real, fake)


def _penalty_points(obj, real, fake, rng):
    xp = namespace(real)
    B = real.shape[0]
    if obj.name == "dragan":
        u = from_host(rng.uniform(size=tuple(real.shape)), xp, real.dtype, real.device)
        return real + (obj.dragan_scale * xp.std(real)) * u
    if fake.shape[0] != B:
        raise ValueError(f"fake must have as many rows as real for the interpolate penalty, got {B} and {fake.shape[0]}")
    eps = from_host(rng.uniform(size=(B, 1)), xp, real.dtype, real.device)
    return eps * real + (1.0 - eps) * fake


@checks.checked(_penalty_points)
def penalty_points(obj, real, fake, rng):
    """Where the penalty is evaluated: interpolates (WGAN-GP, WGAN-LP) or perturbed data (DRAGAN).

    ``real`` (B, d) and ``fake`` (B, d) (equal B for interpolates), finite; ``rng`` a
    ``numpy.random.Generator``. float32 with
    float64 gives float64. Returns (B, d) in their namespace, dtype and device.
    """
    _obj(obj), checks.random_generator(rng)
    real, fake = _pair(real, fake)
    return _penalty_points(obj, real, fake, rng)


# ----------------------------------------------------------------------------- losses
def _critic_scores_loss(obj, f_real, f_fake):
    xp = namespace(f_real, f_fake)
    br, bf = f_real.shape[0], f_fake.shape[0]
    if obj.logistic:
        loss = xp.mean(_softplus(-f_real)) + xp.mean(_softplus(f_fake))
        return loss, -_sigmoid(-f_real) / br, _sigmoid(f_fake) / bf
    loss = xp.mean(f_fake) - xp.mean(f_real)
    return loss, xp.full_like(f_real, -1.0 / br), xp.full_like(f_fake, 1.0 / bf)


@checks.checked(_critic_scores_loss)
def critic_scores_loss(obj, f_real, f_fake):
    """Critic loss from the scores and its gradient w.r.t. them.

    Parameters
    ----------
    f_real : (Br, 1), f_fake : (Bf, 1), finite, non-empty

    Returns
    -------
    loss : 0-d array; d_real : (Br, 1); d_fake : (Bf, 1)
    """
    _obj(obj)
    f_real = _scores("f_real", f_real)
    f_fake = _scores("f_fake", f_fake, namespace(f_real))
    return _critic_scores_loss(obj, *checks.common_float(f_real, f_fake))


def _generator_scores_loss(obj, f_fake):
    xp = namespace(f_fake)
    b = f_fake.shape[0]
    if obj.logistic:
        return xp.mean(_softplus(-f_fake)), -_sigmoid(-f_fake) / b
    return -xp.mean(f_fake), xp.full_like(f_fake, -1.0 / b)


@checks.checked(_generator_scores_loss)
def generator_scores_loss(obj, f_fake):
    """Generator loss from the critic's scores on ``G(z)`` and its gradient w.r.t. them:
    ``-mean f`` (Wasserstein family) or the non-saturating ``mean softplus(-f)``.

    ``f_fake`` (B, 1), finite, non-empty."""
    _obj(obj)
    return _generator_scores_loss(obj, _scores("f_fake", f_fake))


def _critic_grads(obj, critic, cparams, real, fake, rng):
    xp = namespace(real, fake)
    br = real.shape[0]
    scores, cache = critic.forward.unchecked(cparams, xp.concat([real, fake], axis=0))  # one pass, (Br+Bf, 1)
    loss, d_real, d_fake = _critic_scores_loss(obj, scores[:br, :], scores[br:, :])
    _, grads = critic.backward.unchecked(cparams, cache, xp.concat([d_real, d_fake], axis=0), need_dx=False)
    logs = {"critic_loss": loss}
    if obj.penalty is not None:
        pen, pgrads, _ = _gradient_penalty(critic, cparams, _penalty_points(obj, real, fake, rng), obj.lam,
                                           obj.penalty)
        grads = add_params.unchecked(grads, pgrads)
        loss = loss + pen
        logs = {"critic_loss": loss, "penalty": pen}
    return loss, grads, logs


@checks.checked(_critic_grads)
def critic_grads(obj, critic, cparams, real, fake, rng):
    """Critic loss (to minimise) and its parameter gradients on one batch.

    Parameters
    ----------
    real : (Br, d) data; fake : (Bf, d) generated samples (treated as constants), finite,
        in the critic parameters' dtype.
    rng : numpy.random.Generator for the penalty's random points.

    Returns
    -------
    loss : 0-d array; grads : list of (dW, db); logs : dict of 0-d arrays

    Computed by the fused step :func:`refimpl.steps.critic_loss_grads` (equal batches, an MLP critic;
    the per-step :func:`_critic_grads` otherwise, and as its test reference).
    """
    _obj(obj), checks.network(critic, "critic"), checks.random_generator(rng)
    d = critic.sizes[0]
    cparams, real, fake = critic.validate(cparams, ("real", real, (None, d)), ("fake", fake, (None, d)),
                                           pname="cparams", nonempty=True)
    if obj.penalty is not None and obj.name != "dragan" and real.shape[0] != fake.shape[0]:
        raise ValueError(f"fake must have as many rows as real for the interpolate penalty, "
                         f"got {real.shape[0]} and {fake.shape[0]}")
    if real.shape[0] != fake.shape[0] or not isinstance(critic, MLP):   # the fused step: equal batches, MLPs
        return _critic_grads(obj, critic, cparams, real, fake, rng)
    from .steps import constants, critic_loss_grads
    noise = None
    if obj.penalty is not None:                            # drawn as _penalty_points draws them
        noise = from_host(rng.uniform(size=tuple(real.shape) if obj.name == "dragan" else (real.shape[0], 1)),
                          namespace(real), real.dtype, real.device)
    return critic_loss_grads(obj, critic, cparams, real, fake, noise, constants({}, obj, real, real.shape[0]))


def _clip_params(params, c):
    xp = namespace(params)
    return [(xp.clip(W, -c, c), xp.clip(b, -c, c)) for W, b in params]


@checks.checked(_clip_params)
def clip_params(params, c):
    """WGAN weight clipping: every weight and bias into ``[-c, c]``.

    ``params``: a finite parameter list; ``c``: a finite real > 0."""
    c = checks.real(c, "c", gt=0)
    return _clip_params(checks.params(params, "params"), c)


def _generator_dfake(obj, critic, cparams, fake):
    scores, cache = critic.forward.unchecked(cparams, fake)
    loss, dscores = _generator_scores_loss(obj, scores)
    dfake, _ = critic.backward.unchecked(cparams, cache, dscores, need_params=False)
    return loss, dfake


@checks.checked(_generator_dfake)
def generator_dfake(obj, critic, cparams, fake):
    """Generator loss and its gradient w.r.t. the generated samples (through the critic's input gradient).

    ``fake`` (B, d), B >= 1, finite, in the critic parameters' dtype.

    Returns
    -------
    loss : 0-d array; dfake : (B, d)
    """
    _obj(obj), checks.network(critic, "critic")
    cparams, fake = critic.validate(cparams, ("fake", fake, (None, critic.sizes[0])), pname="cparams")
    if fake.shape[0] == 0:
        raise ValueError(f"fake must be non-empty, got shape {tuple(fake.shape)}")
    return _generator_dfake(obj, critic, cparams, fake)


def _generator_grads(obj, gen, gparams, critic, cparams, z):
    fake, gcache = gen.forward.unchecked(gparams, z)
    loss, dfake = _generator_dfake(obj, critic, cparams, fake)
    _, grads = gen.backward.unchecked(gparams, gcache, dfake, need_dx=False)
    return loss, grads, fake


@checks.checked(_generator_grads)
def generator_grads(obj, gen, gparams, critic, cparams, z):
    """Generator loss and its parameter gradients: ``G``'s backward seeded with ``dL/dG(z)``.

    ``z`` (B, latent), B >= 1, finite; ``gen``'s output size must be ``critic``'s input
    size and both parameter lists share a dtype.

    Returns
    -------
    loss : 0-d array; grads : list of (dW, db); fake : (B, d)
    """
    _obj(obj), checks.network(critic, "critic")
    gparams, z = checks.generator_inputs(gen, gparams, z, critic)
    cparams = checks.params(cparams, "cparams", xp=namespace(z), shapes=critic.param_shapes(), dtype=z.dtype)
    if not (isinstance(gen, MLP) and isinstance(critic, MLP)):
        return _generator_grads(obj, gen, gparams, critic, cparams, z)
    from .steps import constants, generator_loss_grads
    return generator_loss_grads(obj, gen, gparams, critic, cparams, z, constants({}, obj, z, z.shape[0]))


