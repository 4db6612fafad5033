"""Exact solvers of the regularised OT dual: the engine of :func:`refimpl.ot.solve_regularized`.

Paper: Sanjabi et al., Lemma 4.1 (the dual ``F``, eqs. 11-12), eqs. 25-26 (block
updates); the method (stabilised log-domain Sinkhorn, Sinkhorn-Newton, semi-smooth
Newton for L2, epsilon-scaling, stopping rule, time budget) is described in the
docstring of :mod:`refimpl.ot` and in ``docs/smoothed-ot.md``. Notation as there: rows
``i`` (weights ``a``), columns ``j`` (weights ``b``), ``V = phi_i - psi_j - C_ij``.
Everything here takes validated arrays (no checks) and creates arrays on ``C``'s device;
the loops read scalars on the host (the solver is host-driven, not a training step).
"""
from __future__ import annotations

import math
import time

__all__: list = []      # private engine: the public entry point is refimpl.ot.solve_regularized

def _progress(D, phi, psi, err_r, err_c, mass_err, F, tol):
    """Stopping measure; converged when <= 1 (host float).

    ``max(bound / (tol S), (|r - a|_1 + |c - b|_1) / tol)`` with ``bound`` the Hoelder bound
    of ``|gap| = |<phi, r - a> - <psi, c - b>|`` (module docstring) and ``S = value_scale``
    (``|F|``; the size of the terms of ``F`` for the zero-value problem). The marginal term is
    needed: the gap of a pseudo-plan can vanish while it is infeasible (e.g. constant
    ``psi`` and exact rows give ``gap = 0`` whatever the column sums).
    """
    xp = D.xp
    pmax, pmin, qmax, qmin = (float(xp.max(phi)), float(xp.min(phi)), float(xp.max(psi)), float(xp.min(psi)))
    bound = (0.5 * (pmax - pmin) * err_r + 0.5 * (qmax - qmin) * err_c
             + abs(0.5 * (pmax + pmin) - 0.5 * (qmax + qmin)) * mass_err)
    scale = tol * value_scale(D, max(abs(pmax), abs(pmin)), max(abs(qmax), abs(qmin)), F)
    gap_term = bound / scale if scale > 0 else (0.0 if bound == 0 else math.inf)
    return max(gap_term, (err_r + err_c) / tol)


def value_scale(D, phi_max, psi_max, F):
    """The size against which ``tol`` measures the gap: ``|F|``, except for the zero-value problem.

    KL with ``C = 0`` (``D.null``; with weights > 0 the only KL problem of value 0, since
    ``0 <= d_c <= d_{c,lam} <= <a, C b>``, the cost of ``a b^T``, whose ``I`` is 0): there
    ``F`` is a cancellation ``<a, phi> - <b, psi> - lam sum P`` of terms of size
    ``S0 = lam + max|phi| + max|psi|`` (``phi - psi = lam`` at the optimum), so the computed
    ``F``, the primal and the gap are rounding noise ``~ eps S0`` and ``tol |F|`` cannot be
    met by any plan. The gap is then measured against ``S0``: ``|gap| <= tol S0``, which
    (``tol >= 1e3 eps``) is above that rounding and, by the Hoelder bound, follows from the
    marginal test (``|gap| <= (max|phi| + max|psi|) * L1 marginal error``). Where the value
    is not 0 the relative term is kept as it is: an absolute term of size ``eps S0`` would
    certify a value like ``lam = 1e12`` against costs ~1 (error ``~eps lam = 2e-4``), which
    is reported as ``"resolution"`` instead. L2 values are ``>= lam/2 > 0``.
    """
    if D.null:
        return max(abs(F), D.lam + phi_max + psi_max)
    return abs(F)


def _lse(Z, axis, xp):
    """``log sum exp`` along ``axis`` with the max shifted out (finite for finite Z)."""
    m = xp.max(Z, axis=axis, keepdims=True)
    return xp.squeeze(m, axis=axis) + xp.log(xp.sum(xp.exp(Z - m), axis=axis))


