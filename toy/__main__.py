"""Command line of the toy experiments.

    python -m toy list
    python -m toy NAME --help          # that experiment's flags and defaults
    python -m toy sweep NAME --seeds 0-4 [--set key=v1,v2] [--workers N | --scheduler ADDR] --out DIR
                                       # variant x seed x setting, on Dask (toy/sweep.py)
    python -m toy NAME [--backend numpy|cupy] [--seed S] [--iters N] [--out DIR] [--quick]
                       [--checkpoint-every N] [--checkpoint-seconds S] [--resume] [--threads N]
                       [experiment flags]
    python -m toy NAME --variant KEY --seed S ...   # one run of a multi-run experiment

The lifecycle (output folder, checkpoints, signals, threads, errors) is :mod:`refimpl.harness`'s.
:func:`main` returns the exit status: 0, 2 (bad input, OS error, unreadable checkpoint,
non-finite loss), 130 / 143 / 129 (interrupted by SIGINT / SIGTERM / SIGHUP, checkpoint written).
"""
from __future__ import annotations

import json
import pathlib
import shlex
import sys

from refimpl import harness as runs

from .registry import EXPERIMENTS, FLAGS, THREADS, THREADS_WHY, resolve

#: experiment-specific flags: name -> (argparse keyword arguments, help)
OVERRIDE_FLAGS = {
    "method": (dict(type=str, metavar="KEY"), "a method of the registry (refimpl.methods.method_keys())"),
    "objective": (dict(choices=["wgan", "wgan-gp", "wgan-lp", "dragan", "standard"]), "GAN objective / critic penalty"),
    "lam": (dict(type=runs.positive_float), "lambda: the critic's penalty weight (SWGAN: its regulariser's weight)"),
    "n_critic": (dict(type=runs.positive_int), "critic steps per outer iteration"),
    "n_gen": (dict(type=runs.positive_int), "generator steps per outer iteration"),
    "batch_size": (dict(type=runs.positive_int), "batch size"),
    "latent_dim": (dict(type=runs.positive_int), "latent dimension"),
    "lr_gen": (dict(type=runs.positive_float), "generator learning rate"),
    "lr_critic": (dict(type=runs.positive_float), "critic learning rate"),
    "h": (dict(type=runs.positive_float), "proximal step size h"),
    "l": (dict(type=runs.positive_int), "generator steps per outer iteration (RWP)"),
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


def _top_parser():
    ap = runs.ArgumentParser(prog="python -m toy", description="refimpl toy experiments (CPU by default). "
                                 "'python -m toy NAME --help' shows an experiment's own flags; "
                                 "'python -m toy sweep NAME --seeds 0-4 --out DIR' runs it over seeds and "
                                 "settings (variant x seed x setting) on Dask and aggregates (--help for more).")
    ap.add_argument("name", help="experiment name, 'list', or 'sweep'")
    return ap


def build_parser(name):
    """The parser of experiment ``name``: the shared flags, then its own with their defaults."""
    flags = FLAGS.get(name)
    ap = runs.ArgumentParser(prog=f"python -m toy {name}", description=EXPERIMENTS[name][2])
    runs.add_common_flags(ap, iters_default=(flags or {}).get("iters", "the experiment's"))
    if name in THREADS:
        ap.set_defaults(threads=THREADS[name])
        next(a for a in ap._actions if a.dest == "threads").help = f"BLAS threads (default {THREADS[name]}: {THREADS_WHY[name]})"
    g = ap.add_argument_group(f"{name} flags")
    for key, (kw, text) in OVERRIDE_FLAGS.items():
        if flags is not None and key not in flags:
            continue
        default = "the experiment's" if flags is None else flags[key]
        if key == "protocol":                      # only the protocols this experiment offers
            from .protocols import names_for
            kw = {**kw, "choices": names_for(name)}
        if key == "method":                        # the registry's keys, plugins included
            from refimpl.methods import method_keys
            kw = {**kw, "choices": method_keys()}
            kw.pop("metavar", None)
        g.add_argument(f"--{key.replace('_', '-')}", default=None,
                       help=f"{text} (default {default})", **kw)
    return ap


def _options(name, argv, args=None):
    """``RunOptions`` of ``python -m toy NAME *argv``; an explicit ``--seed`` of a multi-run
    experiment without ``--seeds`` / ``--variant`` runs that seed only."""
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
    return [(v, ["--variant", v.key]) for v in exp.variants(_options(name, list(argv)))]


def summarise(name, argv, finished, out):
    """The experiment's own summary of its finished runs ``[(variant key, seed, folder)]``
    (flags ``argv``), written into ``out``; None for a single-run experiment."""
    exp = resolve(name)
    if not isinstance(exp, runs.MultiRun):
        return None
    by_key = {v.key: v for v in exp.variants(_options(name, list(argv)))}
    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    return exp.summarise(pathlib.Path(out), [by_key[k] for k in dict.fromkeys(k for k, _, _ in finished)],
                         [(by_key[k], s, pathlib.Path(f)) for k, s, f in finished])


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:                        # python -m toy sweep ... (toy/sweep.py)
        from .sweep import main as sweep_main
        return sweep_main(argv[1:])
    if not argv or argv[0].startswith("-"):
        _top_parser().parse_args(argv)            # --help, or the usage error
        return 2
    name = argv[0]
    if name == "list":
        width = max(map(len, EXPERIMENTS))
        for n, (_, _, desc) in EXPERIMENTS.items():
            print(f"{n:{width}}  {desc}")
        print(f"\n{'sweep':{width}}  python -m toy sweep NAME --seeds 0-4 [--set key=v1,v2] --out DIR: any experiment "
              "over variants x seeds x settings on Dask, with 95% t-intervals (python -m toy sweep --help)")
        return 0
    if name not in EXPERIMENTS:
        _top_parser().error(f"unknown experiment {name!r}; run 'python -m toy list' "
                            f"(known: {', '.join(EXPERIMENTS)})")
    args = build_parser(name).parse_args(argv[1:])
    if args.backend != "numpy":
        from refimpl.backend import get_namespace
        try:
            get_namespace(args.backend)
        except (RuntimeError, ValueError, ImportError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    opts = _options(name, argv[1:], args)
    out = opts.out
    runs.tune_allocator()
    again = [a for a in argv if a != "--resume"] + (["--out", str(out)] if args.out is None else []) + ["--resume"]
    try:
        run = resolve(name)
    except ImportError as e:
        print(f"error: {name} needs {e.name}: {runs.INSTALL}", file=sys.stderr)
        return 2
    status, metrics = runs.execute(run, opts, resume_command="python -m toy " + shlex.join(again))
    if status == 0:
        print(json.dumps({k: v for k, v in metrics.items() if k != "config"}, indent=1, default=str))
        print(f"outputs in {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
