"""Benchmark: exact regularised OT dual solves, refimpl against POT, same run and threads.

Workload (SWGAN, Lemma 4.1): M = N = 1000 points in 2-D (x ~ N(0, I), y ~ N(1, I)),
Euclidean cost, ``lam = 0.05 * median(C)``, uniform weights.

* L2: ``refimpl.ot.solve_regularized(reg="l2")`` (semi-smooth Newton) against
  ``ot.smooth.smooth_ot_dual(reg_type="l2", reg=lam*M*N)`` (L-BFGS-B on the dual).
* KL: ``solve_regularized(reg="kl")`` (stabilised log-domain Sinkhorn) against
  ``ot.bregman.sinkhorn_log(reg=lam)`` (log-domain Sinkhorn).

Small-lambda regime (``--regime small``, issue 12 item 4): M = 50, N = 60 (same
distributions), ``lam / median(C)`` in {1e-2, 1e-3, 1e-4, 1e-6}, float32 and float64. KL:
``solve_regularized`` (epsilon-scaling, Sinkhorn-Newton, 10 s budget) against POT's
``ot.bregman.sinkhorn_log`` and ``ot.bregman.sinkhorn_epsilon_scaling``, each with its
default iteration limits (POT reports non-convergence by a warning, counted here), and
L2 ``solve_regularized`` alone (POT's L-BFGS-B dual has no small-lambda counterpart).
Time and the plan's largest marginal error come from the same run.

POT runs with its default tolerances (``stopThr=1e-9``); refimpl with its default
``tol=1e-9``. Accuracy of both is measured the same way, with refimpl's formulas on
each solver's own potentials and plan: ``|gap|/|primal|`` (primal of the plan minus the
dual of the potentials, Lemma 4.1) and the largest marginal error of the plan. Times
are medians over ``--repeats`` interleaved runs of the whole call, BLAS limited to
``--threads`` threads (default 1: the same single core for both).

    python -m toy.bench_ot [--regime all|large|small] [--n 1000] [--repeats 3] [--threads 1] [--seed 0]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from refimpl.ot import cost_matrix, dual_objective, primal_objective, solve_regularized


def _accuracy(plan, phi, psi, C, lam, reg, a, b):
    """(|gap|/|primal|, max marginal error, primal) of a plan and potentials, our formulas."""
    primal = float(primal_objective(plan, C, lam, reg, a, b))
    dual = float(dual_objective(phi, psi, C, lam, reg, a, b)[0])
    merr = max(np.abs(plan.sum(1) - a).max(), np.abs(plan.sum(0) - b).max())
    return abs(primal - dual) / abs(primal), float(merr), primal


def _ours(C, lam, reg, a, b):
    res = solve_regularized(C, lam, reg)
    return res.plan, res.phi, res.psi, res.iterations


def _pot(C, lam, reg, a, b):
    import ot
    M, N = C.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy's L-BFGS-B 'disp' inside POT
        if reg == "l2":
            G, log = ot.smooth.smooth_ot_dual(a, b, C, lam * M * N, reg_type="l2", log=True)
            # POT: G = (alpha_i + beta_j - C_ij)_+ / (lam M N)  ->  phi = alpha, psi = -beta
            return G, log["alpha"], -log["beta"], int(log["res"].nit)
        G, log = ot.bregman.sinkhorn_log(a, b, C, lam, log=True)
    # POT: log G = log_u_i + log_v_j - C_ij/lam  ->  phi = lam (log_u - log a + 1), psi = -lam (log_v - log b)
    return G, lam * (log["log_u"] - np.log(a) + 1.0), -lam * (log["log_v"] - np.log(b)), int(log["niter"])


def run(n=1000, repeats=3, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, 2)), rng.standard_normal((n, 2)) + 1.0
    C = cost_matrix(x, y, "euclidean")
    lam = 0.05 * float(np.median(C))
    a = b = np.full(n, 1.0 / n)
    rows = []
    for reg in ("l2", "kl"):
        solvers = {"refimpl": _ours, "POT": _pot}
        times = {k: [] for k in solvers}
        out = {}
        for _ in range(repeats):  # interleaved, so both see the same machine load
            for name, fn in solvers.items():
                t0 = time.perf_counter()
                out[name] = fn(C, lam, reg, a, b)
                times[name].append(time.perf_counter() - t0)
        for name in solvers:
            plan, phi, psi, iters = out[name]
            gap, merr, primal = _accuracy(plan, phi, psi, C, lam, reg, a, b)
            rows.append(dict(reg=reg, solver=name, time=statistics.median(times[name]), iters=iters,
                             gap=gap, merr=merr, primal=primal))
    return lam, rows


SMALL_RATIOS = (1e-2, 1e-3, 1e-4, 1e-6)


def _small_solvers(pot_max_iter=None):
    import ot
    from functools import partial
    log_kw = {} if pot_max_iter is None else {"numItermax": pot_max_iter}
    eps_kw = {} if pot_max_iter is None else {"numItermax": max(100, pot_max_iter // 100)}

    def ours(reg):
        def fn(C, lam, a, b):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # r.status says why it stopped
                r = solve_regularized(C, lam, reg)
            return r.plan, r.status

        return fn

    def pot(solver):
        def fn(C, lam, a, b):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                try:
                    G = solver(a, b, C, lam)
                except Exception as e:  # noqa: BLE001 - a peer's failure is a result here
                    return None, f"error: {type(e).__name__}"
            warned = [m for m in w if "converge" in str(m.message).lower() or "numerical" in str(m.message).lower()]
            return G, ("warned: not converged" if warned else "ok")

        return fn

    return {("kl", "refimpl"): ours("kl"),
            ("kl", "POT sinkhorn_log"): pot(partial(ot.bregman.sinkhorn_log, **log_kw)),
            ("kl", "POT eps_scaling"): pot(partial(ot.bregman.sinkhorn_epsilon_scaling, **eps_kw)),
            ("l2", "refimpl"): ours("l2")}


def run_small(repeats=3, seed=0, M=50, N=60, pot_max_iter=None):
    """The small-lambda table: rows of (dtype, lam/median, reg, solver, time, max marginal error, status)."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((M, 2)), rng.standard_normal((N, 2)) + 1.0
    C64 = cost_matrix(x, y, "euclidean")
    med = float(np.median(C64))
    solvers = _small_solvers(pot_max_iter)
    rows = []
    for dtype in ("float64", "float32"):
        C = C64.astype(dtype)
        a, b = np.full(M, 1.0 / M, dtype=dtype), np.full(N, 1.0 / N, dtype=dtype)
        for ratio in SMALL_RATIOS:
            lam = ratio * med
            times = {k: [] for k in solvers}
            out = {}
            for _ in range(repeats):            # interleaved, so all see the same machine load
                for k, fn in solvers.items():
                    t0 = time.perf_counter()
                    out[k] = fn(C, lam, a, b)
                    times[k].append(time.perf_counter() - t0)
            for (reg, name), (G, status) in out.items():
                if G is None or not np.all(np.isfinite(G)):
                    merr = float("nan")
                else:
                    G = np.asarray(G, dtype=np.float64)
                    merr = float(max(np.abs(G.sum(1) - 1.0 / M).max(), np.abs(G.sum(0) - 1.0 / N).max()))
                rows.append(dict(dtype=dtype, ratio=ratio, reg=reg, solver=name,
                                 time=statistics.median(times[(reg, name)]), merr=merr, status=status))
    return med, rows


