"""Name -> experiment. Each entry: (module, function, one-line description).

Modules are imported only when their experiment runs, so ``python -m toy list``
works without the optional packages of every experiment.

``FLAGS[name]`` lists the experiment-specific flags an experiment takes, with the default
shown by ``python -m toy NAME --help`` (``iters`` is the default of the shared ``--iters``): a
callable reads it from its one home (the experiment's configuration, constants or settings
function, or a refimpl dataclass) when ``--help`` is built. ``HELP[name]`` says what a flag
means in that experiment where ``toy.cli.OVERRIDE_FLAGS``' general text would not.
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
    out["seeds"] = _seeds(r.run_rwp_grid)
    out["iters"] = _quick(r.DEFAULT_ITERS, r.QUICK_ITERS)
    return out


def _rwp(field, fmt="{}"):
    """A lazy help default: ``fmt`` filled with :func:`_rwp_defaults`'s ``field`` when ``--help`` is built."""
    return _lazy(_rwp_defaults, field, fmt)


def _lazy(reader, field, fmt="{}"):
    """A help default read when ``--help`` is built: ``fmt`` filled with ``reader()[field]``
    (``reader`` imports the experiment's module, so ``python -m toy list`` needs none of them)."""
    return lambda: fmt.format(reader()[field])


def _from(reader, *fields):
    """``{field: lazy default}`` of ``reader``'s ``fields`` (:func:`_lazy`)."""
    return {f: _lazy(reader, f) for f in fields}


def _quick(value, quick, unit=""):
    """``"VALUE UNIT (quick: QUICK)"``, or ``"VALUE UNIT"`` where ``--quick`` keeps it."""
    text = f"{value} {unit}".rstrip()
    return text if quick == value else f"{text} (quick: {quick})"


def _seeds(exp):
    """The seeds of multi-run experiment ``exp`` (a :class:`refimpl.harness.MultiRun`) without ``--seeds``."""
    if exp.default_seeds is None:
        return "--seed"
    return ",".join(map(str, exp.default_seeds)) + " (quick or an explicit --seed: that seed)"


def _opts(quick=False, experiment=""):
    import pathlib

    from .common import RunOptions
    return RunOptions(out=pathlib.Path("help"), quick=quick, experiment=experiment)


_FIELDS = ("lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic")


def _configs(full, quick, fields=_FIELDS):
    """``{field: text}`` of two configurations, the default run's and ``--quick``'s."""
    return {f: _quick(getattr(full, f), getattr(quick, f)) for f in fields}


def _wgan_gp_rwp_defaults():
    """rwp-gen-iters' and sbe-grid's defaults: WGAN-GP's reduced configuration (``toy.rwp_experiments``),
    RWP's h of :data:`refimpl.rwp.RWP_DEFAULTS` and SBE's of :class:`refimpl.sbe.SBEMethod`."""
    import inspect

    from refimpl.rwp import RWP_DEFAULTS
    from refimpl.sbe import SBEMethod

    from . import rwp_experiments as r
    cfg = r.base_config("wgan-gp")
    out = _configs(cfg, cfg)
    out.update({"gen_n_gen": r.GEN_ITERS_N_GEN, "rwp_h": RWP_DEFAULTS["wgan-gp"][0],
                "sbe_h": inspect.signature(SBEMethod).parameters["h"].default,
                "gen_seeds": _seeds(r.run_rwp_gen_iters), "sbe_seeds": _seeds(r.run_sbe_grid)})
    return out


def _wgan_gp_iters():
    from . import protocols, wgan_gp
    return {"iters": f"{wgan_gp.DEFAULT_ITERS} (quick: {wgan_gp.QUICK_ITERS}; "
                     f"protocol gdpp: {protocols.PROTOCOLS['gdpp'].iters})"}


def _gan_defaults():
    from . import method_run as m
    return {"iters": _quick(m.DEFAULT_ITERS, m.QUICK_ITERS), "method": m.DEFAULT_METHOD, "dataset": m.DEFAULT_DATASET}


def _tour_defaults():
    from . import tour
    return {"budget": _quick(f"{tour.BUDGET_CPU_SECONDS:g}", f"{tour.QUICK_BUDGET:g}", "CPU seconds per method")}


def _prox_defaults():
    from . import prox_two_delta as p
    return {"iters": _quick(p.DEFAULT_STEPS, p.QUICK_STEPS, "proximal steps"), "h": p.DEFAULT_H}