def _pcg(matvec, g, prec, rtol, maxit, xp):
    """Preconditioned conjugate gradients for ``A x = g`` from ``x = 0``."""
    x, res = xp.zeros_like(g), g
    z = prec * res
    p, rz = z, xp.sum(res * z)
    stop = rtol * float(xp.sqrt(xp.sum(g * g)))
    for _ in range(maxit):
        q = matvec(p)
        alpha = rz / xp.sum(p * q)
        x, res = x + alpha * p, res - alpha * q
        if float(xp.sqrt(xp.sum(res * res))) <= stop:
            break
        z = prec * res
        rz_new = xp.sum(res * z)
        p, rz = z + (rz_new / rz) * p, rz_new
    return x


class _State:
    """Potentials with their pseudo-plan data: ``X`` is ``P`` (KL) or ``V_+`` (L2)."""

    __slots__ = ("phi", "psi", "X", "r", "c", "F")

    def __init__(self, phi, psi, X, r, c, F):
        self.phi, self.psi, self.X, self.r, self.c, self.F = phi, psi, X, r, c, F


class _Dual:
    """The dual ``F`` of one problem (Lemma 4.1), its exact block updates and Newton systems.

    One subclass per regulariser (:data:`_DUALS`, keyed by
    :attr:`refimpl.regularizers.Regularizer.name`): :class:`_KLDual` (log-domain Sinkhorn,
    Sinkhorn-Newton) and :class:`_L2Dual` (exact root sweeps, semi-smooth Newton), made by
    :func:`_dual`. Each has ``state``, ``sweep``, ``exact_rows_state``, ``laplacian`` and ``stage``.
    """
    null = False          # the zero-value problem (``value_scale``): KL with C = 0 only

    def __init__(self, C, lam, a, b, xp, cmax=None):
        self.C, self.lam, self.a, self.b, self.xp = C, lam, a, b, xp
        self.M, self.N = C.shape
        self.eps = float(xp.finfo(C.dtype).eps)
        self.cmax = float(xp.max(C)) if cmax is None else cmax
        self.zero = xp.zeros((), dtype=C.dtype, device=C.device)

    def newton_direction(self, st, mu, rtol):
        """Solve ``(L + mu diag(a, b)/lam) d = grad F`` for the generalised Hessian ``-L`` of ``F``.

        ``L = [[diag(H 1), -H], [-H^T, diag(H^T 1)]]`` (a bipartite graph Laplacian) with
        ``H = P/lam`` (KL) or ``H = a b^T [V > 0]/lam`` (L2), from ``laplacian``. Dense solve
        when ``M + N <= _DIRECT_MAX``, else Jacobi-preconditioned CG to relative residual ``rtol``.
        """
        xp, lam, a, b, M, N = self.xp, self.lam, self.a, self.b, self.M, self.N
        dr, dc, H_y, Ht_x, dense = self.laplacian(st)
        diag = xp.concat([dr + (mu / lam) * a, dc + (mu / lam) * b])
        g = xp.concat([a - st.r, st.c - b])
        if _dense_newton(M, N):
            H = dense()
            dev = H.device
            A = xp.concat([xp.concat([xp.zeros((M, M), dtype=H.dtype, device=dev), -H], axis=1),
                           xp.concat([-H.T, xp.zeros((N, N), dtype=H.dtype, device=dev)], axis=1)], axis=0)
            A = A + xp.eye(M + N, dtype=H.dtype, device=dev) * diag[None, :]
            return g, xp.linalg.solve(A, g[:, None])[:, 0]

        def matvec(x):
            return diag * x - xp.concat([H_y(x[M:]), Ht_x(x[:M])])
        return g, _pcg(matvec, g, 1.0 / diag, rtol, M + N, xp)


