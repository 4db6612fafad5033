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

Input rules: public functions validate at entry by the rules of :mod:`refimpl._checks`
(errors name the argument); the training steps call the ``_``-prefixed twins, which do
not validate, so a step makes no host round trip.
"""
from __future__ import annotations

from . import _checks
from .backend import namespace
from .nn import MLP, _add_params, _copy_params
from .objectives import Objective, _check_generator, _generator_dfake, _net
from .rwp import check_h, check_steps
from .train import GANConfig, GANMethod


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

    Input rules of :mod:`refimpl._checks`: ``x_new`` and ``x_prev`` non-empty, finite, in
    the potential parameters' dtype; errors name the argument.
    """
    h = check_h(h)
    _net(potential, "potential")
    d = potential.sizes[0]
    pparams, x_new, x_prev = potential._validate(pparams, ("x_new", x_new, (None, d)), ("x_prev", x_prev, (None, d)),
                                                 pname="pparams", nonempty=True)
    return _potential_objective(potential, pparams, x_new, x_prev, h)


def _potential_objective(potential, pparams, x_new, x_prev, h):
    xp = namespace(x_new, x_prev)
    B_new, B_prev = x_new.shape[0], x_prev.shape[0]
    phi_new, cache_new = potential._forward(pparams, x_new)                  # (B, 1)
    g_prev, tape = potential._input_gradient(pparams, x_prev)                # (B, n); tape holds Phi(y)
    phi_prev = tape.cache.hs[-1]                                             # (B, 1)
    gap = (xp.mean(phi_new) - xp.mean(phi_prev)) / h
    gsq = xp.mean(xp.sum(g_prev * g_prev, axis=1))
    J = gap - 0.5 * gsq / h
    _, g1 = potential._backward(pparams, cache_new, xp.full_like(phi_new, 1.0 / (h * B_new)), need_dx=False)
    _, g2 = potential._backward(pparams, tape.cache, xp.full_like(phi_prev, -1.0 / (h * B_prev)), need_dx=False)
    _, g3 = potential._input_gradient_vjp(pparams, tape, g_prev * (-1.0 / (h * B_prev)), need_dx=False)
    grads = _add_params(_add_params(g1, g2), g3)
    return J, grads, {"phi_obj": J, "phi_gap": gap, "phi_grad_sq": gsq}


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

    Input rules of :mod:`refimpl._checks` (``fake`` non-empty, finite, the parameters' dtype).
    """
    h = check_h(h)
    if not isinstance(obj, Objective):
        raise TypeError(f"obj must be an Objective, got {type(obj).__name__}")
    _net(critic, "critic"), _net(potential, "potential")
    cparams, fake = critic._validate(cparams, ("fake", fake, (None, critic.sizes[0])), pname="cparams")
    if fake.shape[0] == 0:
        raise ValueError(f"fake must be non-empty, got shape {tuple(fake.shape)}")
    pparams = _checks.params(pparams, "pparams", xp=namespace(fake), dtype=fake.dtype,
                             shapes=potential._param_shapes())
    return _sbe_generator_dfake(obj, critic, cparams, potential, pparams, fake, h)


def _sbe_generator_dfake(obj, critic, cparams, potential, pparams, fake, h):
    xp = namespace(fake)
    B = fake.shape[0]
    loss, dfake = _generator_dfake(obj, critic, cparams, fake)
    phi, pcache = potential._forward(pparams, fake)
    term = xp.mean(phi) / h
    dphi, _ = potential._backward(pparams, pcache, xp.full_like(phi, 1.0 / (h * B)), need_params=False)
    return loss + term, dfake + dphi, {"gen_loss": loss, "phi_term": term}


def sbe_generator_grads(obj, gen, gparams, critic, cparams, potential, pparams, z, h):
    """``F + (1/h) mean Phi(g_theta(z))`` and its gradient w.r.t. the generator parameters.

    Input rules of :mod:`refimpl._checks` (``z`` non-empty, finite; all parameters finite
    in one dtype); errors name the argument.

    Returns
    -------
    total : 0-d array; grads : list of (dW, db) like ``gparams``; logs : dict
    """
    h = check_h(h)
    if not isinstance(obj, Objective):
        raise TypeError(f"obj must be an Objective, got {type(obj).__name__}")
    _net(critic, "critic"), _net(potential, "potential")
    gparams, z = _check_generator(gen, gparams, z, critic, potential)
    kw = dict(xp=namespace(z), dtype=z.dtype)
    cparams = _checks.params(cparams, "cparams", shapes=critic._param_shapes(), **kw)
    pparams = _checks.params(pparams, "pparams", shapes=potential._param_shapes(), **kw)
    return _sbe_generator_grads(obj, gen, gparams, critic, cparams, potential, pparams, z, h)


def _sbe_generator_grads(obj, gen, gparams, critic, cparams, potential, pparams, z, h):
    fake, cache = gen._forward(gparams, z)
    total, dfake, logs = _sbe_generator_dfake(obj, critic, cparams, potential, pparams, fake, h)
    _, grads = gen._backward(gparams, cache, dfake, need_dx=False)
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

    def __init__(self, cfg: GANConfig, h=0.2, n_phi=5, phi_hidden=128, phi_activation="tanh", lr_phi=None):
        super().__init__(cfg)
        self.h = check_h(h)
        self.n_phi = check_steps(n_phi, "n_phi")
        self.phi_hidden = check_steps(phi_hidden, "phi_hidden")
        self.potential = MLP((cfg.data_dim, self.phi_hidden, 1), phi_activation, "linear")
        self.lr_phi = cfg.lr_critic if lr_phi is None else _checks.real(lr_phi, "lr_phi", gt=0)
        self.opt_phi = cfg.make_optimiser(self.lr_phi)

    def config(self):
        return {**super().config(), "sbe_h": self.h, "sbe_n_phi": self.n_phi, "sbe_phi_hidden": self.phi_hidden,
                "sbe_phi_activation": self.potential.activation, "sbe_lr_phi": self.lr_phi}

    @property
    def gen_steps_per_outer(self):
        return self.cfg.n_gen

    def init_state(self, rng, xp, dtype, device=None):
        """Input rules of :mod:`refimpl._checks` (module docstring)."""
        state = super().init_state(rng, xp, dtype, device)
        pp = self.potential.init(rng, xp=xp, dtype=dtype, device=device)
        return {**state, "phi": pp, "opt_phi": self.opt_phi._init(pp), "gen_prev": _copy_params(state["gen"])}

    def potential_step(self, state, rng, data):
        """One ascent step on :func:`potential_objective` (live generator vs ``gen_prev``, same fresh ``z``).

        A training step: ``state`` comes from ``init_state`` and is not validated; it calls the
        unchecked twins (policy of :mod:`refimpl._checks`), so it makes no host round trip.
        """
        z = self.latent(rng, self.cfg.batch_size, state["gen"][0][0])
        x_new = self.gen._forward(state["gen"], z)[0]
        x_prev = self.gen._forward(state["gen_prev"], z)[0]
        _, grads, logs = _potential_objective(self.potential, state["phi"], x_new, x_prev, self.h)
        neg = [(-dW, -db) for dW, db in grads]                      # the optimiser minimises -J
        pp, op = self.opt_phi._step(state["phi"], neg, state["opt_phi"])
        return {**state, "phi": pp, "opt_phi": op}, logs

    def potential_phase(self, state, rng, data):
        """A training step: ``state`` comes from ``init_state`` and is not validated; it calls the unchecked twins (policy of :mod:`refimpl._checks`), so it makes no host round trip."""
        logs = {}
        for _ in range(self.n_phi):
            state, logs = self.potential_step(state, rng, data)
        return state, logs

    def generator_step(self, state, rng, data):
        """A training step: ``state`` comes from ``init_state`` and is not validated; it calls the unchecked twins (policy of :mod:`refimpl._checks`), so it makes no host round trip."""
        z = self.latent(rng, self.cfg.batch_size, state["gen"][0][0])
        _, grads, logs = _sbe_generator_grads(self.objective, self.gen, state["gen"], self.critic, state["critic"],
                                             self.potential, state["phi"], z, self.h)
        gp, og = self.opt_gen._step(state["gen"], grads, state["opt_gen"])
        return {**state, "gen": gp, "opt_gen": og}, logs

    def generator_phase(self, state, rng, data):
        """A training step: ``state`` comes from ``init_state`` and is not validated; it calls the unchecked twins (policy of :mod:`refimpl._checks`), so it makes no host round trip."""
        snapshot = _copy_params(state["gen"])          # becomes the anchor of the next outer iteration
        state, logs = super().generator_phase(state, rng, data)
        return {**state, "gen_prev": snapshot}, logs

    def outer_step(self, state, rng, data):
        """A training step: ``state`` comes from ``init_state`` and is not validated; it calls the unchecked twins (policy of :mod:`refimpl._checks`), so it makes no host round trip."""
        state, lc = self.critic_phase(state, rng, data)
        state, lp = self.potential_phase(state, rng, data)
        state, lg = self.generator_phase(state, rng, data)
        return state, {**lc, **lp, **lg}
