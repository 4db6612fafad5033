"""W1 forward Euler (W1-FE): a WGAN whose generator follows Euler steps of the W1 gradient flow.

Paper: Malik & Huang, "A Differential Equation Approach for Wasserstein GANs and
Beyond" (``papers/w1-forward-euler-ode.md`` in the shared folder), Algorithm 1, eqs. (4.1)
and (4.3), Prop. 4.1; project reading in ``conventions.md``, "W1 forward Euler (W1-FE)".

One outer iteration (Algorithm 1):

1. ``SimulatePhi``: ``n_critic`` critic steps of a Wasserstein critic from the shared
   loop (:meth:`GANMethod.critic_phase`): ``wgan`` (weight clipping), ``wgan-gp``
   (W1-FE-GP, two-sided penalty) or ``wgan-lp`` (W1-FE-LP, Petzka's one-sided penalty).
2. Draw one latent batch ``z_1..z_B ~ N(0, I)``, push it through the generator,
   ``y_i = G_theta(z_i)``, and take one forward Euler step of the flow (4.1):

   .. math:: \\zeta_i = y_i + \\varepsilon\\, \\nabla_x f(y_i).

3. ``K`` optimiser steps ("persistent training") on

   .. math:: L(\\theta) = \\frac1B \\sum_{i=1}^B \\lVert \\zeta_i - G_\\theta(z_i) \\rVert_2^2,

   with ``z_i`` and ``zeta_i`` held fixed (constants: no gradient flows into ``zeta``).
   ``||.||^2`` is summed over the coordinates of a sample; it is not a framework
   "MSE" that also divides by the dimension.

Sign conversion. The paper's potential ``phi`` is the Kantorovich potential whose
negative gradient points along the transport rays towards the data (Remark 2.3),
and (4.1) reads ``Y_{n+1} = Y_n - eps * grad phi(Y_n)``. This project's critic ``f``
is large on data (conventions.md, "One critic sign"), i.e. ``f = -phi``, so the
Euler step is ``y + eps * grad f(y)``.

Prop. 4.1 in this sign: with ``zeta_i - G(z_i) = eps * grad f(y_i)`` at the current
parameters,

.. math:: \\nabla_\\theta L = -\\frac2B \\sum_i J_i^\\top (\\zeta_i - G_\\theta(z_i))
          = 2\\varepsilon\\, \\nabla_\\theta\\Big(-\\frac1B \\sum_i f(G_\\theta(z_i))\\Big),

``J_i = dG_theta(z_i)/dtheta``; so with plain SGD of rate ``gamma`` and ``K = 1`` the
W1-FE step is the WGAN generator step on ``-mean f(G(z))`` with rate ``2 eps gamma``
(tested in ``tests/test_w1fe.py``). (The paper's proof drops a ``nabla`` and a sign;
the statement holds.)

The exact, non-parametric version of the flow (the optimal matching gives
``grad f``) is :mod:`refimpl.w1flow`.

Public functions validate at entry (:mod:`refimpl.validation`); the training step calls the unchecked cores (``f.unchecked``,
:func:`refimpl.validation.checked`), which do not validate, so a step makes no host round trip.
"""
from __future__ import annotations

import math
import numbers

from . import validation as checks, steps
from .backend import from_host, namespace
from .architectures import NETWORKS
from .nn import MLP
from .train import GANConfig, GANMethod, config_dict

__all__ = ["W1FE", "W1FE_CRITICS", "euler_targets", "persistent_loss_grads", "euler_phase_grads"]

#: Critic objectives that estimate a Kantorovich potential (``SimulatePhi``).
W1FE_CRITICS = ("wgan", "wgan-gp", "wgan-lp")


