"""WGAN-GP vs WWGAN on images: critic stability under translation and noise.

Dukler et al. 2019, "Wasserstein of Wasserstein loss", Sec. 4.1 (Fig. 4, Table 1) and
Sec. 4.2 (Fig. 5), scaled down to MLPs on a CPU. Both methods share everything but
the penalty: the same MLP architectures, the same initial parameters, the same data
batches, latents and interpolation weights at every step (one seed per outer
iteration, drawn from the run's generator, feeds both), and the same number of steps.

Default data: scikit-learn's 8x8 digits (train split 1437 images, test split 360);
``--dataset mnist|cifar10 --data-dir DIR`` for the paper's kind of data.

Defaults (chosen to fit about 10 minutes on 2 shared CPU cores, float32):
generator MLP ``32 -> 256 -> 256 -> C*H*W`` (ReLU, tanh output), critic MLP
``C*H*W -> 256 -> 256 -> 1`` (leaky ReLU 0.2, as the paper's discriminator; 512 units
for images larger than 16x16), batch 64, 5 critic steps per generator step,
Adam(1e-4, 0.5, 0.9) for both networks, lambda = 10, 5000 generator iterations.
WWGAN: paper tensor (Prop. 5), 4-neighbour pixel graph, unit weights, mass
``(x + 1)/2``, Remark 7's ``alpha = 1`` (the paper gives no value).

Evaluation after training, on the held-out split, with each trained critic ``f``:

* translation (Fig. 4, Table 1): every test image shifted down by ``k = 0..H`` pixels,
  rows entering at the top filled with **-1**, the background value of the data and
  mass 0 under ``(x + 1)/2`` (so the image's mass leaves the frame; at ``k = H`` the
  image is blank). A second fill, pixel value 0 (mid grey), is reported beside it.
  Per curve ``c_k = f(shift_k x)``: ``tv_minmax`` = total variation of
  ``(c - min c)/(max c - min c)`` (offset- and scale-free; 1 for a monotone curve);
  ``tv_maxabs`` = total variation of ``c' / max|c'|`` with ``c' = c - t`` centred at the
  critic's real/fake threshold ``t = (mean f(real test) + mean f(generated))/2``;
  ``zero_crossings`` = sign changes of ``c'``; ``zero_crossings_raw`` = sign changes of
  ``c`` (the critic's additive constant is arbitrary in WGAN losses, so the raw count
  depends on it). All averaged over the test images. The paper does not define its
  normalisation; its curves have 33 points, ours ``H + 1``.
* salt and pepper (Fig. 5): each pixel value (each channel of each pixel) is set with
  probability 0.15 to -1 or +1 (the data's min and max, each with probability 1/2).
  ``separation = |mean f(clean) - mean f(noisy)| / sqrt((var clean + var noisy)/2)``,
  and ``auc`` = P(f(clean) > f(noisy)).
* sample quality: exact W1 in pixel space (:func:`refimpl.image_metrics.image_w1`)
  and a classifier Frechet distance (a stand-in for FID,
  :class:`refimpl.image_metrics.ClassifierFrechet`) between generated and test images,
  with the train/test values as the floor.

Outputs in ``opts.out``: ``metrics.json``, ``curve.csv`` (W1, FD, critic gap against
iteration), ``translation.csv`` (mean curves), ``samples.png``, ``critic_translation.png``,
``noise_hist.png``, ``learning_curves.png``, ``checkpoint.npz`` (both methods, resumable).
Classifier weights are cached in ``opts.out.parent / ".cache"``.
"""
from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

from refimpl.backend import device_of, from_host, get_namespace, namespace, to_numpy
from refimpl.evaluation import EVAL
from refimpl.image_metrics import ClassifierFrechet, classifier_accuracy, image_w1, train_classifier
from refimpl.images import load_images
from refimpl.train import ArrayData, GANConfig, GANMethod
from refimpl.wwgan import WWGANMethod

from .common import Outputs, RunOptions, grid_image, plt, run_and_write
from .gan import apply_overrides

DEFAULT_ITERS = 5000
QUICK_ITERS = 4
DEFAULT_DATASET = "digits"
#: the GANConfig of both methods, less the sizes that follow the images (data_dim, hidden layers)
CONFIG = dict(objective="wgan-gp", lam=10.0, latent_dim=32, gen_activation="relu", critic_activation="leaky_relu",
              gen_output="tanh", batch_size=64, n_critic=5, lr_gen=1e-4, lr_critic=1e-4, betas=(0.5, 0.9))
