"""Relaxed Wasserstein Proximal (RWP) on the generator: Algorithm 1 and Appendix D of
*Wasserstein proximal of GANs* (eq. 4, Sec. 2.2 and 3.1).

Every outer iteration runs the critic phase of the objective unchanged, takes a real
copy ``theta_prev`` of the generator parameters, and then ``l`` generator steps on

.. math::

    L(\\theta) = F(\\theta) + \\frac{1}{2h} \\frac{1}{B} \\sum_{i=1}^B
        \\| g_\\theta(z_i) - g_{\\theta_{prev}}(z_i) \\|_2^2 ,

with fresh ``z`` at every step and both networks on the same ``z``. ``F`` is the
generator loss of the objective (``-mean f(G(z))`` for the Wasserstein family, the
non-saturating ``mean softplus(-f(G(z)))`` for Standard GAN and DRAGAN).

Errata (``shared/conventions.md``, "Wasserstein proximal"): the proximal term has a
``+`` sign and the factor ``1/(2h)`` (eq. 4); Appendix D's minus sign and
Algorithm 1's ``1/h`` are typos.

Public functions validate at entry (:mod:`refimpl.validation`); the training step calls the unchecked cores (``f.unchecked``,
:func:`refimpl.validation.checked`), which do not validate, so a step makes no host round trip.
"""
from __future__ import annotations

import math

import numpy as _np

from . import validation as checks, steps
from .backend import from_host, namespace
from .flat import FlatParams, from_buffer
from .nn import copy_params
from .objectives import Objective, generator_dfake
from .train import GANConfig, GANMethod

#: Appendix C defaults ``(h, l)`` per objective. WGAN-GP: h = 0.1, l = 10; Standard GAN and
#: DRAGAN: h = 0.2, l = 5. The paper has no WGAN-LP or WGAN (clipping) run: they take the
#: WGAN-GP values (same Wasserstein generator loss).
RWP_DEFAULTS = {"wgan-gp": (0.1, 10), "wgan-lp": (0.1, 10), "wgan": (0.1, 10),
                "standard": (0.2, 5), "dragan": (0.2, 5)}


@checks.checked()
def check_h(h):
    """``h`` as a float; ``ValueError`` unless it is a finite real number > 0.
    """
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
        raise ValueError(f"the proximal step size h must be a finite number > 0, got {h!r}")
    return float(h)


@checks.checked()
def check_steps(l, name="l"):
    """``l`` as an int; ``ValueError`` unless it is an integer >= 1.
    """
    if isinstance(l, bool) or not isinstance(l, int) or l < 1:
        raise ValueError(f"the number of generator steps {name} must be an integer >= 1, got {l!r}")
    return l


@checks.checked()
def proximal_term(fake, fake_prev, h):
    """Relaxed Wasserstein proximal term and its gradient w.r.t. the live samples.

    .. math::

        P = \\frac{1}{2h} \\frac{1}{B} \\sum_{i=1}^B \\sum_{j=1}^n (x_{ij} - y_{ij})^2,
        \\qquad \\frac{\\partial P}{\\partial x_i} = \\frac{x_i - y_i}{h B}

    (Wasserstein proximal of GANs, eq. 4; sign and ``1/(2h)`` as in conventions.md.)

    Parameters
    ----------
    fake : array (B, n)
        ``x_i = g_theta(z_i)``, the live generator's samples.
    fake_prev : array (B, n)
        ``y_i = g_theta_prev(z_i)`` on the same ``z_i`` (a constant of the step).
    h : float
        Proximal step size, > 0.

    Both arrays finite and non-empty, one namespace (float32 with
    float64 gives float64).

    Returns
    -------
    value : 0-d array
    dfake : array (B, n), ``dP/dx``.
    """
    h = check_h(h)
    fake = checks.array(fake, "fake", ndim=2)
    fake_prev = checks.array(fake_prev, "fake_prev", shape=tuple(fake.shape), xp=namespace(fake))
    return _proximal_term(*checks.common_float(fake, fake_prev), h)


def _proximal_term(fake, fake_prev, h):
    xp = namespace(fake, fake_prev)
    B = fake.shape[0]
    diff = fake - fake_prev
    value = xp.sum(diff * diff) * (1.0 / (2.0 * h * B))
    return value, diff * (1.0 / (h * B))


