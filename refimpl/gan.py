"""The default method: a GAN's configuration, its data sources, and :class:`GANMethod`.

A method is a :class:`GANMethod` (or a subclass that overrides :meth:`GANMethod.critic_phase`,
:meth:`GANMethod.generator_phase` or :meth:`GANMethod.outer_step`). State is a plain dict of
parameter lists and optimiser states; every step is a function ``(state, rng, data) -> (state,
logs)``, and all randomness comes from the ``rng`` passed in. The loop that runs any method is
:func:`refimpl.train.train`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from . import validation as checks
from .backend import from_host, namespace
from .architectures import ARCHS, is_mlp, make_critic, make_generator
from .nn import MLP
from .objectives import Objective, clip_params, critic_grads, generator_grads
from .optim import make_optimiser
from . import steps
from .flat import FlatParams, adopt_flat, flatten


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class GANConfig:
    """A GAN: networks, objective, batch and optimisers (defaults: the WGAN-GP toy setting)."""
    objective: str = "wgan-gp"          # wgan | wgan-gp | wgan-lp | dragan | standard
    lam: float = 10.0
    clip: float = 0.01
    data_dim: int = 2
    latent_dim: int = 2
    gen_hidden: tuple = (512, 512, 512)
    critic_hidden: tuple = (512, 512, 512)
    gen_activation: str = "relu"
    critic_activation: str = "relu"
    gen_output: str = "linear"
    batch_size: int = 256
    n_critic: int = 5
    n_gen: int = 1
    optimiser: str = "adam"             # adam | rmsprop | sgd
    lr_gen: float = 1e-4
    lr_critic: float = 1e-4
    betas: tuple = (0.5, 0.9)
    data_scale: float = 1.0             # train on data / data_scale; samples() maps back to data units
    weight_init: str = "default"        # both networks' weight init (refimpl.nn.MLP): default | orthogonal
    init_gain: float = 1.0              # the orthogonal init's gain
    arch: str = "mlp"                   # mlp | dcgan (refimpl.architectures)
    image_shape: tuple = ()             # dcgan: (C, H, W) of a data row, C * H * W = data_dim
    width: int = 64                     # dcgan: channels of the critic's first convolution
    critic_norm: str = "layer"          # dcgan critic: layer | none | batch (batch: no gradient penalty)

    def __post_init__(self):
        for k in ("data_dim", "latent_dim", "batch_size", "n_critic", "n_gen"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{k} must be an integer >= 1, got {v!r}")
        if not (isinstance(self.data_scale, (int, float)) and math.isfinite(self.data_scale) and self.data_scale > 0):
            raise ValueError(f"data_scale must be a finite number > 0, got {self.data_scale!r}")
        Objective(self.objective, self.lam, self.clip)       # validates name, lam, clip
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        make_generator(self), make_critic(self)              # validates the networks' settings
        self.make_optimiser(self.lr_gen), self.make_optimiser(self.lr_critic)

    def make_optimiser(self, lr):
        if self.optimiser == "adam":
            return make_optimiser("adam", lr=lr, beta1=self.betas[0], beta2=self.betas[1])
        return make_optimiser(self.optimiser, lr=lr)


def config_dict(cfg):
    """A JSON-ready dict of a (nested) config dataclass."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


# ----------------------------------------------------------------------------- data sources
class ToyData:
    """Samples of a 2-D toy mixture, drawn on the host and moved to the device.

    ``scale`` divides every sample (centres and std together), e.g. 2.828 for the
    coordinates of the WGAN-GP authors' toy code (conventions, 2-D mixture protocol).
    """

    def __init__(self, name, xp, dtype, device=None, scale=1.0):
        from .datasets import get_dataset
        self.spec = get_dataset(name)
        self.xp, self.dtype, self.device, self.scale = xp, dtype, device, scale

    def sample(self, rng, n):
        from .datasets import sample
        x = sample(self.spec, n, rng, xp=self.xp, dtype=self.dtype, device=self.device)
        return x if self.scale == 1.0 else x / self.scale

    def draw(self, rng, n):
        """The host part of :meth:`sample`: ``n`` points (n, d) float64, same draws."""
        return self.spec.sample_host(n, rng)[0]

    def put(self, drawn):
        """Host draws ``drawn`` (n, d) (several draws stacked) on the device, in the data's dtype."""
        return from_host(drawn, self.xp, self.dtype, self.device)

    def gather(self, put):
        """The batch of :meth:`put`'s array: scaled by ``1/scale`` on the device."""
        return put if self.scale == 1.0 else put / self.scale