QUICK_BATCH = 16
NOISE_P = 0.15
ALPHA = 1.0
PAPER_TABLE1 = {"wgan-gp": {"total_variation": 5.36, "zero_crossings": 7.07},
                "wwgan": {"total_variation": 4.02, "zero_crossings": 0.65}}


# ----------------------------------------------------------------------------- both methods in one run
class PairedMethods:
    """Several GAN methods trained side by side by :func:`refimpl.train.train`.

    Each outer iteration draws one seed from the run's generator and gives every method
    its own ``numpy.random.default_rng(seed)``, so all see the same batches, latents and
    ``eps``; the initial parameters come from one shared seed too. The state is a dict
    ``{name: state}`` plus ``seconds`` (host wall time per method; on a GPU this is
    launch time unless the backend synchronises).
    """
    name = "paired"

    def __init__(self, methods: dict, *, name="paired"):
        self.methods, self.name = methods, name

    def config(self):
        return {k: m.config() for k, m in self.methods.items()}

    def init_state(self, rng, xp, dtype, device=None):
        seed = int(rng.integers(2 ** 63))
        st = {k: m.init_state(np.random.default_rng(seed), xp, dtype, device) for k, m in self.methods.items()}
        st["seconds"] = {k: 0.0 for k in self.methods}
        return st

    def outer_step(self, state, rng, data):
        seed = int(rng.integers(2 ** 63))
        new, logs, secs = {}, {}, dict(state["seconds"])
        for k, m in self.methods.items():
            t = time.perf_counter()
            new[k], lg = m.outer_step(state[k], np.random.default_rng(seed), data)
            secs[k] += time.perf_counter() - t
            logs.update({f"{k}/{n}": v for n, v in lg.items()})
        new["seconds"] = secs
        return new, logs


# ----------------------------------------------------------------------------- helpers
def critic_values(method, cparams, images, batch=4096):
    """Critic ``f`` on images (N, C, H, W) of the backend -> host float64 (N,)."""
    xp = namespace(images)
    x = xp.reshape(images, (images.shape[0], -1))
    n, out = x.shape[0], []
    for i in range(0, n, batch):
        out.append(to_numpy(method.critic.forward(cparams, x[i:min(i + batch, n), :])[0])[:, 0])
    return np.concatenate(out).astype(np.float64)


def shift_down(images, k, fill):
    """Images (N, C, H, W) shifted down by ``k`` pixels (0 <= k <= H), new rows = ``fill``."""
    xp = namespace(images)
    N, C, H, W = images.shape
    if k == 0:
        return images
    dev = device_of(images)
    top = xp.full((N, C, k, W), fill, dtype=images.dtype, **({"device": dev} if dev is not None else {}))
    if k >= H:
        return top
    return xp.concat([top, images[:, :, :H - k, :]], axis=2)


def curve_stats(curves, threshold):
    """Per-curve statistics of critic curves (N, K) (see the module docstring), averaged."""
    c = np.asarray(curves, float)
    rng_ = c.max(1, keepdims=True) - c.min(1, keepdims=True)
    mm = np.where(rng_ > 0, (c - c.min(1, keepdims=True)) / np.where(rng_ > 0, rng_, 1), 0.0)
    cc = c - threshold
    amax = np.abs(cc).max(1, keepdims=True)
    ma = np.where(amax > 0, cc / np.where(amax > 0, amax, 1), 0.0)
    zc = np.sum(cc[:, 1:] * cc[:, :-1] < 0, axis=1)
    zr = np.sum(c[:, 1:] * c[:, :-1] < 0, axis=1)
    tv_mm = np.abs(np.diff(mm, axis=1)).sum(1)
    tv_ma = np.abs(np.diff(ma, axis=1)).sum(1)
    return {"tv_minmax": float(tv_mm.mean()), "tv_maxabs": float(tv_ma.mean()),
            "zero_crossings": float(zc.mean()), "zero_crossings_raw": float(zr.mean()),
            "monotone_fraction": float(np.mean(np.all(np.diff(c, axis=1) <= 0, axis=1)
                                               | np.all(np.diff(c, axis=1) >= 0, axis=1))),
            "n_curves": int(c.shape[0]), "n_points": int(c.shape[1])}, mm


def salt_and_pepper(images_host, p, rng):
    """Each entry set with probability ``p`` to -1 or +1 (each with probability 1/2)."""
    hit = rng.random(images_host.shape) < p
    salt = rng.random(images_host.shape) < 0.5
    return np.where(hit, np.where(salt, 1.0, -1.0), images_host).astype(images_host.dtype)


