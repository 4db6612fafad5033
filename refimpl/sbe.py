"""Semi-Backward Euler (SBE) with a potential network: Proposition 3, Sec. 2.1 and
Algorithm 2 / Appendix G of *Wasserstein proximal of GANs*.

Proposition 3 in the implicit model reads

.. math::

    \\theta^{k+1} = \\arg\\min_\\theta \\sup_\\Phi F(\\theta) + \\frac1h \\mathbb{E}_Z\\big[
        \\Phi(g_\\theta(Z)) - \\Phi(g_{\\theta^k}(Z)) - \\tfrac12 \\|\\nabla_x\\Phi(g_{\\theta^k}(Z))\\|^2\\big].

A potential network ``Phi`` (one hidden layer, scalar output) is trained by gradient
*ascent* on the bracket, then the generator by descent on ``F + (1/h) mean Phi(g_theta(z))``
(the other two terms do not depend on ``theta``). Per outer iteration: ``n_critic`` critic
steps, ``n_phi`` potential steps, ``cfg.n_gen`` generator steps (Appendix G: 5, 5, 1; h = 0.2).

Which parameters are ``theta`` and ``theta_prev`` (decision). The potential phase runs
before the generator phase, so if ``theta_prev`` were the generator at the start of the
outer iteration (the RWP reading), live and anchor would coincide during every potential
step: the bracket would reduce to ``-0.5 mean ||grad Phi||^2``, ``grad Phi`` would be driven
to 0 and the generator term would vanish (SBE = the plain GAN). Algorithm 2 indexes the
anchor ``theta^{k-1}`` while line 10 produces ``theta^k``: at outer iteration ``k`` the live
generator is the iterate ``theta^{k-1}`` produced by iteration ``k-1`` and the anchor is the
one *before* it. So here ``theta`` = the live generator and ``theta_prev`` = a real copy of
the generator taken before the previous outer iteration's generator phase (kept in the
state as ``gen_prev``; at the first iteration it equals the initial generator). Then
``grad Phi`` estimates the displacement field of the last generator update
(for a translation ``g_theta = g_prev + c`` the optimal affine ``Phi`` has ``grad Phi = c``
and the bracket equals ``|c|^2/2``, the RWP term with ``h = 1``), and the generator term
``(1/h) grad Phi`` pulls the next update back along it, as the proximal term does.

Erratum (``shared/conventions.md``): Algorithm 2 line 6 prints ``- 1/2 grad Phi`` without
the norm-square; the objective of Prop. 3 has ``-1/2 ||grad_x Phi(g_prev(z))||^2``.
Layer normalisation of Appendix G's potential is not implemented (``refimpl.nn`` has none).

Public functions validate at entry (:mod:`refimpl.validation`); the training steps call the unchecked cores (``f.unchecked``,
:func:`refimpl.validation.checked`), which do not validate, so a step makes no host round trip.
"""
from __future__ import annotations

import numpy as _np

from . import validation as checks, steps
from .backend import from_host, namespace
from .flat import FlatParams, flatten
from .nn import ACTIVATIONS, MLP, add_params, copy_params
from .objectives import Objective, generator_dfake
from .rwp import check_h, check_steps
from .train import GANConfig, GANMethod


