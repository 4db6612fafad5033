"""GPU benchmark: refimpl on CuPy against PyTorch CUDA, same run, same random numbers, float32.

Workloads: (1) the WGAN-GP critic step of ``refimpl/critic_step_bench.py`` (critic on a real
and a fake batch, gradient penalty through ``input_gradient`` +
``input_gradient_vjp``, Adam); (2) a full image-scale WGAN-GP outer iteration (5
critic steps and 1 generator step) with MLPs ``128-W-W-W-784`` and ``784-W-W-W-1``
on device-resident data.

Like for like: both sides draw their random numbers (batch indices, latent codes,
penalty weights) on the host from a ``numpy.random.Generator`` and upload them, as
refimpl does. PyTorch runs with TF32 off (``torch.backends.cuda.matmul.allow_tf32 =
False``, CuPy's default: full float32 products); separate columns give PyTorch with
TF32 on and, for the image step, PyTorch drawing on the device (``torch.randn``,
``torch.randint``), each a median timed on its own (``ratio_tf32`` and ``ratio_device_rng``
are ratios of medians, not paired). ``ratio`` is refimpl / PyTorch (host RNG, TF32 off):
below 1 is faster. TFLOP/s counts the matrix-product FLOPs of refimpl's step
(:func:`critic_step_flops`, :func:`image_step_flops`), the same for both sides, and
``of_peak`` divides by the device's measured float32 matmul rate. Timing synchronises
the device after every call. refimpl's step and PyTorch's (TF32 off) run alternately, pair
by pair in alternating order, ``--repeats`` pairs after 3 warm-up pairs (the image step a
quarter as many, at least 6), so a drift of the machine reaches both alike. The times are
medians; ``ratio`` is the median of the pairs' ratios, with their quartiles (inclusive
method: within the observed ratios) and an exact two-sided sign test (``pairs_slower`` of
``pairs``, ``sign_test_p``). The last line gives the verdict on the target (the critic step
at most 1.0x at batch >= 1024 and width >= 1024): met or not met when the sign test rejects
a median ratio of 1 at the 0.05 level, else undecided.

    python -m gpu.bench [--quick] [--repeats R] [--out DIR]
    python -m gpu.bench --dry-run --out DIR     # NumPy backend, tiny sizes, PyTorch CPU peer if installed

``--out`` writes ``bench.json`` (``{"meta": ..., "rows": [...]}``) and ``bench.csv``
(one row per workload, batch and width, the meta fields as leading columns): device
name, driver and CUDA versions, library versions, the settings.
"""
from __future__ import annotations

import csv
import json
import math
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from refimpl.backend import backend_name, from_host, get_namespace, synchronize
from refimpl.train import ArrayData, GANConfig, GANMethod
from refimpl.critic_step_bench import matmul_shapes, refimpl_step_fn, torch_mlp, torch_wgan_gp_critic_update

from . import require_cupy

DATA_DIM, LATENT = 784, 128


def _timer(sync):
    def median_time(fn, repeats, warmup=3):
        for _ in range(warmup):
            fn()
        sync()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)
    return median_time