class _KLDual(_Dual):
    """KL: ``X`` of a state is the pseudo-plan ``P`` itself, computed in the log domain."""

    def __init__(self, C, lam, a, b, xp, cmax=None):
        super().__init__(C, lam, a, b, xp, cmax)
        self.null = self.cmax == 0.0
        self.Cl, self.la, self.lb = C / lam, xp.log(a), xp.log(b)
        self.expmax = 0.5 * math.log(float(xp.finfo(C.dtype).max))

    def state(self, phi, psi):
        """State at (phi, psi); None when ``exp`` would overflow (``F`` ~ -inf)."""
        xp, lam, a, b = self.xp, self.lam, self.a, self.b
        lin = xp.sum(a * phi) - xp.sum(b * psi)
        E = (phi / lam + self.la)[:, None] - (psi / lam + (1.0 - self.lb))[None, :] - self.Cl   # log P
        if float(xp.max(E)) > self.expmax:
            return None
        P = xp.exp(E)
        r = xp.sum(P, axis=1)
        return _State(phi, psi, P, r, xp.sum(P, axis=0), float(lin - lam * xp.sum(r)))

    def sweep(self, phi, steps=None):
        """Exact block maximisation, ``psi`` given ``phi``, then ``phi`` given ``psi``: the log-domain
        Sinkhorn updates ``psi_j = lam (LSE_i(log a_i + (phi_i - C_ij)/lam) - 1)``,
        ``phi_i = lam (1 - LSE_j(log b_j - (psi_j + C_ij)/lam))``; afterwards the rows sum to ``a``.
        ``steps`` is unused (the updates are closed forms)."""
        xp, lam = self.xp, self.lam
        psi = lam * (_lse((phi / lam + self.la)[:, None] - self.Cl, 0, xp) - 1.0)
        return lam * (1.0 - _lse((self.lb - psi / lam)[None, :] - self.Cl, 1, xp)), psi

    def exact_rows_state(self, phi):
        """The state after one :meth:`sweep` from ``phi``."""
        return self.state(*self.sweep(phi))

    def laplacian(self, st):
        """``(H 1, H^T 1, y -> H y, x -> H^T x, () -> H)`` of :meth:`_Dual.newton_direction`."""
        P, lam = st.X, self.lam
        return st.r / lam, st.c / lam, (lambda y: (P @ y) / lam), (lambda x: (x @ P) / lam), (lambda: P / lam)

    def stage(self, tol, max_iter, deadline, phi, psi, warm):
        """Sinkhorn (:func:`_sinkhorn`), finished by Newton when slow. Returns (state, iterations, status)."""
        xp = self.xp
        phi, psi, it, status = _sinkhorn(self, tol, max_iter, xp.zeros_like(self.a) if phi is None else phi, deadline)
        st = self.state(phi, psi)
        if st is None:           # cannot happen right after a sweep; guard against overflow anyway
            st = self.state(*self.sweep(phi))
        if status == "converged" and measure(self, st, tol)[0] > 1.0:
            status = "slow"      # the rows were taken as exact: finish on the returned plan itself
        if status == "slow":
            st, it, status = _newton(self, tol, max_iter, st, it, deadline)
        return st, it, status


