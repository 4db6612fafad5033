"""Name -> experiment. Each entry: (module, function, one-line description).

Modules are imported only when their experiment runs, so ``python -m toy list``
works without the optional packages of every experiment.

``FLAGS[name]`` lists the experiment-specific flags an experiment takes, with the default
shown by ``python -m toy NAME --help`` (``iters`` is the default of the shared ``--iters``).
An experiment without an entry is offered every flag of ``toy.cli.OVERRIDE_FLAGS``.
A multi-run experiment (``rwp-*``, ``sbe-grid``, ``w1fe-ring``, ``swgan-grid``, ``dcgan-digits``) is a
:class:`refimpl.harness.MultiRun`: ``--variant KEY --seed S`` executes exactly one of its runs.
"""
EXPERIMENTS = {
    "grid-tour": ("toy.tour", "run", "Every 2-D method on the 25-mode grid, same CPU budget, against a chance baseline (about 4 min)"),
    "gan": ("toy.method_run", "run", "Any registered method (refimpl.methods, --method KEY) on a 2-D mixture: one run"),
    "wgan-gp-grid": ("toy.wgan_gp", "run_grid", "WGAN-GP on the 25-mode grid (headline experiment)"),
    "wgan-gp-ring": ("toy.wgan_gp", "run_ring", "WGAN-GP on the 8-mode ring"),
    "prox-two-delta": ("toy.prox_two_delta", "run", "Wasserstein vs Euclidean proximal paths of the two-delta model (Fig. 1)"),
    "wwgan-digits": ("toy.wwgan_digits", "run", "WGAN-GP vs WWGAN on 8x8 digits: critic under translation and noise (WWGAN Table 1, Figs. 4-5)"),
    "dcgan-digits": ("toy.dcgan_digits", "run", "DCGAN against MLP networks on 8x8 digits, WGAN-GP, same CPU budget, 3 seeds: pixel W1 and classifier FD (about 10 min)"),
    "rwp-grid": ("toy.rwp_experiments", "run_rwp_grid", "WGAN-GP, Standard, DRAGAN with/without RWP, W1 vs iterations and wall-clock (RWP Fig. 2)"),
    "rwp-gen-iters": ("toy.rwp_experiments", "run_rwp_gen_iters", "WGAN-GP, 10 generator steps per outer iteration with/without RWP (RWP Fig. 4)"),
    "sbe-grid": ("toy.rwp_experiments", "run_sbe_grid", "Semi-Backward Euler against WGAN-GP by generator iterations (RWP Fig. 5)"),
    "w1fe-ring": ("toy.w1fe_ring", "run", "W1-FE-LP/GP persistency K on the 8-mode ring (W1-FE Figs. 1, 2, 4)"),
    "swgan-grid": ("toy.swgan_grid", "run", "Parametric SWGAN vs WGAN-GP (same wall-clock) on the 25-mode grid, --latent-dim 4|2 (SWGAN Figs. 1, 2)"),
}

import functools


def _config_defaults(*names):
    """``{name: "VALUE (GANConfig.name)"}``: the defaults of :class:`refimpl.gan.GANConfig`, read from the
    dataclass (their one home), for experiments that train from it unchanged."""
    import dataclasses

    from refimpl.gan import GANConfig
    fields = {f.name: f.default for f in dataclasses.fields(GANConfig)}
    return {n: f"{fields[n]} (GANConfig.{n})" for n in names}