@checks.checked()
def rwp_generator_grads(obj, gen, gparams, gprev, critic, cparams, z, h):
    """The RWP generator objective ``F + P`` and its gradient w.r.t. the live generator parameters.

    ``F`` is the objective's generator loss on ``g_theta(z)`` and ``P`` is
    :func:`proximal_term` between ``g_theta(z)`` and ``g_theta_prev(z)`` (same ``z``).
    The gradient is one generator backward seeded with ``dF/dx + dP/dx``
    (Wasserstein proximal of GANs, eq. 4 and Appendix D).

    Parameters
    ----------
    obj : Objective
    gen, critic : MLP
    gparams, gprev : generator parameter lists (live, and the copy taken before the phase)
    cparams : critic parameters
    z : array (B, latent_dim)
    h : float > 0

    Returns
    -------
    total : 0-d array, ``F + P``
    grads : list of (dW, db) like ``gparams``
    logs : dict with ``gen_loss`` (``F``) and ``prox`` (``P``), 0-d arrays

    Inputs: finite parameters of the networks' layouts and
    one dtype, ``z`` non-empty in that dtype; errors name the argument.
    """
    h = check_h(h)
    if not isinstance(obj, Objective):
        raise TypeError(f"obj must be an Objective, got {type(obj).__name__}")
    checks.network(critic, "critic")
    gparams, z = checks.generator_inputs(gen, gparams, z, critic)
    kw = dict(xp=namespace(z), dtype=z.dtype)
    gprev = checks.params(gprev, "gprev", shapes=gen.param_shapes(), **kw)
    cparams = checks.params(cparams, "cparams", shapes=critic.param_shapes(), **kw)
    return _rwp_generator_grads(obj, gen, gparams, gprev, critic, cparams, z, h)


def _rwp_generator_grads(obj, gen, gparams, gprev, critic, cparams, z, h):
    fake, cache = gen.forward.unchecked(gparams, z)
    fake_prev, _ = gen.forward.unchecked(gprev, z)
    loss, dfake = generator_dfake.unchecked(obj, critic, cparams, fake)
    prox, dprox = _proximal_term(fake, fake_prev, h)
    _, grads = gen.backward.unchecked(gparams, cache, dfake + dprox, need_dx=False)
    return loss + prox, grads, {"gen_loss": loss, "prox": prox}