class _L2Dual(_Dual):
    """L2: ``X`` of a state is ``V_+``; the plan is ``a b^T V_+ / lam``."""

    def state(self, phi, psi):
        """State at (phi, psi) (never None: nothing overflows)."""
        xp, lam, a, b = self.xp, self.lam, self.a, self.b
        lin = xp.sum(a * phi) - xp.sum(b * psi)
        Vp = xp.maximum(phi[:, None] - psi[None, :] - self.C, self.zero)   # V as in eq. 11 (same rounding)
        F = lin - xp.sum(a * ((Vp * Vp) @ b)) / (2 * lam)
        return _State(phi, psi, Vp, (a / lam) * (Vp @ b), (b / lam) * (a @ Vp), float(F))

    def root(self, T, w, steps=None):
        """Per row of ``T`` (R, Q): the root ``s`` of ``sum_q w_q (s - T_rq)_+ = lam``.

        Newton's method from the right of the root on this convex, increasing,
        piecewise-linear function: monotone, exact once it lands on the final piece
        (at most Q + 1 steps). The start ``min(lam + T w, min_q T_rq + lam / w_q*)``
        (``q*`` the argmin) is right of the root: ``sum_{q in J} w_q (s - T_rq) = lam``
        bounds the root from above for any subset ``J`` (here all, or ``{q*}``).
        ``steps`` caps the number of Newton steps (an over-estimate of the root).
        """
        xp, lam = self.xp, self.lam
        s = xp.minimum(lam + T @ w, xp.min(T, axis=1) + lam / xp.take(w, xp.argmin(T, axis=1)))
        for _ in range(T.shape[1] + 2 if steps is None else steps):
            Dp = xp.maximum(s[:, None] - T, self.zero)
            step = (Dp @ w - lam) / (xp.sign(Dp) @ w)
            s = s - step
            if float(xp.max(xp.abs(step))) <= 4 * self.eps * (float(xp.max(xp.abs(s))) + lam):
                break
        return s

    def sweep(self, phi, steps=None):
        """Exact block maximisation, ``psi`` given ``phi``, then ``phi`` given ``psi``: the roots of
        ``sum_i a_i (phi_i - psi_j - C_ij)_+ = lam`` and ``sum_j b_j (phi_i - psi_j - C_ij)_+ = lam``
        (:meth:`root`, at most ``steps`` Newton steps each); afterwards the rows sum to ``a``."""
        psi = -self.root(self.C.T - phi[None, :], self.a, steps)
        return self.root(self.C + psi[None, :], self.b, steps), psi

    def exact_rows_state(self, phi):
        """The state after one :meth:`sweep` from ``phi`` with the roots' start points (no Newton step)."""
        return self.state(*self.sweep(phi, 0))

    def laplacian(self, st):
        """``(H 1, H^T 1, y -> H y, x -> H^T x, () -> H)`` of :meth:`_Dual.newton_direction`."""
        xp, a, b, lam = self.xp, self.a, self.b, self.lam
        S = xp.sign(st.X)
        al, bl = a / lam, b / lam
        return (al * (S @ b), bl * (a @ S), (lambda y: al * (S @ (b * y))), (lambda x: bl * ((a * x) @ S)),
                (lambda: al[:, None] * S * b[None, :]))

    def stage(self, tol, max_iter, deadline, phi, psi, warm):
        """Semi-smooth Newton (:func:`_newton`) from a sweep. Returns (state, iterations, status)."""
        if phi is None:
            start = self.sweep(self.xp.zeros_like(self.a), _INIT_STEPS)
        elif warm:
            start = (phi, psi)
        else:
            start = self.sweep(phi)    # exact rows at this stage's lam from the previous stage's phi
        return _newton(self, tol, max_iter, self.state(*start), 0, deadline)


#: regulariser name -> its dual engine
_DUALS = {"kl": _KLDual, "l2": _L2Dual}


def _dual(C, lam, reg, a, b, xp, cmax=None):
    """The dual engine of problem ``(C, lam, a, b)`` for regulariser ``reg`` (a
    :class:`refimpl.regularizers.Regularizer`)."""
    return _DUALS[reg.name](C, lam, a, b, xp, cmax)


_DIRECT_MAX = 600  # Newton systems with M + N up to this size are solved directly
_CG_ITERS = 50     # typical CG iterations of one Newton system (cost model only)
_NEWTON_STEPS = 10  # typical Newton steps to finish from where Sinkhorn hands over (cost model only)
_STALL = 20        # Newton steps without halving the stopping measure: stalled (rounding floor)


def _dense_newton(M, N):
    """Whether Newton systems are solved densely (else by Jacobi-preconditioned CG)."""
    return M + N <= _DIRECT_MAX


def _newton_after(M, N):
    """Predicted Sinkhorn iterations above which Newton is cheaper (flop model).

    One scaling iteration costs ~``4 M N`` flops (two products with the kernel); one Newton
    step ``(M+N)^3/3`` (dense LU) or ``_CG_ITERS * 4 M N`` (CG), plus its line search, and
    ``_NEWTON_STEPS`` of them are expected. Sinkhorn hands over only when its predicted
    remaining iterations cost more than that.
    """
    sink = 4.0 * M * N
    step = ((M + N) ** 3 / 3.0 if _dense_newton(M, N) else _CG_ITERS * sink) + 3 * sink
    return max(50.0, _NEWTON_STEPS * step / sink)
_INIT_STEPS = 0     # Newton steps of the root solves in the first L2 sweep (its start point only)
_MU = 1e-2         # Levenberg-Marquardt factor: mu = max(_MU * min(1, |grad F|_1), _mu_floor(D))


def _mu_floor(D):
    """Smallest Levenberg-Marquardt factor: ``4 (M + N) eps``.

    The damping ``mu a_i / lam`` is added to diagonal entries ``r_i / lam ~ a_i / lam`` of the
    Laplacian, whose null vector ``(1, 1)`` it removes; below a few ulps of them it vanishes in
    the sum (at ``|grad F|_1 ~ 1e-15``) and the dense LU meets an exact zero pivot. At this
    size it still damps far less than the rounding of the Laplacian itself.
    """
    return 4.0 * (D.M + D.N) * D.eps


