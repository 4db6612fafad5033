"""The experiments' command-line layer: each experiment's parser, its options, its variants and
summary (what the sweep needs), and :func:`run`, one named experiment from its flags.

``python -m toy`` (:mod:`toy.__main__`) and the sweep (:mod:`toy.sweep`) are its two clients; the
lifecycle of a run (output folder, checkpoints, signals, threads, errors) is
:mod:`refimpl.harness`'s.
"""
from __future__ import annotations

import pathlib
import shlex

from refimpl import harness as runs

from .registry import EXPERIMENTS, FLAGS, HELP, THREADS, THREADS_WHY, resolve

#: experiment-specific flags: name -> (argparse keyword arguments, help)
OVERRIDE_FLAGS = {
    "method": (dict(type=str, metavar="KEY"), "a method of the registry (refimpl.methods.method_keys())"),
    "objective": (dict(choices=["wgan", "wgan-gp", "wgan-lp", "dragan", "standard"]), "GAN objective / critic penalty"),
    "lam": (dict(type=runs.positive_float), "lambda: the critic's penalty weight"),
    "n_critic": (dict(type=runs.positive_int), "critic steps per outer iteration"),
    "n_gen": (dict(type=runs.positive_int), "generator steps per outer iteration"),
    "batch_size": (dict(type=runs.positive_int), "batch size"),
    "latent_dim": (dict(type=runs.positive_int), "latent dimension"),
    "lr_gen": (dict(type=runs.positive_float), "generator learning rate"),
    "lr_critic": (dict(type=runs.positive_float), "critic learning rate"),
    "h": (dict(type=runs.positive_float), "proximal step size h"),
    "l": (dict(type=runs.positive_int), "RWP's proximal generator steps per outer iteration (it sets the generator phase; leave --n-gen at 1)"),
    "K": (dict(type=runs.positive_int), "persistent generator steps (W1-FE)"),
    "seeds": (dict(type=runs.seed_list), "comma list of seeds (several runs)"),
    "variant": (dict(type=str, metavar="KEY"), "execute only this variant's run, of seed --seed, into --out"),
    "peer": (dict(action="append", metavar="KEY=FOLDER"),
             "the finished run of variant KEY (same seed) that --variant's run builds on (repeatable)"),
    "data_dir": (dict(type=pathlib.Path), "image data folder (MNIST, CIFAR-10)"),
    "dataset": (dict(type=str), "dataset name"),
    "budget": (dict(type=runs.positive_float), "training budget per method, in process CPU seconds (evaluation excluded)"),
    "protocol": (dict(type=str, metavar="NAME"), "a cited protocol's preset (toy/protocols.py); other flags override it"),
}
COMMON = ("name", "backend", "seed", "iters", "out", "quick", "checkpoint_every", "checkpoint_seconds", "resume",
          "threads")


def build_parser(name):
    """The parser of experiment ``name``: the shared flags, then its own with their defaults."""
    flags = FLAGS.get(name)
    ap = runs.ArgumentParser(prog=f"python -m toy {name}", description=EXPERIMENTS[name][2])
    iters = (flags or {}).get("iters", "the experiment's")
    runs.add_common_flags(ap, iters_default=iters() if callable(iters) else iters)   # callable: read lazily
    if name in THREADS:
        ap.set_defaults(threads=THREADS[name])
        next(a for a in ap._actions if a.dest == "threads").help = f"BLAS threads (default {THREADS[name]}: {THREADS_WHY[name]})"
    g = ap.add_argument_group(f"{name} flags")
    for key, (kw, text) in OVERRIDE_FLAGS.items():
        if flags is not None and key not in flags:
            continue
        default = "the experiment's" if flags is None else flags[key]
        default = default() if callable(default) else default      # read from the experiment's own config
        text = HELP.get(name, {}).get(key, text)                    # what the flag means in this experiment
        if key == "protocol":                      # only the protocols this experiment offers
            from .protocols import names_for
            kw = {**kw, "choices": names_for(name)}
        if key == "dataset":                       # the data sets this experiment trains on
            from .registry import dataset_choices
            kw = {**kw, "choices": dataset_choices(name)}
        if key == "method":                        # the registry's keys, plugins included
            from refimpl.methods import method_keys
            kw = {**kw, "choices": method_keys()}
            kw.pop("metavar", None)
        g.add_argument(f"--{key.replace('_', '-')}", default=None,
                       help=f"{text} (default {default})", **kw)
    return ap