class ArrayData:
    """A dataset held on the device; batches are taken by index (indices drawn on the host).

    ``array`` (N, d), N >= 1, is checked once here
    (errors name ``array``).
    """

    def __init__(self, array):
        self.array = checks.array(array, "array", ndim=2)     # (N, d) on the device
        self.xp = namespace(self.array)

    @checks.checked()
    def sample(self, rng, n):
        """``n`` rows drawn uniformly with replacement, (n, d), on the data's device.

        ``rng`` a ``numpy.random.Generator`` (``TypeError`` otherwise), ``n`` an integer >= 0
        (as :func:`refimpl.datasets.sample`, which :class:`ToyData` uses); host-side checks, so a training step's draw makes no host round trip.
        """
        return self.gather(self.put(self.draw(rng, n)))

    @checks.checked()
    def draw(self, rng, n):
        """The host part of :meth:`sample`: ``n`` row indices (n,) int64."""
        n, rng = checks.integer(n, "n", ge=0), checks.random_generator(rng)
        return rng.integers(0, self.array.shape[0], size=n)

    def put(self, drawn):
        """Host row indices ``drawn`` (several draws stacked) on the data's device."""
        return from_host(drawn, self.xp, None, self.array.device)

    def gather(self, put):
        """The rows of the dataset at the device indices ``put``, (n, d)."""
        return self.xp.take(self.array, put, axis=0)


def _clip_in_place(params, c):
    """WGAN weight clipping of flat parameters, in place (a parameter list: new arrays)."""
    if not isinstance(params, FlatParams):
        return clip_params.unchecked(params, c)
    xp = namespace(params.buffer)
    params.buffer[...] = xp.clip(params.buffer, -c, c)
    return params