def measure(D, st, tol):
    """(stopping measure of the pseudo-plan of ``st`` itself, its L1 marginal error)."""
    xp = D.xp
    err_r, err_c = float(xp.sum(xp.abs(D.a - st.r))), float(xp.sum(xp.abs(st.c - D.b)))
    return _progress(D, st.phi, st.psi, err_r, err_c, abs(float(xp.sum(st.r)) - 1.0), st.F, tol), err_r + err_c


def _newton(D, tol, max_iter, st, it, deadline):
    """(Semi-smooth) Newton ascent on the dual ``F`` with an Armijo line search.

    Directions from ``_Dual.newton_direction``; a first step whose gain exceeds the
    quadratic model's by half (regularisation-dominated, flat directions) is doubled
    while ``F`` increases; a failed line search falls back on one exact sweep.
    Stops when converged, at ``max_iter``, at the ``deadline`` (``time.perf_counter``) or
    when ``_STALL`` steps in a row have not halved the stopping measure (the dtype's
    rounding floor). Returns (state, iterations, status); unless converged, the state is
    the best one seen (smallest stopping measure).
    """
    xp, a, b, M = D.xp, D.a, D.b, D.M
    best, best_it, best_st, best_q = math.inf, it, st, math.inf
    while True:
        q, err = measure(D, st, tol)
        if q <= 1.0:
            return st, it, "converged"
        if q < best_q:
            best_st, best_q = st, q
        if q <= 0.5 * best:
            best, best_it = q, it
        if it >= max_iter:
            return best_st, it, "max_iter"
        if time.perf_counter() >= deadline:
            return best_st, it, "max_seconds"
        if it - best_it >= _STALL or err == 0.0:   # err = 0: the gradient of F is exactly 0, no ascent
            return best_st, it, "stalled"
        it += 1
        g, d = D.newton_direction(st, max(_MU * min(1.0, err), _mu_floor(D)), min(0.1, math.sqrt(err)))
        gd = float(xp.sum(g * d))
        dphi, dpsi = d[:M], d[M:]
        step, trial = 1.0, None
        while step > 1e-12 and math.isfinite(gd) and gd > 0:
            t = D.state(st.phi + step * dphi, st.psi + step * dpsi)
            if t is not None and (t.F >= st.F + 1e-4 * step * gd or (
                    t.F >= st.F - 16 * D.eps * abs(st.F)
                    and float(xp.sum(xp.abs(a - t.r)) + xp.sum(xp.abs(t.c - b))) <= 0.5 * err)):
                trial = t
                break
            step *= 0.5
        if trial is not None and step == 1.0 and trial.F - st.F > 0.75 * gd:
            # the quadratic model predicts a gain gd/2 at step 1: extend the step
            while step < 2.0 ** 40:
                longer = D.state(st.phi + 2 * step * dphi, st.psi + 2 * step * dpsi)
                if longer is None or not longer.F > trial.F:
                    break
                step, trial = 2 * step, longer
        st = trial if trial is not None else D.state(*D.sweep(st.phi))