@checks.checked()
def potential_objective(potential, pparams, x_new, x_prev, h):
    """The SBE potential objective (to *maximise*) and its gradient w.r.t. ``Phi``'s parameters.

    .. math::

        J(p) = \\frac1h \\Big[\\frac1B \\sum_i \\Phi_p(x_i) - \\frac1B \\sum_i \\Phi_p(y_i)
               - \\frac{1}{2B} \\sum_i \\|\\nabla_x \\Phi_p(y_i)\\|^2\\Big]

    with ``x_i = g_theta(z_i)`` and ``y_i = g_theta_prev(z_i)`` (Wasserstein proximal of GANs,
    Prop. 3 and Algorithm 2 line 6 with the norm-square restored). The norm-square's gradient
    is the double backward :meth:`MLP.input_gradient_vjp` with ``u_i = -(1/(hB)) grad Phi(y_i)``,
    since ``d(0.5 ||g||^2) = <g, dg>``.

    Parameters
    ----------
    potential : MLP with scalar output
    pparams : its parameters
    x_new : array (B, n), samples of the live generator (constants here)
    x_prev : array (B, n), samples of the anchor generator on the same ``z``
    h : float > 0

    Returns
    -------
    J : 0-d array
    grads : list of (dW, db), ``dJ/dp``
    logs : dict of 0-d arrays: ``phi_obj`` (``J``), ``phi_gap`` (``(1/h)(mean Phi(x) - mean Phi(y))``),
        ``phi_grad_sq`` (``mean ||grad Phi(y)||^2``)

    Inputs: ``x_new`` and ``x_prev`` non-empty, finite, in
    the potential parameters' dtype; errors name the argument.
    """
    h = check_h(h)
    checks.network(potential, "potential")
    d = potential.sizes[0]
    pparams, x_new, x_prev = potential.validate(pparams, ("x_new", x_new, (None, d)), ("x_prev", x_prev, (None, d)),
                                                 pname="pparams", nonempty=True)
    return _potential_objective(potential, pparams, x_new, x_prev, h)


def _potential_objective(potential, pparams, x_new, x_prev, h):
    xp = namespace(x_new, x_prev)
    B_new, B_prev = x_new.shape[0], x_prev.shape[0]
    phi_new, cache_new = potential.forward.unchecked(pparams, x_new)         # (B, 1)
    g_prev, tape = potential.input_gradient.unchecked(pparams, x_prev)       # (B, n); tape holds Phi(y)
    phi_prev = tape.cache.hs[-1]                                             # (B, 1)
    gap = (xp.mean(phi_new) - xp.mean(phi_prev)) / h
    gsq = xp.mean(xp.sum(g_prev * g_prev, axis=1))
    J = gap - 0.5 * gsq / h
    _, g1 = potential.backward.unchecked(pparams, cache_new, xp.full_like(phi_new, 1.0 / (h * B_new)), need_dx=False)
    _, g2 = potential.backward.unchecked(pparams, tape.cache, xp.full_like(phi_prev, -1.0 / (h * B_prev)),
                                         need_dx=False)
    _, g3 = potential.input_gradient_vjp.unchecked(pparams, tape, g_prev * (-1.0 / (h * B_prev)), need_dx=False)
    grads = add_params.unchecked(add_params.unchecked(g1, g2), g3)
    return J, grads, {"phi_obj": J, "phi_gap": gap, "phi_grad_sq": gsq}


@checks.checked()
def sbe_generator_dfake(obj, critic, cparams, potential, pparams, fake, h):
    """SBE generator loss ``F + (1/h) mean Phi(x)`` and its gradient w.r.t. the samples ``x``.

    ``d/dx_i = dF/dx_i + grad Phi(x_i) / (hB)`` (Wasserstein proximal of GANs, Prop. 3;
    Algorithm 2 line 10 without the terms that do not depend on ``theta``).

    Parameters
    ----------
    fake : array (B, n), ``g_theta(z)``

    Returns
    -------
    total : 0-d array; dfake : array (B, n); logs : dict with ``gen_loss`` (``F``) and
    ``phi_term`` (``(1/h) mean Phi(x)``)

    ``fake`` non-empty, finite, in the parameters' dtype.
    """
    h = check_h(h)
    if not isinstance(obj, Objective):
        raise TypeError(f"obj must be an Objective, got {type(obj).__name__}")
    checks.network(critic, "critic"), checks.network(potential, "potential")
    cparams, fake = critic.validate(cparams, ("fake", fake, (None, critic.sizes[0])), pname="cparams")
    if fake.shape[0] == 0:
        raise ValueError(f"fake must be non-empty, got shape {tuple(fake.shape)}")
    pparams = checks.params(pparams, "pparams", xp=namespace(fake), dtype=fake.dtype,
                             shapes=potential.param_shapes())
    return _sbe_generator_dfake(obj, critic, cparams, potential, pparams, fake, h)


def _sbe_generator_dfake(obj, critic, cparams, potential, pparams, fake, h):
    xp = namespace(fake)
    B = fake.shape[0]
    loss, dfake = generator_dfake.unchecked(obj, critic, cparams, fake)
    phi, pcache = potential.forward.unchecked(pparams, fake)
    term = xp.mean(phi) / h
    dphi, _ = potential.backward.unchecked(pparams, pcache, xp.full_like(phi, 1.0 / (h * B)), need_params=False)
    return loss + term, dfake + dphi, {"gen_loss": loss, "phi_term": term}