def image_repeats(repeats):
    """Pairs of the image step (6 steps each): a quarter of the critic step's, at least 6, the
    fewest with which a sign test can decide at 0.05."""
    return max(6, repeats // 4)


def paired_times(fa, sync_a, fb, sync_b, repeats, warmup=3):
    """Time ``fa`` and ``fb`` alternately, ``repeats`` pairs after ``warmup`` pairs, each call
    synchronised, the order swapped from pair to pair (a b, b a, a b, ...): a drift of the
    machine's speed, between pairs or within one, then reaches both sides alike.
    Returns ``(times_a, times_b)`` in seconds, two lists of ``repeats`` floats."""
    for _ in range(warmup):
        fa()
        sync_a()
        fb()
        sync_b()
    ta, tb = [], []
    sides = [(fa, sync_a, ta), (fb, sync_b, tb)]
    for i in range(repeats):
        for f, sync, ts in (sides if i % 2 == 0 else sides[::-1]):
            t0 = time.perf_counter()
            f()
            sync()
            ts.append(time.perf_counter() - t0)
    return ta, tb


TARGET = 0.7          # refimpl / PyTorch CUDA (eager, fused Adam) at most this, critic step at 1024 x 1024


def sign_test(ratios, ref=1.0):
    """Exact two-sided sign test of "the median ratio is ``ref``" over paired ratios (ties at ``ref``
    dropped): ``(slower, n, p)``, with ``slower`` the pairs above ``ref`` among the ``n`` untied."""
    slower = sum(r > ref for r in ratios)
    n = sum(r != ref for r in ratios)
    if n == 0:
        return 0, 0, 1.0
    k = min(slower, n - slower)
    p = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return slower, n, min(1.0, p)


def verdict(row, alpha=0.05):
    """``"met"``, ``"not met"`` or ``"undecided"`` for the row's target ratio (``row["target"]``,
    :data:`TARGET` by default) from its paired timings (:func:`sign_test` against the target at
    level ``alpha``); None without a peer."""
    if row.get("target_sign_test_p") is None:
        return None
    if row["target_sign_test_p"] >= alpha:
        return "undecided"
    return "met" if row["ratio"] <= row["target"] else "not met"


def matmul_rate(xp, sync, n=4096, repeats=10):
    """Measured float32 matrix-product rate of the device (FLOP/s)."""
    a = from_host(np.random.default_rng(0).standard_normal((n, n)), xp, "float32")
    t = _timer(sync)(lambda: a @ a, repeats)
    return 2 * n ** 3 / t


def _forward(sizes, n):
    return [(n, a, b) for a, b in zip(sizes[:-1], sizes[1:])]


def critic_step_flops(sizes, batch):
    """Matrix-product FLOPs of one WGAN-GP critic step (``refimpl.critic_step_bench.matmul_shapes``)."""
    return sum(2 * m * k * n for m, k, n in matmul_shapes(sizes, batch))


def image_step_shapes(width, batch, data_dim=DATA_DIM, latent=LATENT):
    """``(m, k, n)`` of every matrix product of one image-scale outer iteration (5 critic + 1 generator step).

    Critic step: ``G`` forward on B, then the critic step's products. Generator step:
    ``G`` forward, ``D`` forward, ``D`` backward to its input (no weight gradients),
    ``G`` backward (weight gradients, and input gradients except at the latent layer).
    """
    g = (latent, width, width, width, data_dim)
    d = (data_dim, width, width, width, 1)
    critic = _forward(g, batch) + matmul_shapes(d, batch)
    gen = (_forward(g, batch) + _forward(d, batch) + [(n, b, a) for n, a, b in _forward(d, batch)]
           + [(a, batch, b) for _, a, b in _forward(g, batch)] + [(batch, b, a) for _, a, b in _forward(g, batch)[1:]])
    return 5 * critic + gen


def image_step_flops(width, batch, data_dim=DATA_DIM, latent=LATENT):
    """Matrix-product FLOPs of one image-scale outer iteration (:func:`image_step_shapes`)."""
    return sum(2 * m * k * n for m, k, n in image_step_shapes(width, batch, data_dim, latent))


# ----------------------------------------------------------------------------- the two sides
def refimpl_image_step(xp, width, batch, seed=0, n_data=10_000, cuda_graph=False):
    """One refimpl outer iteration (closure) on device-resident data; host RNG as in training;
    ``cuda_graph``: replayed from a captured CUDA graph (:class:`refimpl.graph.GraphStep`)."""
    cfg = GANConfig(data_dim=DATA_DIM, latent_dim=LATENT, gen_hidden=(width,) * 3, critic_hidden=(width,) * 3,
                    batch_size=batch)
    method = GANMethod(cfg)
    rng = np.random.default_rng(seed)
    st = {"s": method.init_state(rng, xp, "float32")}
    data = ArrayData(from_host(rng.uniform(-1, 1, (n_data, DATA_DIM)), xp, "float32"))

    run = method.outer_step
    if cuda_graph:
        from refimpl.graph import GraphStep
        run = GraphStep(method, data).step

    def step():
        st["s"], _ = run(st["s"], rng, data)
    return step


class _TorchDraws:
    """The peer's random numbers: host ``numpy`` draws uploaded (like refimpl), or ``torch`` on the device."""

    def __init__(self, torch, dev, on_device, seed=0):
        self.torch, self.dev, self.on_device = torch, dev, on_device
        self.rng = np.random.default_rng(seed)

    def _up(self, a, dtype):
        return self.torch.as_tensor(a, dtype=dtype).to(self.dev)

    def normal(self, n, d):
        t = self.torch
        return t.randn(n, d, device=self.dev) if self.on_device else self._up(self.rng.standard_normal((n, d)), t.float32)

    def uniform01(self, n, d):
        t = self.torch
        return t.rand(n, d, device=self.dev) if self.on_device else self._up(self.rng.uniform(size=(n, d)), t.float32)

    def indices(self, high, n):
        t = self.torch
        return t.randint(0, high, (n,), device=self.dev) if self.on_device else self._up(self.rng.integers(0, high, n), t.int64)


def torch_critic_step(torch, sizes, batch, dev, seed=0):
    """The critic step in PyTorch with host-drawn, uploaded penalty weights (refimpl's random source)."""
    torch.manual_seed(seed)
    draws = _TorchDraws(torch, dev, on_device=False, seed=seed)
    critic = torch_mlp(torch, sizes, torch.float32, dev)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9), fused=dev == "cuda")
    real, fake = draws.normal(batch, sizes[0]), draws.normal(batch, sizes[0])
    return lambda: torch_wgan_gp_critic_update(torch, critic, opt, real, fake, eps=draws.uniform01(batch, 1))


