"""Benchmark: the DCGAN WGAN-GP critic step, refimpl against PyTorch CPU, same run and thread count.

Workload (issue 26, item 4): ``dcgan_critic((3, 32, 32), width)`` (5x5 stride-2 convolutions,
layer norm, leaky ReLU 0.2, a linear unit), batch 64, float32. One critic step::

    eps ~ U(0, 1) (B, 1, 1, 1),   x_hat = eps real + (1 - eps) fake,
    loss = mean D(fake) - mean D(real) + 10 mean_n (||grad_x D(x_hat_n)|| - 1)^2,

its parameter gradient, then an Adam update (lr 1e-4, betas (0.5, 0.9)). refimpl, on the unchecked
cores (``net.forward.unchecked`` ...): one ``forward`` over ``[real, fake]`` and ``backward`` with the
seed ``-1/B, +1/B``; ``input_gradient`` at ``x_hat``; ``input_gradient_vjp`` with
``u_n = 10 * 2 (n - 1)/n g_n / B`` (``n = ||g_n||``); the two gradient lists summed; ``Adam.step`` on
flat parameters. Peer: the same network in ``torch.nn`` with the same weights,
``torch.autograd.grad(..., create_graph=True)`` and ``torch.optim.Adam``. A parity check in float64
runs first (the two gradients and the updated parameters agree to 1e-9 relative, asserted).

Rows: the step at the builder's default width and at a smaller one, and the forward alone (the
step's forward over the ``2B`` real and fake images; PyTorch with autograd recording, as in the
step, refimpl keeping its cache). The closures are timed one call each per round, in an order
that rotates from round to round; the table gives medians, the quartiles of the times, and the
median and quartiles of the per-round ratios refimpl/PyTorch (each ratio pairs two calls of the
same round, so drift of a loaded machine hits both). Then the share of refimpl's step spent in
im2col and col2im.

    python -m toy.bench_conv [--quick] [--repeats N] [--threads T]
"""
from __future__ import annotations

import argparse
import inspect
import os
import statistics
import time
from contextlib import contextmanager

import numpy as np

from refimpl.backend import namespace
from refimpl.cnn import Conv2d, Dense, LayerNorm, dcgan_critic
from refimpl.flat import flatten
from refimpl.nn import LEAKY_SLOPE
from refimpl.optim import Adam

IMAGE_SHAPE = (3, 32, 32)
BATCH = 64
LAM = 10.0
LR, BETAS, ADAM_EPS = 1e-4, (0.5, 0.9), 1e-8
TARGET = 1.5                       # refimpl/PyTorch at most this (issue 26)
PARITY_TOL = 1e-9                  # loss and gradients, relative
#: Adam updates, relative: the first step is lr g / (|g| + eps'), so an entry of g near eps' = 3e-9 turns
#: a rounding difference of 1e-16 into a relative change of its update of up to about 1e-7
UPDATE_TOL = 1e-6
DEFAULT_WIDTH = inspect.signature(dcgan_critic).parameters["width"].default


# ----------------------------------------------------------------------------- refimpl side
def refimpl_critic_grads(net, params, real, fake, eps, lam=LAM):
    """``(loss, grads)`` of the WGAN-GP critic loss (module docstring) by refimpl's unchecked passes.

    ``real``, ``fake`` (B, C, H, W); ``eps`` (B, 1, 1, 1); ``grads`` a list of ``(dW, db)``."""
    xp = namespace(real)
    B = real.shape[0]
    y, cache = net.forward.unchecked(params, xp.concat([real, fake], axis=0))
    seed = xp.concat([xp.full((B, 1), -1.0 / B, dtype=y.dtype), xp.full((B, 1), 1.0 / B, dtype=y.dtype)], axis=0)
    _, g_loss = net.backward.unchecked(params, cache, seed, need_dx=False)
    x_hat = eps * real + (1 - eps) * fake
    g, tape = net.input_gradient.unchecked(params, x_hat)
    n = xp.sqrt(xp.sum(g * g, axis=(1, 2, 3), keepdims=True))
    u = ((2.0 * lam / B) * (n - 1.0) / n) * g
    _, g_pen = net.input_gradient_vjp.unchecked(params, tape, u, need_dx=False)
    grads = [(a + c, b + d) for (a, b), (c, d) in zip(g_loss, g_pen)]
    loss = xp.mean(y[B:]) - xp.mean(y[:B]) + lam * xp.mean((n - 1.0) ** 2)
    return loss, grads