@checks.checked()
def sbe_generator_grads(obj, gen, gparams, critic, cparams, potential, pparams, z, h):
    """``F + (1/h) mean Phi(g_theta(z))`` and its gradient w.r.t. the generator parameters.

    ``z`` non-empty, finite; all parameters finite in one dtype; errors name the argument.

    Returns
    -------
    total : 0-d array; grads : list of (dW, db) like ``gparams``; logs : dict
    """
    h = check_h(h)
    if not isinstance(obj, Objective):
        raise TypeError(f"obj must be an Objective, got {type(obj).__name__}")
    checks.network(critic, "critic"), checks.network(potential, "potential")
    gparams, z = checks.generator_inputs(gen, gparams, z, critic, potential)
    kw = dict(xp=namespace(z), dtype=z.dtype)
    cparams = checks.params(cparams, "cparams", shapes=critic.param_shapes(), **kw)
    pparams = checks.params(pparams, "pparams", shapes=potential.param_shapes(), **kw)
    return _sbe_generator_grads(obj, gen, gparams, critic, cparams, potential, pparams, z, h)


def _sbe_generator_grads(obj, gen, gparams, critic, cparams, potential, pparams, z, h):
    fake, cache = gen.forward.unchecked(gparams, z)
    total, dfake, logs = _sbe_generator_dfake(obj, critic, cparams, potential, pparams, fake, h)
    _, grads = gen.backward.unchecked(gparams, cache, dfake, need_dx=False)
    return total, grads, logs


