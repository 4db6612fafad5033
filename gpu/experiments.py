"""Image-scale experiments (MNIST, CIFAR-10 from a local folder; 8x8 digits offline) for every method.

Each experiment trains an MLP generator ``latent-W-W-W-d`` (tanh output) against an
MLP critic ``d-W-W-W-1`` (or SWGAN's potentials), or with ``arch="dcgan"`` (``--arch dcgan``) the
DCGAN generator and critic of :mod:`refimpl.cnn` (critic width ``W`` channels, layer norm;
``docs/cnn.md``), on device-resident images, with the
shared loop of :mod:`refimpl.train` (checkpoints, resume, progress), and writes
``metrics.json``, ``curve.csv``, ``samples.npy`` and ``samples.png`` (a sample grid).
The metric is the exact W1 in pixel space between ``n_eval`` generated and held-out
test images (POT, on the host, every ``eval_every`` iterations).

    python -m gpu NAME --dataset mnist --data-dir DIR [--backend cupy] [--arch mlp|dcgan] [--width W] [--batch 256] ...
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from refimpl.backend import backend_name, get_namespace, to_numpy
from refimpl.evaluation import EVAL
from refimpl.image_metrics import image_w1
from refimpl.images import load_images
from refimpl.methods import get_method, method_keys
from refimpl.outputs import grid_image, plt
from refimpl.harness import Outputs, RunOptions, run_and_write

from .data import device_dataset

ARCHS = ("mlp", "dcgan")
#: ``width`` when not given: MLP hidden units, DCGAN critic channels
DEFAULT_WIDTH = {"mlp": 1024, "dcgan": 64}


@dataclasses.dataclass(frozen=True)
class ImageRun:
    """One image-scale run (defaults: MNIST-size MLPs of width 1024, batch 256)."""
    method: str = "wgan-gp"
    dataset: str = "digits"
    data_dir: str | None = None
    backend: str = "cupy"
    dtype: str = "float32"
    arch: str = "mlp"               # mlp: MLPs latent-W-W-W-d, d-W-W-W-1; dcgan: refimpl.cnn's DCGANs of width W
    width: int | None = None        # None: DEFAULT_WIDTH[arch]
    latent_dim: int = 128
    batch_size: int = 256
    iters: int = 20_000
    eval_every: int = 1000
    n_eval: int = 1000
    seed: int = 0
    h: float | None = None          # RWP / SBE step size (paper defaults when None)
    l: int | None = None            # RWP generator steps per outer iteration (its Appendix C value when None)
    K: int = 3                      # W1-FE persistent steps
    lam: float = 10.0
    device: int | None = None       # CUDA device index (None: the current device; gpu/data.py places data on it)
    cuda_graph: bool = False        # capture the fused outer iteration once and replay it (refimpl.graph)

    def __post_init__(self):
        spec = get_method(self.method)           # ValueError naming the registered methods
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.arch not in spec.archs:
            raise ValueError(f"--arch {self.arch}: {self.method} takes {', '.join(spec.archs)} networks only "
                             f"({self.arch} methods: {', '.join(k for k in method_keys() if self.arch in get_method(k).archs)})")
        if self.width is None:
            object.__setattr__(self, "width", DEFAULT_WIDTH[self.arch])
        if self.l is not None and (not isinstance(self.l, int) or isinstance(self.l, bool) or self.l < 1):
            raise ValueError(f"l must be an integer >= 1, got {self.l!r}")
        for k in ("width", "latent_dim", "batch_size", "iters", "n_eval", "K"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be an integer >= 1, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.device is not None and (not isinstance(self.device, int) or self.device < 0):
            raise ValueError(f"device must be a CUDA device index >= 0 or None, got {self.device!r}")


def method_options(run: ImageRun, image_shape):
    """The options this experiment gives ``run.method`` (:meth:`refimpl.methods.MethodSpec.build`): the
    step size ``h`` and RWP's ``l`` when given, W1-FE's ``K``, WWGAN's image shape and ``alpha = 1``."""
    known = get_method(run.method).options
    given = {"h": run.h, "l": run.l, "K": run.K, "image_shape": tuple(int(s) for s in image_shape), "alpha": 1.0}
    return {k: v for k, v in given.items() if k in known and v is not None}