def refimpl_step_fn(net, params, real, fake, seed=0, eps=None):
    """One refimpl critic step (fresh ``eps``, gradient, flat in-place Adam) as a closure.

    ``params``: a parameter list; the closure updates its own flat copy (``step.params``).
    ``eps`` (B, 1, 1, 1): fixed interpolation weights instead of a draw per call."""
    xp = namespace(real)
    flat = flatten(params)
    opt = Adam(LR, *BETAS, ADAM_EPS)
    state = {"o": opt.init.unchecked(flat)}
    rng = np.random.default_rng(seed)
    B = real.shape[0]

    def step():
        e = xp.asarray(rng.uniform(size=(B, 1, 1, 1)), dtype=real.dtype) if eps is None else eps
        _, grads = refimpl_critic_grads(net, flat, real, fake, e)
        state["o"] = opt.step.unchecked(flat, grads, state["o"])[1]
    step.params = flat
    return step


def refimpl_forward_fn(net, params, real, fake):
    """The step's forward alone (over ``[real, fake]``, cache kept) as a closure."""
    xp = namespace(real)
    x = xp.concat([real, fake], axis=0)
    return lambda: net.forward.unchecked(params, x)


# ----------------------------------------------------------------------------- PyTorch side
def torch_twin(torch, net, params):
    """``torch.nn.Sequential`` computing ``net`` (Conv2d, LayerNorm, Dense layers) with the weights ``params``
    (host arrays; dtype taken from them). Dense ``W`` is ``(D_in, D_out)`` in refimpl, transposed here."""
    nn = torch.nn
    acts = {"leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "relu": nn.ReLU, "tanh": nn.Tanh,
            "sigmoid": nn.Sigmoid, "softplus": nn.Softplus, "elu": nn.ELU, "linear": None}
    mods, shapes = [], net.shapes
    for l, (layer, (W, b)) in enumerate(zip(net.layers, params)):
        W, b = np.asarray(W), np.asarray(b)
        dt = {np.dtype("float32"): torch.float32, np.dtype("float64"): torch.float64}[W.dtype]
        has_b = b.shape[0] > 0
        if isinstance(layer, Conv2d):
            m = nn.Conv2d(W.shape[1], W.shape[0], layer.kernel, layer.stride, layer.padding, bias=has_b, dtype=dt)
            w_t = W
        elif isinstance(layer, LayerNorm):
            m = nn.LayerNorm(tuple(shapes[l]), eps=layer.eps, dtype=dt)
            w_t = W
        elif isinstance(layer, Dense) and layer.out_shape is None:
            if len(shapes[l]) == 3:
                mods.append(nn.Flatten(1))
            m = nn.Linear(W.shape[0], W.shape[1], bias=has_b, dtype=dt)
            w_t = W.T
        else:
            raise TypeError(f"torch_twin: layers[{l}] ({type(layer).__name__}) is not supported here")
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w_t)))
            if has_b:
                m.bias.copy_(torch.from_numpy(b))
        mods.append(m)
        if acts[layer.activation] is not None:
            mods.append(acts[layer.activation]())
    return nn.Sequential(*mods)


def torch_param_pairs(torch, critic, net):
    """The twin's parameters as refimpl's ``[(W, b), ...]`` (tensors; ``b`` empty where the layer has none,
    Dense ``W`` transposed back): ``getter(p)`` applied to each, e.g. ``lambda p: p.grad``."""
    mods = [m for m in critic if isinstance(m, (torch.nn.Conv2d, torch.nn.LayerNorm, torch.nn.Linear))]
    assert len(mods) == net.n_layers

    def pairs(getter):
        out = []
        for m in mods:
            W = getter(m.weight)
            W = W.T if isinstance(m, torch.nn.Linear) else W
            b = getter(m.bias) if m.bias is not None else torch.zeros(0, dtype=W.dtype)
            out.append((W, b))
        return out
    return pairs