def torch_image_step(torch, width, batch, dev, on_device_rng=False, seed=0, n_data=10_000):
    """The image-scale outer iteration in PyTorch; ``on_device_rng`` draws with torch on the device."""
    torch.manual_seed(seed)
    draws = _TorchDraws(torch, dev, on_device_rng, seed)
    G = torch_mlp(torch, (LATENT, width, width, width, DATA_DIM), torch.float32, dev)
    D = torch_mlp(torch, (DATA_DIM, width, width, width, 1), torch.float32, dev)
    og = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.9), fused=dev == "cuda")
    od = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.9), fused=dev == "cuda")
    data = draws._up(np.random.default_rng(seed).uniform(-1, 1, (n_data, DATA_DIM)), torch.float32)

    def step():
        for _ in range(5):
            real = data[draws.indices(n_data, batch)]
            with torch.no_grad():
                fake = G(draws.normal(batch, LATENT))
            torch_wgan_gp_critic_update(torch, D, od, real, fake, eps=draws.uniform01(batch, 1))
        og.zero_grad(set_to_none=True)
        (-D(G(draws.normal(batch, LATENT))).mean()).backward()
        og.step()
    return step


def _set_tf32(torch, on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.set_float32_matmul_precision("high" if on else "highest")


# ----------------------------------------------------------------------------- environment
def _version(mod):
    try:
        return __import__(mod).__version__
    except Exception:
        return None


def environment(xp, torch, dev):
    """Device name, driver and CUDA versions, library versions (``None`` where not applicable)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        refimpl_version = version("refimpl")
    except PackageNotFoundError:
        refimpl_version = None
    meta = {"backend": backend_name(xp), "device": platform.processor() or platform.machine(), "driver": None,
            "cuda_driver_api": None, "cuda_runtime": None, "python": platform.python_version(),
            "numpy": np.__version__, "cupy": _version("cupy"), "torch": None if torch is None else torch.__version__,
            "torch_cuda": None if torch is None else torch.version.cuda, "refimpl": refimpl_version,
            "peer": "none" if torch is None else f"torch on {dev}"}
    if meta["backend"] == "cupy":
        import cupy
        rt = cupy.cuda.runtime
        meta["device"] = rt.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
        fmt = lambda v: f"{v // 1000}.{v % 1000 // 10}"
        meta["cuda_driver_api"], meta["cuda_runtime"] = fmt(rt.driverGetVersion()), fmt(rt.runtimeGetVersion())
        try:
            meta["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=20).stdout.split("\n")[0].strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
    return meta


def write_results(out, meta, rows):
    """``bench.json`` and ``bench.csv`` in ``out`` (created)."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    present = {k for r in rows for k in r}
    keys = list(meta) + [k for k in ROW_KEYS if k in present] + sorted(present - set(ROW_KEYS))
    with open(out / "bench.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({**meta, **r})


ROW_KEYS = ["workload", "batch", "width", "refimpl_ms", "torch_ms", "ratio", "ratio_q1", "ratio_q3", "pairs",
            "pairs_slower", "sign_test_p", "torch_tf32_ms", "ratio_tf32",
            "torch_device_rng_ms", "ratio_device_rng", "samples_per_s", "tflops_refimpl", "tflops_torch",
            "of_peak"]


# ----------------------------------------------------------------------------- the run
def _ms(t):
    return None if t is None else round(t * 1e3, 4)


def _ratio(a, b):
    return None if a is None or b is None else round(a / b, 4)


def _fmt(v, spec):
    return f"{'-':>{spec.split('.')[0]}}" if v is None else format(v, spec)


def run(xp, torch, dev, batches, widths, repeats, peak, say=print):
    """Time both workloads for every (batch, width); returns the rows (dicts)."""
    sync_x = lambda: synchronize(xp)
    sync_t = (lambda: torch.cuda.synchronize()) if (torch is not None and dev == "cuda") else (lambda: None)
    tx, tt = _timer(sync_x), _timer(sync_t)
    gpu = dev == "cuda"

    def paired(fr, make, reps):
        """refimpl's step and the peer's (TF32 off) alternately; then the peer with TF32 on."""
        if torch is None:
            return [tx(fr, reps)], None, None
        if gpu:
            _set_tf32(torch, False)
        ta, tb = paired_times(fr, sync_x, make(), sync_t, reps)
        t_on = None
        if gpu:
            _set_tf32(torch, True)
            t_on = tt(make(), reps)
            _set_tf32(torch, False)
        return ta, tb, t_on

    rows = []
    head = (f"{'batch':>6} {'width':>6} {'refimpl ms':>10} {'torch ms':>9} {'ratio':>6} {'ratio q1-q3':>11} "
            f"{'slower':>7} {'sign p':>7} {'tf32 ms':>8} {'dev-rng ms':>10} {'samples/s':>10} {'TFLOP/s':>8} "
            f"{'of peak':>8}")
    say("\n(1) WGAN-GP critic step, MLP (2, W, W, W, 1), float32")
    say(head)
    for b in batches:
        for w in widths:
            sizes = (2, w, w, w, 1)
            ta, tb, t_on = paired(refimpl_step_fn(sizes, b, "float32", xp=xp),
                                  lambda: torch_critic_step(torch, sizes, b, dev), repeats)
            rows.append(_row("critic", b, w, ta, tb, t_on, None, b, critic_step_flops(sizes, b), peak))
            say(_line(rows[-1]))
    say("\n(2) image-scale WGAN-GP outer iteration (5 critic + 1 generator step), "
        f"{LATENT}-W-W-W-{DATA_DIM} / {DATA_DIM}-W-W-W-1, float32")
    say(head)
    r_img = image_repeats(repeats)
    for b in batches:
        for w in widths:
            ta, tb, t_on = paired(refimpl_image_step(xp, w, b), lambda: torch_image_step(torch, w, b, dev), r_img)
            t_dev = None
            if torch is not None:
                t_dev = tt(torch_image_step(torch, w, b, dev, on_device_rng=True), r_img)
            rows.append(_row("image", b, w, ta, tb, t_on, t_dev, 6 * b, image_step_flops(w, b), peak))
            say(_line(rows[-1]))
    if backend_name(xp) == "cupy":
        say("\n(3) the same outer iteration replayed from a captured CUDA graph (refimpl --cuda-graph)")
        say(head)
        for b in batches:
            for w in widths:
                ta, tb, _ = paired(refimpl_image_step(xp, w, b, cuda_graph=True),
                                   lambda: torch_image_step(torch, w, b, dev), r_img)
                rows.append(_row("image-graph", b, w, ta, tb, None, None, 6 * b, image_step_flops(w, b), peak))
                say(_line(rows[-1]))
    return rows


def _row(workload, b, w, ta, tb, t_on, t_dev, samples, flops, peak, target=TARGET):
    """One result row from refimpl's times ``ta`` and the peer's paired times ``tb`` (None: no
    peer): medians, the median of the paired ratios with its quartiles, and the sign test."""
    tr = statistics.median(ta)
    t_off = None if tb is None else statistics.median(tb)
    row = {"workload": workload, "batch": b, "width": w, "refimpl_ms": _ms(tr), "torch_ms": _ms(t_off),
           "ratio": None, "ratio_q1": None, "ratio_q3": None, "pairs": None, "pairs_slower": None,
           "sign_test_p": None, "torch_tf32_ms": _ms(t_on), "ratio_tf32": _ratio(tr, t_on),
           "torch_device_rng_ms": _ms(t_dev), "ratio_device_rng": _ratio(tr, t_dev),
           "samples_per_s": round(samples / tr, 1), "tflops_refimpl": round(flops / tr / 1e12, 4),
           "tflops_torch": None if t_off is None else round(flops / t_off / 1e12, 4),
           "of_peak": round(flops / tr / peak, 4), "target": target, "target_sign_test_p": None}
    if tb is not None:
        ratios = [a / b_ for a, b_ in zip(ta, tb)]
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else (ratios[0],) * 3
        slower, n, p = sign_test(ratios)
        row.update(ratio=round(statistics.median(ratios), 4), ratio_q1=round(q1, 4), ratio_q3=round(q3, 4),
                   pairs=len(ratios), pairs_slower=slower, sign_test_p=round(p, 6),
                   target_sign_test_p=round(sign_test(ratios, target)[2], 6))
    return row


def _line(r):
    paired = r["pairs"] is not None
    spread = f"{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}" if paired else "-"
    slower = f"{r['pairs_slower']}/{r['pairs']}" if paired else "-"
    return (f"{r['batch']:6d} {r['width']:6d} {_fmt(r['refimpl_ms'], '10.3f')} {_fmt(r['torch_ms'], '9.3f')} "
            f"{_fmt(r['ratio'], '6.2f')} {spread:>11} {slower:>7} {_fmt(r['sign_test_p'], '7.3f')} "
            f"{_fmt(r['torch_tf32_ms'], '8.3f')} {_fmt(r['torch_device_rng_ms'], '10.3f')} "
            f"{r['samples_per_s']:10.0f} {r['tflops_refimpl']:8.3f} {r['of_peak']:8.1%}")


def target_summary(rows, min_batch=1024, min_width=1024):
    """One line on the target: the critic step at most :data:`TARGET` x PyTorch's time at batch >= ``min_batch``
    and width >= ``min_width``, each such row's verdict (:func:`verdict`); None when no row has a
    peer at those sizes."""
    cells = [r for r in rows if r["workload"] in ("critic", "image-graph") and r["batch"] >= min_batch and r["width"] >= min_width
             and r["pairs"] is not None]
    if not cells:
        return None
    parts = [f"{r['workload']} ({r['batch']}, {r['width']}) {r['ratio']:.2f}x, of peak {r['of_peak']:.0%}, "
             f"p={r['target_sign_test_p']:.2g} against {r['target']}: {verdict(r)}" for r in cells]
    return (f"target (<= {TARGET}x PyTorch CUDA eager with fused Adam at batch >= {min_batch}, width >= {min_width}, "
            f"and >= 50% of the measured matmul rate; sign test at 0.05): " + "; ".join(parts))


def _torch_peer(gpu):
    try:
        import torch
    except ImportError:
        if gpu:
            raise SystemExit("the peer needs PyTorch with CUDA: pip install torch (never a refimpl dependency)")
        return None
    if gpu and not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no CUDA device: install a CUDA build of torch for the peer")
    return torch


def main(argv=None):
    """``python -m gpu.bench ...``: 0; usage errors (a bad flag, a non-empty ``--out``) exit 2 with
    one line; ``RuntimeError`` when CuPy or the GPU is missing (one line, exit 2 from the command)."""
    from refimpl.harness import ArgumentParser          # usage errors in one line, exit 2
    ap = ArgumentParser(prog="python -m gpu.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="batches 64 and 1024, widths 512 and 1024, 10 pairs (a sign test decides from 6 on)")
    ap.add_argument("--dry-run", action="store_true",
                    help="NumPy backend, batch 8, width 16, 2 repeats (checks the script, measures nothing useful)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed pairs per critic-step cell (default 20; 10 with --quick, 2 with --dry-run); the "
                         "image step gets a quarter as many, at least 6. Fewer than 6 pairs can never decide")
    ap.add_argument("--out", default=None, help="a new or empty folder for bench.json and bench.csv")
    args = ap.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    out = pathlib.Path(args.out) if args.out else None
    if out is not None and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
        ap.error(f"--out {out} is not an empty folder; choose a new one (nothing is overwritten)")
    if args.dry_run:
        xp, dev = get_namespace("numpy"), "cpu"
        batches, widths, repeats, n_peak = (8,), (16,), args.repeats or 2, 256
    else:
        xp, dev = require_cupy(), "cuda"
        batches = (64, 1024) if args.quick else (64, 256, 1024, 4096)
        widths = (512, 1024) if args.quick else (512, 1024, 2048)
        repeats, n_peak = args.repeats or (10 if args.quick else 20), 4096
    torch = _torch_peer(dev == "cuda")
    meta = environment(xp, torch, dev)
    peak = matmul_rate(xp, lambda: synchronize(xp), n_peak, 3 if args.dry_run else 10)
    meta.update({"dtype": "float32", "random_source": "host numpy Generator, uploaded (both sides)",
                 "torch_tf32": "off in torch_ms; on in torch_tf32_ms", "repeats": repeats,
                 "image_repeats": image_repeats(repeats),
                 "timing": "refimpl and the peer alternately, pair by pair; ratio = median of the pairs' ratios",
                 "matmul_peak_tflops": round(peak / 1e12, 4), "matmul_peak_n": n_peak, "dry_run": args.dry_run})
    print(f"device: {meta['device']} (driver {meta['driver']}, CUDA runtime {meta['cuda_runtime']}); "
          f"cupy {meta['cupy']}, torch {meta['torch']}, numpy {meta['numpy']}; "
          f"measured float32 matmul {peak / 1e12:.2f} TFLOP/s ({n_peak}^3)")
    rows = run(xp, torch, dev, batches, widths, repeats, peak)
    line = target_summary(rows, *((8, 16) if args.dry_run else (1024, 1024)))
    if line:
        print("\n" + line)
    if out is not None:
        write_results(out, meta, rows)
        print(f"\nwrote {out / 'bench.json'} and bench.csv")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except RuntimeError as e:                        # no CuPy or no GPU: one line, as a bad flag
        print(f"python -m gpu.bench: error: {e}", file=sys.stderr)   # argparse's form, as its flag errors
        raise SystemExit(2)