_WGAN_GP = _config_defaults("objective", "lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic")
@functools.cache
def _rwp_defaults():
    """The RWP/SBE experiments' defaults, read from their configurations (``toy.rwp_experiments``
    and :data:`refimpl.rwp.RWP_DEFAULTS`, Appendix C), per objective family where they differ."""
    from refimpl.rwp import RWP_DEFAULTS

    from . import rwp_experiments as r
    wg, lo = r.base_config("wgan-gp"), r.base_config("standard")

    def two(a, b):
        return f"{a}" if a == b else f"{a} (WGAN-GP/LP), {b} (Standard, DRAGAN)"
    out = {f: two(getattr(wg, f), getattr(lo, f)) for f in ("lam", "n_critic", "n_gen", "batch_size", "latent_dim",
                                                           "lr_gen", "lr_critic")}
    out["h"], out["l"] = (two(RWP_DEFAULTS["wgan-gp"][i], RWP_DEFAULTS["standard"][i]) for i in (0, 1))
    out["dataset"] = r.DEFAULT_DATASET
    out["seeds"] = ",".join(map(str, r.DEFAULT_SEEDS))
    return out


def _rwp(field, fmt="{}"):
    """A lazy help default: ``fmt`` filled with :func:`_rwp_defaults`'s ``field`` when ``--help`` is built."""
    return lambda: fmt.format(_rwp_defaults()[field])


_RWP = {k: _rwp(k) for k in ("lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic",
                             "dataset")}
_BUILTIN_METHODS = ("wgan-gp", "rwp", "sbe", "w1fe", "wwgan", "swgan")


def _method_defaults():
    """``python -m toy gan``'s defaults, read from the method registry (:mod:`refimpl.methods`): the
    configuration fields of ``--method wgan-gp``, and the options ``h``, ``l``, ``K`` of each built-in
    method that takes them, from its factory's signature."""
    import inspect

    from refimpl.methods import get_method
    base = get_method("wgan-gp").config()
    out = {k: f"{getattr(base, k)} for --method wgan-gp; another method: its configuration's"
           for k in ("objective", "lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic")}
    for opt in ("h", "l", "K"):
        per = []
        for key in _BUILTIN_METHODS:
            p = inspect.signature(get_method(key).cls).parameters.get(opt)
            if p is not None and p.default is not p.empty:
                per.append(f"{key} {p.default if p.default is not None else _by_objective(key, opt)}")
        out[opt] = f"{', '.join(per)}; refused by the other methods"
    return out


def _by_objective(key, opt):
    """The per-objective default of option ``opt`` of method ``key`` (RWP's Appendix C settings)."""
    from refimpl.rwp import RWP_DEFAULTS
    if key != "rwp":
        return "the method's own"
    by = {}
    for objective, hl in RWP_DEFAULTS.items():
        by.setdefault(hl[("h", "l").index(opt)], []).append(objective)
    return "by objective: " + ", ".join(f"{v} ({'/'.join(objs)})" for v, objs in by.items())


#: the flags of a multi-run experiment (refimpl.harness.MultiRun): one run per --variant, its seeds
_MULTI = {"variant": "none: every variant, each over the seeds", "peer": "none"}