def _wwgan_defaults():
    """wwgan-digits' defaults: its :data:`toy.wwgan_digits.CONFIG` (both methods' GANConfig)."""
    import dataclasses

    from refimpl.train import GANConfig

    from . import wwgan_digits as w
    cfg = GANConfig(**w.CONFIG)
    return {"iters": _quick(w.DEFAULT_ITERS, w.QUICK_ITERS), "dataset": w.DEFAULT_DATASET, "objective": cfg.objective,
            **_configs(cfg, dataclasses.replace(cfg, batch_size=w.QUICK_BATCH))}


def _dcgan_defaults():
    """dcgan-digits' defaults: the configuration :func:`toy.dcgan_digits.config` builds."""
    from . import dcgan_digits as d
    full, quick = (d.config("mlp", _opts(q), (1, 8, 8)) for q in (False, True))
    return {"budget": _quick(f"{d.BUDGET_CPU_SECONDS:g}", f"{d.QUICK_BUDGET:g}", "CPU seconds per run"), "seeds": _seeds(d.run),
            **_configs(full, quick)}


def _w1fe_defaults():
    """w1fe-ring's defaults: the configurations :func:`toy.w1fe_ring.paper_config` builds, its
    schedule and its grid of (penalty, K)."""
    from . import w1fe_ring as w
    out = {}
    for f in _FIELDS:
        per = {p: _quick(getattr(w.paper_config(p, _opts()), f), getattr(w.paper_config(p, _opts(True)), f))
               for p in w.PENALTIES}
        out[f] = _by_penalty(per)
    out["iters"] = _quick(w.DEFAULT_ITERS, w.QUICK["iters"], "epochs")
    out["objective"] = "both " + " and ".join(w.PENALTIES.values())
    grid = {p: ",".join(str(k) for q, k in w.DEFAULT_GRID if q == p) for p in w.PENALTIES}
    grid = {p: k for p, k in grid.items() if k}
    out["K"] = _by_penalty(grid, f" ({' and '.join(p.upper() for p in grid)})")
    out["seeds"] = _seeds(w.run)
    return out


def _by_penalty(per, shared=""):
    """``{penalty: text}`` as one text: ``TEXT`` + ``shared`` where the penalties agree, else ``"A (LP), B (GP)"``."""
    if len(set(per.values())) == 1:
        return next(iter(per.values())) + shared
    return ", ".join(f"{v} ({p.upper()})" for p, v in per.items())


def _swgan_defaults():
    """swgan-grid's defaults: what :func:`toy.swgan_grid.settings` gives SWGAN, and the protocols'."""
    from . import protocols
    from . import swgan_grid as s
    (cfg, latent, iters, _), (qcfg, _, qiters, _) = (s.settings(_opts(q, "swgan-grid")) for q in (False, True))
    out = _configs(cfg, qcfg, ("lam", "n_gen", "batch_size", "lr_gen", "lr_critic"))
    out.update({"iters": _quick(iters, qiters), "latent_dim": latent, "seeds": _seeds(s.run),
                "n_critic": _quick(cfg.n_critic, qcfg.n_critic, "dual steps"),
                "protocol": f"none ({s.DATASET}, WGAN-GP matched in time); lim-ye: Lim & Ye's grid, WGAN-GP "
                            f"{protocols.PROTOCOLS['lim-ye'].extra['wgan_gp_iters']} iterations"})
    return out


_RWP = {k: _rwp(k) for k in ("lam", "n_critic", "n_gen", "batch_size", "latent_dim", "lr_gen", "lr_critic",
                             "dataset")}
