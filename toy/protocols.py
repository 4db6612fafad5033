"""Cited protocols as presets: ``python -m toy NAME --protocol P``.

A protocol is the setting of the paper or public code a published number was measured with,
declared here as data (config fields, iterations, evaluation), so that a comparison with that
number runs at the cited setting and says so: the run's ``metrics.json`` records ``protocol``
(the name), ``protocol_overrides`` (the command-line flags that departed from it, e.g.
``--n-critic 1``) and the run's checkpoint fingerprint carries ``protocol`` too, so a run of
one protocol never resumes another's checkpoint. The protocol cards (cited setting, ours, the
difference, row by row) are in the experiments' docs (``docs/toy.md``,
``docs/smoothed-ot.md``).

* ``gdpp`` (``wgan-gp-grid``, ``wgan-gp-ring``): GDPP's ``gdppgan_Synthetic.py`` (Elfeki et
  al., the source of the published WGAN-GP figures 24.2 modes / 28.7% on the grid and
  6.8 / 59.6% on the ring): G = z(256) -> FC128-tanh -> FC128-tanh -> 2, D = FC128-tanh ->
  FC128-tanh -> FC1, orthogonal weight initialisation with gain 1.4 (``slim.arg_scope`` over
  every layer), zero biases, batch 512, Adam(beta1 0.5, beta2 0.999 (TensorFlow's default),
  eps 1e-8), learning rates D 1e-4 and G 1e-3, 25,000 iterations, evaluated on 2,500 samples
  with the 3-sigma rule. GDPP does not publish its WGAN-GP baseline's ``n_critic`` or
  ``lambda``: 5 and 10 here (Gulrajani et al.'s defaults), not the cited code's.
* ``lim-ye`` (``swgan-grid``): the data "as proposed by Lim & Ye" (their
  ``datasets/toy.py``, ``exp4``: centres ``linspace(-21, 21, 5)^2``, variance 0.1; the
  dataset ``grid25-lim-ye``), SWGAN at the paper's Table 1 (the experiment's defaults already)
  and WGAN-GP at the paper's 30,000 iterations (Figs. 1-2), not matched in time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: GDPP's networks and optimiser (gdppgan_Synthetic.py); n_critic and lam are not published
GDPP_CONFIG = {"objective": "wgan-gp", "lam": 10.0, "n_critic": 5, "n_gen": 1, "latent_dim": 256,
               "gen_hidden": (128, 128), "critic_hidden": (128, 128), "gen_activation": "tanh",
               "critic_activation": "tanh", "gen_output": "linear", "batch_size": 512, "optimiser": "adam",
               "lr_gen": 1e-3, "lr_critic": 1e-4, "betas": (0.5, 0.999), "weight_init": "orthogonal", "init_gain": 1.4}


@dataclass(frozen=True)
class Protocol:
    """A cited setting: ``config`` (GANConfig fields), ``iters`` (outer iterations),
    ``eval_every`` (curve cadence, ours), ``dataset`` (None: the experiment's), ``extra``
    (experiment-specific settings), ``source`` and ``unstated`` (what the source leaves open and
    what we chose)."""
    name: str
    experiments: tuple
    source: str
    config: dict = field(default_factory=dict)
    iters: int | None = None
    eval_every: int | None = None
    dataset: str | None = None
    extra: dict = field(default_factory=dict)
    unstated: dict = field(default_factory=dict)

    def record(self, overrides=None):
        """What ``metrics.json`` records: the name, the source and the flags that departed from it."""
        return {"protocol": self.name, "protocol_source": self.source,
                "protocol_unstated": dict(self.unstated), "protocol_overrides": dict(overrides or {})}


PROTOCOLS = {
    "gdpp": Protocol(
        "gdpp", ("wgan-gp-grid", "wgan-gp-ring"),
        "GDPP (Elfeki et al. 2019), gdppgan_Synthetic.py",
        config=GDPP_CONFIG, iters=25_000, eval_every=1000,
        unstated={"n_critic": "not published for GDPP's WGAN-GP baseline: 5 (Gulrajani et al.)",
                  "lam": "not published for GDPP's WGAN-GP baseline: 10 (Gulrajani et al.)"}),
    "lim-ye": Protocol(
        "lim-ye", ("swgan-grid",),
        "Lim & Ye (2017), pytorch-geometric-gan datasets/toy.py exp4; SWGAN paper Table 1, Figs. 1-2",
        dataset="grid25-lim-ye", extra={"wgan_gp_iters": 30_000},
        unstated={"wgan_gp": "the SWGAN paper's WGAN-GP hyper-parameters are 'manually tuned' and not given: "
                             "Gulrajani et al.'s toy defaults (lam 10, 5 critic steps, Adam 1e-4, (0.5, 0.9))"}),
}


def names_for(experiment):
    """The protocols ``experiment`` offers (its ``--protocol`` choices)."""
    return [p.name for p in PROTOCOLS.values() if experiment in p.experiments]


def get(opts):
    """The :class:`Protocol` of ``opts`` (``--protocol``), or None. ``ValueError`` (one line) for a
    protocol the experiment does not offer (the parser's choices already refuse it on the command line)."""
    name = (opts.extra or {}).get("protocol")
    if name is None:
        return None
    p = PROTOCOLS.get(name)
    if p is None or opts.experiment not in p.experiments:
        raise ValueError(f"{opts.experiment or 'this experiment'} has no protocol {name!r}; "
                         f"choose from {', '.join(names_for(opts.experiment)) or 'none'}")
    return p


def overrides(opts, fields):
    """The command-line flags among ``fields`` that were given (they override the protocol)."""
    return {k: opts.extra[k] for k in fields if (opts.extra or {}).get(k) is not None}