def options(name, argv, args=None):
    """``RunOptions`` of ``python -m toy NAME *argv`` (``args``: ``argv`` already parsed); an
    explicit ``--seed`` of a multi-run experiment without ``--seeds`` / ``--variant`` runs that
    seed only."""
    args = args or build_parser(name).parse_args(argv)
    out = args.out or pathlib.Path("runs") / f"{name}-seed{args.seed}"
    extra = {k: v for k, v in vars(args).items() if k not in COMMON}
    if "seeds" in extra and extra["seeds"] is None and extra.get("variant") is None and \
            any(a == "--seed" or a.startswith("--seed=") for a in argv):
        extra["seeds"] = str(args.seed)
    return runs.RunOptions(out=out, backend=args.backend, seed=args.seed, iters=args.iters, quick=args.quick,
                           checkpoint_every=args.checkpoint_every, resume=args.resume, extra=extra,
                           experiment=name, checkpoint_seconds=args.checkpoint_seconds, threads=args.threads)


def check_flags(name, argv):
    """``ValueError`` (one line: the parser's reason) unless ``argv`` parses as experiment ``name``'s
    flags, without running anything (the sweep checks its runs' flags before launching any)."""
    ap = build_parser(name)

    def error(message):
        raise ValueError(f"{name}: {message} (see python -m toy {name} --help)")
    ap.error = error
    ap.parse_args([*argv, "--seed", "0", "--out", "flag-check"])


def variants(name, argv):
    """The variants of experiment ``name`` under its flags ``argv``, as ``[(Variant, flags)]`` where
    ``flags`` (``["--variant", KEY]``) select that variant's run; None for a single-run experiment.
    ``ValueError`` for flags the experiment refuses; ``SystemExit(2)`` for unparsable ones."""
    exp = resolve(name)
    if not isinstance(exp, runs.MultiRun):
        return None
    return [(v, ["--variant", v.key]) for v in exp.variants(options(name, list(argv)))]


def summarise(name, argv, finished, out):
    """The experiment's own summary of its finished runs ``[(variant key, seed, folder)]``
    (flags ``argv``), written into ``out`` with the standard fields of every multi-run summary
    (:func:`refimpl.harness.summarise_multi`); None for a single-run experiment."""
    exp = resolve(name)
    if not isinstance(exp, runs.MultiRun):
        return None
    opts = options(name, list(argv))
    by_key = {v.key: v for v in exp.variants(opts)}
    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    return runs.summarise_multi(exp, opts, pathlib.Path(out), [by_key[k] for k in dict.fromkeys(k for k, _, _ in finished)],
                                [(by_key[k], s, pathlib.Path(f)) for k, s, f in finished])


def run(name, argv, *, resume_command=None) -> int:
    """Run experiment ``name`` with its flags ``argv``, as ``python -m toy NAME *argv`` does: parse
    them, check the backend, tune the allocator, resolve the experiment in :mod:`toy.registry` and
    execute it with :func:`refimpl.harness.execute`; on success print a short summary (its key
    metrics, :func:`refimpl.harness.summary_lines`) and where ``metrics.json`` and its outputs are.
    Every refusal is one line on stderr, ``python -m toy NAME: error: REASON``.

    ``resume_command``: the command an interrupted run prints to continue (default: ``python -m toy
    NAME *argv --out OUT --resume``). Returns the exit status (:mod:`toy.__main__`); a flag the
    parser refuses raises ``SystemExit(2)``, an unknown ``name`` ``ValueError``.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})")
    argv = list(argv)
    prog = f"python -m toy {name}"
    args = build_parser(name).parse_args(argv)
    if args.backend != "numpy":
        from refimpl.backend import get_namespace
        try:
            get_namespace(args.backend)
        except (RuntimeError, ValueError, ImportError) as e:
            return runs.print_error(prog, e)
    opts = options(name, argv, args)
    runs.tune_allocator()
    if resume_command is None:
        again = [name, *(a for a in argv if a != "--resume"),
                 *(["--out", str(opts.out)] if args.out is None else []), "--resume"]
        resume_command = "python -m toy " + shlex.join(again)
    try:
        exp = resolve(name)
    except ImportError as e:
        return runs.print_error(prog, f"{name} needs {e.name}: {runs.INSTALL}")
    status, metrics = runs.execute(exp, opts, resume_command=resume_command, prog=prog)
    if status == 0:
        print("\n".join([*runs.summary_lines(opts.out, metrics), f"outputs in {opts.out}"]), flush=True)
    return status