def torch_critic_loss(torch, critic, real, fake, eps, lam=LAM):
    """The same loss by autograd (``create_graph=True`` for the penalty); returns the loss tensor."""
    B = real.shape[0]
    scores = critic(torch.cat([real, fake]))
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    gp = lam * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return scores[B:].mean() - scores[:B].mean() + gp


def torch_step_fn(torch, critic, real, fake, seed=0, eps=None):
    """One PyTorch critic step (fresh ``eps``, ``loss.backward()``, ``torch.optim.Adam``) as a closure;
    it updates ``critic``'s parameters in place. ``eps``: fixed interpolation weights."""
    opt = torch.optim.Adam(critic.parameters(), lr=LR, betas=BETAS, eps=ADAM_EPS)
    gen = torch.Generator().manual_seed(seed)
    B = real.shape[0]

    def step():
        opt.zero_grad(set_to_none=True)
        e = torch.rand(B, 1, 1, 1, dtype=real.dtype, generator=gen) if eps is None else eps
        torch_critic_loss(torch, critic, real, fake, e).backward()
        opt.step()
    return step


def torch_forward_fn(torch, critic, real, fake):
    x = torch.cat([real, fake])
    return lambda: critic(x)


# ----------------------------------------------------------------------------- parity
def random_params(net, rng, dtype="float64"):
    """The network's initial weights with random biases and norm gains/offsets (nothing sits at 0 or 1)."""
    out = []
    for layer, (W, b) in zip(net.layers, net.init(rng)):
        if layer.affine:
            W, b = W, 0.3 * rng.standard_normal(b.shape)
        else:
            W, b = 1.0 + 0.3 * rng.standard_normal(W.shape), 0.3 * rng.standard_normal(b.shape)
        out.append((W.astype(dtype), b.astype(dtype)))
    return out


def _np_leaves(pairs):
    return [a.detach().numpy() if hasattr(a, "detach") else np.asarray(a) for Wb in pairs for a in Wb]


def _rel_diffs(ours, theirs):
    """Per leaf ``max|ours - theirs| / max|theirs|`` (flat lists of host arrays); a leaf whose largest entry
    is below 1e-8 of the largest of all (the last layer's bias gradient: the loss does not depend on that
    bias) is scaled by the largest of all."""
    top = max(float(np.max(np.abs(t))) for t in theirs if t.size)
    out = []
    for a, t in zip(ours, theirs):
        if not t.size:
            continue
        m = float(np.max(np.abs(t)))
        out.append(float(np.max(np.abs(a - t))) / (m if m >= 1e-8 * top else top))
    return out


def parity(image_shape=IMAGE_SHAPE, width=DEFAULT_WIDTH, batch=4, seed=0):
    """Same weights and inputs in float64: refimpl's and PyTorch's loss, gradient, and parameters after one
    Adam step (the update, through the two step closures). Returns a dict of the largest relative differences and the
    refimpl gradient (a list of pairs), for the caller to assert on."""
    import torch
    rng = np.random.default_rng(seed)
    net = dcgan_critic(image_shape, width)
    params = random_params(net, rng)
    real, fake = (rng.standard_normal((batch, *image_shape)) for _ in range(2))
    eps = rng.uniform(size=(batch, 1, 1, 1))
    loss, grads = refimpl_critic_grads(net, params, real, fake, eps)

    critic = torch_twin(torch, net, params)
    pairs = torch_param_pairs(torch, critic, net)
    treal, tfake, teps = (torch.from_numpy(a) for a in (real, fake, eps))
    critic.zero_grad(set_to_none=True)
    tloss = torch_critic_loss(torch, critic, treal, tfake, teps)
    tloss.backward()
    grad_diff = max(_rel_diffs(_np_leaves(grads), _np_leaves(pairs(lambda p: p.grad))))

    # one step of each closure with the same eps: the Adam updates (new - old parameters) agree too
    ref = refimpl_step_fn(net, params, real, fake, eps=eps)
    torch_step_fn(torch, critic, treal, tfake, eps=teps)()
    ref()
    old = _np_leaves(params)
    upd = [a - o for a, o in zip(_np_leaves(ref.params), old)]
    tupd = [a - o for a, o in zip(_np_leaves(pairs(lambda p: p)), old)]
    param_diff = max(_rel_diffs(upd, tupd))
    return {"loss": abs(float(loss) - tloss.item()) / max(1.0, abs(tloss.item())),
            "grads": grad_diff, "update": param_diff, "refimpl_grads": grads}