class SBEMethod(GANMethod):
    """Semi-Backward Euler GAN (Algorithm 2, Appendix G): critic, potential, generator phases.

    State entries added to :class:`GANMethod`'s: ``phi`` (potential parameters), ``opt_phi``,
    and ``gen_prev`` (the anchor ``theta_prev``: a copy of the generator taken before the
    previous generator phase; see the module docstring for why).

    Parameters
    ----------
    cfg : GANConfig (any objective; the paper uses WGAN-GP)
    h : float > 0, proximal step size (Appendix G: 0.2)
    n_phi : int >= 1, potential steps per outer iteration (Appendix G: 5)
    phi_hidden : int >= 1, width of the potential's single hidden layer
    phi_activation : str, hidden activation of the potential (smooth by default, so the
        norm-square's gradient includes the second-derivative term)
    lr_phi : float, optional, potential learning rate (default ``cfg.lr_critic``); the optimiser
        kind and betas are ``cfg``'s.
    """
    name = "sbe"

    def __init__(self, cfg: GANConfig, h=0.2, n_phi=5, phi_hidden=128, phi_activation="tanh", lr_phi=None, *,
                 name=None):
        super().__init__(cfg, name=name)
        self.h = check_h(h)
        self.n_phi = check_steps(n_phi, "n_phi")
        self.phi_hidden = check_steps(phi_hidden, "phi_hidden")
        self.potential = MLP((cfg.data_dim, self.phi_hidden, 1), phi_activation, "linear")
        self.lr_phi = cfg.lr_critic if lr_phi is None else checks.real(lr_phi, "lr_phi", gt=0)
        self.opt_phi = cfg.make_optimiser(self.lr_phi)
        self._phi_consts = {}                # PotentialConstants per dtype and device (one per run)

    def config(self):
        return {**super().config(), "sbe_h": self.h, "sbe_n_phi": self.n_phi, "sbe_phi_hidden": self.phi_hidden,
                "sbe_phi_activation": self.potential.activation, "sbe_lr_phi": self.lr_phi}

    @property
    def gen_steps_per_outer(self):
        return self.cfg.n_gen

    @checks.checked()
    def init_state(self, rng, xp, dtype, device=None):
        """The method's state, as :meth:`refimpl.gan.GANMethod.init_state`."""
        state = super().init_state(rng, xp, dtype, device)
        pp = flatten(self.potential.init(rng, xp=xp, dtype=dtype, device=device))
        return {**state, "phi": pp, "opt_phi": self.opt_phi.init.unchecked(pp), "gen_prev": flatten(state["gen"])}

    @checks.training_step
    def potential_step(self, state, rng, data):
        """One ascent step on :func:`potential_objective` (live generator vs ``gen_prev``, same fresh ``z``).
        """
        z = self.latent(rng, self.cfg.batch_size, state["gen"][0][0])
        x_new = self.gen.forward.unchecked(state["gen"], z)[0]
        x_prev = self.gen.forward.unchecked(state["gen_prev"], z)[0]
        _, grads, logs = _potential_objective(self.potential, state["phi"], x_new, x_prev, self.h)
        neg = [(-dW, -db) for dW, db in grads]                      # the optimiser minimises -J
        pp, op = self.opt_phi.step.unchecked(state["phi"], neg, state["opt_phi"])
        return {**state, "phi": pp, "opt_phi": op}, logs

    @checks.training_step
    def potential_phase(self, state, rng, data):
        """``n_phi`` ascent steps. Fused (``fused``, the default): the ``n_phi`` latent batches are drawn
        first, in :meth:`potential_step`'s order, and moved in one transfer; both generators run once
        over all of them (they do not change in this phase); :func:`potential_grads_fused` feeds the
        optimiser. Else the per-step reference. The input state is donated."""
        if self.fused and isinstance(state["phi"], FlatParams):
            return self._fused_potential_phase(state, rng)
        logs = {}
        for _ in range(self.n_phi):
            state, logs = self.potential_step(state, rng, data)
        return state, logs

    @checks.training_step
    def generator_step(self, state, rng, data):
        """One generator step on :func:`sbe_generator_grads` with a fresh ``z``; returns ``(state, logs)``."""
        z = self.latent(rng, self.cfg.batch_size, state["gen"][0][0])
        _, grads, logs = _sbe_generator_grads(self.objective, self.gen, state["gen"], self.critic, state["critic"],
                                             self.potential, state["phi"], z, self.h)
        gp, og = self.opt_gen.step.unchecked(state["gen"], grads, state["opt_gen"])
        return {**state, "gen": gp, "opt_gen": og}, logs

    @checks.training_step
    def generator_phase(self, state, rng, data):
        """The generator steps of one outer iteration; the generator before them becomes ``gen_prev``."""
        if self.fused and isinstance(state["gen"], FlatParams):
            return self._fused_generator_phase(state, rng)
        snapshot = copy_params.unchecked(state["gen"])          # becomes the anchor of the next outer iteration
        state, logs = super().generator_phase(state, rng, data)
        return {**state, "gen_prev": snapshot}, logs

    @checks.training_step
    def outer_step(self, state, rng, data):
        """One outer iteration of SBE: the critic, potential and generator phases, in that order."""
        state, lc = self.critic_phase(state, rng, data)
        state, lp = self.potential_phase(state, rng, data)
        state, lg = self.generator_phase(state, rng, data)
        return state, {**lc, **lp, **lg}

    # -- the fused phases (the per-step functions above are their reference)
    def _latents(self, rng, n, like):
        """``n`` latent batches drawn as ``n`` calls of :meth:`latent` draw them, in one transfer, (n B, latent)."""
        B, k = self.cfg.batch_size, self.cfg.latent_dim
        return from_host(_np.concatenate([rng.standard_normal((B, k)) for _ in range(n)]), namespace(like),
                         like.dtype, like.device)

    def _fused_potential_phase(self, state, rng):
        B = self.cfg.batch_size
        z = self._latents(rng, self.n_phi, state["gen"].buffer)
        x_new = steps.forward(self.gen, state["gen"], z)[0][-1]              # (n_phi B, n)
        x_prev = steps.forward(self.gen, state["gen_prev"], z)[0][-1]
        consts = self._potential_constants(x_new)
        xp = namespace(x_new)
        pp, op = state["phi"], state["opt_phi"]
        for k in range(self.n_phi):
            rows = (slice(k * B, (k + 1) * B), slice(None))
            X = xp.concat([x_new[rows], x_prev[rows]], axis=0)
            grads, logs = potential_grads_fused(self.potential, pp, X, self.h, consts, logs=k == self.n_phi - 1)
            pp, op = self.opt_phi.step.unchecked(pp, grads, op)
        return {**state, "phi": pp, "opt_phi": op}, logs

    def _fused_generator_phase(self, state, rng):
        gp, og = state["gen"], state["opt_gen"]
        prev = state["gen_prev"]
        if isinstance(prev, FlatParams) and prev.buffer.shape == gp.buffer.shape:
            prev.buffer[...] = gp.buffer             # the anchor of the next outer iteration
        else:
            prev = flatten(gp)
        B = self.cfg.batch_size
        z = self._latents(rng, self.cfg.n_gen, gp.buffer)
        consts = steps.constants(self._consts, self.objective, gp.buffer, B)
        for k in range(self.cfg.n_gen):
            grads, logs = sbe_generator_grads_fused(self.objective, self.gen, gp, self.critic, state["critic"],
                                                    self.potential, state["phi"], z[k * B:(k + 1) * B, :], self.h,
                                                    consts, logs=k == self.cfg.n_gen - 1)
            gp, og = self.opt_gen.step.unchecked(gp, grads, og)
        return {**state, "gen": gp, "opt_gen": og, "gen_prev": prev}, logs

    def _potential_constants(self, like):
        key = (str(like.dtype), str(getattr(like, "device", None)))
        c = self._phi_consts.get(key)
        if c is None:
            c = self._phi_consts[key] = PotentialConstants(namespace(like), self.cfg.batch_size, self.h, like.dtype,
                                                getattr(like, "device", None))
        return c