class RWPMethod(GANMethod):
    """A GAN whose generator phase is the Relaxed Wasserstein Proximal (Algorithm 1, Appendix D).

    The critic phase is the objective's own (``cfg.n_critic`` steps). The generator phase
    copies the generator parameters (a real copy, fixed for the phase) and then runs ``l``
    optimiser steps on :func:`rwp_generator_grads` (fused: :func:`rwp_generator_grads_fused`),
    each on a fresh latent batch.
    ``l`` replaces ``cfg.n_gen`` (which must be left at 1 or equal ``l``).

    Parameters
    ----------
    cfg : GANConfig (any objective: standard, wgan-gp, wgan-lp, dragan, wgan)
    h : float > 0, optional
        Proximal step size; default from Appendix C (:data:`RWP_DEFAULTS`).
    l : int >= 1, optional
        Generator steps per outer iteration; default from Appendix C.
    """
    name = "rwp"

    def __init__(self, cfg: GANConfig, h=None, l=None, *, name=None):
        super().__init__(cfg, name=name)
        self._anchors = {}                   # theta_prev buffers of the fused phase, per layout (one per run)
        dh, dl = RWP_DEFAULTS[cfg.objective]
        self.h = check_h(dh if h is None else h)
        self.l = check_steps(dl if l is None else l)
        if cfg.n_gen not in (1, self.l):
            raise ValueError(f"RWP runs l = {self.l} generator steps per outer iteration; "
                             f"cfg.n_gen = {cfg.n_gen} conflicts with it (leave n_gen at 1)")

    def config(self):
        return {**super().config(), "rwp_h": self.h, "rwp_l": self.l}

    @property
    def gen_steps_per_outer(self):
        return self.l

    @checks.training_step
    def rwp_generator_step(self, state, gprev, rng):
        """One optimiser step on ``F + P`` with a fresh ``z``; returns ``(state, logs)``.
        """
        z = self.latent(rng, self.cfg.batch_size, state["gen"][0][0])
        _, grads, logs = _rwp_generator_grads(self.objective, self.gen, state["gen"], gprev,
                                             self.critic, state["critic"], z, self.h)
        gp, og = self.opt_gen.step.unchecked(state["gen"], grads, state["opt_gen"])
        return {**state, "gen": gp, "opt_gen": og}, logs

    @checks.training_step
    def generator_phase(self, state, rng, data):
        """The ``l`` proximal steps. Fused (``fused``, the default): the ``l`` latent batches are drawn
        first, in :meth:`rwp_generator_step`'s order, moved in one transfer, ``theta_prev`` is copied
        into a buffer kept for the run, and :func:`rwp_generator_grads_fused` feeds the optimiser;
        else the per-step reference. The input state is donated (flat parameters are updated in place)."""
        gp = state["gen"]
        if self.fused and isinstance(gp, FlatParams):
            return self._fused_generator_phase(state, rng)
        gprev = copy_params.unchecked(state["gen"])          # theta_prev: a real copy, fixed for the l steps
        logs = {}
        for _ in range(self.l):
            state, logs = self.rwp_generator_step(state, gprev, rng)
        return state, logs

    def _fused_generator_phase(self, state, rng):
        gp, og = state["gen"], state["opt_gen"]
        like = gp.buffer
        xp = namespace(like)
        B, n = self.cfg.batch_size, self.cfg.latent_dim
        z_all = from_host(_np.concatenate([rng.standard_normal((B, n)) for _ in range(self.l)]), xp, like.dtype,
                          like.device)
        gprev = self._anchor(gp)
        consts = steps.constants(self._consts, self.objective, like, B)
        for k in range(self.l):
            grads, logs = rwp_generator_grads_fused(self.objective, self.gen, gp, gprev, self.critic, state["critic"],
                                                    z_all[k * B:(k + 1) * B, :], self.h, consts,
                                                    logs=k == self.l - 1)
            gp, og = self.opt_gen.step.unchecked(gp, grads, og)
        return {**state, "gen": gp, "opt_gen": og}, logs

    def _anchor(self, gp):
        """``theta_prev``: ``gp``'s values copied into a :class:`refimpl.flat.FlatParams` kept for the run
        (one copy per phase, no per-leaf arrays)."""
        buf = gp.buffer
        key = (tuple(buf.shape), str(buf.dtype), str(getattr(buf, "device", None)))
        prev = self._anchors.get(key)
        if prev is None:
            prev = self._anchors[key] = from_buffer(namespace(buf).asarray(buf, copy=True),
                                              [tuple(a.shape) for Wb in gp for a in Wb])
        else:
            prev.buffer[...] = buf
        return prev


def rwp_generator_grads_fused(obj, gen, gparams, gprev, critic, cparams, z, h, consts, logs=True):
    """The fused twin of :func:`rwp_generator_grads`: the gradient of ``F + P`` w.r.t. the live
    generator parameters (Wasserstein proximal of GANs, eq. 4 and Appendix D).

    One forward of each generator at ``z`` (the anchor's output only), one critic input-gradient
    pass (:func:`refimpl.steps.critic_input_grad`), then one generator backward seeded with
    ``dF/dx + (x - y) / (hB)``.

    Parameters
    ----------
    obj : Objective; gen, critic : MLP
    gparams, gprev : live and anchor generator parameters; cparams : critic parameters
    z : array (B, latent_dim); h : float > 0
    consts : :class:`refimpl.steps.StepConstants` for ``B``
    logs : bool
        Compute the logs (the phase reads them of its last step only; the other steps skip ``P``).

    Returns
    -------
    grads : list of (dW, db) like ``gparams``
    logs : dict with ``gen_loss`` (``F``) and ``prox`` (``P``), 0-d arrays; empty when ``logs`` is False

    Equals :func:`rwp_generator_grads` to rounding (tests: 1e-12 in float64). Not validated (a
    training-step internal).
    """
    B = z.shape[0]
    hs, as_ = steps.forward(gen, gparams, z)
    fake = hs[-1]
    prev = steps.forward(gen, gprev, z)[0][-1]
    loss, dfake = steps.critic_input_grad(obj, critic, cparams, fake, consts)
    diff = fake - prev                                                   # (B, n)
    out = {}
    if logs:
        out = {"gen_loss": loss, "prox": namespace(diff).sum(diff * diff) * (1.0 / (2.0 * h * B))}
    return steps.backward_params(gen, gparams, hs, as_, dfake + diff * (1.0 / (h * B))), out