_RWP_WGAN_GP = _from(_wgan_gp_rwp_defaults, *_FIELDS)
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
    "gan": {**_from(_gan_defaults, "iters", "method", "dataset"), **_method_defaults()},
    "grid-tour": _from(_tour_defaults, "budget"),
    "wgan-gp-grid": {**_from(_wgan_gp_iters, "iters"), **_WGAN_GP,
                     "protocol": "none (the issue's setting); gdpp: GDPP's gdppgan_Synthetic.py"},
    "wgan-gp-ring": {**_from(_wgan_gp_iters, "iters"), **_WGAN_GP,
                     "protocol": "none (the issue's setting); gdpp: GDPP's gdppgan_Synthetic.py"},
    "prox-two-delta": _from(_prox_defaults, "iters", "h"),
    "wwgan-digits": {**_from(_wwgan_defaults, "iters", "objective", *_FIELDS, "dataset"),
                     "data_dir": "none (digits is built in; mnist and cifar10 need it)"},
    "dcgan-digits": {"iters": "none: the budget ends each run",
                     **_from(_dcgan_defaults, "budget", "lam", "n_critic", "batch_size", "latent_dim", "lr_gen",
                             "lr_critic", "seeds"), **_MULTI, "variant": "none; keys mlp, dcgan"},
    "rwp-grid": {"iters": _rwp("iters"), "objective": "wgan-gp, standard and dragan", **_RWP,
                 "h": _rwp("h"), "l": _rwp("l"), "seeds": _rwp("seeds"),
                 **_MULTI, "variant": "none; keys OBJ and OBJ-rwp, e.g. wgan-gp-rwp"},
    "rwp-gen-iters": {"iters": _rwp("iters"), "objective": "wgan-gp (the only one offered)", **_RWP_WGAN_GP,
                      "dataset": _rwp("dataset"), "n_gen": _lazy(_wgan_gp_rwp_defaults, "gen_n_gen"),
                      "h": _lazy(_wgan_gp_rwp_defaults, "rwp_h"), "seeds": _lazy(_wgan_gp_rwp_defaults, "gen_seeds"),
                      **_MULTI, "variant": "none; keys wgan-gp-10g, wgan-gp-10g-rwp"},
    "sbe-grid": {"iters": _rwp("iters"), "objective": "wgan-gp (the only one offered)", **_RWP_WGAN_GP,
                 "dataset": _rwp("dataset"), "h": _lazy(_wgan_gp_rwp_defaults, "sbe_h"),
                 "seeds": _lazy(_wgan_gp_rwp_defaults, "sbe_seeds"), **_MULTI, "variant": "none; keys wgan-gp, sbe"},
    "w1fe-ring": {**_from(_w1fe_defaults, "iters", "objective", "lam", "n_critic", "batch_size", "latent_dim",
                          "lr_gen", "lr_critic", "K", "seeds"), **_MULTI, "variant": "none; keys PENALTY-KK, e.g. lp-K3"},
    "swgan-grid": {**_from(_swgan_defaults, "iters", "latent_dim", "lam", "n_critic", "n_gen", "batch_size",
                           "lr_gen", "lr_critic", "seeds"), **_MULTI,
                   "variant": "none; keys swgan, wgan-gp (needs --peer swgan=FOLDER unless --quick or a protocol)",
                   "protocol": _lazy(_swgan_defaults, "protocol")},
}

#: what a flag means in an experiment where ``toy.cli.OVERRIDE_FLAGS``' general text would not say it
HELP = {
    "gan": {"lam": "lambda of --method's configuration: the critic's penalty weight (swgan: its regulariser's weight)"},
    "wgan-gp-grid": {"lam": "lambda: the weight of the critic's gradient penalty (wgan-gp, wgan-lp, dragan)"},
    "wgan-gp-ring": {"lam": "lambda: the weight of the critic's gradient penalty (wgan-gp, wgan-lp, dragan)"},
    "wwgan-digits": {"lam": "lambda: the critic's penalty weight, in both methods (WGAN-GP: gradient penalty; "
                            "WWGAN: its Wasserstein-gradient penalty)"},
    "dcgan-digits": {"lam": "lambda: WGAN-GP's gradient-penalty weight, in both architectures"},
    "rwp-grid": {"lam": "lambda: the critic's gradient-penalty weight (WGAN-GP, WGAN-LP, DRAGAN; Standard has none), "
                        "with and without RWP"},
    "rwp-gen-iters": {"lam": "lambda: WGAN-GP's gradient-penalty weight, with and without RWP"},
    "sbe-grid": {"lam": "lambda: WGAN-GP's gradient-penalty weight, of both WGAN-GP and SBE's critic"},
    "w1fe-ring": {"lam": "lambda: the critic's penalty weight (W1-FE-LP: one-sided, W1-FE-GP: two-sided gradient "
                         "penalty)"},
    "swgan-grid": {"lam": "lambda: SWGAN's regulariser weight (the WGAN-GP run keeps its own)"},
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