@checks.checked()
def euler_targets(critic, cparams, y, eps):
    """Forward Euler targets ``zeta_i = y_i + eps * grad_x f(y_i)`` (paper eq. 4.3, project sign).

    Parameters
    ----------
    critic : refimpl.nn.MLP
        Scalar-output critic ``f`` (large on data).
    cparams : list of (W, b)
    y : array, shape (B, d)
        Generated samples ``G_theta(z_i)``.
    eps : float
        Time step ``eps > 0``.

    Returns
    -------
    zeta : array, shape (B, d)
        The targets, in ``y``'s namespace and dtype.
    grad : array, shape (B, d)
        ``grad_x f(y_i)`` per sample.

    Notes
    -----
    Paper (w1-forward-euler-ode) eq. (4.3) with ``phi = -f`` (conventions.md, "W1 forward Euler").
    Inputs: ``y`` finite, in the critic parameters' dtype;
    ``eps`` finite and > 0.
    """
    eps = _check_eps(eps)
    checks.network(critic, "critic")
    cparams, y = critic.validate(cparams, ("y", y, (None, critic.sizes[0])), pname="cparams")
    return _euler_targets(critic, cparams, y, eps)


def _euler_targets(critic, cparams, y, eps):
    g, _ = critic.input_gradient.unchecked(cparams, y)       # (B, d)
    return y + eps * g, g


@checks.checked()
def persistent_loss_grads(gen, gparams, z, zeta):
    """The persistent-training objective and its parameter gradients.

    .. math:: L(\\theta) = \\frac1B \\sum_{i=1}^B \\lVert \\zeta_i - G_\\theta(z_i) \\rVert_2^2,
              \\qquad \\frac{\\partial L}{\\partial G_\\theta(z_i)} = \\frac2B (G_\\theta(z_i) - \\zeta_i).

    Paper (w1-forward-euler-ode) Algorithm 1, inner loop; ``zeta`` is a constant.

    Parameters
    ----------
    gen : refimpl.nn.MLP
        Generator ``G_theta``.
    gparams : list of (W, b)
    z : array, shape (B, latent_dim)
        Latent batch (held fixed over the K steps).
    zeta : array, shape (B, d)
        Targets (held fixed over the K steps).

    Returns
    -------
    loss : 0-d array
        ``L(theta)``.
    grads : list of (dW, db) like ``gparams``
        ``dL/dtheta`` (the generator's backward seeded with ``2 (G(z) - zeta) / B``).

    Inputs: ``z`` (B, latent) and ``zeta`` (B, d), B >= 1,
    finite, in the generator parameters' dtype; errors name the argument.
    """
    if not isinstance(gen, NETWORKS):
        raise TypeError(f"gen must be a refimpl.nn.MLP or a refimpl.cnn.flat.FlatIO, got {type(gen).__name__}")
    gparams, z = gen.validate(gparams, ("z", z, (None, gen.sizes[0])), pname="gparams")
    if z.shape[0] == 0:
        raise ValueError(f"z must be non-empty, got shape {tuple(z.shape)}")
    zeta = checks.array(zeta, "zeta", shape=(z.shape[0], gen.sizes[-1]), xp=namespace(z))
    if zeta.dtype != z.dtype:
        raise TypeError(f"zeta has dtype {zeta.dtype} but the generator's parameters are {z.dtype}")
    return _persistent_loss_grads(gen, gparams, z, zeta)


def _persistent_loss_grads(gen, gparams, z, zeta):
    xp = namespace(z, zeta)
    fake, cache = gen.forward.unchecked(gparams, z)          # (B, d)
    B = fake.shape[0]
    r = fake - zeta                                          # (B, d)
    loss = xp.sum(r * r) / B
    _, grads = gen.backward.unchecked(gparams, cache, (2.0 / B) * r, need_dx=False)
    return loss, grads


