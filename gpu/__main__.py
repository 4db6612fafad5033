"""Command line of the image-scale experiments (CuPy by default).

    python -m gpu NAME [--dataset digits|mnist|cifar10] [--data-dir DIR] [--backend cupy|numpy]
                       [--device I] [--arch mlp|dcgan] [--width W] [--batch-size B] [--iters N] [--eval-every N] [--seed S]
                       [--out DIR] [--resume] [--quick] [--checkpoint-every N] [--checkpoint-seconds S]
                       [--threads N] [--h H] [--K K] [--lam L]

NAME is one of wgan-gp, rwp, sbe, w1fe, wwgan, swgan; ``python -m gpu NAME --help`` shows its
flags. ``--h`` (RWP, SBE), ``--K`` (W1-FE) and ``--lam`` (all but SWGAN) belong to the methods
that use them; another method refuses them (exit 2, one line naming the flag). The default dataset, digits, is
built in (scikit-learn), so ``python -m gpu wgan-gp --quick`` runs offline; mnist and
cifar10 need ``--data-dir``. ``--backend numpy`` runs the same code on the CPU (slowly;
useful for a smoke run with ``--quick``). The lifecycle (output folder, checkpoints,
signals, threads, errors) is :mod:`refimpl.harness`'s, as for ``python -m toy``.
"""
from __future__ import annotations

import argparse
import pathlib
import shlex
import sys

from refimpl import harness as runs

from refimpl.methods import get_method, method_keys

from .experiments import ImageRun, run_image_experiment


def method_flags():
    """The method-specific flags and the registered methods that use them (a flag given to another
    method is refused): ``h`` and ``K`` where the method takes that option, ``lam`` (the critic's
    penalty weight) where its configuration has a WGAN objective."""
    specs = [get_method(k) for k in method_keys()]
    return {"h": tuple(s.key for s in specs if "h" in s.options),
            "l": tuple(s.key for s in specs if "l" in s.options),
            "K": tuple(s.key for s in specs if "K" in s.options),
            "lam": tuple(s.key for s in specs if "objective" in s.config_fields)}


def _refuse(name, flag):
    users = method_flags()[flag.lstrip("-")]

    class Refuse(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{flag}: {name} does not use it (only {', '.join(users)})")
    return Refuse


def build_parser(name=None):
    """The parser of ``python -m gpu NAME``: the shared flags and the flags ``name`` uses (a flag of
    another method is refused with one line naming it). ``name=None``: ``python -m gpu NAME ...``
    with every flag (the overview)."""
    ap = runs.ArgumentParser(prog="python -m gpu" + (f" {name}" if name else ""),
                             description="refimpl image-scale experiments" + (f": {name}" if name else
                                         "; 'python -m gpu NAME --help' shows a method's own flags"))
    if name is None:
        ap.add_argument("name", choices=method_keys())
    runs.add_common_flags(ap, iters_default="20000 (quick: 3)", backends=("cupy", "numpy"), backend="cupy")
    g = ap.add_argument_group("image-run flags")
    g.add_argument("--dataset", default="digits", choices=["digits", "mnist", "cifar10"],
                   help="data set (default digits: built in, offline; mnist and cifar10 need --data-dir)")
    g.add_argument("--data-dir", default=None, help="folder holding MNIST or CIFAR-10")
    g.add_argument("--device", type=runs.nonneg_int, default=None,
                   help="CUDA device index (default: the current device, 0 unless CUDA_VISIBLE_DEVICES says otherwise)")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="default float32")
    g.add_argument("--arch", default="mlp", choices=["mlp", "dcgan"],
                   help="networks: mlp (default) or dcgan (refimpl.cnn; not swgan)")
    g.add_argument("--width", type=runs.positive_int, default=None,
                   help="MLP hidden width (default 1024) or DCGAN critic channels (default 64)")
    g.add_argument("--batch-size", type=runs.positive_int, default=256, help="default 256")
    g.add_argument("--eval-every", type=runs.positive_int, default=1000, help="default 1000")
    g.add_argument("--cuda-graph", action="store_true",
                   help="capture the fused outer iteration once as a CUDA graph and replay it (cupy only)")
    own = {"h": (dict(type=runs.positive_float, default=None), "proximal step size h (default: RWP, its Appendix C value; "
                                                               "SBE 0.2)"),
           "l": (dict(type=runs.positive_int, default=None), "RWP generator steps per outer iteration (default: its "
                                                              "Appendix C value)"),
           "K": (dict(type=runs.positive_int, default=3), "W1-FE persistent generator steps (default 3)"),
           "lam": (dict(type=runs.positive_float, default=10.0), "penalty weight lambda (default 10)")}
    flags = method_flags()
    m = ap.add_argument_group(f"{name} flags" if name else "method flags (each used by some methods only)")
    for flag, (kw, text) in own.items():
        if name is None or name in flags[flag]:
            m.add_argument(f"--{flag}", help=text if name else f"{text}; {', '.join(flags[flag])}", **kw)
        else:
            m.add_argument(f"--{flag}", action=_refuse(name, f"--{flag}"), default=kw["default"],
                           help=argparse.SUPPRESS)
    return ap


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") or argv[0] not in method_keys():
        build_parser().parse_args(argv)           # --help, or the one-line usage error
        return 2
    a = build_parser(argv[0]).parse_args(argv[1:])
    a.name = argv[0]
    runs.tune_allocator()
    kw = dict(method=a.name, dataset=a.dataset, data_dir=a.data_dir, backend=a.backend, dtype=a.dtype,
              arch=a.arch, width=a.width, batch_size=a.batch_size, iters=a.iters or 20_000, eval_every=a.eval_every,
              seed=a.seed, h=a.h, l=a.l, K=a.K, lam=a.lam, device=a.device, cuda_graph=a.cuda_graph)
    if a.quick:
        kw.update(width=a.width or (32 if a.arch == "mlp" else 4), batch_size=16, iters=a.iters or 3, eval_every=a.iters or 3, n_eval=100)
    out = a.out or pathlib.Path("runs") / f"gpu-{a.name}-{a.dataset}-seed{a.seed}"
    try:
        if a.cuda_graph and a.backend != "cupy":
            raise ValueError("--cuda-graph needs --backend cupy")
        if a.backend == "cupy":
            from . import require_cupy
            require_cupy()
        run = ImageRun(**kw)                      # validates before any folder exists
    except (ValueError, RuntimeError, ImportError) as e:
        return runs.print_error(f"python -m gpu {a.name}", e)
    opts = runs.RunOptions(out=out, backend=a.backend, seed=a.seed, iters=run.iters, quick=a.quick,
                           checkpoint_every=a.checkpoint_every, resume=a.resume, experiment=f"gpu-{a.name}",
                           checkpoint_seconds=a.checkpoint_seconds, threads=a.threads)
    again = [x for x in argv if x != "--resume"] + (["--out", str(out)] if a.out is None else []) + ["--resume"]
    status, metrics = runs.execute(lambda o: run_image_experiment(run, o.out, opts=o), opts,
                                   resume_command="python -m gpu " + shlex.join(again), prog=f"python -m gpu {a.name}")
    if status == 0:
        print("\n".join([*runs.summary_lines(out, metrics), f"outputs in {out}"]), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