def print_small(rows):
    head = f"{'dtype':<8}{'lam/med':>8}  {'reg':<4}{'solver':<18}{'time [s]':>10}{'max marg err':>14}  status"
    print(head)
    print("-" * (len(head) + 16))
    for r in rows:
        print(f"{r['dtype']:<8}{r['ratio']:>8.0e}  {r['reg']:<4}{r['solver']:<18}{r['time']:>10.3f}"
              f"{r['merr']:>14.2e}  {r['status']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regime", choices=("all", "large", "small"), default="all",
                    help="large: M = N = --n at lam = 0.05 median; small: 50 x 60 at lam/median 1e-2..1e-6")
    ap.add_argument("--n", type=int, default=1000, help="points per side (default 1000)")
    ap.add_argument("--pot-max-iter", type=int, default=None,
                    help="small regime: numItermax of sinkhorn_log (eps_scaling: outer numItermax = this/100); "
                         "default: POT's own limits")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for both (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(args.threads)
    except ImportError:  # pragma: no cover - depends on the install
        limiter = None
        print("threadpoolctl not installed: BLAS thread count not limited")
    import ot
    rows = []
    if args.regime in ("all", "small"):
        print(f"M = 50, N = 60, 2-D, Euclidean cost, threads {args.threads}, median of {args.repeats} run(s) "
              f"(numpy {np.__version__}, POT {ot.__version__})")
        med, small = run_small(args.repeats, args.seed, pot_max_iter=args.pot_max_iter)
        if args.pot_max_iter is not None:
            print(f"POT: sinkhorn_log numItermax={args.pot_max_iter}, "
                  f"sinkhorn_epsilon_scaling numItermax={max(100, args.pot_max_iter // 100)}")
        print(f"median(C) = {med:.6g}\n")
        print_small(small)
        print()
        rows += small
    if args.regime == "small":
        if limiter is not None:
            limiter.restore_original_limits()
        return rows
    print(f"M = N = {args.n}, 2-D, Euclidean cost, threads {args.threads}, median of {args.repeats} runs "
          f"(numpy {np.__version__}, POT {ot.__version__})")
    lam, large = run(args.n, args.repeats, args.seed)
    rows += large
    print(f"lam = 0.05 * median(C) = {lam:.6g}\n")
    head = (f"{'reg':<4}{'solver':<9}{'time [s]':>10}{'iters':>7}{'|gap|/|primal|':>16}"
            f"{'max marg err':>14}{'primal':>20}")
    print(head)
    print("-" * len(head))
    for r in large:
        print(f"{r['reg']:<4}{r['solver']:<9}{r['time']:>10.3f}{r['iters']:>7d}{r['gap']:>16.2e}"
              f"{r['merr']:>14.2e}{r['primal']:>20.12f}")
        if r["solver"] == "POT":
            o = next(q for q in large if q["reg"] == r["reg"] and q["solver"] == "refimpl")
            print(f"{'':<4}{'ratio':<9}{o['time'] / r['time']:>10.2f}{'':>7}{o['gap'] / max(r['gap'], 1e-300):>16.2e}"
                  f"{o['merr'] / max(r['merr'], 1e-300):>14.2e}{'(refimpl / POT)':>20}")
    if limiter is not None:
        limiter.restore_original_limits()
    return rows


if __name__ == "__main__":
    main()