def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"eps must be a real number > 0, got {eps!r}")
    if not (math.isfinite(float(eps)) and float(eps) > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return float(eps)


def _check_K(K):
    if isinstance(K, bool) or not isinstance(K, numbers.Integral) or K < 1:
        raise ValueError(f"K (persistent generator steps) must be an integer >= 1, got {K!r}")
    return int(K)


class W1FE(GANMethod):
    """W1-FE (Algorithm 1 of w1-forward-euler-ode): WGAN critic, Euler targets, K persistent steps.

    Parameters
    ----------
    cfg : GANConfig
        ``objective`` is ``SimulatePhi``: ``wgan-lp`` (W1-FE-LP), ``wgan-gp``
        (W1-FE-GP) or ``wgan`` (clipping). ``n_critic`` critic steps per outer
        iteration. ``lr_gen`` and ``optimiser`` set the generator's optimiser (any:
        the paper uses Adam in its experiments and SGD in Prop. 4.1). ``n_gen``
        Euler steps (each with a fresh latent batch and ``K`` persistent steps) follow
        each critic phase; Algorithm 1 is ``n_gen = 1`` (the default).
    eps : float
        Euler time step ``eps > 0`` (paper: 1).
    K : int
        Persistency level ``K >= 1``: optimiser steps per set of targets.

    Notes
    -----
    Logs of the generator phase (0-d arrays): ``gen_loss`` = ``L`` before the first
    persistent step (equal to ``eps^2 mean ||grad f(y)||^2``), ``gen_loss_last`` =
    ``L`` before the K-th step, ``grad_norm`` = ``mean_i ||grad f(y_i)||``.
    """
    name = "w1fe"

    def __init__(self, cfg: GANConfig, eps=1.0, K=1, *, name=None):
        if cfg.objective not in W1FE_CRITICS:
            raise ValueError(f"W1-FE needs a Wasserstein critic (SimulatePhi), one of {', '.join(W1FE_CRITICS)}; "
                             f"got objective {cfg.objective!r}")
        self.eps = _check_eps(eps)
        self.K = _check_K(K)
        super().__init__(cfg, name=name)

    def config(self):
        return {**config_dict(self.cfg), "eps": self.eps, "K": self.K}

    @checks.training_step
    def targets(self, state, z):
        """``(y, zeta, grad f(y))`` for a latent batch ``z`` (B, latent_dim) at the current state.
        """
        y = self.generate(state, z)
        zeta, g = _euler_targets(self.critic, state["critic"], y, self.eps)
        return y, zeta, g

    @checks.training_step
    def persistent_steps(self, state, z, zeta):
        """``K`` optimiser steps on :func:`persistent_loss_grads` with ``z``, ``zeta`` fixed.

        Returns the new state and the list of the ``K`` losses (each before its step).
        Uses no randomness.
        """
        gp, og = state["gen"], state["opt_gen"]
        losses = []
        for _ in range(self.K):
            loss, grads = _persistent_loss_grads(self.gen, gp, z, zeta)
            gp, og = self.opt_gen.step.unchecked(gp, grads, og)
            losses.append(loss)
        return {**state, "gen": gp, "opt_gen": og}, losses

    @checks.training_step
    def generator_step(self, state, rng, data):
        """One Euler step of Algorithm 1: one latent draw, the targets, then ``K`` persistent steps.
        """
        z = self.latent(rng, self.cfg.batch_size, state["gen"][0][0])
        xp = namespace(z)
        _, zeta, g = self.targets(state, z)
        state, losses = self.persistent_steps(state, z, zeta)
        grad_norm = xp.mean(xp.sqrt(xp.sum(g * g, axis=1)))
        return state, {"gen_loss": losses[0], "gen_loss_last": losses[-1], "grad_norm": grad_norm}

    def generator_phase(self, state, rng, data):
        """``n_gen`` Euler steps. Fused (``fused``, the default): the ``n_gen`` latent batches are drawn
        first, in :meth:`generator_step`'s order, moved in one transfer, then
        :func:`euler_phase_grads` and the optimiser run on the device; else the per-step reference.
        The input state is donated (its flat parameters are updated in place)."""
        if not self.fused:
            return super().generator_phase(state, rng, data)
        like = state["gen"][0][0]
        B = self.cfg.batch_size
        z_all = from_host(self.draw(rng, data, critic=False)["z_gen"], namespace(like), like.dtype, like.device)
        seeds = self._seeds(like)
        gp, og = state["gen"], state["opt_gen"]
        for k in range(self.cfg.n_gen):
            z = z_all[k * B:(k + 1) * B, :]
            grads, logs, zeta = euler_phase_grads(self.objective, self.gen, gp, self.critic, state["critic"], z, self.eps,
                                                  seeds, persistent=self.K > 1)
            gp, og = self.opt_gen.step.unchecked(gp, grads, og)
            for j in range(1, self.K):                   # the persistent steps 2..K on the same (z, zeta)
                hs, as_ = steps.forward(self.gen, gp, z)
                r = hs[-1] - zeta
                if j == self.K - 1:
                    logs["gen_loss_last"] = namespace(r).sum(r * r) / B
                gp, og = self.opt_gen.step.unchecked(gp, steps.backward_params(self.gen, gp, hs, as_, (2.0 / B) * r),
                                                     og)
        return {**state, "gen": gp, "opt_gen": og}, logs

    def _seeds(self, like):
        """The input-gradient seed ``ones`` (B, 1), as :func:`refimpl.steps.critic_input_grad` reads
        it (``gen_seed``), built once per run (:func:`refimpl.steps.constants`)."""
        c = steps.constants(self._consts, self.objective, like, self.cfg.batch_size)
        seeds = getattr(c, "w1fe_seeds", None)
        if seeds is None:
            seeds = c.w1fe_seeds = _InputSeed(c.ones)
        return seeds


class _InputSeed:
    """Seeds for :func:`refimpl.steps.critic_input_grad` that make its ``dL/dfake`` the plain input
    gradient ``grad_x f`` (seed 1 per row)."""
    __slots__ = ("gen_seed",)

    def __init__(self, ones):
        self.gen_seed = ones


def euler_phase_grads(obj, gen, gparams, critic, cparams, z, eps, seeds, persistent=False):
    """One Euler step's targets and the gradient of its first persistent step, fused.

    One generator forward ``y = G(z)`` serves the targets ``zeta = y + eps grad f(y)`` (eq. 4.3,
    project sign) and the first persistent step, whose parameters are those of ``y``: there
    ``G(z) - zeta = -eps grad f(y)``, so ``dL/dG(z) = -(2 eps / B) grad f(y)`` and
    ``L = (eps^2 / B) sum_i ||grad f(y_i)||^2`` (Algorithm 1; the equality behind Prop. 4.1).

    Parameters
    ----------
    obj : Objective, a Wasserstein one (:data:`W1FE_CRITICS`)
    gen, critic : MLP; gparams, cparams : their parameters
    z : array (B, latent_dim)
    eps : float > 0
    seeds : the input-gradient seed (:meth:`W1FE._seeds`)
    persistent : bool
        Also return ``zeta`` (B, d) for the persistent steps 2..K.

    Returns
    -------
    grads : list of (dW, db), ``dL/dtheta`` at the first persistent step
    logs : dict of 0-d arrays ``gen_loss``, ``gen_loss_last`` (both ``L`` before the first step),
        ``grad_norm`` (``mean_i ||grad f(y_i)||``)
    zeta : array (B, d) or None

    Equals :meth:`W1FE.generator_step`'s gradients to rounding (tests: 1e-12 in float64). Not
    validated (a training-step internal).
    """
    xp = namespace(z)
    B = z.shape[0]
    hs, as_ = steps.forward(gen, gparams, z)
    y = hs[-1]
    _, g = steps.critic_input_grad(obj, critic, cparams, y, seeds)     # grad f(y), (B, d)
    sq = xp.sum(g * g, axis=1)                                           # (B,)
    loss = (eps * eps / B) * xp.sum(sq)
    logs = {"gen_loss": loss, "gen_loss_last": loss, "grad_norm": xp.mean(xp.sqrt(sq))}
    grads = steps.backward_params(gen, gparams, hs, as_, (-2.0 * eps / B) * g)
    return grads, logs, (y + eps * g if persistent else None)