FLAGS = {
    "gan": {"iters": "3000 (quick: 20)", "method": "wgan-gp", "dataset": "grid25", **_method_defaults()},
    "grid-tour": {"budget": "40 CPU seconds per method (quick: 0.25)"},
    "wgan-gp-grid": {"iters": "3000 (quick: 20; protocol gdpp: 25000)", **_WGAN_GP,
                     "protocol": "none (the issue's setting); gdpp: GDPP's gdppgan_Synthetic.py"},
    "wgan-gp-ring": {"iters": "3000 (quick: 20; protocol gdpp: 25000)", **_WGAN_GP,
                     "protocol": "none (the issue's setting); gdpp: GDPP's gdppgan_Synthetic.py"},
    "prox-two-delta": {"iters": "10 proximal steps (quick: 5)", "h": 0.5},
    "wwgan-digits": {"iters": "5000 (quick: 4)", **_WGAN_GP, "batch_size": "64 (quick: 16)", "latent_dim": 32,
                     "dataset": "digits", "data_dir": "none (digits is built in; mnist and cifar10 need it)"},
    "dcgan-digits": {"iters": "none: the budget ends each run", "budget": "90 CPU seconds per run (quick: 0.5)",
                     "lam": 10.0, "n_critic": 5, "batch_size": "64 (quick: 16)", "latent_dim": 32, "lr_gen": 1e-4,
                     "lr_critic": 1e-4, "seeds": "0,1,2 (quick or an explicit --seed: that seed)", **_MULTI,
                     "variant": "none; keys mlp, dcgan"},
    "rwp-grid": {"iters": "1000 (quick: 6)", "objective": "wgan-gp, standard and dragan", **_RWP,
                 "h": _rwp("h"), "l": _rwp("l"), "seeds": _rwp("seeds", "{} (quick or an explicit --seed: that seed)"),
                 **_MULTI, "variant": "none; keys OBJ and OBJ-rwp, e.g. wgan-gp-rwp"},
    "rwp-gen-iters": {"iters": "1000 (quick: 6)", "objective": "wgan-gp (the only one offered)", **_RWP,
                      "n_critic": 5, "n_gen": 10, "lr_gen": 1e-4, "lr_critic": 1e-4, "h": 0.1,
                      "seeds": "0,1,2 (quick or an explicit --seed: that seed)",
                      **_MULTI, "variant": "none; keys wgan-gp-10g, wgan-gp-10g-rwp"},
    "sbe-grid": {"iters": "1000 (quick: 6)", "objective": "wgan-gp (the only one offered)", **_RWP,
                 "n_critic": 5, "lr_gen": 1e-4, "lr_critic": 1e-4, "h": 0.2,
                 "seeds": "0,1,2 (quick or an explicit --seed: that seed)", **_MULTI,
                 "variant": "none; keys wgan-gp, sbe"},
    "w1fe-ring": {"iters": "800 epochs (quick: 6)", "objective": "both wgan-lp and wgan-gp", "lam": 10.0,
                  "n_critic": "10 (quick: 2)", "batch_size": "512 (quick: 64)", "latent_dim": 2, "lr_gen": 1e-4,
                  "lr_critic": 1e-4, "K": "1,3,5,10 (LP and GP)", "seeds": "--seed", **_MULTI,
                  "variant": "none; keys PENALTY-KK, e.g. lp-K3"},
    "swgan-grid": {"iters": "10000 (quick: 5)", "latent_dim": 4, "lam": "0.01 (SWGAN's regulariser weight)",
                   "n_critic": "20 dual steps (quick: 3)", "n_gen": 1, "batch_size": 128, "lr_gen": 3e-3,
                   "lr_critic": 1e-3, "seeds": "--seed", **_MULTI,
                   "variant": "none; keys swgan, wgan-gp (needs --peer swgan=FOLDER unless --quick or a protocol)",
                   "protocol": "none (grid25, WGAN-GP matched in time); lim-ye: Lim & Ye's grid, WGAN-GP 30000 iterations"},
}

#: the image data sets of the experiments that train on images; the others take a 2-D mixture
IMAGE_DATASETS = {"wwgan-digits": ("digits", "mnist", "cifar10")}


def dataset_choices(name):
    """The values ``--dataset`` takes in experiment ``name``: its image data sets, or the Gaussian
    mixtures of :data:`refimpl.datasets.DATASETS` (the 2-D protocol's mode counts and chance baseline
    need a mixture)."""
    if name in IMAGE_DATASETS:
        return IMAGE_DATASETS[name]
    from refimpl.datasets import DATASETS, Mixture
    return tuple(k for k, spec in DATASETS.items() if isinstance(spec, Mixture))


#: experiments whose default BLAS thread count is not the machine's cores, and why
THREADS = {"grid-tour": 1, "dcgan-digits": 1}
_SPIN = "its budget is process CPU time, which idle BLAS threads would consume by spinning"
THREADS_WHY = {"grid-tour": _SPIN, "dcgan-digits": _SPIN}


def resolve(name):
    import importlib
    try:
        module, func, _ = EXPERIMENTS[name]
    except KeyError:
        raise KeyError(name) from None
    return getattr(importlib.import_module(module), func)