# ----------------------------------------------------------------------------- timing
def interleaved(fns, repeats, warmup=1):
    """Seconds of each closure over ``repeats`` rounds, one call each per round in an order that rotates
    round by round. Returns one list of times per closure (index ``r`` is round ``r``)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    ts = [[] for _ in fns]
    for r in range(repeats):
        for i in [(r + k) % len(fns) for k in range(len(fns))]:
            t0 = time.perf_counter()
            fns[i]()
            ts[i].append(time.perf_counter() - t0)
    return ts


def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def verdict(r_lo, r_hi, target=TARGET):
    """``met`` if the upper quartile of the paired ratios is within the target, ``not met`` if the lower
    quartile is above it, else ``undecided``."""
    return "met" if r_hi <= target else "not met" if r_lo > target else "undecided"


@contextmanager
def timed_im2col():
    """Accumulate the seconds spent in :func:`refimpl.cnn.conv.im2col` and ``col2im`` (padding included)."""
    from refimpl.cnn import conv
    acc = {"im2col": 0.0, "col2im": 0.0}
    orig = {k: getattr(conv, k) for k in acc}

    def wrap(name):
        f = orig[name]

        def g(*a, **kw):
            t0 = time.perf_counter()
            try:
                return f(*a, **kw)
            finally:
                acc[name] += time.perf_counter() - t0
        return g
    for k in acc:
        setattr(conv, k, wrap(k))
    try:
        yield acc
    finally:
        for k, f in orig.items():
            setattr(conv, k, f)


def machine():
    """The CPU model (with its widest vector extension) and the BLAS libraries with their kernels
    (threadpoolctl's ``architecture``), as :func:`toy.bench_engine.machine`."""
    from toy import bench_engine
    cpu, blas = bench_engine.machine()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
        cpu = f"{cpu}, {os.cpu_count()} cores" + (f", {isa}" if isa else "")
    except OSError:
        pass
    return cpu, blas


def setup(torch, width, batch, dtype, seed=0):
    """Network, weights, inputs and the four closures (refimpl step, torch step, refimpl forward, torch forward)."""
    rng = np.random.default_rng(seed)
    net = dcgan_critic(IMAGE_SHAPE, width)
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in net.init(rng)]
    real = rng.standard_normal((batch, *IMAGE_SHAPE)).astype(dtype)
    fake = rng.standard_normal((batch, *IMAGE_SHAPE)).astype(dtype)
    critic = torch_twin(torch, net, params)
    treal, tfake = torch.from_numpy(real.copy()), torch.from_numpy(fake.copy())
    return (net, params, real, fake,
            refimpl_step_fn(net, params, real, fake, seed), torch_step_fn(torch, critic, treal, tfake, seed),
            refimpl_forward_fn(net, params, real, fake), torch_forward_fn(torch, critic, treal, tfake))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds (default 15)")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per row")
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: all cores)")
    ap.add_argument("--widths", default=f"{DEFAULT_WIDTH},32",
                    help=f"comma list of critic widths (default: the builder's {DEFAULT_WIDTH}, then 32)")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default allocator thresholds")
    args = ap.parse_args(argv)
    if not args.no_malloc_tuning:
        from toy.common import tune_allocator
        tune_allocator()      # affects both sides: same process, same allocator
    try:
        import torch
    except ImportError:
        raise SystemExit("the benchmark peer needs PyTorch CPU: pip install torch (never a refimpl dependency)")
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass
    repeats = args.repeats or (3 if args.quick else 15)
    widths = [int(w) for w in args.widths.split(",") if w.strip()]
    cpu, blas = machine()
    load0 = os.getloadavg()
    print(f"threads: {threads} (torch {torch.__version__}, numpy {np.__version__})")
    print(f"CPU: {cpu}\nBLAS: {blas}\ntorch: {torch.get_num_threads()} threads, "
          f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    if load0[0] > 0.5 * (os.cpu_count() or 1):
        print(f"note: other processes share the {os.cpu_count()} cores: times are inflated, and with more threads "
              "than free cores both sides mostly wait for a core, so the ratios do not measure the code")

    p = parity()
    print(f"\nparity (float64, {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}x{IMAGE_SHAPE[2]}, width {DEFAULT_WIDTH}, batch 4, "
          f"same weights and eps): max relative difference loss {p['loss']:.1e}, gradients {p['grads']:.1e}, "
          f"Adam update {p['update']:.1e}")
    for k, tol in (("loss", PARITY_TOL), ("grads", PARITY_TOL), ("update", UPDATE_TOL)):
        assert p[k] <= tol, f"parity: refimpl and PyTorch {k} differ by {p[k]:.2e} > {tol}"

    C, H, W = IMAGE_SHAPE
    print(f"\nDCGAN WGAN-GP critic step, {C}x{H}x{W}, batch {args.batch}, {args.dtype}, {threads} threads, "
          f"{repeats} rounds; ms: median [quartiles]; ratio refimpl/PyTorch: median [quartiles] of the per-round pairs")
    head = (f"{'row':18} {'refimpl ms':>22} {'PyTorch ms':>22} {'ratio':>18}  verdict (<= {TARGET}x)")
    print(head)
    rows, im2col_line = [], None
    for wi, width in enumerate(widths):
        net, params, real, fake, rs, ts, rf, tf = setup(torch, width, args.batch, args.dtype)
        fns = [rs, ts] + ([rf, tf] if wi == 0 else [])
        times = interleaved(fns, repeats)
        labels = [f"step, width {width}"] + ([f"forward, width {width}"] if wi == 0 else [])
        for j, label in enumerate(labels):
            t_r, t_t = times[2 * j], times[2 * j + 1]
            ratios = [a / b for a, b in zip(t_r, t_t)]
            qr, qt, qq = quartiles(t_r), quartiles(t_t), quartiles(ratios)
            v = verdict(qq[0], qq[2]) if label.startswith("step") else "-"
            rows.append((label, qr, qt, qq, v))
            print(f"{label:18} {1e3 * qr[1]:8.1f} [{1e3 * qr[0]:5.0f}-{1e3 * qr[2]:5.0f}] "
                  f"{1e3 * qt[1]:8.1f} [{1e3 * qt[0]:5.0f}-{1e3 * qt[2]:5.0f}] "
                  f"{qq[1]:6.2f} [{qq[0]:.2f}-{qq[2]:.2f}]  {v}")
        if wi == 0:
            n_prof = max(2, repeats // 3)
            with timed_im2col() as acc:
                t0 = time.perf_counter()
                for _ in range(n_prof):
                    rs()
                t_prof = (time.perf_counter() - t0) / n_prof
            a, c = acc["im2col"] / n_prof, acc["col2im"] / n_prof
            im2col_line = (f"refimpl step, width {width}: im2col {1e3 * a:.1f} ms + col2im {1e3 * c:.1f} ms of "
                           f"{1e3 * t_prof:.1f} ms ({(a + c) / t_prof:.0%}; {n_prof} steps, timers included)")
    print("\n" + im2col_line)
    load1 = os.getloadavg()
    print(f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    return rows


if __name__ == "__main__":
    main()
