"""Parametric smoothed WGAN (SWGAN): Algorithm 1 with neural dual potentials.

Paper: Sanjabi et al., "Solving Approximate Wasserstein GANs to Stationarity"
(``papers/smoothed-wgan-stationarity.md`` in the shared folder), Sec. 4 (Lemma 4.1), Sec. 4.1
(eq. 12), Sec. 4.2 (eqs. 14-15), Sec. 5 (Theorem 5.1, Algorithm 1), Sec. 6.1,
Appendix I.1 and Table 1; project reading in ``conventions.md``, "Smoothed OT (SWGAN)".

One outer iteration (one generator step of Algorithm 1):

1. **Dual oracle** (Sec. 4.1, parametric): two networks give the potentials ``phi`` (on
   generated points) and ``psi`` (on data); at most ``n_critic`` Adam steps on ``-F``, the dual
   of Lemma 4.1 (eq. 12) on fresh batches, stopped by eq. 15 (*Termination* below).
2. **Generator step** (Algorithm 1, Theorem 5.1): one generator backward seeded with the cost's
   input gradient weighted by the density ratios ``m_ij`` of the current potentials.

The formulas are in :mod:`refimpl.swgan_objectives` (the checked functions of one batch); the
training step runs their fused forms (:mod:`refimpl.swgan_steps`).

Termination (eq. 15). With ``V`` and ``m`` of the step's batch the statistic is the mean
density ratio over all ``M x N`` pairs of the batch, ``s = (1/(MN)) sum_ij m_ij`` (equal
to :func:`refimpl.ot.termination_statistic`; the paper's form uses ``S`` i.i.d. diagonal
pairs, the all-pairs mean estimates the same ``E m`` with less variance). The phase stops
*before* the update when ``|s - 1| <= stop_tol`` (default 0.05; the paper gives no
value). ``stop_tol = 0`` disables the test (always ``n_critic`` steps). The check is a
necessary condition only (Sec. 4.2): ``s = 1`` holds at the optimum but also elsewhere.

Where the test is decided (``SWGANConfig.stop_every``), a documented choice, since reading
``s`` on the host synchronises a GPU:

* ``stop_every = None`` (default): ``1`` when the arrays are NumPy's (a host read is free
  there, and it skips the work of the masked steps: the paper's rule, and the project's
  recorded CPU runs), ``0`` on every other namespace (CuPy, array_api_strict).
* ``stop_every = 0``: on the device. Every one of the ``n_critic`` dual steps is
  computed; once the test has held, the remaining updates are masked out
  (``where(done, old, new)`` on the potentials and the optimiser's moment estimates), so
  the potentials equal those of the host rule on the same batches, with **no host round
  trip** in the outer step. Costs: the masked steps' work is spent anyway, the data and
  latent draws of all ``n_critic`` batches advance the RNG, and the optimiser's Python
  step counter ``t`` (Adam's bias correction) counts the masked steps too. The logs
  ``dual``, ``stat`` are those of the step that ended the phase; ``dual_steps`` is a 0-d
  device integer.
* ``stop_every = k >= 1``: on the host before the update of dual steps ``0, k, 2k, ...``
  (one round trip each); ``k = 1`` is the paper's rule exactly and stops at once.

Critic sign. The project's critic ``f`` is large on data (conventions.md, "One critic
sign"). As ``lam -> 0`` the dual forces ``phi(x) - psi(y) <= c(x, y)`` and for a metric
cost ``phi = psi = -f`` gives ``F = E_data f - E_gen f``, the Kantorovich dual; so the
project's critic is ``f = -psi`` (on data) and ``-phi`` (on generated points).
:meth:`SWGANMethod.critic_values` returns ``-psi(x)``; the module itself keeps the
paper's ``phi``/``psi``.

Defaults (Table 1, Appendix I.1): ``lam = 0.01``, L2 regulariser, ``c = ||x - y||_1``,
batch 128 x 128, Adam(``beta = (0.5, 0.9)``), generator lr ``3e-3``, dual lr ``1e-3``,
at most 20 dual steps per generator step, 10,000 generator steps; generator 2 hidden
layers of 128 tanh, potentials 2 hidden layers of 128 ReLU; 4-D Gaussian latent.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import validation as checks, steps, swgan_steps as core
from .backend import backend_name, namespace
from .flat import flatten
from .nn import MLP
from .ot import COSTS, REGS, cost_matrix
from .optim import make_optimiser
from .regularizers import get_regularizer
from .swgan_objectives import (cost_input_gradient, dual_loss_grads, generator_grads, generator_objective,
                               pairwise_cost, should_stop)
from .train import GANMethod

__all__ = ["SWGANConfig", "SWGANMethod", "pairwise_cost", "cost_input_gradient", "generator_objective",
           "dual_loss_grads", "generator_grads", "should_stop"]


# ----------------------------------------------------------------------------- the method
def _pos_int(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def _pos_real(name, v, allow_zero=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 \
            or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {v!r}")


@dataclass(frozen=True)
class SWGANConfig:
    """Hyperparameters of parametric SWGAN (defaults: Table 1 and Appendix I.1).

    ``batch_size`` is ``M`` (generated points per batch) and ``data_batch_size`` is
    ``N`` (data points; ``None``: equal to ``batch_size``); the dual loss uses all
    ``M x N`` pairs. ``n_critic`` is the maximum number of dual steps per generator
    step, ``stop_tol`` the tolerance of the eq. 15 test (0 disables it), ``stop_every``
    where the test is decided (module docstring, *Termination*: ``None``, the default, is 1 on
    NumPy and 0 elsewhere; 0 on the device with no host round trip; ``k >= 1`` on the host every
    ``k`` dual steps). ``data_scale``
    has the meaning of :class:`refimpl.train.GANConfig`'s (the data source divides the data
    by it and :meth:`GANMethod.samples` multiplies generated points back); the costs, and so
    ``lam``, are then in the scaled units.
    """
    lam: float = 0.01
    reg: str = "l2"
    cost: str = "l1"
    data_dim: int = 2
    latent_dim: int = 4
    gen_hidden: tuple = (128, 128)
    potential_hidden: tuple = (128, 128)
    gen_activation: str = "tanh"
    potential_activation: str = "relu"
    gen_output: str = "linear"
    batch_size: int = 128
    data_batch_size: int | None = None
    n_critic: int = 20
    stop_tol: float = 0.05
    stop_every: int | None = None
    n_gen: int = 1
    optimiser: str = "adam"
    lr_gen: float = 3e-3
    lr_critic: float = 1e-3
    betas: tuple = (0.5, 0.9)
    data_scale: float = 1.0     # train on data / data_scale (as GANConfig); samples() maps back

    def __post_init__(self):
        for k in ("data_dim", "latent_dim", "batch_size", "n_critic", "n_gen"):
            _pos_int(k, getattr(self, k))
        if self.data_batch_size is not None:
            _pos_int("data_batch_size", self.data_batch_size)
        if self.stop_every is not None and (isinstance(self.stop_every, bool)
                                            or not isinstance(self.stop_every, numbers.Integral) or self.stop_every < 0):
            raise ValueError(f"stop_every must be None or an integer >= 0, got {self.stop_every!r}")
        _pos_real("lam", self.lam)
        _pos_real("stop_tol", self.stop_tol, allow_zero=True)
        _pos_real("data_scale", self.data_scale)
        if not isinstance(self.reg, str) or self.reg not in REGS:
            raise ValueError(f"unknown regulariser reg={self.reg!r}; choose one of {', '.join(REGS)}")
        checks.choice(self.cost, "cost", COSTS)
        self.make_optimiser(self.lr_gen), self.make_optimiser(self.lr_critic)
        MLP((self.latent_dim, *self.gen_hidden, self.data_dim), self.gen_activation, self.gen_output)
        MLP((self.data_dim, *self.potential_hidden, 1), self.potential_activation, "linear")

    @property
    def n_data(self):
        return self.batch_size if self.data_batch_size is None else self.data_batch_size

    @checks.checked()
    def make_optimiser(self, lr):
        """A fresh optimiser of this config (``optimiser``, ``betas``) with learning rate ``lr``.

        ``lr`` finite > 0, checked by :func:`refimpl.optim.make_optimiser`
        (``ValueError``/``TypeError`` naming it).
        """
        if self.optimiser == "adam":
            return make_optimiser("adam", lr=lr, beta1=self.betas[0], beta2=self.betas[1])
        return make_optimiser(self.optimiser, lr=lr)


class SWGANMethod(GANMethod):
    """Parametric SWGAN (Algorithm 1 with the parametric dual oracle of Sec. 4.1).

    State: ``gen``, ``opt_gen`` as in :class:`refimpl.train.GANMethod`, plus ``phi``,
    ``psi`` (potential-network parameters), ``opt_phi``, ``opt_psi``, and two counters
    ``dual_steps`` (dual updates so far) and ``outer`` (generator phases so far). The networks'
    parameters are :class:`refimpl.flat.FlatParams`, updated in place: every step donates its
    input state (:func:`refimpl.flat.copy_state` keeps one). ``fused`` (default True) runs the
    fused steps (:func:`refimpl.swgan_steps.dual_step_grads`, :func:`refimpl.swgan_steps.fused_generator_grads`); False, the per-step
    reference (:func:`refimpl.swgan_steps.dual_loss_grads`, :meth:`generator_step`).
    Logs per outer iteration: ``dual`` (``F`` on the last dual batch), ``stat`` (the
    eq. 15 statistic that ended the phase, or the one before the last update),
    ``dual_steps`` (updates in this phase) and ``gen_loss``.
    """
    name = "swgan"

    def __init__(self, cfg: SWGANConfig = SWGANConfig(), *, name=None):
        if not isinstance(cfg, SWGANConfig):
            raise TypeError(f"cfg must be an SWGANConfig (SWGANMethod's configuration), got {type(cfg).__name__}")
        self._setup_generator(cfg, name)
        self.phi_net = MLP((cfg.data_dim, *cfg.potential_hidden, 1), cfg.potential_activation, "linear")
        self.psi_net = MLP((cfg.data_dim, *cfg.potential_hidden, 1), cfg.potential_activation, "linear")
        self.reg = get_regularizer(cfg.reg)          # refimpl.regularizers.KL or L2

    @checks.checked()
    def init_state(self, rng, xp, dtype, device=None):
        """Fresh parameters of the generator and both potentials, and their optimiser states.

        ``rng`` a ``numpy.random.Generator``, ``dtype`` float32 or float64 of ``xp``, checked by
        :meth:`refimpl.nn.MLP.init`; arrays on ``device``.
        Each network's parameters are a :class:`refimpl.flat.FlatParams` (one buffer, updated in
        place by the optimisers: a step donates its input state).
        """
        gp = flatten(self.gen.init(rng, xp=xp, dtype=dtype, device=device))
        php = flatten(self.phi_net.init(rng, xp=xp, dtype=dtype, device=device))
        psp = flatten(self.psi_net.init(rng, xp=xp, dtype=dtype, device=device))
        return {"gen": gp, "phi": php, "psi": psp, "opt_gen": self.opt_gen.init.unchecked(gp),
                "opt_phi": self.opt_critic.init.unchecked(php), "opt_psi": self.opt_critic.init.unchecked(psp),
                "dual_steps": 0, "outer": 0}

    @checks.checked()
    def critic_values(self, state, x):
        """The project's critic ``f(x) = -psi(x)`` (large on data; module docstring), shape (B,).

        Not a training step: ``state["psi"]`` and ``x`` (B, data_dim), in the parameters' dtype,
        are validated (errors name ``state["psi"]``
        or ``x``).
        """
        if not isinstance(state, dict) or "psi" not in state:
            raise TypeError(f"state must be a dict from init_state with a 'psi' entry, got {type(state).__name__}")
        psi, x = self.psi_net.validate(state["psi"], ("x", x, (None, self.cfg.data_dim)), pname='state["psi"]')
        return -self.psi_net.forward.unchecked(psi, x)[0][:, 0]

    # -- dual oracle
    @checks.training_step
    def dual_batch(self, state, rng, data):
        """A fresh batch: data ``y`` (N, d) then generated ``x = G(z)`` (M, d).
        """
        y = data.sample(rng, self.cfg.n_data)
        x = self.generate(state, self.latent(rng, self.cfg.batch_size, y))
        return x, y

    # -- phases. ``fused`` (default True): the fused steps above (one forward per network per step,
    # the costs of the whole dual phase together); False: the per-step reference
    # (core.dual_loss_grads, generator_step), kept as the test reference.
    def _own(self, *names):
        """True when none of the methods ``names`` is overridden by a subclass."""
        return all(getattr(type(self), n) is getattr(SWGANMethod, n) for n in names)

    def _stop_rule(self, xp):
        """``(stop_every, on_device, on_host)`` of the eq. 15 test for arrays of ``xp``."""
        cfg = self.cfg
        stop_every = cfg.stop_every
        if stop_every is None:
            stop_every = 1 if backend_name(xp) == "numpy" else 0
        return stop_every, cfg.stop_tol > 0 and stop_every == 0, cfg.stop_tol > 0 and stop_every >= 1

    def _drawn(self, state, phase):
        """Whether ``phase`` ("dual", "gen" or "outer") runs on draws made before it: fused, the
        eq. 15 test not read on the host (the reference draws a batch only when its step runs),
        and the batches and steps this class's own."""
        if not self.fused:
            return False
        names = {"dual": ("dual_batch", "latent", "generate"), "gen": ("generator_step", "latent"),
                 "outer": ("dual_batch", "latent", "generate", "generator_step", "critic_phase",
                           "generator_phase")}[phase]
        return self._own(*names) and (phase == "gen" or not self._stop_rule(namespace(state["gen"][0][0]))[2])

    def draw(self, rng, data, critic=True, generator=True):
        """Host draws of one outer iteration (or of one phase), in the reference's order: per dual
        step the data (``data.draw``, ``N`` rows) then ``z`` (``M`` rows); then the same per
        generator step. ``{"real": (K N, ...) stacked, "z": (K M, latent_dim)}``; a data source
        without ``draw`` is sampled on the device here instead (``"real"`` a list of device batches)."""
        cfg = self.cfg
        host = hasattr(data, "draw")
        reals, zs = [], []
        for _ in range((cfg.n_critic if critic else 0) + (cfg.n_gen if generator else 0)):
            reals.append(data.draw(rng, cfg.n_data) if host else data.sample(rng, cfg.n_data))
            zs.append(rng.standard_normal((cfg.batch_size, cfg.latent_dim)))
        return {"real": np.concatenate(reals) if host else reals, "z": np.concatenate(zs)}

    @staticmethod
    def _gathered(dev, data):
        return dev["real"] if not hasattr(data, "gather") else data.gather(dev["real"])

    def critic_phase(self, state, rng, data):
        """Up to ``n_critic`` Adam steps on ``-F``, stopped early by eq. 15 (module docstring).

        ``stop_every = 0``: the decision stays on the device (masked updates, no host round
        trip); ``k >= 1``: tested on the host before the update of every ``k``-th step;
        ``None``: 1 on NumPy, 0 elsewhere. Fused (``fused``), without a host test, all the
        phase's draws are made first and moved to the device in one transfer per kind.. The state is donated.
        """
        if not self.fused:
            return self._critic_phase_reference(state, rng, data)
        if self._drawn(state, "dual"):
            dev = self.put_draws(self.draw(rng, data, generator=False), data, state["gen"][0][0])
            return self._dual_phase_on(state, self._gathered(dev, data), dev["z"])

        def batches():          # one batch per step, drawn when its step runs (the reference's order)
            for _ in range(self.cfg.n_critic):
                x, y = self.dual_batch(state, rng, data)
                yield x, y, None
        return self._dual_updates(state, batches())

    def critic_phase_drawn(self, state, dev, data):
        """The fused dual phase on device draws ``dev`` (:meth:`put_draws` of :meth:`draw` with
        ``generator=False``); no host data is moved."""
        return self._dual_phase_on(state, self._gathered(dev, data), dev["z"])

    def _dual_phase_on(self, state, y, z):
        """The dual phase on device batches: the first ``K N`` rows of ``y`` and ``K M`` of ``z``.

        The generator is fixed during the phase: one forward over all ``K M`` latent rows and the
        costs of every batch together (:func:`refimpl.swgan_steps.phase_costs`), except on NumPy, where every pass
        runs on one core with a fresh temporary and arrays of a whole phase fall out of the cache
        (at 20 x 128 x 128, float64: 7.3 ms for the generator forward and 7.5 ms for the costs,
        against 4.4 ms and 1.0 ms batch by batch): there each batch is formed when its step runs.
        """
        cfg = self.cfg
        K, M, N = cfg.n_critic, cfg.batch_size, cfg.n_data
        xp = namespace(z)
        y = y if y.shape[0] == K * N else y[:K * N, :]
        z = z if z.shape[0] == K * M else z[:K * M, :]
        if backend_name(xp) == "numpy":
            return self._dual_updates(state, ((self.generate(state, z[k * M:(k + 1) * M, :]),
                                               y[k * N:(k + 1) * N, :], None) for k in range(K)))
        x = steps.forward(self.gen, state["gen"], z)[0][-1]             # (K M, d)
        Cs = core.phase_costs(x, y, K, M, N, cfg.cost, xp)
        return self._dual_updates(state, ((x[k * M:(k + 1) * M, :], y[k * N:(k + 1) * N, :], Cs[k])
                                          for k in range(K)))

    def _dual_updates(self, state, batches):
        """The fused dual steps on ``batches`` (``(x, y, C or None)`` per step), with the eq. 15 rule."""
        cfg = self.cfg
        xp = namespace(state["gen"][0][0])
        stop_every, on_device, on_host = self._stop_rule(xp)
        php, psp, oph, ops = state["phi"], state["psi"], state["opt_phi"], state["opt_psi"]
        steps_, F, stat, done = 0, None, None, None
        for i, (x, y, C) in enumerate(batches):
            if C is None:
                C = cost_matrix.unchecked(x, y, cfg.cost, xp)
            F_i, gphi, gpsi, stat_i = core.dual_step_grads(self.phi_net, php, self.psi_net, psp, x, y, C, cfg.lam,
                                                       self.reg, logs=cfg.stop_tol > 0 or i == cfg.n_critic - 1)
            if on_host and i % stop_every == 0 and should_stop(stat_i, cfg.stop_tol):
                F, stat = F_i, stat_i
                break
            old = core.snapshot([php, psp, oph, ops], xp) if on_device else None
            php, oph = self.opt_critic.step.unchecked(php, gphi, oph)
            psp, ops = self.opt_critic.step.unchecked(psp, gpsi, ops)
            if on_device:
                F, stat, done = core.device_stop(xp, done, F, stat, F_i, stat_i, cfg.stop_tol)
                php, psp, oph, ops = core.select(done, old, [php, psp, oph, ops], xp)
                steps_ = steps_ + xp.astype(xp.logical_not(done), xp.int64)
            else:
                F, stat = F_i, stat_i
                steps_ += 1
        state = {**state, "phi": php, "psi": psp, "opt_phi": oph, "opt_psi": ops,
                 "dual_steps": state["dual_steps"] + steps_}
        return state, {"dual": F, "stat": stat, "dual_steps": steps_}

    def _critic_phase_reference(self, state, rng, data):
        """:meth:`critic_phase` step by step with :func:`refimpl.swgan_steps.dual_loss_grads` (the test reference)."""
        cfg = self.cfg
        stop_every = cfg.stop_every
        steps, F, stat, done = 0, None, None, None
        for i in range(cfg.n_critic):
            x, y = self.dual_batch(state, rng, data)
            if stop_every is None:
                stop_every = 1 if backend_name(namespace(x)) == "numpy" else 0
            on_device = cfg.stop_tol > 0 and stop_every == 0
            F_i, gphi, gpsi, stat_i = core.dual_loss_grads(self.phi_net, state["phi"], self.psi_net, state["psi"],
                                                       x, y, cfg.lam, self.reg, cfg.cost)
            if not on_device:
                F, stat = F_i, stat_i
                if cfg.stop_tol > 0 and i % stop_every == 0 and should_stop(stat, cfg.stop_tol):
                    break
            keys = ("phi", "psi", "opt_phi", "opt_psi")
            old = core.snapshot({k: state[k] for k in keys}, namespace(x)) if on_device else None
            php, oph = self.opt_critic.step.unchecked(state["phi"], gphi, state["opt_phi"])
            psp, ops = self.opt_critic.step.unchecked(state["psi"], gpsi, state["opt_psi"])
            new = {"phi": php, "psi": psp, "opt_phi": oph, "opt_psi": ops}
            if on_device:
                xp = namespace(x)
                F, stat, done = core.device_stop(xp, done, F, stat, F_i, stat_i, cfg.stop_tol)
                new = core.select(done, old, new, xp)
                steps = steps + xp.astype(xp.logical_not(done), xp.int64)
            else:
                steps += 1
            state = {**state, **new}
        state = {**state, "dual_steps": state["dual_steps"] + steps}
        return state, {"dual": F, "stat": stat, "dual_steps": steps}

    # -- generator
    @checks.training_step
    def generator_step(self, state, rng, data):
        """One generator update of Algorithm 1 on a fresh batch (:func:`generator_grads` unchecked).

        The per-step reference of :meth:`generator_phase`.
        """
        cfg = self.cfg
        y = data.sample(rng, cfg.n_data)
        z = self.latent(rng, cfg.batch_size, y)
        loss, grads, _ = core.generator_grads(self.gen, state["gen"], z, y, self.phi_net, state["phi"],
                                          self.psi_net, state["psi"], cfg.lam, self.reg, cfg.cost)
        gp, og = self.opt_gen.step.unchecked(state["gen"], grads, state["opt_gen"])
        return {**state, "gen": gp, "opt_gen": og}, {"gen_loss": loss}

    @checks.training_step
    def generator_phase(self, state, rng, data):
        """``n_gen`` generator updates: fused (:func:`refimpl.swgan_steps.fused_generator_grads`, the phase's draws
        first, one transfer per kind) unless ``fused`` is False or a subclass overrides
        :meth:`generator_step`. The state is donated."""
        if not self._drawn(state, "gen"):
            return super().generator_phase(state, rng, data)
        dev = self.put_draws(self.draw(rng, data, critic=False), data, state["gen"][0][0])
        return self._generator_phase_on(state, self._gathered(dev, data), dev["z"])

    def generator_phase_drawn(self, state, dev, data):
        """The fused generator phase on device draws ``dev`` (:meth:`put_draws` of :meth:`draw` with
        ``critic=False``)."""
        return self._generator_phase_on(state, self._gathered(dev, data), dev["z"])

    def _generator_phase_on(self, state, y, z):
        """The generator steps on the last ``n_gen N`` rows of ``y`` and ``n_gen M`` rows of ``z``."""
        cfg = self.cfg
        G, M, N = cfg.n_gen, cfg.batch_size, cfg.n_data
        y0, z0 = y.shape[0] - G * N, z.shape[0] - G * M
        gp, og, loss = state["gen"], state["opt_gen"], None
        for k in range(G):
            yk = y if y.shape[0] == N else y[y0 + k * N:y0 + (k + 1) * N, :]
            zk = z if z.shape[0] == M else z[z0 + k * M:z0 + (k + 1) * M, :]
            loss, grads, _ = core.fused_generator_grads(self.gen, gp, zk, yk, self.phi_net, state["phi"], self.psi_net,
                                                    state["psi"], cfg.lam, self.reg, cfg.cost)
            gp, og = self.opt_gen.step.unchecked(gp, grads, og)
        return {**state, "gen": gp, "opt_gen": og}, {"gen_loss": loss}

    def outer_step_drawn(self, state, dev, data):
        """One fused outer iteration on device draws ``dev`` (:meth:`put_draws` of :meth:`draw`):
        the data rows are gathered once; no host data is moved and nothing is read back."""
        y, z = self._gathered(dev, data), dev["z"]
        state, lc = self._dual_phase_on(state, y, z)
        state, lg = self._generator_phase_on(state, y, z)
        return {**state, "outer": state["outer"] + 1}, {**lc, **lg}

    @checks.training_step
    def outer_step(self, state, rng, data):
        """One outer iteration: the dual phase, then ``n_gen`` generator steps; counts ``outer``.

        Fused and without a host test of eq. 15, every draw of the iteration is made first, in the
        reference's order, and moved to the device in one transfer per kind (:meth:`draw`,
        :meth:`put_draws`, :meth:`outer_step_drawn`). Parameters are updated in place (the input
        state is donated; :func:`refimpl.flat.copy_state` keeps one).
        """
        if self._drawn(state, "outer"):
            return self.outer_step_drawn(state, self.put_draws(self.draw(rng, data), data, state["gen"][0][0]), data)
        state, logs = super().outer_step(state, rng, data)
        return {**state, "outer": state["outer"] + 1}, logs

