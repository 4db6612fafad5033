"""Regularised discrete optimal transport: the smoothed OT of SWGAN, solved exactly.

Paper: "Solving Approximate Wasserstein GANs to Stationarity" (Sanjabi et al.),
Sec. 3 (eq. 6, the two regularisers ``I``), Sec. 4 (Lemma 4.1, eqs. 11-15),
Sec. 5 (Theorem 5.1); conventions in ``conventions.md`` ("Smoothed OT (SWGAN)").

Notation (one index convention for the whole module). Rows ``i = 1..M`` are the
generated points with weights ``a`` (the paper's ``q``), columns ``j = 1..N`` the
data with weights ``b`` (the paper's ``p``); ``C[i, j] = c(x_i, y_j) >= 0``.

* Primal (eq. 6): ``d_{c,lam} = min_{P in Pi(a, b)} <P, C> + lam * I(P)`` with
  KL: ``I(P) = sum P log(P / (a b^T))``;  L2: ``I(P) = 0.5 * sum P^2 / (a b^T)``.
* Dual (Lemma 4.1, eq. 12, weighted form), ``V_ij = phi_i - psi_j - C_ij``:
  KL: ``F = <a, phi> - <b, psi> - (lam/e) sum_ij a_i b_j exp(V_ij/lam)``;
  L2: ``F = <a, phi> - <b, psi> - sum_ij a_i b_j (V_ij)_+^2 / (2 lam)``.
* Pseudo-plan (eq. 11): ``P_ij = a_i b_j m_ij`` with the density ratio
  ``m = exp(V/lam - 1)`` (KL) or ``m = V_+/lam`` (L2).
* Gradient of ``F``: ``dF/dphi = a - P 1``, ``dF/dpsi = P^T 1 - b`` (Sec. 4.2).

The critic sign of the project (large on data) is ``-psi`` on the data side and
``-phi`` on generated points; this module keeps the paper's ``phi``/``psi``.

Solvers (``solve_regularized``):

* KL: Sinkhorn in the log domain (exact block maximisation of ``F`` over ``psi``
  then ``phi``, eqs. 25-26), stabilised by absorption: between log-domain sweeps the
  iterations run as matrix-vector scalings of the current pseudo-plan, and the
  scalings are absorbed into ``(phi, psi)`` before they leave ``[e^-B, e^B]``
  (``B = 0.15 log(1/tiny)``), so nothing overflows or becomes NaN at small ``lam``.
  Sinkhorn converges linearly and slowly for small ``lam``: when its measured rate
  predicts more than 200 further iterations, Newton steps on the same dual finish
  (Sinkhorn-Newton).
* L2: semi-smooth Newton on ``F``. The generalised Hessian of ``-F`` is a weighted
  bipartite graph Laplacian on the support of ``P``; the Newton system, regularised
  by ``mu diag(a, b)/lam`` (``mu`` proportional to the marginal error), is solved
  densely (``M + N <= 600``) or by Jacobi-preconditioned conjugate gradients; Armijo
  line search, extended when the step is regularisation-limited. Start: one block
  sweep's start points; fallback when a line search fails: an exact block sweep, each
  potential the root of the piecewise-linear ``sum_j b_j (phi_i - psi_j - C_ij)_+ = lam``
  found by Newton's method from the right (monotone, finite).

Stopping rule: with ``r = P 1``, ``c = P^T 1`` one has exactly
``gap = primal(P) - F = <phi, r - a> - <psi, c - b>`` for the pseudo-plan of any
potentials. The solvers stop when the Hoelder bound of that expression,
``range(phi)/2 |r - a|_1 + range(psi)/2 |c - b|_1 + |mid(phi) - mid(psi)| |sum P - 1|``,
is at most ``tol * |F|`` *and* the marginal error ``|r - a|_1 + |c - b|_1`` is at most
``tol``: the gap alone can vanish for an infeasible pseudo-plan (constant ``psi``,
exact rows). Weights must be strictly positive.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

from refimpl.backend import namespace

COSTS = ("l1", "euclidean", "sqeuclidean")
REGS = ("kl", "l2")

__all__ = ["COSTS", "REGS", "OTResult", "cost_matrix", "solve_regularized", "dual_objective",
           "plan_from_potentials", "density_ratio", "primal_objective", "regularizer",
           "termination_statistic"]


@dataclass(frozen=True)
class OTResult:
    """Solution of a regularised OT problem (all arrays in the namespace/dtype of ``C``).

    Attributes
    ----------
    plan : array (M, N)
        Pseudo-plan (eq. 11) of the returned potentials.
    phi, psi : arrays (M,), (N,)
        Dual potentials (Lemma 4.1); ``V = phi_i - psi_j - C_ij``.
    primal, dual, gap : 0-d arrays
        ``<plan, C> + lam I(plan)``, the dual objective ``F(phi, psi)``, their difference.
    marginal_error : 0-d array
        ``max(max_i |r_i - a_i|, max_j |c_j - b_j|)`` of ``plan``.
    iterations : int
        Sinkhorn iterations (KL: one ``psi`` and one ``phi`` update) or Newton
        iterations (L2).
    converged : bool
        Whether the stopping rule (module docstring) was met before ``max_iter``.
    """

    plan: Any
    phi: Any
    psi: Any
    primal: Any
    dual: Any
    gap: Any
    marginal_error: Any
    iterations: int
    converged: bool


# ----------------------------------------------------------------------------- checks
def _real_positive(name, v):
    if isinstance(v, bool) or not (isinstance(v, numbers.Real) or getattr(v, "shape", None) == ()):
        raise ValueError(f"{name} must be a real scalar, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {f}")
    return f


def _reg_name(reg):
    r = str(reg).lower()
    if r not in REGS:
        raise ValueError(f"unknown regulariser reg={reg!r}; choose one of {', '.join(REGS)}")
    return r


def _check_float(xp, x, name):
    if not xp.isdtype(x.dtype, "real floating"):
        raise ValueError(f"{name} must have a real floating dtype, got {x.dtype}")


def _check_costs(C):
    xp = namespace(C)
    if getattr(C, "ndim", None) != 2:
        raise ValueError(f"cost matrix C must be 2-D (M, N), got shape {getattr(C, 'shape', None)}")
    if C.shape[0] == 0 or C.shape[1] == 0:
        raise ValueError(f"cost matrix C must be non-empty, got shape {C.shape}")
    _check_float(xp, C, "cost matrix C")
    if not bool(xp.all(xp.isfinite(C))):
        raise ValueError("cost matrix C has non-finite entries (inf or NaN)")
    if bool(xp.any(C < 0)):
        raise ValueError("cost matrix C has negative entries; costs must be >= 0")
    return xp


def _weights(w, n, xp, dtype, name):
    """Weights of length ``n`` (uniform when None), validated, in ``dtype``."""
    if w is None:
        return xp.full((n,), 1.0 / n, dtype=dtype)
    if namespace(w) is not xp:
        raise TypeError(f"weights {name} live in {namespace(w).__name__}, the costs in {xp.__name__}")
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"weights {name} must have shape ({n},), got {w.shape}")
    _check_float(xp, w, f"weights {name}")
    w = xp.astype(w, dtype)
    if not bool(xp.all(xp.isfinite(w))):
        raise ValueError(f"weights {name} have non-finite entries")
    if bool(xp.any(w <= 0)):
        raise ValueError(f"weights {name} must be > 0 (negative or zero weights; drop zero-weight points)")
    s = float(xp.sum(w))
    if abs(s - 1.0) > math.sqrt(xp.finfo(dtype).eps):
        raise ValueError(f"weights {name} must sum to 1, got sum {s!r}")
    return w


def _problem(C, lam, reg, a, b):
    xp = _check_costs(C)
    M, N = C.shape
    return (xp, _real_positive("lam", lam), _reg_name(reg),
            _weights(a, M, xp, C.dtype, "a"), _weights(b, N, xp, C.dtype, "b"))


def _check_potentials(xp, phi, psi, C):
    M, N = C.shape
    for v, n, name in ((phi, M, "phi"), (psi, N, "psi")):
        if namespace(v) is not xp:
            raise TypeError(f"{name} lives in {namespace(v).__name__}, the costs in {xp.__name__}")
        if v.ndim != 1 or v.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},) to match C {C.shape}, got {v.shape}")
        _check_float(xp, v, name)


# ----------------------------------------------------------------------------- costs
def cost_matrix(x, y, cost="euclidean"):
    """Pairwise ground costs ``C[i, j] = c(x_i, y_j)``.

    Parameters
    ----------
    x : array (M, d)
        Generated points (rows).
    y : array (N, d)
        Data points (columns).
    cost : {"l1", "euclidean", "sqeuclidean"}
        ``sum_k |x_ik - y_jk|``, ``||x_i - y_j||_2`` or ``||x_i - y_j||_2^2``
        (the ``c(x, y)`` of Sec. 2; the paper's experiments use ``l1``, Table 1).

    Returns
    -------
    C : array (M, N)
        In the namespace and dtype of ``x``. Differences are formed explicitly (no
        ``|x|^2 + |y|^2 - 2 x.y`` cancellation): per coordinate for ``d <= 16``, else in
        chunks of the feature axis.
    """
    xp = namespace(x, y)
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; choose one of {', '.join(COSTS)}")
    if getattr(x, "ndim", None) != 2 or getattr(y, "ndim", None) != 2:
        raise ValueError(f"x and y must be 2-D (points, dim), got shapes {x.shape} and {y.shape}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y have different dimensions: {x.shape[1]} != {y.shape[1]}")
    _check_float(xp, x, "x")
    _check_float(xp, y, "y")
    if not (bool(xp.all(xp.isfinite(x))) and bool(xp.all(xp.isfinite(y)))):
        raise ValueError("points x and y must be finite")
    M, N, d = x.shape[0], y.shape[0], x.shape[1]
    acc = None
    if d <= 16:
        # one (M, N) difference per coordinate: reductions over a short last axis are ~10x slower
        for k in range(d):
            diff = x[:, k:k + 1] - y[:, k][None, :]                           # (M, N)
            term = xp.abs(diff) if cost == "l1" else diff * diff
            acc = term if acc is None else acc + term
    else:
        chunk = max(1, (1 << 22) // max(1, M * N))
        for s in range(0, d, chunk):
            e = min(s + chunk, d)
            diff = x[:, None, s:e] - y[None, :, s:e]                          # (M, N, k)
            term = xp.sum(xp.abs(diff) if cost == "l1" else diff * diff, axis=-1)
            acc = term if acc is None else acc + term
    return xp.sqrt(acc) if cost == "euclidean" else acc


# ----------------------------------------------------------------------------- objectives
def _density(V, lam, reg, xp):
    return xp.exp(V / lam - 1.0) if reg == "kl" else xp.clip(V, min=0.0) / lam


def density_ratio(phi, psi, C, lam, reg):
    """Density ratio ``m_ij = P_ij / (a_i b_j) = M(V_ij)`` of Lemma 4.1.

    ``M(v) = exp(v/lam - 1)`` (KL) or ``v_+/lam`` (L2), ``V_ij = phi_i - psi_j - C_ij``;
    ``phi`` (M,), ``psi`` (N,), ``C`` (M, N). Returns an (M, N) array.
    """
    xp = _check_costs(C)
    lam, reg = _real_positive("lam", lam), _reg_name(reg)
    _check_potentials(xp, phi, psi, C)
    return _density(phi[:, None] - psi[None, :] - C, lam, reg, xp)


def plan_from_potentials(phi, psi, C, lam, reg, a=None, b=None):
    """Pseudo-plan ``P_ij = a_i b_j M(phi_i - psi_j - C_ij)`` (Lemma 4.1, eq. 11).

    Parameters
    ----------
    phi, psi : arrays (M,), (N,)
        Any potentials; ``P`` is a transport plan only at the optimum.
    C : array (M, N)
        Costs. ``lam`` > 0, ``reg`` in {"kl", "l2"}; ``a`` (M,), ``b`` (N,) default uniform.

    Returns
    -------
    P : array (M, N)
    """
    xp, lam, reg, a, b = _problem(C, lam, reg, a, b)
    _check_potentials(xp, phi, psi, C)
    return a[:, None] * b[None, :] * _density(phi[:, None] - psi[None, :] - C, lam, reg, xp)


def dual_objective(phi, psi, C, lam, reg, a=None, b=None):
    """Dual objective ``F(phi, psi)`` of Lemma 4.1 (eq. 12, weighted) and its gradient.

    KL: ``F = <a,phi> - <b,psi> - (lam/e) sum_ij a_i b_j exp(V_ij/lam) = <a,phi> - <b,psi> - lam sum P``;
    L2: ``F = <a,phi> - <b,psi> - sum_ij a_i b_j (V_ij)_+^2/(2 lam) = <a,phi> - <b,psi> - sum P V / 2``;
    ``V_ij = phi_i - psi_j - C_ij``, ``P`` the pseudo-plan (eq. 11). ``F`` is concave and
    is to be *maximised*; its maximum is ``d_{c,lam}``.

    Parameters
    ----------
    phi : array (M,)
    psi : array (N,)
    C : array (M, N)
    lam : float > 0
    reg : {"kl", "l2"}
    a, b : arrays (M,), (N,), optional (uniform)

    Returns
    -------
    value : 0-d array
    dphi : array (M,)
        ``dF/dphi_i = a_i - sum_j P_ij`` (Sec. 4.2).
    dpsi : array (N,)
        ``dF/dpsi_j = sum_i P_ij - b_j``.

    For KL, ``exp`` overflows (value ``-inf``) once ``V/lam`` exceeds ~709 (float64).
    """
    xp, lam, reg, a, b = _problem(C, lam, reg, a, b)
    _check_potentials(xp, phi, psi, C)
    V = phi[:, None] - psi[None, :] - C
    P = a[:, None] * b[None, :] * _density(V, lam, reg, xp)
    lin = xp.sum(a * phi) - xp.sum(b * psi)
    value = lin - lam * xp.sum(P) if reg == "kl" else lin - 0.5 * xp.sum(P * xp.clip(V, min=0.0))
    return value, a - xp.sum(P, axis=1), xp.sum(P, axis=0) - b


def regularizer(plan, reg, a=None, b=None):
    """``I(P)`` of Sec. 3: KL ``sum P log(P/(a b^T))`` (``0 log 0 = 0``) or L2 ``0.5 sum P^2/(a b^T)``.

    ``plan`` (M, N) nonnegative; ``a``, ``b`` default uniform. Returns a 0-d array.
    """
    xp = namespace(plan)
    reg = _reg_name(reg)
    if getattr(plan, "ndim", None) != 2:
        raise ValueError(f"plan must be 2-D, got shape {getattr(plan, 'shape', None)}")
    _check_float(xp, plan, "plan")
    if bool(xp.any(plan < 0)) or not bool(xp.all(xp.isfinite(plan))):
        raise ValueError("plan must be finite and >= 0")
    M, N = plan.shape
    a, b = _weights(a, M, xp, plan.dtype, "a"), _weights(b, N, xp, plan.dtype, "b")
    R = plan / (a[:, None] * b[None, :])
    if reg == "l2":
        return 0.5 * xp.sum(plan * R)
    pos = plan > 0
    return xp.sum(xp.where(pos, plan * xp.log(xp.where(pos, R, xp.ones_like(R))), xp.zeros_like(R)))


def primal_objective(plan, C, lam, reg, a=None, b=None):
    """Primal objective of eq. 6, ``<P, C> + lam I(P)`` (0-d array), for any plan ``P`` (M, N)."""
    xp, lam, reg, a, b = _problem(C, lam, reg, a, b)
    if getattr(plan, "shape", None) != C.shape:
        raise ValueError(f"plan shape {getattr(plan, 'shape', None)} does not match C {C.shape}")
    return xp.sum(plan * C) + lam * regularizer(plan, reg, a, b)


def termination_statistic(phi, psi, C, lam, reg, a=None, b=None):
    """Termination statistic of eq. 15: the mean density ratio ``m`` (eq. 14-15).

    * ``C`` 2-D (M, N), ``phi`` (M,), ``psi`` (N,): the exact expectation under
      ``a x b``, ``sum_ij a_i b_j m_ij = sum P`` (equals 1 at the optimum).
    * ``C`` 1-D (S,), ``phi`` (S,), ``psi`` (S,): the values at S i.i.d. pairs
      ``(x_k, y_k)``, ``C[k] = c(x_k, y_k)``; returns ``(1/S) sum_k m(x_k, y_k)``
      (eq. 15; ``a``, ``b`` must be None).

    Near 1 is a necessary condition for optimality of ``(phi, psi)`` (Sec. 4.2).
    Returns a 0-d array.
    """
    xp = namespace(C)
    lam, reg = _real_positive("lam", lam), _reg_name(reg)
    if getattr(C, "ndim", None) == 1:
        if a is not None or b is not None:
            raise ValueError("termination_statistic on pairs (1-D C) takes no weights")
        for v, name in ((phi, "phi"), (psi, "psi")):
            if namespace(v) is not xp or v.shape != C.shape:
                raise ValueError(f"{name} must be an array of shape {C.shape} like the paired costs")
        _check_float(xp, C, "paired costs C")
        if not bool(xp.all(xp.isfinite(C))) or bool(xp.any(C < 0)):
            raise ValueError("paired costs C must be finite and >= 0")
        return xp.mean(_density(phi - psi - C, lam, reg, xp))
    return xp.sum(plan_from_potentials(phi, psi, C, lam, reg, a, b))


# ----------------------------------------------------------------------------- solvers
def _progress(xp, phi, psi, err_r, err_c, mass_err, F, tol):
    """Stopping measure; converged when <= 1 (host float).

    ``max(bound / (tol |F|), (|r - a|_1 + |c - b|_1) / tol)`` with ``bound`` the Hoelder bound
    of ``|gap| = |<phi, r - a> - <psi, c - b>|`` (module docstring). The marginal term is
    needed: the gap of a pseudo-plan can vanish while it is infeasible (e.g. constant
    ``psi`` and exact rows give ``gap = 0`` whatever the column sums).
    """
    pmax, pmin, qmax, qmin = (float(xp.max(phi)), float(xp.min(phi)), float(xp.max(psi)), float(xp.min(psi)))
    bound = (0.5 * (pmax - pmin) * err_r + 0.5 * (qmax - qmin) * err_c
             + abs(0.5 * (pmax + pmin) - 0.5 * (qmax + qmin)) * mass_err)
    scale = tol * abs(F)
    gap_term = bound / scale if scale > 0 else (0.0 if bound == 0 else math.inf)
    return max(gap_term, (err_r + err_c) / tol)


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
    """The dual ``F`` of one problem (Lemma 4.1), its exact block updates and Newton systems."""

    def __init__(self, C, lam, reg, a, b, xp):
        self.C, self.lam, self.reg, self.a, self.b, self.xp = C, lam, reg, a, b, xp
        self.M, self.N = C.shape
        self.eps = float(xp.finfo(C.dtype).eps)
        self.zero = xp.zeros((), dtype=C.dtype)
        if reg == "kl":
            self.Cl, self.la, self.lb = C / lam, xp.log(a), xp.log(b)
            self.expmax = 0.5 * math.log(float(xp.finfo(C.dtype).max))

    def state(self, phi, psi):
        """State at (phi, psi); None for KL when ``exp`` would overflow (``F`` ~ -inf)."""
        xp, lam, a, b = self.xp, self.lam, self.a, self.b
        lin = xp.sum(a * phi) - xp.sum(b * psi)
        if self.reg == "kl":  # log P = log a + log b + V/lam - 1
            E = (phi / lam + self.la)[:, None] - (psi / lam + (1.0 - self.lb))[None, :] - self.Cl
            if float(xp.max(E)) > self.expmax:
                return None
            P = xp.exp(E)
            r = xp.sum(P, axis=1)
            return _State(phi, psi, P, r, xp.sum(P, axis=0), float(lin - lam * xp.sum(r)))
        Vp = xp.maximum(phi[:, None] - psi[None, :] - self.C, self.zero)   # V as in eq. 11 (same rounding)
        F = lin - xp.sum(a * ((Vp * Vp) @ b)) / (2 * lam)
        return _State(phi, psi, Vp, (a / lam) * (Vp @ b), (b / lam) * (a @ Vp), float(F))

    def root(self, T, w, steps=None):
        """Per row of ``T`` (R, Q): the root ``s`` of ``sum_q w_q (s - T_rq)_+ = lam`` (L2).

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
        """Exact block maximisation: ``psi`` given ``phi``, then ``phi`` given ``psi``.

        KL: the log-domain Sinkhorn updates ``psi_j = lam (LSE_i(log a_i + (phi_i - C_ij)/lam) - 1)``,
        ``phi_i = lam (1 - LSE_j(log b_j - (psi_j + C_ij)/lam))``; L2: the roots of
        ``sum_i a_i (phi_i - psi_j - C_ij)_+ = lam`` and ``sum_j b_j (phi_i - psi_j - C_ij)_+ = lam``.
        Afterwards the pseudo-plan has row sums exactly ``a``.
        """
        xp, lam = self.xp, self.lam
        if self.reg == "kl":
            psi = lam * (_lse((phi / lam + self.la)[:, None] - self.Cl, 0, xp) - 1.0)
            return lam * (1.0 - _lse((self.lb - psi / lam)[None, :] - self.Cl, 1, xp)), psi
        psi = -self.root(self.C.T - phi[None, :], self.a, steps)
        return self.root(self.C + psi[None, :], self.b, steps), psi

    def newton_direction(self, st, mu, rtol):
        """Solve ``(L + mu diag(a, b)/lam) d = grad F`` for the generalised Hessian ``-L`` of ``F``.

        ``L = [[diag(H 1), -H], [-H^T, diag(H^T 1)]]`` (a bipartite graph Laplacian) with
        ``H = P/lam`` (KL) or ``H = a b^T [V > 0]/lam`` (L2). Dense solve when
        ``M + N <= _DIRECT_MAX``, else Jacobi-preconditioned CG to relative residual ``rtol``.
        """
        xp, lam, a, b, M, N = self.xp, self.lam, self.a, self.b, self.M, self.N
        if self.reg == "kl":
            P = st.X
            dr, dc = st.r / lam, st.c / lam
            H_y, Ht_x = (lambda y: (P @ y) / lam), (lambda x: (x @ P) / lam)
            dense = (lambda: P / lam)
        else:
            S = xp.sign(st.X)
            al, bl = a / lam, b / lam
            dr, dc = al * (S @ b), bl * (a @ S)
            H_y, Ht_x = (lambda y: al * (S @ (b * y))), (lambda x: bl * ((a * x) @ S))
            dense = (lambda: al[:, None] * S * b[None, :])
        diag = xp.concat([dr + (mu / lam) * a, dc + (mu / lam) * b])
        g = xp.concat([a - st.r, st.c - b])
        if M + N <= _DIRECT_MAX:
            H = dense()
            A = xp.concat([xp.concat([xp.zeros((M, M), dtype=H.dtype), -H], axis=1),
                           xp.concat([-H.T, xp.zeros((N, N), dtype=H.dtype)], axis=1)], axis=0)
            A = A + xp.eye(M + N, dtype=H.dtype) * diag[None, :]
            return g, xp.linalg.solve(A, g[:, None])[:, 0]

        def matvec(x):
            return diag * x - xp.concat([H_y(x[M:]), Ht_x(x[:M])])
        return g, _pcg(matvec, g, 1.0 / diag, rtol, M + N, xp)


_DIRECT_MAX = 600  # Newton systems with M + N up to this size are solved directly
_INIT_STEPS = 0     # Newton steps of the root solves in the first L2 sweep (its start point only)
_MU = 1e-2         # Levenberg-Marquardt factor: mu = _MU * min(1, |grad F|_1)


def _newton(D, tol, max_iter, st, it):
    """(Semi-smooth) Newton ascent on the dual ``F`` with an Armijo line search.

    Directions from ``_Dual.newton_direction``; a first step whose gain exceeds the
    quadratic model's by half (regularisation-dominated, flat directions) is doubled
    while ``F`` increases; a failed line search falls back on one exact sweep.
    Returns (state, iterations, converged).
    """
    xp, a, b, M = D.xp, D.a, D.b, D.M
    while True:
        err_r, err_c = float(xp.sum(xp.abs(a - st.r))), float(xp.sum(xp.abs(st.c - b)))
        err = err_r + err_c
        if _progress(xp, st.phi, st.psi, err_r, err_c, abs(float(xp.sum(st.r)) - 1.0), st.F, tol) <= 1.0:
            return st, it, True
        if it >= max_iter:
            return st, it, False
        it += 1
        g, d = D.newton_direction(st, _MU * min(1.0, err), min(0.1, math.sqrt(err)))
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


def _sinkhorn(D, tol, max_iter, phi, newton_after=200, min_iter=20):
    """Absorption-stabilised log-domain Sinkhorn (KL).

    Log-domain sweeps (``_Dual.sweep``) alternate with scaling iterations
    ``v = b / (K^T u)``, ``u = a / (K v)`` of the kernel ``K`` = pseudo-plan of the
    last absorbed potentials; ``u``, ``v`` are absorbed into ``(phi, psi)`` before they
    leave ``[e^-B, e^B]``, ``B = 0.15 log(1/tiny)``. Every 10 iterations the stopping
    bound is evaluated and its linear rate estimated; when more than ``newton_after``
    further iterations are predicted (after ``min_iter``), the caller switches to Newton.
    Returns (phi, psi, iterations, status) with status "converged", "max_iter" or "slow".
    """
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
                q = _progress(xp, ph, ps, 0.0, float(xp.sum(xp.abs(c - b))), abs(mass - 1.0), dual, tol)
                if q <= 1.0:
                    return ph, ps, it, "converged"
                if it >= max_iter:
                    return ph, ps, it, "max_iter"
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


def solve_regularized(C, lam, reg="kl", a=None, b=None, tol=1e-9, max_iter=None, init=None):
    """Solve the regularised OT problem (eq. 6) exactly through its dual (Lemma 4.1).

    Parameters
    ----------
    C : array (M, N)
        Nonnegative finite costs (rows: generated points, columns: data).
    lam : float > 0
        Regularisation weight ``lambda``.
    reg : {"kl", "l2"}
        ``I`` of Sec. 3 (KL to ``a x b`` or ``0.5 sum P^2/(a b)``).
    a, b : arrays (M,), (N,), optional
        Strictly positive weights summing to 1 (default uniform).
    tol : float
        Stop when the bound on ``|gap|`` (module docstring) is ``<= tol * |F|`` and the
        marginal error ``|P 1 - a|_1 + |P^T 1 - b|_1 <= tol``; values below
        ``1e3 * eps`` of the dtype are raised to it.
    max_iter : int, optional
        Iterations: Sinkhorn iterations plus Newton steps (KL, default 10000) or Newton
        steps (L2, default 500). When reached, ``converged=False`` and a
        ``RuntimeWarning`` is issued.
    init : (phi0, psi0), optional
        Warm start (Appendix H). KL: Sinkhorn starts from ``phi0`` (its first sweep
        recomputes ``psi``); L2: Newton starts at ``(phi0, psi0)``. Default: KL from
        ``phi = 0``; L2 from the start point of one sweep (``_Dual.root`` with no step).

    Returns
    -------
    OTResult
        ``plan`` (eq. 11), ``phi``, ``psi``, ``primal = <plan, C> + lam I(plan)``,
        ``dual = F(phi, psi)``, ``gap = primal - dual``, ``marginal_error``,
        ``iterations``, ``converged``.

    Notes
    -----
    KL: stabilised log-domain Sinkhorn; when its estimated linear rate predicts more
    than 200 further iterations (small ``lam``), Newton steps on the same dual finish
    (Sinkhorn-Newton). L2: one exact sweep, then semi-smooth Newton.
    """
    xp, lam, reg, a, b = _problem(C, lam, reg, a, b)
    tol_eff = max(_real_positive("tol", tol), 1e3 * float(xp.finfo(C.dtype).eps))
    if max_iter is None:
        max_iter = 10_000 if reg == "kl" else 500
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    max_iter = int(max_iter)
    if init is not None:
        phi0, psi0 = init
        _check_potentials(xp, phi0, psi0, C)
        phi0, psi0 = xp.astype(phi0, C.dtype), xp.astype(psi0, C.dtype)
    D = _Dual(C, lam, reg, a, b, xp)
    if reg == "kl":
        phi, psi, iters, status = _sinkhorn(D, tol_eff, max_iter, xp.zeros_like(a) if init is None else phi0)
        st, ok = D.state(phi, psi), status == "converged"
        if status == "slow":
            st, iters, ok = _newton(D, tol_eff, max_iter, st, iters)
        plan = st.X
    else:
        start = D.sweep(xp.zeros_like(a), _INIT_STEPS) if init is None else (phi0, psi0)
        st, iters, ok = _newton(D, tol_eff, max_iter, D.state(*start), 0)
        plan = (a / lam)[:, None] * st.X * b[None, :]
    primal = xp.sum(plan * C) + lam * regularizer(plan, reg, a, b)
    dual = xp.asarray(st.F, dtype=C.dtype, device=getattr(C, "device", None))
    merr = xp.maximum(xp.max(xp.abs(st.r - a)), xp.max(xp.abs(st.c - b)))
    if not ok:
        warnings.warn(f"solve_regularized(reg={reg!r}) did not converge: max_iter={max_iter} reached "
                      f"before |gap| <= tol*|primal| and marginal error <= tol (tol={tol_eff:g}); "
                      f"gap={float(primal - dual):.3e}, marginal error={float(merr):.3e}",
                      RuntimeWarning, stacklevel=2)
    return OTResult(plan=plan, phi=st.phi, psi=st.psi, primal=primal, dual=dual, gap=primal - dual,
                    marginal_error=merr, iterations=iters, converged=ok)