class PotentialConstants:
    """Seeds of :func:`potential_grads_fused` for ``B`` rows and step ``h``, built once per run.

    ``seed`` (3B, 1): ``-c`` on the live rows, ``+c`` on the anchor rows, ``1`` on the penalty rows,
    ``c = 1/(hB)``; ``db_out`` (1,): the output bias gradient of ``-J``, exactly 0 (``B`` seeds ``-c`` and ``B`` seeds ``+c``).
    """

    def __init__(self, xp, B, h, dtype, device):
        c = 1.0 / (h * B)
        full = (lambda v: xp.full((B, 1), v, dtype=dtype, device=device))
        self.B, self.c = B, c
        self.seed = xp.concat([full(-c), full(c), full(1.0)], axis=0)
        self.db_out = xp.zeros((1,), dtype=dtype, device=device)      # the live and anchor seeds cancel


def potential_grads_fused(potential, pparams, X, h, consts, logs=True):
    """The gradient of ``-J`` (:func:`potential_objective`, to *minimise*) for SBE's one-hidden-layer
    potential ``Phi(x) = s(x W_1 + b_1) W_2 + b_2``, in one pass over the stacked rows.

    With ``c = 1/(hB)``, ``e = s'(a) * W_2^T`` per row (the input-gradient pass, seed 1) and
    ``g = e W_1^T = grad Phi`` at the anchor rows (Wasserstein proximal of GANs, Prop. 3):

    - loss rows: seeds ``-c`` (live ``x``), ``+c`` (anchor ``y``), so ``e_loss = seed * e``;
    - the norm-square term ``(c/2) sum_i ||g_i||^2`` has ``u = dP/dg = c g``; its double backward:
      ``bar e = u W_1``, ``bar d = bar e * s'(a)`` (into ``W_2``), ``bar a = bar e * W_2^T * s''(a)``
      (smooth ``s``, into ``W_1``, ``b_1`` on the anchor rows);
    - ``dW_1 = [X; u]^T [e_loss + (0; bar a); e_anchor]``, ``dW_2 = [h; bar d]^T [seed_loss; 1]``,
      ``db_1 = sum_i (e_loss(x_i) + e_loss(y_i) + bar a_i)``, ``db_2 = 0``: one matrix product per layer.

    Parameters
    ----------
    potential : MLP of sizes (n, m, 1) with a linear output; pparams : its parameters
    X : array (2B, n), the live samples ``x`` then the anchor samples ``y`` (same ``z``)
    h : float > 0
    consts : :class:`PotentialConstants` for ``B`` and ``h``
    logs : bool
        Compute the logs (the phase reads them of its last step only).

    Returns
    -------
    grads : list of (dW, db), ``d(-J)/dp``
    logs : dict of 0-d arrays ``phi_obj``, ``phi_gap``, ``phi_grad_sq`` (as
        :func:`potential_objective`), empty when ``logs`` is False

    Equals the negated gradient of :func:`potential_objective` to rounding (tests: 1e-12 in
    float64). Not validated (a training-step internal).
    """
    xp = namespace(X)
    B = consts.B
    kind = potential.activation
    (W1, _), (W2, _) = pparams[0], pparams[1]
    W1t, w2t = steps.transposes(pparams)[0], steps.transposes(pparams)[1]          # (m, n), (1, m)
    hs, as_ = steps.forward(potential, pparams if logs else pparams[:1], X)
    a, hid = as_[0], hs[1]                                                          # (2B, m)
    D = steps.activation_deriv(xp, kind, a, hid)
    e = steps.apply_deriv(xp, kind, D, w2t)                                              # (2B, m)
    A = (slice(B, 2 * B), slice(None))                                             # the anchor rows
    e_prev = e[A]
    g = e_prev @ W1t                                                                # grad Phi(y), (B, n)
    u = consts.c * g
    bar_e = u @ W1                                                                  # (B, m)
    bar_d = steps.apply_deriv(xp, kind, D[A], bar_e)
    e_loss = consts.seed[:2 * B, :] * e
    # the live and anchor rows' bias terms are added row by row before the sum: they cancel exactly
    # where the two generators agree (the first outer iteration), as in the reference
    de = e_loss[:B, :] + e_loss[A]
    if ACTIVATIONS[kind].smooth:
        bar_a = bar_e * w2t * ACTIVATIONS[kind].d2f(a[A], hid[A])
        e_loss = xp.concat([e_loss[:B, :], e_loss[A] + bar_a], axis=0)
        de = de + bar_a
    gW1 = steps.tdot(xp.concat([X, u], axis=0), xp.concat([e_loss, e_prev], axis=0))
    gW2 = steps.tdot(xp.concat([hid, bar_d], axis=0), consts.seed)
    grads = [(gW1, xp.sum(de, axis=0)), (gW2, consts.db_out)]
    if not logs:
        return grads, {}
    phi = hs[-1]
    gap = (xp.mean(phi[:B, :]) - xp.mean(phi[A])) / h
    gsq = xp.mean(xp.sum(g * g, axis=1))
    J = gap - 0.5 * gsq / h
    return grads, {"phi_obj": J, "phi_gap": gap, "phi_grad_sq": gsq}