# ----------------------------------------------------------------------------- the default method
class GANMethod:
    """A GAN trained with one of the objectives of :mod:`refimpl.objectives`.

    Subclasses (RWP, SBE, W1-FE, SWGAN) override the phases they change and reuse
    the rest. All randomness comes from the ``rng`` passed to each call.
    """
    name = "gan"

    def __init__(self, cfg: GANConfig, *, name=None):
        self._setup_generator(cfg, name)
        self.objective = Objective(cfg.objective, cfg.lam, cfg.clip)
        self.critic = make_critic(cfg)
        if not is_mlp(self.gen, self.critic):
            self.fused = False               # the fused steps are written for MLP layers

    def _setup_generator(self, cfg, name=None):
        """The parts every method shares: config, generator spec and both optimisers
        (``cfg`` needs latent_dim, gen_hidden, data_dim, gen_activation, gen_output,
        lr_gen, lr_critic and ``make_optimiser``), and the method's ``name`` (the class's
        when None; it enters the checkpoint fingerprint, so it is fixed here, never patched later)."""
        if name is not None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"name must be a non-empty string, got {name!r}")
            self.name = name
        self.cfg = cfg
        self._consts = {}                    # loss seeds per batch size (refimpl.steps.StepConstants)
        self.gen = make_generator(cfg) if isinstance(cfg, GANConfig) else \
            MLP((cfg.latent_dim, *cfg.gen_hidden, cfg.data_dim), cfg.gen_activation, cfg.gen_output)
        self.opt_gen = cfg.make_optimiser(cfg.lr_gen)
        self.opt_critic = cfg.make_optimiser(cfg.lr_critic)

    def config(self):
        return config_dict(self.cfg)

    def init_state(self, rng, xp, dtype, device=None):
        """Fresh state: ``gen`` and ``critic`` as :class:`refimpl.flat.FlatParams` (one buffer per
        network, updated in place by the optimisers), and their optimiser states."""
        gp = flatten(self.gen.init(rng, xp=xp, dtype=dtype, device=device))
        cp = flatten(self.critic.init(rng, xp=xp, dtype=dtype, device=device))
        if self.objective.name == "wgan":
            _clip_in_place(cp, self.objective.clip)
        return {"gen": gp, "critic": cp, "opt_gen": self.opt_gen.init.unchecked(gp),
                "opt_critic": self.opt_critic.init.unchecked(cp)}

    def adopt_state(self, state):
        """A state loaded from a checkpoint (plain lists) with the layout :meth:`init_state` makes:
        every parameter list whose optimiser state is flat becomes a :class:`FlatParams` again."""
        return adopt_flat(state)

    def latent(self, rng, n, like):
        """``z ~ N(0, I)`` of shape (n, latent_dim), drawn on the host, on ``like``'s device."""
        xp = namespace(like)
        return from_host(rng.standard_normal((n, self.cfg.latent_dim)), xp, like.dtype, like.device)

    def generate(self, state, z):
        """``G(z)`` in training units (data / ``data_scale``)."""
        return self.gen.forward.unchecked(state["gen"], z)[0]

    def samples(self, state, z):
        """Generated samples in data units: ``data_scale * G(z)`` (what metrics see)."""
        y = self.generate(state, z)
        scale = getattr(self.cfg, "data_scale", 1.0)
        return y if scale == 1.0 else y * scale

    # -- steps
    def critic_step(self, state, rng, data):
        real = data.sample(rng, self.cfg.batch_size)
        z = self.latent(rng, self.cfg.batch_size, real)
        fake = self.generate(state, z)
        loss, grads, logs = critic_grads.unchecked(self.objective, self.critic, state["critic"], real, fake, rng)
        cp, oc = self.opt_critic.step.unchecked(state["critic"], grads, state["opt_critic"])
        if self.objective.name == "wgan":
            cp = _clip_in_place(cp, self.objective.clip)
        return {**state, "critic": cp, "opt_critic": oc}, logs

    def generator_step(self, state, rng, data):
        z = self.latent(rng, self.cfg.batch_size, state["gen"][0][0])
        loss, grads, _ = generator_grads.unchecked(self.objective, self.gen, state["gen"], self.critic, state["critic"], z)
        gp, og = self.opt_gen.step.unchecked(state["gen"], grads, state["opt_gen"])
        return {**state, "gen": gp, "opt_gen": og}, {"gen_loss": loss}

    # -- phases. The fused phases (refimpl.steps) draw every random number of the phase on the host
    # first, in the order the per-step reference (critic_step, generator_step) draws them, move them
    # to the device in one transfer each (put_draws), then compute without touching the host; they
    # run unless ``fused`` is False or a subclass overrides the per-step function, which then stays
    # what the phase calls.
    fused = True
    #: per-step functions a subclass overrides whose fused twin is this class's phase (with the
    #: subclass's :meth:`penalty_seed`): WWGAN's critic step
    fused_overrides = ()
    #: the critic penalty of the fused critic step (:func:`refimpl.steps.critic_loss_grads`'s
    #: ``penalty_seed``); None: the objective's
    penalty_seed = None

    def _fused_phase(self, name):
        return self.fused and (getattr(type(self), name) is getattr(GANMethod, name) or name in self.fused_overrides)

    def draw(self, rng, data, critic=True, generator=True):
        """Host draws of one outer iteration (or of one phase): a dict of NumPy arrays, drawn in the
        reference's order: per critic step the data (``data.draw``), ``z``, then the penalty's ``eps``
        (B, 1) or DRAGAN's ``u`` (B, d); then ``z`` per generator step. A data source without
        ``draw`` is sampled on the device here instead (those batches are device arrays)."""
        cfg, obj = self.cfg, self.objective
        B = cfg.batch_size
        out = {}
        if critic:
            host = hasattr(data, "draw")
            reals, zs, noise = [], [], []
            for _ in range(cfg.n_critic):
                reals.append(data.draw(rng, B) if host else data.sample(rng, B))
                zs.append(rng.standard_normal((B, cfg.latent_dim)))
                if obj.penalty is not None:
                    noise.append(rng.uniform(size=(B, cfg.data_dim) if obj.name == "dragan" else (B, 1)))
            out["real"] = np.concatenate(reals) if host else reals
            out["z"] = np.concatenate(zs)
            if noise:
                out["noise"] = np.concatenate(noise)
        if generator:
            out["z_gen"] = np.concatenate([rng.standard_normal((B, cfg.latent_dim)) for _ in range(cfg.n_gen)])
        return out

    def put_draws(self, draws, data, like):
        """The draws on ``like``'s device: the only host-to-device moves of a fused outer iteration
        (``data.put`` for the data draws; floats in ``like``'s dtype)."""
        xp = namespace(like)
        out = {}
        for k, v in draws.items():
            if k == "real":
                out[k] = data.put(v) if hasattr(data, "put") else xp.concat(v, axis=0)
            else:
                out[k] = from_host(v, xp, like.dtype, like.device)
        return out

    def critic_phase_drawn(self, state, dev, data):
        """The fused critic phase on device draws ``dev`` (:meth:`put_draws`); no host data is moved."""
        like = state["gen"][0][0]
        B = self.cfg.batch_size
        consts = steps.constants(self._consts, self.objective, like, B)
        real_all = data.gather(dev["real"]) if hasattr(data, "gather") else dev["real"]
        noise_all = dev.get("noise")
        cp, oc = state["critic"], state["opt_critic"]
        for k in range(self.cfg.n_critic):
            rows = (slice(k * B, (k + 1) * B), slice(None))
            fake = steps.forward(self.gen, state["gen"], dev["z"][rows])[0][-1]
            _, grads, logs = steps.critic_loss_grads(self.objective, self.critic, cp, real_all[rows], fake,
                                                     None if noise_all is None else noise_all[rows], consts,
                                                     self.penalty_seed)
            cp, oc = self.opt_critic.step.unchecked(cp, grads, oc)
            if self.objective.name == "wgan":
                cp = _clip_in_place(cp, self.objective.clip)
        return {**state, "critic": cp, "opt_critic": oc}, logs

    def generator_phase_drawn(self, state, dev, data):
        """The fused generator phase on device draws ``dev`` (:meth:`put_draws`)."""
        B = self.cfg.batch_size
        consts = steps.constants(self._consts, self.objective, state["gen"][0][0], B)
        gp, og = state["gen"], state["opt_gen"]
        for k in range(self.cfg.n_gen):
            loss, grads, _ = steps.generator_loss_grads(self.objective, self.gen, gp, self.critic, state["critic"],
                                                       dev["z_gen"][k * B:(k + 1) * B, :], consts)
            gp, og = self.opt_gen.step.unchecked(gp, grads, og)
        return {**state, "gen": gp, "opt_gen": og}, {"gen_loss": loss}

    def _phase(self, state, rng, data, critic):
        """The critic (``critic=True``) or generator phase: fused, or the per-step loop."""
        name, n = ("critic_step", self.cfg.n_critic) if critic else ("generator_step", self.cfg.n_gen)
        if not self._fused_phase(name):
            logs = {}
            for _ in range(n):
                state, logs = getattr(self, name)(state, rng, data)
            return state, logs
        dev = self.put_draws(self.draw(rng, data, critic=critic, generator=not critic), data, state["gen"][0][0])
        return (self.critic_phase_drawn if critic else self.generator_phase_drawn)(state, dev, data)

    def critic_phase(self, state, rng, data):
        return self._phase(state, rng, data, critic=True)

    def generator_phase(self, state, rng, data):
        return self._phase(state, rng, data, critic=False)

    @property
    def capturable(self):
        """True when an outer iteration is :meth:`draw`, :meth:`put_draws`, :meth:`outer_step_drawn`:
        the fused phases of this class, not a subclass's own phases or outer step."""
        t = type(self)
        return (self.fused and t.outer_step is GANMethod.outer_step and t.critic_phase is GANMethod.critic_phase
                and t.generator_phase is GANMethod.generator_phase and self._fused_phase("critic_step")
                and self._fused_phase("generator_step"))

    def outer_step_drawn(self, state, dev, data):
        """One fused outer iteration on device draws ``dev`` (:meth:`put_draws` of :meth:`draw`)."""
        state, lc = self.critic_phase_drawn(state, dev, data)
        state, lg = self.generator_phase_drawn(state, dev, data)
        return state, {**lc, **lg}

    def outer_step(self, state, rng, data):
        """One outer iteration; returns the new state and the last logs (0-d arrays). Parameters held
        as :class:`refimpl.flat.FlatParams` are updated in place (the input state is donated)."""
        if self.capturable:
            return self.outer_step_drawn(state, self.put_draws(self.draw(rng, data), data, state["gen"][0][0]), data)
        state, lc = self.critic_phase(state, rng, data)
        state, lg = self.generator_phase(state, rng, data)
        return state, {**lc, **lg}