def separation(clean, noisy):
    pooled = np.sqrt((clean.var(ddof=1) + noisy.var(ddof=1)) / 2)
    auc = float(np.mean(clean[:, None] > noisy[None, :]) + 0.5 * np.mean(clean[:, None] == noisy[None, :]))
    return {"mean_clean": float(clean.mean()), "std_clean": float(clean.std(ddof=1)),
            "mean_noisy": float(noisy.mean()), "std_noisy": float(noisy.std(ddof=1)),
            "separation": float(abs(clean.mean() - noisy.mean()) / pooled) if pooled > 0 else float("inf"),
            "auc_clean_above_noisy": auc}


def _default_sizes(shape):
    C, H, W = shape
    hidden = (256, 256) if H * W <= 256 else (512, 512)
    return hidden, (128, 64) if C * H * W <= 1024 else (256, 128)


# ----------------------------------------------------------------------------- the experiment
def run(opts: RunOptions):
    ex = opts.extra
    dataset = ex.get("dataset") or DEFAULT_DATASET
    data_dir = ex.get("data_dir")
    if dataset not in ("digits", "mnist", "cifar10"):
        raise ValueError(f"--dataset must be digits, mnist or cifar10, got {dataset!r}")
    xp = get_namespace(opts.backend)
    dtype = "float32"
    train_x, train_y = load_images(dataset, data_dir, "train")
    test_x, test_y = load_images(dataset, data_dir, "test")
    shape = tuple(int(s) for s in train_x.shape[1:])
    C, H, W = shape
    d = C * H * W
    iters = opts.iters or (QUICK_ITERS if opts.quick else DEFAULT_ITERS)
    hidden, cls_hidden = _default_sizes(shape)
    n_test = len(test_x)
    if opts.quick:
        hidden, cls_hidden, n_test = (16,), (16, 8), 40
        test_x, test_y = test_x[:n_test], test_y[:n_test]
    eval_every = max(iters // 10, 1) if not opts.quick else 2
    n_w1 = min(len(test_x), 1000)
    base = GANConfig(**{**CONFIG, "data_dim": d, "gen_hidden": hidden, "critic_hidden": hidden,
                        **({"batch_size": QUICK_BATCH} if opts.quick else {})})
    cfg = apply_overrides(base, opts)
    wgan = GANMethod(cfg, name="wgan-gp")
    ww = WWGANMethod(cfg, shape, neighbours=4, variant="paper", alpha=ALPHA)
    pair = PairedMethods({"wgan-gp": wgan, "wwgan": ww}, name=f"wwgan-vs-wgan-gp-{dataset}")

    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda s: print(s, file=sys.stderr, flush=True))

    # device copies; the classifier for the Frechet distance (cached)
    trx = from_host(train_x, xp, dtype)
    tex = from_host(test_x, xp, dtype)
    t0 = time.perf_counter()
    cls, cparams, cinfo = train_classifier(
        trx, from_host(train_y, xp), hidden=cls_hidden, steps=30 if opts.quick else 2000,
        batch_size=128, lr=1e-3, seed=0, cache_dir=out.parent / ".cache", tag=f"classifier-{dataset}", progress=say)
    cls_seconds = time.perf_counter() - t0
    cls_acc = classifier_accuracy(cls, cparams, tex, from_host(test_y, xp))
    fd_ref = ClassifierFrechet(cls, cparams, tex)
    w1_ref = test_x[:n_w1]
    say(f"classifier: test accuracy {cls_acc:.3f} ({'cached' if cinfo['cached'] else f'{cls_seconds:.1f} s'})")

    def gen_images(m, st, n, seed_tag):
        z = m.latent(EVAL.latent_rng(opts.seed, seed_tag), n, st["gen"][0][0])
        return xp.reshape(m.generate(st, z), (n, C, H, W))

    def eval_fn(state, it):
        row = {}
        for k, m in pair.methods.items():
            g = gen_images(m, state[k], n_w1, it)
            row[f"{k}/w1"] = image_w1(g, w1_ref)
            row[f"{k}/fd"] = fd_ref.score(g)
            row[f"{k}/critic_gap"] = float(critic_values(m, state[k]["critic"], tex).mean()
                                           - critic_values(m, state[k]["critic"], g).mean())
            row[f"{k}/seconds"] = round(state["seconds"][k], 2)
        return row

    def finish(res):
        state = res.state

        # ---- evaluation of the trained critics
        noise_rng = np.random.default_rng([opts.seed, 31337])
        noisy_host = salt_and_pepper(test_x, NOISE_P, noise_rng)
        noisy = from_host(noisy_host, xp, dtype)
        results, mean_curves, examples, hists, samples = {}, [], {}, {}, {}
        for k, m in pair.methods.items():
            cp = state[k]["critic"]
            f_real = critic_values(m, cp, tex)
            gen = gen_images(m, state[k], n_w1, 1_000_001)
            samples[k] = to_numpy(gen)
            f_gen = critic_values(m, cp, gen)
            thr = 0.5 * (f_real.mean() + f_gen.mean())
            r = {"w1": image_w1(gen, w1_ref), "fd": fd_ref.score(gen), "seconds": round(state["seconds"][k], 2),
                 "critic_threshold": float(thr), "critic_mean_real": float(f_real.mean()),
                 "critic_mean_generated": float(f_gen.mean())}
            for fill, tag in ((-1.0, "translation"), (0.0, "translation_fill0")):
                curves = np.stack([critic_values(m, cp, shift_down(tex, s, fill)) for s in range(H + 1)], axis=1)
                stats, mm = curve_stats(curves, thr)
                r[tag] = {"fill": fill, **stats}
                if fill == -1.0:
                    examples[k] = curves
                    for s in range(H + 1):
                        mean_curves.append({"method": k, "shift": s, "raw_mean": float(curves[:, s].mean()),
                                            "raw_std": float(curves[:, s].std()),
                                            "minmax_mean": float(mm[:, s].mean()), "minmax_std": float(mm[:, s].std())})
            f_noisy = critic_values(m, cp, noisy)
            r["noise"] = {"p": NOISE_P, **separation(f_real, f_noisy)}
            hists[k] = (f_real, f_noisy)
            results[k] = r

        base_w1 = image_w1(train_x[:n_w1], w1_ref)
        base_fd = fd_ref.score(trx[:n_w1, :, :, :])
        metrics = {
            "dataset": dataset, "image_shape": list(shape), "n_train": int(len(train_x)), "n_test": int(len(test_x)),
            "iterations": res.iterations, "seconds": round(res.seconds, 2), "backend": opts.backend,
            "samples": {"file": "samples.npz", "n": n_w1, "eval_seeds": {"latent": EVAL.latent_seed(opts.seed, 1_000_001)},
                        "noise_seed": [opts.seed, 31337], "test_images": f"the first {n_w1} of the test split"},
            "threads": opts.threads, "seed": opts.seed, "dtype": dtype, "methods": results,
            "table1_ours": {k: {"tv_minmax": results[k]["translation"]["tv_minmax"],
                                "tv_maxabs": results[k]["translation"]["tv_maxabs"],
                                "zero_crossings": results[k]["translation"]["zero_crossings"],
                                "zero_crossings_raw": results[k]["translation"]["zero_crossings_raw"]}
                            for k in results},
            "table1_paper": PAPER_TABLE1,
            "baselines": {"w1_train_vs_test": base_w1, "fd_train_vs_test": base_fd,
                          "classifier_test_accuracy": cls_acc, "classifier_cached": cinfo["cached"],
                          "n_w1": n_w1},
            "config": {**pair.config(), "classifier_hidden": list(cls_hidden), "noise_p": NOISE_P,
                       "translation_fill": -1.0, "eval_every": eval_every},
        }
        long_rows = []
        for row in res.curve:
            for k in pair.methods:
                long_rows.append({"method": k, "iteration": row["iteration"], "seconds": row.get(f"{k}/seconds"),
                                  "w1": row.get(f"{k}/w1"), "fd": row.get(f"{k}/fd"),
                                  "critic_gap": row.get(f"{k}/critic_gap")})
        return Outputs(metrics, samples, curve=long_rows, tables={"translation": mean_curves},
                       plots=lambda folder, _: _plots(folder, pair, state, test_x, examples, hists, long_rows, results,
                                                      gen_images, shape))

    return run_and_write(opts, pair, ArrayData(xp.reshape(trx, (trx.shape[0], d))), finish=finish, dataset=dataset,
                         xp=xp, dtype=dtype, iters=iters, eval_fn=eval_fn, eval_every=eval_every)


