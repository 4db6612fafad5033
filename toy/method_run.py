"""Any registered method (:mod:`refimpl.methods`) on a 2-D mixture: one run, the standard outputs.

    python -m toy gan --method KEY [--dataset grid25|ring8|...] [--h H] [--l L] [--K K] [--lam LAM] ...

The method is built from the registry alone: its configuration's defaults with the command
line's overrides (a field the configuration lacks is refused), and the options ``--h``,
``--l``, ``--K`` where the method takes them (otherwise refused). So a method added with
:func:`refimpl.methods.register` runs here, and over seeds and settings with
``python -m toy sweep gan --set method=KEY1,KEY2``, with no other edit. Outputs and evaluation as
``wgan-gp-grid`` (:func:`toy.gan.run_gan`, the 2-D protocol of :data:`refimpl.evaluation.EVAL`, and
the chance baseline of the final evaluation's seeds in ``metrics.json``).
"""
from refimpl.evaluation import EVAL
from refimpl.methods import get_method
from refimpl.baseline import chance_baseline

from .common import RunOptions
from .gan import OVERRIDES, apply_overrides, n_eval_of, run_gan

DEFAULT_METHOD = "wgan-gp"
DEFAULT_DATASET = "grid25"
DEFAULT_ITERS = 3000
QUICK_ITERS = 20
EVAL_EVERY = 250
OPTIONS = ("h", "l", "K")


def run(opts: RunOptions):
    spec = get_method(opts.extra.get("method") or DEFAULT_METHOD)
    dataset = opts.extra.get("dataset") or DEFAULT_DATASET
    given = {k: opts.extra[k] for k in OVERRIDES if opts.extra.get(k) is not None}
    cfg = apply_overrides(spec.config(), opts, fields=tuple(given))
    flagless = [o for o in spec.required_options if o not in OPTIONS]
    if flagless:
        raise ValueError(f"--method {spec.key} needs the option {flagless[0]!r}, which this 2-D experiment has no "
                         f"flag for" + (" (WWGAN trains on images: python -m toy wwgan-digits, python -m gpu wwgan)"
                                        if spec.key == "wwgan" else ""))
    method = spec.build(cfg, **{k: opts.extra[k] for k in OPTIONS if opts.extra.get(k) is not None})
    iters = opts.iters or (QUICK_ITERS if opts.quick else DEFAULT_ITERS)
    baseline, _ = chance_baseline(dataset, EVAL.target_rng(opts.seed, iters), n=n_eval_of(opts),
                                  n_target=n_eval_of(opts), cloud_rng=EVAL.latent_rng(opts.seed, iters))
    return run_gan(opts, method, dataset, iters=iters, eval_every=iters if opts.quick else EVAL_EVERY,
                   title=f"{spec.label} {dataset}", extra_metrics={"baseline": baseline, "method_key": spec.key},
                   run_info={"method_key": spec.key})