def sbe_generator_grads_fused(obj, gen, gparams, critic, cparams, potential, pparams, z, h, consts, logs=True):
    """The fused twin of :func:`sbe_generator_grads`: the gradient of ``F + (1/h) mean Phi(g_theta(z))``.

    One generator forward, the critic's input-gradient pass (:func:`refimpl.steps.critic_input_grad`),
    the potential's (seed ``1/(hB)``: ``grad Phi(x) / (hB)``), one generator backward seeded with
    their sum (Wasserstein proximal of GANs, Prop. 3).

    Parameters
    ----------
    z : array (B, latent_dim); consts : :class:`refimpl.steps.StepConstants` for ``B``
    logs : bool
        Compute the logs ``gen_loss`` (``F``) and ``phi_term`` (``(1/h) mean Phi(x)``).

    Returns
    -------
    grads : list of (dW, db) like ``gparams``; logs : dict of 0-d arrays (empty when ``logs`` is False)
    """
    xp = namespace(z)
    B = z.shape[0]
    kind = potential.activation
    hs, as_ = steps.forward(gen, gparams, z)
    fake = hs[-1]
    loss, dfake = steps.critic_input_grad(obj, critic, cparams, fake, consts)
    wt = steps.transposes(pparams)
    ph, pa = steps.forward(potential, pparams if logs else pparams[:1], fake)
    e = steps.apply_deriv(xp, kind, steps.activation_deriv(xp, kind, pa[0], ph[1]), (1.0 / (h * B)) * wt[1])   # (B, m)
    grads = steps.backward_params(gen, gparams, hs, as_, dfake + e @ wt[0])
    return grads, ({"gen_loss": loss, "phi_term": xp.mean(ph[-1]) / h} if logs else {})
