"""WGAN-GP on the 2-D mixtures (Gulrajani et al. 2017), the project's headline experiment.

Generator and critic: MLPs of 3 hidden layers of 512 ReLU; batch 256;
Adam(1e-4, 0.5, 0.9); 5 critic steps per generator step; 2-D Gaussian latent;
lam = 10. Float32 on the CPU.

``--protocol gdpp``: GDPP's setting (:mod:`toy.protocols`): 2 x 128 tanh networks with an
orthogonal init (gain 1.4), 256-D latent, batch 512, Adam(0.5, 0.999), lr D 1e-4 / G 1e-3,
25,000 iterations, evaluation every 1,000. Flags given beside it (``--n-critic 1``) override it
and are recorded in ``metrics.json`` (``protocol_overrides``).
"""

from refimpl.evaluation import EVAL
from refimpl.baseline import chance_baseline
from refimpl.train import GANConfig, GANMethod

from .common import RunOptions
from . import protocols
from .gan import OVERRIDES, apply_overrides, n_eval_of, run_gan

DEFAULT_ITERS = 3000      # fits the 10-minute budget on 2 CPU cores
QUICK_ITERS = 20


def _run(opts: RunOptions, dataset):
    proto = protocols.get(opts)
    cfg = apply_overrides(GANConfig(**(proto.config if proto else {"objective": "wgan-gp"})), opts)
    iters = opts.iters or (QUICK_ITERS if opts.quick else (proto.iters if proto else DEFAULT_ITERS))
    eval_every = iters if opts.quick else (proto.eval_every if proto else 250)
    extra = proto.record(protocols.overrides(opts, OVERRIDES)) if proto else {}
    method = GANMethod(cfg, name=cfg.objective)          # "wgan-gp" unless --objective overrides it
    # chance baseline with the final evaluation's seeds (same targets): metrics.json's "baseline"
    baseline, _ = chance_baseline(dataset, EVAL.target_rng(opts.seed, iters), n=n_eval_of(opts),
                                  n_target=n_eval_of(opts), cloud_rng=EVAL.latent_rng(opts.seed, iters))
    title = f"{cfg.objective.upper()} {dataset}" + (f", protocol {proto.name}" if proto else "")
    return run_gan(opts, method, dataset, iters=iters, eval_every=eval_every, title=title,
                   extra_metrics={**extra, "baseline": baseline},
                   run_info={"protocol": proto.name} if proto else None)


def run_grid(opts: RunOptions):
    return _run(opts, "grid25")


def run_ring(opts: RunOptions):
    return _run(opts, "ring8")