def build_method(run: ImageRun, image_shape):
    """The method object for ``run``, from the registry (:mod:`refimpl.methods`)."""
    spec = get_method(run.method)
    d = int(np.prod(image_shape))
    hidden = (run.width,) * spec.hidden_layers
    net = (dict(gen_hidden=hidden, critic_hidden=hidden) if run.arch == "mlp" else
           dict(arch="dcgan", image_shape=tuple(int(s) for s in image_shape), width=run.width))
    penalty = dict(lam=run.lam) if "objective" in spec.config_fields else {}
    cfg = spec.config(data_dim=d, latent_dim=run.latent_dim, gen_output="tanh", batch_size=run.batch_size,
                      **net, **penalty)
    return spec.build(cfg, **method_options(run, image_shape))


def sample_grid_png(path, images, shape, ncol=10):
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 6 * max(1, len(images) // ncol) / ncol + 0.3))
    grid = grid_image(np.asarray(images).reshape((-1, *shape)), ncol=ncol)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def array_device(xp, index):
    """The Array API device number ``index`` of ``xp`` (``__array_namespace_info__().devices()``; on
    CuPy ``cupy.cuda.Device(index)``, made current), ``None`` for the current one; ``ValueError`` past
    the last."""
    if index is None:
        return None
    if backend_name(xp) == "cupy":
        import cupy
        if index >= cupy.cuda.runtime.getDeviceCount():
            raise ValueError(f"device {index} does not exist: {cupy.cuda.runtime.getDeviceCount()} CUDA device(s)")
        dev = cupy.cuda.Device(index)
        dev.use()                                    # CuPy computes on the current device
        return dev
    devices = list(xp.__array_namespace_info__().devices())
    if index >= len(devices):
        raise ValueError(f"device {index} does not exist: {xp.__name__} has {len(devices)} device(s)")
    return devices[index]


def run_image_experiment(run: ImageRun, out, resume=False, checkpoint_every=0, progress=True, opts=None):
    """Train, evaluate and write the outputs of one image-scale run; returns the final metrics.

    ``opts`` (a :class:`refimpl.harness.RunOptions`, as the command line passes it) sets the
    checkpoint cadences and the experiment's name; without it, ``out``, ``resume`` and
    ``checkpoint_every`` make one.
    """
    opts = opts or RunOptions(out=pathlib.Path(out), backend=run.backend, seed=run.seed, resume=resume,
                              checkpoint_every=checkpoint_every, experiment=f"gpu-{run.method}")
    xp = get_namespace(run.backend)
    device = array_device(xp, run.device)
    data, shape = device_dataset(run.dataset, xp, data_dir=run.data_dir, split="train", dtype=run.dtype,
                                 device=device)
    test, _ = load_images(run.dataset, data_dir=run.data_dir, split="test", limit=run.n_eval)
    test = test.reshape(test.shape[0], -1)
    method = build_method(run, shape)

    def generated(state, it):
        rng = EVAL.latent_rng(run.seed, it)
        like = state["gen"][0][0]
        return method.samples(state, method.latent(rng, run.n_eval, like))

    def eval_fn(state, it):
        return {"w1_pixels": image_w1(to_numpy(generated(state, it)), test)}

    def finish(res):
        samples = to_numpy(generated(res.state, res.iterations))
        metrics = {**res.final_metrics, "train_seconds": round(res.train_seconds, 2),
                   "seconds_per_iteration": round(res.train_seconds / max(res.iterations, 1), 5),
                   "image_shape": list(shape), "run": dataclasses.asdict(run)}
        metrics.pop("iteration", None)
        return Outputs(metrics, samples,
                       plots=lambda folder, _: sample_grid_png(folder / "samples.png", samples[:100], shape))

    return run_and_write(opts, method, data, finish=finish, dataset=run.dataset, xp=xp, dtype=run.dtype,
                         iters=run.iters, eval_fn=eval_fn, eval_every=run.eval_every, progress=progress,
                         cuda_graph=run.cuda_graph, device=device,
                         run_info={"n_eval": run.n_eval, "width": run.width, "arch": run.arch})