def _sinkhorn(D, tol, max_iter, phi, deadline, min_iter=20):
    """Absorption-stabilised log-domain Sinkhorn (KL).

    Log-domain sweeps (``_Dual.sweep``) alternate with scaling iterations
    ``v = b / (K^T u)``, ``u = a / (K v)`` of the kernel ``K`` = pseudo-plan of the
    last absorbed potentials; ``u``, ``v`` are absorbed into ``(phi, psi)`` before they
    leave ``[e^-B, e^B]``, ``B = 0.15 log(1/tiny)``. Every 10 iterations the stopping
    bound is evaluated and its linear rate estimated; when more than ``newton_after``
    further iterations are predicted (after ``min_iter``; ``_newton_after``: the flop model
    of Newton against Sinkhorn), the caller switches to Newton. The measure here takes the
    rows as exact (they are up to rounding); the caller re-checks the returned plan.
    Returns (phi, psi, iterations, status) with status "converged", "max_iter",
    "max_seconds" or "slow".
    """
    newton_after = _newton_after(D.M, D.N)
    xp, lam, a, b = D.xp, D.lam, D.a, D.b
    big = 0.15 * -math.log(float(xp.finfo(D.C.dtype).smallest_normal))
    hi, lo = math.exp(big), math.exp(-big)
    check_every, it, prev = 10, 0, None
    while True:
        phi, psi = D.sweep(phi)
        it += 1
        K = D.state(phi, psi).X  # rows sum to a; no overflow right after a sweep
        u, v = xp.ones_like(a), xp.ones_like(b)
        since = check_every
        while True:
            if since >= check_every or it >= max_iter:
                since = 0
                c = v * (u @ K)
                ph, ps = phi + lam * xp.log(u), psi - lam * xp.log(v)
                mass = float(xp.sum(c))
                dual = float(xp.sum(a * ph) - xp.sum(b * ps)) - lam * mass
                q = _progress(D, ph, ps, 0.0, float(xp.sum(xp.abs(c - b))), abs(mass - 1.0), dual, tol)
                if q <= 1.0:
                    return ph, ps, it, "converged"
                if it >= max_iter:
                    return ph, ps, it, "max_iter"
                if time.perf_counter() >= deadline:
                    return ph, ps, it, "max_seconds"
                if prev is not None and it >= min_iter:
                    rate = (q / prev[0]) ** (1.0 / (it - prev[1])) if 0 < prev[0] < math.inf else 1.0
                    if rate >= 1.0 or -math.log(q) / math.log(rate) > newton_after:
                        return ph, ps, it, "slow"
                prev = (q, it)
            v_new = b / (u @ K)
            if not (float(xp.max(v_new)) <= hi and float(xp.min(v_new)) >= lo):
                break
            u_new = a / (K @ v_new)
            v = v_new
            if not (float(xp.max(u_new)) <= hi and float(xp.min(u_new)) >= lo):
                break
            u = u_new
            it += 1
            since += 1
        phi, psi = phi + lam * xp.log(u), psi - lam * xp.log(v)  # absorb


_FACTOR = 10.0       # epsilon-scaling: lam divided by this per stage
_STAGE_TOL = 1e-3    # tolerance of the intermediate stages (a warm start only)
_TOP = 0.1           # first stage: lam = _TOP * (max C - min C) (Sinkhorn and Newton converge fast there)


def _schedule(lam, spread):
    """Epsilon-scaling stages: ``lam * _FACTOR**k`` from about ``_TOP * spread`` down to ``lam``."""
    top = _TOP * spread
    if not top > _FACTOR * lam:
        return [lam]
    n = int(math.floor(math.log(top / lam) / math.log(_FACTOR) + 1e-9))
    return [lam * _FACTOR ** k for k in range(n, 0, -1)] + [lam]


def anneal(C, lam, reg, a, b, tol, max_iter, phi, psi, deadline, use_stages, xp, cmax, spread):
    """Epsilon-scaling loop (``_schedule``), each stage by ``_Dual.stage``, within ``max_iter`` and ``deadline``.

    Returns ``(D, st, iterations, status, stages, done)``: the target problem's ``_Dual``,
    its final state (when the budget ran out before the target ``lam``: the pseudo-plan of
    the current potentials at the target), the iterations of all stages, the last stage's
    status, the stage list and the number of stages run.
    """
    stages = _schedule(lam, spread) if use_stages and phi is None else [lam]
    iters, status, done, st = 0, "max_iter", 0, None
    for k, lam_k in enumerate(stages):
        last = k == len(stages) - 1
        D = _dual(C, lam_k, reg, a, b, xp, cmax)
        st, it, status = D.stage(tol if last else max(tol, _STAGE_TOL), max_iter - iters,
                                 deadline, phi, psi, warm=k == 0)
        iters += it
        phi, psi = st.phi, st.psi
        done = k + 1
        if status == "max_seconds" or iters >= max_iter:
            break
    if done < len(stages):     # budget spent before the target lam: its pseudo-plan at the current potentials
        D = _dual(C, lam, reg, a, b, xp, cmax)
        st = D.state(phi, psi)
        if st is None:
            st = D.exact_rows_state(phi)
    return D, st, iters, status, stages, done