# ----------------------------------------------------------------------------- plots
def _plots(out, pair, state, test_x, examples, hists, rows, results, gen_images, shape):
    pyplot = plt()
    names = list(pair.methods)
    panels = [("test images", test_x[:64])]
    for k in names:
        panels.append((k, to_numpy(gen_images(pair.methods[k], state[k], 64, 1_000_002))))
    plot_image_panels(out / "samples.png", panels)
    image0, normalised = {}, {}
    for k in names:
        c = examples[k]
        rng_ = c.max(1, keepdims=True) - c.min(1, keepdims=True)
        mm = (c - c.min(1, keepdims=True)) / np.where(rng_ > 0, rng_, 1)
        image0[k] = c[0] - results[k]["critic_threshold"]
        normalised[k] = (mm.mean(0), mm.mean(0) - mm.std(0), mm.mean(0) + mm.std(0))
    plot_translation(out / "critic_translation.png", test_x[0], image0, normalised,
                     "min-max normalised curves, mean +- std")
    plot_noise_hist(out / "noise_hist.png", {k: (*hists[k], results[k]["noise"]["separation"]) for k in names})
    # learning curves
    fig, axes = pyplot.subplots(1, 2, figsize=(9, 3.4))
    for ax, key in zip(axes, ("w1", "fd")):
        for k in names:
            rr = [r for r in rows if r["method"] == k]
            ax.plot([r["iteration"] for r in rr], [r[key] for r in rr], marker=".", label=k)
        ax.set_xlabel("generator iteration")
        ax.set_title({"w1": "exact W1 to test images", "fd": "classifier Frechet distance"}[key])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    pyplot.close(fig)


