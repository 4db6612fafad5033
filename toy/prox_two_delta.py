"""Figure 1 of "Wasserstein proximal of GANs" (Sec. 2.3, Prop. 5): W-prox vs Euclidean prox.

Two-delta model ``alpha delta_a + (1 - alpha) delta_b`` with loss
``F_W1 = alpha |a - a*| + (1 - alpha) |b - b*|``. From one start ``theta_0`` both
proximal iterations ``theta_{k+1} = argmin F_W1 + d^2(theta, theta_k)/(2h)`` are run
with their closed forms (``refimpl.prox.two_delta_prox``) for several ``alpha``.

Outputs in ``opts.out``:
* ``prox_paths.png``: level sets of ``F_W1`` over ``(a, b)`` with both paths, one panel per alpha;
* ``metrics.json``: the table of ``F_W1(theta_k)`` for k = 0..K, per alpha and metric.

``opts.extra`` may set ``h`` (default 0.5), ``alphas`` (default [0.1, 0.3, 0.5]),
``theta0`` (default [-4, 4]) and ``theta_star`` (default [-1, 1]); ``opts.iters`` sets K
(default 10; 5 with ``quick``).
"""
from __future__ import annotations

import math
import pathlib

import numpy as np

from refimpl.backend import from_host, get_namespace, to_numpy
from refimpl.prox import F_W1, two_delta_prox
from toy.common import RunOptions, plt, write_json

DEFAULT_H = 0.5             # proximal step size h
DEFAULT_STEPS = 10          # proximal steps K
QUICK_STEPS = 5


def prox_path(xp, theta0, theta_star, alpha, h, metric, k_steps):
    """Iterates theta_0..theta_K (host array (K+1, 2)) and F_W1 along them (host (K+1,))."""
    th = from_host(theta0, xp, "float64")
    ts = from_host(theta_star, xp, "float64")
    pts = [th]
    for _ in range(k_steps):
        th = two_delta_prox(th, ts, alpha, h, metric=metric)
        pts.append(th)
    stacked = xp.stack(pts, axis=0)
    return to_numpy(stacked), to_numpy(F_W1(stacked, ts, alpha))


def run(opts: RunOptions) -> dict:
    """Run the experiment; write ``prox_paths.png`` and ``metrics.json``; return the metrics."""
    xp = get_namespace(opts.backend)
    ex = {k: v for k, v in (opts.extra or {}).items() if v is not None}   # CLI passes None for unset flags
    h = float(ex.get("h", DEFAULT_H))
    alphas = [float(a) for a in ex.get("alphas", [0.1, 0.3, 0.5])]
    theta0 = np.asarray(ex.get("theta0", [-4.0, 4.0]), dtype=float)
    theta_star = np.asarray(ex.get("theta_star", [-1.0, 1.0]), dtype=float)
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    k_steps = int(opts.iters) if opts.iters else (QUICK_STEPS if opts.quick else DEFAULT_STEPS)

    table, paths = {}, {}
    for al in alphas:
        pw, fw = prox_path(xp, theta0, theta_star, al, h, "wasserstein", k_steps)
        pe, fe = prox_path(xp, theta0, theta_star, al, h, "euclidean", k_steps)
        paths[al] = (pw, pe)
        table[f"{al:g}"] = {"k": list(range(k_steps + 1)), "F_W": fw.tolist(), "F_E": fe.tolist()}
    w_le_e = all(all(w <= e for w, e in zip(r["F_W"], r["F_E"])) for r in table.values())
    d0 = float(np.max(np.abs(theta0 - theta_star)))
    metrics = {
        "h": h, "alphas": alphas, "theta0": theta0.tolist(), "theta_star": theta_star.tolist(),
        "steps": k_steps, "backend": opts.backend, "threads": opts.threads, "table": table,
        "w_prox_F_le_e_prox_F_every_k": w_le_e,
        "w_prox_steps_to_target_predicted": math.ceil(d0 / h),
    }
    plot_paths(out / "prox_paths.png", paths, theta0, theta_star, h, k_steps,
          n_grid=120 if opts.quick else 300)
    write_json(out / "metrics.json", metrics)
    return metrics


def plot_paths(path, paths, theta0, theta_star, h, k_steps, n_grid):
    p = plt()
    lo = np.minimum(theta0, theta_star) - 1.0
    hi = np.maximum(theta0, theta_star) + 1.0
    A, B = np.meshgrid(np.linspace(lo[0], hi[0], n_grid), np.linspace(lo[1], hi[1], n_grid))
    fig, axes = p.subplots(1, len(paths), figsize=(4.2 * len(paths), 4.2), squeeze=False)
    for ax, (al, (pw, pe)) in zip(axes[0], paths.items()):
        F = al * np.abs(A - theta_star[0]) + (1 - al) * np.abs(B - theta_star[1])
        ax.contour(A, B, F, levels=14, cmap="Greys", linewidths=0.8)
        ax.plot(pw[:, 0], pw[:, 1], "o-", color="tab:blue", ms=4, label="Wasserstein prox")
        ax.plot(pe[:, 0], pe[:, 1], "s--", color="tab:red", ms=4, label="Euclidean prox")
        ax.plot(*theta_star, "k*", ms=12, label=r"$\theta^*$")
        ax.plot(*theta0, "ko", mfc="none", ms=8, label=r"$\theta_0$")
        ax.set_title(rf"$\alpha$ = {al:g}, h = {h:g}, {k_steps} steps")
        ax.set_xlabel("a")
        ax.set_ylabel("b")
        ax.set_aspect("equal")
    axes[0][0].legend(loc="upper right", fontsize=8)
    fig.suptitle(r"Level sets of $F_{W_1}$ and proximal paths (two-delta model, Prop. 5)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    p.close(fig)