def plot_image_panels(path, panels, suptitle=None):
    """Image grids side by side: ``panels`` = [(title, images (N, C, H, W) in [-1, 1])], 8 per row."""
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4 + (0.3 if suptitle else 0)),
                                squeeze=False)
    for ax, (title, imgs) in zip(axes[0], panels):
        ax.imshow(grid_image(imgs), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def plot_translation(path, image, image0, normalised, normalised_title, suptitle=None):
    """Fig. 4 analogue in three panels: ``image`` (C, H, W) shifted down 0..H; per method the
    critic minus its threshold on that image, ``image0 = {method: (H + 1,)}``; and per method a
    min-max normalised curve with a band, ``normalised = {method: (mean, low, high)}``, each (H + 1,)."""
    pyplot = plt()
    image = np.asarray(image, float)
    C, H, W = image.shape
    shifts = np.arange(H + 1)
    fig, axes = pyplot.subplots(1, 3, figsize=(13, 3.6 + (0.3 if suptitle else 0)))
    axes[0].imshow(grid_image(np.stack([np.concatenate([np.full((C, s, W), -1.0), image[:, :H - s, :]], 1)
                                        for s in shifts]), ncol=H + 1), cmap="gray", vmin=0, vmax=1,
                   interpolation="nearest")
    axes[0].set_title("test image 0 shifted down 0..H")
    axes[0].axis("off")
    for k in image0:
        axes[1].plot(shifts, image0[k], marker="o", label=k)
        mean, lo, hi = (np.asarray(a, float) for a in normalised[k])
        line, = axes[2].plot(shifts, mean, marker="o", label=k)
        axes[2].fill_between(shifts, lo, hi, color=line.get_color(), alpha=0.2)
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_title("critic - threshold, test image 0")
    axes[1].set_xlabel("shift (pixels)")
    axes[1].legend(fontsize=8)
    axes[2].set_title(normalised_title, fontsize=9)
    axes[2].set_xlabel("shift (pixels)")
    axes[2].legend(fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def plot_noise_hist(path, hists, suptitle=None):
    """Fig. 5 analogue: per method histograms of the critic on clean and salt-and-pepper images;
    ``hists = {method: (clean (N,), noisy (N,), separation)}``."""
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(hists), figsize=(5 * len(hists), 3.4 + (0.3 if suptitle else 0)), squeeze=False)
    for ax, (k, (clean, noisy, sep)) in zip(axes[0], hists.items()):
        clean, noisy = np.asarray(clean, float), np.asarray(noisy, float)
        bins = np.linspace(min(clean.min(), noisy.min()), max(clean.max(), noisy.max()), 40)
        ax.hist(clean, bins=bins, alpha=0.6, label="clean")
        ax.hist(noisy, bins=bins, alpha=0.6, label=f"salt & pepper {NOISE_P:.0%}")
        ax.set_title(f"{k}: separation {sep:.2f}")
        ax.set_xlabel("critic value")
        ax.legend(fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)
