"""Tools to check gradients and theorems numerically: the ones the project's own tests use.

Three groups (user guide with copyable examples: ``docs/testing.md``):

* **Gradient checks** (after ``torch.autograd.gradcheck``/``gradgradcheck`` and JAX's
  ``check_grads``): :func:`check_grad` (scalar functions), :func:`check_vjp` (array
  functions, by random vector-Jacobian products), :func:`check_mlp` (the four passes of
  :class:`refimpl.nn.MLP`). Central finite differences in float64 on a host copy of the
  input; inputs from any backend. A failure raises ``AssertionError`` naming the worst
  entry, its analytic and its numeric value.
* **Hypothesis strategies** (:func:`point_clouds`, :func:`ot_problems`,
  :func:`two_delta_models`, :func:`images`, :func:`mlp_specs`). Hypothesis is a test-time
  extra: it is imported when a strategy is built, never by ``import refimpl.testing``.
* **Theorem predicates**: functions that return the measured quantity of a theorem and
  its bound as a :class:`Bound` (``value <= bound`` is the claim), e.g.
  :func:`smoothing_bounds` (SWGAN Lemma 3.2: ``d_c <= d_{c,lam} <= d_c + lam I*``).
  Predicates that need an exact LP use POT (``ot``), also a test-time extra.

Everything here works on host NumPy float64 unless stated; results are Python floats.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as _np

from .backend import device_of, from_host, namespace, to_numpy

__all__ = ["check_grad", "check_vjp", "numeric_grad", "check_mlp", "Bound", "point_clouds", "ot_problems",
           "two_delta_models", "images", "mlp_specs", "cost_matrix_host", "dual_resolution", "ratio_resolution", "feasible_rounding", "solver_suboptimality",
           "smoothing_bounds", "plan_stability", "ratio_error", "gradient_error", "dual_gradient_norm",
           "composed_plan", "information_inequality", "conjugacy_residuals", "kantorovich_potential",
           "linear_generator", "smoothness_bound", "dual_stability", "nonconvex_sgd", "sgd_rate_bound",
           "image_w2"]

EPS64 = float(_np.finfo(_np.float64).eps)


# ============================================================================ gradient checks
def _leaves(tree):
    if isinstance(tree, (list, tuple)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


def _rebuild(tree, it):
    if isinstance(tree, (list, tuple)):
        return type(tree)(_rebuild(t, it) for t in tree) if isinstance(tree, tuple) else [_rebuild(t, it) for t in tree]
    return next(it)


def _host(tree):
    return [_np.array(to_numpy(leaf), dtype=_np.float64) for leaf in _leaves(tree)]


def _to_backend(tree, hosts, xp, device):
    return _rebuild(tree, iter([from_host(h, xp, "float64", device) for h in hosts]))


def _numeric_grad(f, x, h, entries):
    """Central differences of scalar ``f`` at the (leaf, index) pairs ``entries``."""
    leaves = _leaves(x)
    xp = namespace(*leaves)
    dev = device_of(leaves[0])
    base = _host(x)
    out = []
    for k, idx in entries:
        step = h * max(1.0, abs(base[k][idx]))
        vals = []
        for s in (step, -step):
            hosts = [b.copy() for b in base]
            hosts[k][idx] += s
            vals.append(float(to_numpy(f(_to_backend(x, hosts, xp, dev)))))
        out.append((vals[0] - vals[1]) / (2 * step))
    return out


def numeric_grad(f, x, h=1e-6):
    """Central finite differences of scalar ``f`` at ``x`` (array or pytree, any backend), in float64.

    Each entry moves by ``+- h * max(1, |x_i|)``; ``f`` receives float64 arrays in ``x``'s
    namespace and device, structured like ``x``. Returns host float64 arrays structured like ``x``.
    """
    entries = _entries(x, None, None)
    vals = iter(_numeric_grad(f, x, h, entries))
    out = [_np.zeros(tuple(leaf.shape)) for leaf in _leaves(x)]
    for k, idx in entries:
        out[k][idx] = next(vals)
    return _rebuild(x, iter(out))


def _entries(x, max_entries, rng):
    shapes = [tuple(leaf.shape) for leaf in _leaves(x)]
    allv = [(k, idx) for k, s in enumerate(shapes) for idx in _np.ndindex(*s)]
    if max_entries is not None and len(allv) > max_entries:
        rng = _np.random.default_rng(0) if rng is None else rng
        pick = rng.choice(len(allv), size=max_entries, replace=False)
        allv = [allv[i] for i in sorted(pick)]
    return allv


def check_grad(f, grad, x, *, h=1e-6, rtol=1e-6, atol=1e-8, max_entries=None, rng=None, what="gradient"):
    """Check an analytic gradient of a scalar function against central finite differences.

    Parameters
    ----------
    f : callable
        ``f(x) -> scalar`` (Python float or 0-d array of any backend). It is called with
        float64 arrays in ``x``'s namespace and device, structured like ``x``.
    grad : array, pytree of arrays, or callable
        The analytic gradient at ``x`` (same structure as ``x``), or ``grad(x)`` returning it.
    x : array or pytree (nested lists/tuples) of arrays, any backend
        The point. Copied to host float64; each entry is moved by
        ``+- h * max(1, |x_i|)``.
    h : float
        Relative step of the central differences (error ``O(h^2)`` for smooth ``f``).
    rtol, atol : float
        Entry ``i`` passes when ``|analytic_i - numeric_i| <= atol + rtol * |numeric_i|``.
    max_entries : int, optional
        Check a random subset of this many entries (``rng``, default seed 0); all by default.
    what : str
        Name used in the failure message.

    Returns
    -------
    float
        The largest ``|analytic - numeric|`` over the checked entries.

    Raises
    ------
    AssertionError
        Naming the worst entry (leaf and index), its analytic and numeric value.
    """
    g = grad(x) if callable(grad) else grad
    ga = _host(g)
    if [a.shape for a in ga] != [tuple(leaf.shape) for leaf in _leaves(x)]:
        raise ValueError(f"{what}: the analytic gradient's shapes {[a.shape for a in ga]} differ from x's")
    entries = _entries(x, max_entries, rng)
    num = _numeric_grad(f, x, h, entries)
    worst, worst_excess, max_err = None, -_np.inf, 0.0
    for (k, idx), n in zip(entries, num):
        a = float(ga[k][idx])
        err = abs(a - n)
        max_err = max(max_err, err)
        excess = err - (atol + rtol * abs(n))
        if excess > worst_excess:
            worst, worst_excess = (k, idx, a, n, err), excess
    if worst is not None and worst_excess > 0:
        k, idx, a, n, err = worst
        where = f"leaf {k} index {idx}" if len(ga) > 1 else f"index {idx}"
        raise AssertionError(f"{what} mismatch at {where}: analytic {a!r}, numeric {n!r} "
                             f"(|diff| {err:.3g} > atol {atol:g} + rtol {rtol:g} * |numeric|)")
    return max_err


def _random_like(y, rng):
    return rng.standard_normal(tuple(y.shape))


def check_vjp(f, vjp, x, *, cotangents=2, rng=None, h=1e-6, rtol=1e-6, atol=1e-8, max_entries=None,
              what="vjp"):
    """Check a vector-Jacobian product of an array function against finite differences.

    For random cotangents ``u`` (standard normal, host float64), ``vjp(u)`` must equal the
    gradient of the scalar ``x -> sum(u * f(x))``, checked by :func:`check_grad`.

    Parameters
    ----------
    f : callable
        ``f(x) -> array`` (any backend, fixed shape).
    vjp : callable
        ``vjp(u) -> gradient``, structured like ``x``; ``u`` is float64 in ``f(x)``'s
        namespace and device, shaped like ``f(x)``.
    x : array or pytree of arrays
    cotangents : int
        Number of random cotangents.
    rng : numpy.random.Generator, optional
        Default ``default_rng(0)``.
    h, rtol, atol, max_entries, what
        As in :func:`check_grad`.

    Returns
    -------
    float
        Largest ``|analytic - numeric|`` seen.
    """
    rng = _np.random.default_rng(0) if rng is None else rng
    y = f(x)
    xp, dev = namespace(y), device_of(y)
    worst = 0.0
    for t in range(cotangents):
        u = from_host(_random_like(y, rng), xp, "float64", dev)
        worst = max(worst, check_grad(lambda z: xp.sum(u * xp.astype(f(z), u.dtype)), vjp(u), x, h=h, rtol=rtol,
                                      atol=atol, max_entries=max_entries, rng=rng, what=f"{what} (cotangent {t})"))
    return worst


def check_mlp(mlp, params, x, *, rng=None, h=1e-6, rtol=1e-5, atol=1e-7, max_entries=40, kink_margin=1e-4):
    """Check the four passes of a :class:`refimpl.nn.MLP` (like ``gradcheck`` + ``gradgradcheck``).

    1. forward: ``mlp.forward`` against a host float64 re-evaluation of
       ``h_l = act_l(h_{l-1} W_l + b_l)``;
    2. backward: ``mlp.backward`` (parameter and input gradients) by :func:`check_vjp`;
    3. input gradient (scalar-output networks): ``mlp.input_gradient`` against finite
       differences of ``x -> sum_b f(x_b)``;
    4. double backward (scalar-output networks): ``mlp.input_gradient_vjp`` against finite
       differences of ``Q = sum_b <u_b, grad_x f(x_b)>`` in the parameters and in ``x``.

    Parameters
    ----------
    mlp : refimpl.nn.MLP
    params : list of (W, b), any backend; cast to float64 for the check
    x : array (B, sizes[0]), same backend
    rng : numpy.random.Generator, optional
        For the cotangents and the checked subset (default seed 0).
    h, rtol, atol, max_entries
        As in :func:`check_grad` (``max_entries`` per parameter check).
    kink_margin : float
        ReLU-family networks: a ``ValueError`` is raised when a pre-activation lies within
        this distance of the kink (finite differences are meaningless there).

    Returns
    -------
    dict
        Largest absolute error per pass (``forward``, ``backward_params``, ``backward_x``,
        and for scalar outputs ``input_gradient``, ``double_backward_params``,
        ``double_backward_x``).

    Raises
    ------
    AssertionError
        From the failing pass, naming the entry.
    """
    rng = _np.random.default_rng(0) if rng is None else rng
    xp, dev = namespace(x), device_of(x)
    P = [(from_host(to_numpy(W), xp, "float64", dev), from_host(to_numpy(b), xp, "float64", dev)) for W, b in params]
    X = from_host(to_numpy(x), xp, "float64", dev)
    y, cache = mlp.forward(P, X)
    if mlp.activation in ("relu", "leaky_relu"):
        gap = min(float(_np.min(_np.abs(to_numpy(a)))) for a in cache.as_[:-1]) if len(cache.as_) > 1 else _np.inf
        if gap < kink_margin:
            raise ValueError(f"a pre-activation is {gap:.2g} from the ReLU kink; move the point (kink_margin)")
    # 1. forward, host re-evaluation
    hcur = _np.array(to_numpy(X))
    for l, (W, b) in enumerate(P):
        a = hcur @ _np.array(to_numpy(W)) + _np.array(to_numpy(b))
        hcur = _np.asarray(to_numpy(mlp.act(l).f(_np.asarray(a))))
    yh = _np.array(to_numpy(y))
    fwd = float(_np.max(_np.abs(yh - hcur))) if yh.size else 0.0
    if not _np.allclose(yh, hcur, rtol=1e-10, atol=1e-10):
        i = _np.unravel_index(_np.argmax(_np.abs(yh - hcur)), yh.shape)
        raise AssertionError(f"forward mismatch at {i}: mlp.forward {yh[i]!r}, host re-evaluation {hcur[i]!r}")
    out = {"forward": fwd}
    kw = dict(h=h, rtol=rtol, atol=atol, rng=rng)
    # 2. backward
    out["backward_params"] = check_vjp(lambda p: mlp.forward(p, X)[0],
                                       lambda u: mlp.backward(P, cache, u, need_dx=False)[1], P,
                                       max_entries=max_entries, what="backward (params)", **kw)
    out["backward_x"] = check_vjp(lambda z: mlp.forward(P, z)[0],
                                  lambda u: mlp.backward(P, cache, u, need_params=False)[0], X,
                                  max_entries=max_entries, what="backward (input)", **kw)
    if mlp.sizes[-1] != 1:
        return out
    # 3. input gradient
    g, tape = mlp.input_gradient(P, X)
    out["input_gradient"] = check_grad(lambda z: xp.sum(mlp.forward(P, z)[0]), g, X,
                                       max_entries=max_entries, what="input gradient", **kw)
    # 4. double backward
    u = from_host(rng.standard_normal(tuple(X.shape)), xp, "float64", dev)
    Q = lambda p, z: xp.sum(u * mlp.input_gradient(p, z)[0])
    dx, dp = mlp.input_gradient_vjp(P, tape, u)
    out["double_backward_params"] = check_grad(lambda p: Q(p, X), dp, P, max_entries=max_entries,
                                               what="double backward (params)", **kw)
    out["double_backward_x"] = check_grad(lambda z: Q(P, z), dx, X, max_entries=max_entries,
                                          what="double backward (input)", **kw)
    return out


# ============================================================================ strategies
def _st():
    try:
        import hypothesis.strategies as st
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("refimpl.testing strategies need hypothesis (pip install 'refimpl[test]')") from e
    return st


def cost_matrix_host(x, y, cost="euclidean"):
    """Host float64 cost matrix ``C_ij = c(x_i, y_j)``, written independently of ``refimpl.ot``.

    ``cost``: ``"l1"`` (``sum |x - y|``), ``"euclidean"`` (``|x - y|_2``),
    ``"sqeuclidean"`` (``|x - y|_2^2``). ``x`` (M, d), ``y`` (N, d). Returns (M, N).
    """
    x, y = _np.asarray(to_numpy(x), float), _np.asarray(to_numpy(y), float)
    diff = x[:, None, :] - y[None, :, :]
    if cost == "l1":
        return _np.abs(diff).sum(-1)
    sq = (diff ** 2).sum(-1)
    if cost == "sqeuclidean":
        return sq
    if cost == "euclidean":
        return _np.sqrt(sq)
    raise ValueError(f"unknown cost {cost!r}")


class Cloud(NamedTuple):
    x: _np.ndarray     # (M, d) generated points
    y: _np.ndarray     # (N, d) data points
    a: _np.ndarray     # (M,) weights, positive, sum 1
    b: _np.ndarray     # (N,) weights


class OTProblem(NamedTuple):
    C: _np.ndarray     # (M, N) costs >= 0
    a: _np.ndarray     # (M,)
    b: _np.ndarray     # (N,)
    lam: float         # > 0
    reg: str           # "kl" or "l2"
    x: _np.ndarray
    y: _np.ndarray
    cost: str


def _weights(rng, n, kind):
    if kind == "uniform" or n == 1:
        return _np.full(n, 1.0 / n)
    w = rng.random(n) + (1e-3 if kind == "degenerate" else 0.1)
    if kind == "degenerate":          # one weight dominates the rest
        w[rng.integers(n)] += 1e3
    return w / w.sum()


def point_clouds(min_points=1, max_points=12, dims=(1, 5), scale=(1e-2, 1e2), duplicates=True,
                 weights=("uniform", "random", "degenerate")):
    """Strategy of :class:`Cloud` ``(x, y, a, b)``: two host float64 clouds with marginals.

    Parameters
    ----------
    min_points, max_points : int
        Sizes ``M`` and ``N`` are drawn independently in this range (``M != N`` allowed).
    dims : (int, int)
        Range of the dimension ``d``.
    scale : (float, float)
        Range of the overall length scale (drawn log-uniformly); ``y`` is also shifted.
    duplicates : bool
        Allow shared points between ``x`` and ``y`` (zero costs), repeated points within
        ``x`` and a lattice mode with ties (integer coordinates).
    weights : tuple of {"uniform", "random", "degenerate"}
        Kinds of marginals drawn; "degenerate" puts almost all mass on one point.
    """
    st = _st()

    @st.composite
    def strat(draw):
        M, N = draw(st.integers(min_points, max_points)), draw(st.integers(min_points, max_points))
        d = draw(st.integers(*dims))
        rng = _np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        s = 10.0 ** draw(st.floats(math.log10(scale[0]), math.log10(scale[1])))
        lattice = duplicates and draw(st.booleans())
        if lattice:      # integer coordinates: many equal costs (ties)
            x = rng.integers(-2, 3, (M, d)).astype(float)
            y = rng.integers(-2, 3, (N, d)).astype(float)
        else:
            x = rng.standard_normal((M, d))
            y = draw(st.floats(0.3, 2.0)) * rng.standard_normal((N, d)) + draw(st.floats(0.0, 3.0))
        if duplicates:
            k = draw(st.integers(0, min(M, N)))
            y[:k] = x[:k]                                   # shared points
            if M > 1 and draw(st.booleans()):
                x[-1] = x[0]                                # a repeated point
        wk = draw(st.sampled_from(list(weights)))
        return Cloud(s * x, s * y, _weights(rng, M, wk), _weights(rng, N, draw(st.sampled_from(list(weights)))))

    return strat()


def ot_problems(min_points=1, max_points=10, dims=(1, 4), costs=("l1", "euclidean", "sqeuclidean"),
                regs=("kl", "l2"), lam_rel=(1e-4, 10.0), scale=(1e-2, 1e2), duplicates=True,
                weights=("uniform", "random", "degenerate")):
    """Strategy of :class:`OTProblem` ``(C, a, b, lam, reg, x, y, cost)`` (host float64).

    ``lam = r * median(C)`` (``median`` of the positive costs, 1 if there are none) with
    ``r`` drawn log-uniformly in ``lam_rel``; ``1e-4`` is the smallest ratio the
    project's theorem tests use. Other parameters as in :func:`point_clouds`.
    """
    st = _st()

    @st.composite
    def strat(draw):
        cl = draw(point_clouds(min_points, max_points, dims, scale, duplicates, weights))
        cost = draw(st.sampled_from(list(costs)))
        C = cost_matrix_host(cl.x, cl.y, cost)
        pos = C[C > 0]
        med = float(_np.median(pos)) if pos.size else 1.0
        lam = med * 10.0 ** draw(st.floats(math.log10(lam_rel[0]), math.log10(lam_rel[1])))
        return OTProblem(C, cl.a, cl.b, lam, draw(st.sampled_from(list(regs))), cl.x, cl.y, cost)

    return strat()


class TwoDelta(NamedTuple):
    theta: _np.ndarray       # (2,) (a, b), a < 0 < b
    theta_star: _np.ndarray  # (2,)
    alpha: float             # mass at a, in [0, 1]
    h: float                 # step size > 0


def two_delta_models(h=(1e-3, 10.0), alpha_edges=True):
    """Strategy of :class:`TwoDelta` models ``rho = alpha delta_a + (1 - alpha) delta_b``
    (Wasserstein proximal of GANs, Sec. 2.3) on ``Theta = {a < 0 < b}``, with a target, a
    mass ``alpha`` (``0``, ``1`` and ``1/2`` included when ``alpha_edges``) and a step ``h``
    drawn log-uniformly in ``h``."""
    st = _st()
    side = lambda sgn: st.floats(1e-3, 10.0).map(lambda v: sgn * v)
    al = st.floats(0.0, 1.0)
    if alpha_edges:
        al = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), al)
    return st.builds(lambda a, b, a2, b2, alpha, lh: TwoDelta(_np.array([a, b]), _np.array([a2, b2]), alpha, 10.0 ** lh),
                     side(-1), side(1), side(-1), side(1), al, st.floats(math.log10(h[0]), math.log10(h[1])))


class Image(NamedTuple):
    X: _np.ndarray    # (C, H, W) nonnegative mass
    mass: float       # X.sum()


def images(channels=(1, 2), side=(1, 6), zeros=True, max_value=2.0):
    """Strategy of small nonnegative images :class:`Image` ``(X, mass)`` (host float64).

    Shapes ``(C, H, W)`` with ``H, W`` in ``side`` (``H * W >= 2``) and ``C`` in ``channels``;
    with ``zeros`` some pixels are exactly 0 (and sometimes all but one: a one-hot image).
    """
    st = _st()

    @st.composite
    def strat(draw):
        C = draw(st.integers(*channels))
        H, W = draw(st.integers(*side)), draw(st.integers(*side))
        if H * W < 2:
            W = 2
        rng = _np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        X = rng.random((C, H, W)) * max_value
        if zeros:
            mode = draw(st.sampled_from(["dense", "sparse", "onehot"]))
            if mode == "sparse":
                X[rng.random(X.shape) < 0.5] = 0.0
            elif mode == "onehot":
                X = _np.zeros_like(X)
                X[tuple(rng.integers(0, s) for s in X.shape)] = 1.0
        return Image(X, float(X.sum()))

    return strat()


class MLPSpec(NamedTuple):
    mlp: object          # refimpl.nn.MLP
    params: list         # host float64 [(W, b), ...]
    x: _np.ndarray       # (B, sizes[0]) host float64


def mlp_specs(out_dim=None, depth=(1, 3), width=(1, 16), in_dim=(1, 4), batch=(1, 8), activations=None,
              output_activations=("linear", "tanh", "softplus", "sigmoid")):
    """Strategy of :class:`MLPSpec` ``(mlp, params, x)``: an MLP, host float64 parameters
    (biases perturbed so no pre-activation sits on a ReLU kink by construction) and a batch.
    ``out_dim=1`` gives scalar-output networks (all four passes of :func:`check_mlp`)."""
    st = _st()
    from .nn import ACTIVATIONS, MLP
    acts = sorted(ACTIVATIONS) if activations is None else list(activations)

    @st.composite
    def strat(draw):
        widths = [draw(st.integers(*width)) for _ in range(draw(st.integers(*depth)))]
        sizes = (draw(st.integers(*in_dim)), *widths, out_dim or draw(st.integers(1, 3)))
        mlp = MLP(sizes, draw(st.sampled_from(acts)), draw(st.sampled_from(list(output_activations))))
        rng = _np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        params = [(_np.asarray(W), _np.asarray(b) + rng.uniform(-0.5, 0.5, tuple(b.shape)))
                  for W, b in mlp.init(rng, xp=_np, dtype="float64")]
        return MLPSpec(mlp, params, rng.standard_normal((draw(st.integers(*batch)), sizes[0])))

    return strat()


# ============================================================================ predicates
class Bound(NamedTuple):
    """A measured quantity and the bound a statement puts on it: the claim is ``value <= bound``.

    ``slack`` is the absolute allowance for float64 rounding and solver tolerance, derived
    by the predicate from the sizes of the quantities involved (never a tuned constant).
    """
    value: float
    bound: float
    slack: float = 0.0

    def holds(self, rtol=1e-9):
        """``value <= bound * (1 + rtol) + slack``."""
        return self.value <= self.bound * (1.0 + rtol) + self.slack

    def check(self, what="bound", rtol=1e-9):
        """Raise ``AssertionError`` naming ``what`` unless :meth:`holds`; return ``self``."""
        if not self.holds(rtol):
            raise AssertionError(f"{what}: measured {self.value!r} > bound {self.bound!r} "
                                 f"(rtol {rtol:g}, slack {self.slack:.3g})")
        return self


def _ot():
    try:
        import ot
    except ImportError as e:  # pragma: no cover
        raise ImportError("this predicate needs POT (pip install 'refimpl[test]')") from e
    return ot


def _solve(C, lam, reg, a, b, tol=1e-10):
    from .ot import solve_regularized
    res = solve_regularized(C, lam, reg, a=a, b=b, tol=tol)
    if not res.converged:
        raise RuntimeError(f"solve_regularized did not converge ({reg}, lam={lam:g}, gap {float(res.gap):.3g})")
    return res


def _uw(w, n):
    return _np.full(n, 1.0 / n) if w is None else _np.asarray(to_numpy(w), float)


def dual_resolution(phi, psi, C, lam, reg, a=None, b=None):
    """Float64 resolution of one evaluation of the dual ``F`` (SWGAN eq. 12) at ``(phi, psi)``.

    A bound on ``|fl(F) - F|``: the summation bound ``gamma_K sum |terms|`` (``K = M N + M + N``
    terms, ``gamma_K = K u / (1 - K u)``, ``u`` the unit roundoff) plus the rounding of
    ``V = phi - psi - C`` propagated through ``f_lam`` (``|f_lam'(V)| = m``):
    ``3 u sum a_i b_j m_ij (|phi_i| + |psi_j| + C_ij)``. Host float64; returns a float.
    """
    phi, psi, C = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    M, N = C.shape
    a, b = _uw(a, M), _uw(b, N)
    V = phi[:, None] - psi[None, :] - C
    if reg == "kl":
        m = _np.exp(V / lam - 1.0)
        fv = lam * m
    else:
        m = _np.maximum(V, 0.0) / lam
        fv = 0.5 * lam * m * m
    w = a[:, None] * b[None, :]
    u = EPS64 / 2
    K = M * N + M + N
    gamma = K * u / (1 - K * u)
    terms = _np.sum(_np.abs(a * phi)) + _np.sum(_np.abs(b * psi)) + _np.sum(w * fv)
    return float(gamma * terms + 3 * u * _np.sum(w * m * (_np.abs(phi)[:, None] + _np.abs(psi)[None, :] + C)))


def _ratio(phi, psi, C, lam, reg):
    V = phi[:, None] - psi[None, :] - C
    return _np.exp(V / lam - 1.0) if reg == "kl" else _np.maximum(V, 0.0) / lam


def ratio_resolution(phi, psi, C, lam, reg):
    """Entrywise float64 resolution of the density ratio ``m`` (SWGAN eq. 11) computed from
    ``(phi, psi, C)``: three roundings of ``V = phi - psi - C`` propagated through ``m(V)``
    (slope ``1/lam`` for L2, ``m/lam`` for KL) plus the rounding of ``m`` itself. Host (M, N)."""
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    m = _ratio(ph, ps, Ch, lam, reg)
    return 3 * (EPS64 / 2) * (_np.abs(ph)[:, None] + _np.abs(ps)[None, :] + Ch) / lam * (m if reg == "kl" else 1.0) \
        + (EPS64 * m)


def _I_host(P, a, b, reg):
    q = a[:, None] * b[None, :]
    if reg == "kl":
        nz = P > 0
        return float(_np.sum(P[nz] * _np.log(P[nz] / q[nz])))
    return float(0.5 * _np.sum(P * P / q))


class SmoothingBounds(NamedTuple):
    d_c: float            # exact OT cost (POT emd2)
    d_c_lam: float        # regularised OT value (solve_regularized)
    I_emd: float          # I of POT's optimal plan (>= I*)
    lower: Bound          # d_c <= d_{c,lam}
    upper: Bound          # d_{c,lam} <= d_c + lam I_emd  (Lemma 3.2, with I* <= I_emd)
    cap: Bound            # I_emd <= log K (KL) or K/2 (L2), uniform weights (Cor. 3.2.1); nan bound otherwise
    floor: Bound          # L2: d_c + lam/2 <= d_{c,lam}; KL: trivial (value = bound = 0)


def smoothing_bounds(C, lam, reg="kl", a=None, b=None, tol=1e-10):
    """SWGAN Lemma 3.2 and Cor. 3.2.1 for one problem: ``d_c <= d_{c,lam} <= d_c + lam I*``.

    ``d_c`` is POT's exact ``emd`` cost; ``d_{c,lam}`` the dual value of
    :func:`refimpl.ot.solve_regularized` (certified within :func:`solver_suboptimality`); ``I*`` is replaced by ``I(pi_emd) >= I*`` (what
    Cor. 3.2.1 bounds: ``log K`` for KL, ``K/2`` for L2, ``K = min(M, N)``, uniform weights).
    L2 also has ``I(pi) >= 1/2`` for every feasible plan (Cauchy-Schwarz), hence the floor
    ``d_c + lam/2 <= d_{c,lam}``. Slacks: the solver's certified suboptimality plus float64 resolution.

    Parameters
    ----------
    C : array (M, N), any backend; a, b : weights or None (uniform); lam > 0; reg in {"kl", "l2"}

    Returns
    -------
    SmoothingBounds
    """
    ot = _ot()
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = _uw(a, M), _uw(b, N)
    res = _solve(C, lam, reg, a, b, tol)
    dcl = float(to_numpy(res.dual))
    es = solver_suboptimality(res, Ch, lam, reg, ah, bh)      # d_{c,lam} lies in [dcl, dcl + es]
    P0 = ot.emd(ah, bh, Ch, numItermax=max(10**6, 50 * M * N))
    dc = float(_np.sum(P0 * Ch))
    Iemd = _I_host(P0, ah, bh, reg)
    K = min(M, N)
    cmax = float(Ch.max()) if Ch.size else 0.0
    slack = es + 8 * (M * N) * EPS64 * (cmax + abs(dcl) + lam * Iemd)
    uniform = _np.allclose(ah, 1.0 / M, rtol=0, atol=1e-15) and _np.allclose(bh, 1.0 / N, rtol=0, atol=1e-15)
    capv = (math.log(K) if reg == "kl" else K / 2) if uniform else math.nan
    return SmoothingBounds(dc, dcl, Iemd, Bound(dc, dcl, slack), Bound(dcl, dc + lam * Iemd, slack),
                           Bound(Iemd, capv, 8 * M * N * EPS64 * (1 + Iemd)),
                           Bound(dc + lam / 2, dcl, slack) if reg == "l2" else Bound(0.0, 0.0))


def _plan_error(res, C, lam, reg, a=None, b=None):
    """Bounds on ``(||P_res - P*||_1, ||P_res - P*||_2)`` from the solver's certified
    suboptimality ``es`` (Thm 5.1 applied to the solver's own potentials):
    ``sum a b |m - m*| <= sqrt(coef es)`` (Cauchy-Schwarz, weights summing to 1) and
    ``||P - P*||_2 <= sqrt(max a b) sqrt(coef es)``."""
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = _uw(a, M), _uw(b, N)
    es = solver_suboptimality(res, Ch, lam, reg, ah, bh)
    m = _ratio(_np.asarray(to_numpy(res.phi), float), _np.asarray(to_numpy(res.psi), float), Ch, lam, reg)
    coef = 2.0 / lam if reg == "l2" else 4.0 * (float(m.max()) + 1.0) / lam
    e = math.sqrt(coef * es)
    return e, math.sqrt(float(ah.max() * bh.max())) * e


def plan_stability(C1, C2, lam, reg, tol=1e-10):
    """SWGAN Thm 3.3 / D.1 in the cost form of ``conventions.md`` (uniform weights).

    KL: ``||P1 - P2||_1 <= ||C1 - C2||_inf / lam``;
    L2: ``||P1 - P2||_2 <= ||C1 - C2||_2 / (lam M N)``. Plans from
    :func:`refimpl.ot.solve_regularized`; the slack is each plan's certified distance to the
    exact plan (from :func:`solver_suboptimality`) plus float64 resolution.

    Returns
    -------
    Bound
    """
    r1, r2 = _solve(C1, lam, reg, None, None, tol), _solve(C2, lam, reg, None, None, tol)
    P1, P2 = (_np.asarray(to_numpy(r.plan), float) for r in (r1, r2))
    dC = _np.asarray(to_numpy(C1), float) - _np.asarray(to_numpy(C2), float)
    M, N = dC.shape
    slack = sum(_plan_error(r, C, lam, reg)[0 if reg == "kl" else 1] for r, C in ((r1, C1), (r2, C2))) \
        + 8 * M * N * EPS64
    if reg == "kl":
        return Bound(float(_np.abs(P1 - P2).sum()), float(_np.abs(dC).max()) / lam, slack)
    return Bound(float(_np.sqrt(((P1 - P2) ** 2).sum())), float(_np.sqrt((dC ** 2).sum())) / (lam * M * N), slack)


def feasible_rounding(P, a, b):
    """Round a nonnegative (pseudo-)plan onto ``Pi(a, b)`` (Altschuler, Weed, Rigollet 2017, Alg. 2):
    scale rows down to at most ``a``, then columns down to at most ``b``, then add
    ``e_r e_c^T / |e_r|_1`` for the remaining deficits. Host (M, N)."""
    P = _np.array(to_numpy(P), dtype=float)
    a, b = _np.asarray(a, float), _np.asarray(b, float)
    r = P.sum(1)
    P *= _np.where(r > a, a / _np.where(r > 0, r, 1.0), 1.0)[:, None]
    c = P.sum(0)
    P *= _np.where(c > b, b / _np.where(c > 0, c, 1.0), 1.0)[None, :]
    er, ec = _np.maximum(a - P.sum(1), 0.0), _np.maximum(b - P.sum(0), 0.0)
    if er.sum() > 0:
        P += _np.outer(er, ec) / er.sum()
    return P


def solver_suboptimality(res, C, lam, reg, a=None, b=None):
    """A certified upper bound on ``F* - F(res.phi, res.psi)`` for a result of
    :func:`refimpl.ot.solve_regularized`: the primal value of the rounded feasible plan
    (:func:`feasible_rounding`, ``>= F*`` by weak duality) minus the dual value, plus the
    float64 resolution of both. Host float."""
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = _uw(a, M), _uw(b, N)
    P = feasible_rounding(res.plan, ah, bh)
    primal = float(_np.sum(P * Ch)) + lam * _I_host(P, ah, bh, reg)
    F = float(to_numpy(res.dual))
    res_f = dual_resolution(res.phi, res.psi, Ch, lam, reg, ah, bh)
    return max(primal - F, 0.0) + res_f + 4 * M * N * EPS64 * (abs(primal) + lam)


class RatioError(NamedTuple):
    eps: float           # F(solver) - F(phi, psi), clipped at 0 (the statement's eps up to the solver's)
    eps_slack: float     # float64 resolution of eps plus the solver's certified suboptimality
    ratio: Bound         # ||m - m*|| weighted form vs its bound (Thm 5.1, eq. 32 / 36)


def ratio_error(phi, psi, C, lam, reg, a=None, b=None, tol=1e-10):
    """SWGAN Thm 5.1 (Appendix F) at the level of density ratios, for given potentials.

    With ``eps = F* - F(phi, psi)`` and ``m``, ``m*`` the ratios of the pseudo-plans of
    ``(phi, psi)`` and of the optimum, the weighted forms (equal to the paper's with uniform
    weights, ``a_i b_j = 1/(M N)``):

    * L2 (eq. 32): ``sum a_i b_j (m - m*)^2 <= 2 eps / lam``;
    * KL (eq. 36 with its square root restored): ``sum a_i b_j (m - m*)^2 <= 4 m_max eps / lam``,
      ``m_max`` the largest entry of ``m`` and ``m*``.

    The :class:`Bound` compares the square roots; its slack is the float64 resolution of
    ``eps`` (two :func:`dual_resolution`) propagated through the square root, plus the
    resolution of ``m``.

    Returns
    -------
    RatioError
    """
    from .ot import dual_objective
    res = _solve(C, lam, reg, a, b, tol)
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    phs, pss = _np.asarray(to_numpy(res.phi), float), _np.asarray(to_numpy(res.psi), float)
    M, N = Ch.shape
    ah, bh = _uw(a, M), _uw(b, N)
    Fs = float(to_numpy(res.dual))
    F = float(to_numpy(dual_objective(phi, psi, C, lam, reg, a=a, b=b)[0]))
    dF = dual_resolution(ph, ps, Ch, lam, reg, ah, bh) + dual_resolution(phs, pss, Ch, lam, reg, ah, bh)
    es = solver_suboptimality(res, Ch, lam, reg, ah, bh)
    eps = max(Fs - F, 0.0)
    m, ms = _ratio(ph, ps, Ch, lam, reg), _ratio(phs, pss, Ch, lam, reg)
    w = ah[:, None] * bh[None, :]
    value = float(_np.sqrt(_np.sum(w * (m - ms) ** 2)))
    coef = 2.0 / lam if reg == "l2" else 4.0 * max(float(m.max()), float(ms.max())) / lam
    bound = math.sqrt(coef * eps)
    dm = ratio_resolution(ph, ps, Ch, lam, reg) + ratio_resolution(phs, pss, Ch, lam, reg)
    # the solver's optimum is es-suboptimal: eps is short by at most es and m* is off by at most
    # sqrt(coef es) (the theorem applied to the solver's own potentials)
    slack = (math.sqrt(coef * (eps + es + dF)) - bound) + math.sqrt(coef * es) \
        + float(_np.sqrt(_np.sum(w * dm * dm))) + 4 * EPS64 * value
    return RatioError(eps, dF + es, Bound(value, bound, slack))


def gradient_error(phi, psi, C, dC, lam, reg, a=None, b=None, tol=1e-10):
    """SWGAN Thm 5.1 at the gradient level: ``||G - grad h_lam|| <= l0 * eps_bound``.

    ``G = sum a_i b_j m_ij dC_ij`` (Algorithm 1's direction from the potentials) and
    ``grad h_lam = sum a_i b_j m*_ij dC_ij`` (the envelope formula, eq. 33), where
    ``dC_ij = grad_theta c(G_theta(x_i), y_j)``. By Cauchy-Schwarz (eq. 34, weighted form)
    ``l0 = sqrt(sum a_i b_j |dC_ij|^2)`` and the ratio bound of :func:`ratio_error`.

    Parameters
    ----------
    dC : array (M, N, p), host or any backend: per-pair parameter gradients of the cost.

    Returns
    -------
    Bound
    """
    r = ratio_error(phi, psi, C, lam, reg, a, b, tol)
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    res = _solve(C, lam, reg, a, b, tol)
    ms = _ratio(_np.asarray(to_numpy(res.phi), float), _np.asarray(to_numpy(res.psi), float), Ch, lam, reg)
    m = _ratio(ph, ps, Ch, lam, reg)
    D = _np.asarray(to_numpy(dC), float)
    M, N = Ch.shape
    w = _uw(a, M)[:, None] * _uw(b, N)[None, :]
    G = _np.einsum("ij,ijp->p", w * m, D)
    Gs = _np.einsum("ij,ijp->p", w * ms, D)
    l0 = float(_np.sqrt(_np.sum(w * (D ** 2).sum(-1))))
    return Bound(float(_np.linalg.norm(G - Gs)), l0 * r.ratio.bound, l0 * r.ratio.slack + 8 * EPS64 * l0 * float(_np.abs(m).max() + 1))


def dual_gradient_norm(phi, psi, C, lam, reg, a=None, b=None, tol=1e-10):
    """SWGAN Sec. 4.2: ``||grad F(phi, psi)||^2 <= 2 L_F eps``, ``eps = F* - F``.

    ``L_F`` bounds the curvature of ``-F`` on the segment from ``(phi, psi)`` along the
    gradient step ``grad F / L_F`` (the standard descent-lemma argument needs no more). The
    Hessian of ``-F`` is ``(1/lam) sum_ij w_ij (e_i - e_j)(e_i - e_j)^T`` with
    ``w = a_i b_j 1[V > 0]`` (L2) or the pseudo-plan ``P`` (KL); Gershgorin gives
    ``||H|| <= (2/lam) max(max row weight sum, max column weight sum)``: ``2 max(a, b)/lam`` for
    L2; for KL the plan's row/column sums, convex along the segment, so their maximum over
    both end points (``L_F`` is doubled until it covers the step it defines).

    Returns
    -------
    Bound
        ``value = ||grad F||^2``, ``bound = 2 L_F eps``.
    """
    from .ot import dual_objective
    Ch = _np.asarray(to_numpy(C), float)
    M, N = Ch.shape
    ah, bh = _uw(a, M), _uw(b, N)
    ph, ps = _np.asarray(to_numpy(phi), float), _np.asarray(to_numpy(psi), float)
    F, gphi, gpsi = dual_objective(ph, ps, Ch, lam, reg, a=ah, b=bh)
    g2 = float(_np.sum(to_numpy(gphi) ** 2) + _np.sum(to_numpy(gpsi) ** 2))
    gp, gq = _np.asarray(to_numpy(gphi), float), _np.asarray(to_numpy(gpsi), float)

    def curvature(p, q):
        if reg == "l2":
            return 2.0 * max(ah.max(), bh.max()) / lam
        P = ah[:, None] * bh[None, :] * _ratio(p, q, Ch, lam, "kl")
        return 2.0 * max(P.sum(1).max(), P.sum(0).max()) / lam

    L = curvature(ph, ps)
    for _ in range(200):
        need = max(curvature(ph, ps), curvature(ph + gp / L, ps + gq / L))
        if need <= L:
            break
        L = 2 * need
    r = ratio_error(ph, ps, Ch, lam, reg, ah, bh, tol)
    return Bound(g2, 2 * L * r.eps, 2 * L * r.eps_slack + 8 * EPS64 * g2)


def composed_plan(P1, P2):
    """Glue ``P1 in Pi(a, r)`` (M, K) and ``P2 in Pi(b, r)`` (N, K) along ``r``:
    ``P_xy = P1 diag(1/r) P2^T`` (SWGAN Appendix A, proof of Thm 3.1). Returns (M, N)."""
    P1, P2 = _np.asarray(to_numpy(P1), float), _np.asarray(to_numpy(P2), float)
    r = P1.sum(0)
    return (P1 / r[None, :]) @ P2.T


def information_inequality(P1, P2):
    """SWGAN Appendix A data-processing step: ``I(P_xy) <= min(I(P1), I(P2))`` for the glued
    plan of :func:`composed_plan` (``I`` the KL mutual information, computed with
    :func:`refimpl.ot.regularizer` relative to each plan's marginals).

    Returns
    -------
    Bound
        ``value = I(P_xy)``, ``bound = min(I(P1), I(P2))``.
    """
    from .ot import regularizer
    P1, P2 = _np.asarray(to_numpy(P1), float), _np.asarray(to_numpy(P2), float)
    P = composed_plan(P1, P2)
    I = lambda Q: float(to_numpy(regularizer(Q, "kl", Q.sum(1), Q.sum(0))))
    vals = [I(P), I(P1), I(P2)]
    n = P.size + P1.size + P2.size
    # a plan whose total mass is 1 - d (solver marginal error) shifts its I by about d (1 + |log R|)
    mass = sum(abs(1.0 - float(Q.sum())) for Q in (P, P1, P2))
    big = 1 + max(abs(v) for v in vals)
    return Bound(vals[0], min(vals[1:]), 16 * n * EPS64 * big + 4 * mass * (big + math.log(n)))


class Conjugacy(NamedTuple):
    r_phi: _np.ndarray    # phi_i - min_j (psi_j + C_ij), shape (M,)
    r_psi: _np.ndarray    # max_i (phi_i - C_ij) - psi_j, shape (N,)
    lower: float          # lam
    upper: float          # lam (1 + log(1/min w)) (KL) or lam / min w (L2)


def conjugacy_residuals(phi, psi, C, lam, reg, a=None, b=None):
    """SWGAN eq. (4) / Lemma 2.1 at finite ``lam``: how far optimal regularised potentials
    are from being c-conjugate.

    At the optimum every row and column of the plan has its marginal's mass, which gives,
    for every ``i`` and ``j``, ``lam <= r_phi_i <= lam (1 + log(1/min b))`` (KL) or
    ``lam <= r_phi_i <= lam / min b`` (L2), and the same for ``r_psi_j`` with ``a``:
    the residuals vanish like ``lam`` (c-conjugacy, eq. 4, in the limit).

    Returns
    -------
    Conjugacy
        ``upper`` uses ``min(min a, min b)``.
    """
    ph, ps, Ch = (_np.asarray(to_numpy(v), float) for v in (phi, psi, C))
    M, N = Ch.shape
    wmin = min(_uw(a, M).min(), _uw(b, N).min())
    r_phi = ph - (ps[None, :] + Ch).min(1)
    r_psi = (ph[:, None] - Ch).max(0) - ps
    up = lam * (1 + math.log(1 / wmin)) if reg == "kl" else lam / wmin
    return Conjugacy(r_phi, r_psi, lam, up)


def kantorovich_potential(x, y, a=None, b=None, cost="euclidean"):
    """An exact Kantorovich pair from POT's LP duals and its c-transform (W1-FE eq. 2.2).

    Parameters
    ----------
    x : array (M, d)
        Particles (weights ``a``, default uniform).
    y : array (N, d)
        Data (weights ``b``).
    cost : {"l1", "euclidean", "sqeuclidean"}

    Returns
    -------
    f : callable
        ``f(z) = min_j (C(z, y_j) - v_j)`` on host arrays (K, d) -> (K,); 1-Lipschitz for a
        metric cost, ``f(x_i) >= u_i`` and ``f(y_j) <= -v_j``, so
        ``E_x f - E_y f = d_c``. The project's critic (large on data) is ``-f``.
    d_c : float
        POT's optimal cost.
    u, v : numpy.ndarray
        POT ``emd`` duals, ``u_i + v_j <= C_ij`` and ``<a, u> + <b, v> = d_c``.
    """
    ot = _ot()
    x, y = _np.asarray(to_numpy(x), float), _np.asarray(to_numpy(y), float)
    M, N = x.shape[0], y.shape[0]
    ah, bh = _uw(a, M), _uw(b, N)
    Ch = cost_matrix_host(x, y, cost)
    P, log = ot.emd(ah, bh, Ch, log=True, numItermax=max(10**6, 50 * M * N))
    u, v = _np.asarray(log["u"], float), _np.asarray(log["v"], float)
    f = lambda z: (cost_matrix_host(_np.atleast_2d(z), y, cost) - v[None, :]).min(1)
    return f, float(log["cost"]), u, v


# ---------------------------------------------------------------- SWGAN Appendix E (linear generator)
class LinearGenerator(NamedTuple):
    h: float              # h_lam(Theta) = d_{c,lam}(Theta q, p), c = |z - y|^2 / 2
    grad: _np.ndarray     # envelope gradient sum P*_ij (Theta x_i - y_j) x_i^T, shape (d, n)
    plan: _np.ndarray     # (M, N)


def linear_generator(Theta, x, y, lam, reg, tol=1e-10):
    """``h_lam(Theta)`` of SWGAN Appendix E and its gradient by the envelope formula.

    Generator ``G(x) = Theta x`` (``Theta`` (d, n), latent ``x`` (M, n), data ``y`` (N, d)),
    cost ``c(z, y) = |z - y|^2 / 2``, uniform weights. ``grad h = sum P*_ij (Theta x_i - y_j) x_i^T``
    (Danskin / eq. 33, the ``E_pi*[grad c]`` formula, valid for KL and L2).
    """
    from .ot import solve_regularized
    T, x, y = (_np.asarray(to_numpy(v), float) for v in (Theta, x, y))
    z = x @ T.T                                                      # (M, d)
    C = 0.5 * cost_matrix_host(z, y, "sqeuclidean")
    res = solve_regularized(C, lam, reg, tol=tol)
    if not res.converged:
        raise RuntimeError("solve_regularized did not converge")
    P = _np.asarray(to_numpy(res.plan), float)
    R = z[:, None, :] - y[None, :, :]                                # (M, N, d)
    grad = _np.einsum("ij,ijd,in->dn", P, R, x)
    return LinearGenerator(float(to_numpy(res.primal)), grad, P)


class Smoothness(NamedTuple):
    gap: Bound            # ||grad h(T1) - grad h(T2)|| <= L ||T1 - T2||, Thm 3.3 (KL) / D.1 (L2)
    L1: float
    L0: float             # sup |grad_theta c| over pairs and the segment (Thm 3.3)
    ell0: float           # RMS of sup |grad_theta c| (Remark D.1.1's normalised l0_hat)
    L: float


def smoothness_bound(T1, T2, x, y, lam, reg, tol=1e-10):
    """SWGAN Thm 3.3 (KL) / Thm D.1 with Remark D.1.1 (L2, uniform) on the linear generator.

    For ``c = |Theta x - y|^2/2``: ``grad_Theta c = (Theta x - y) x^T`` so
    ``L1 = max_i |x_i|^2`` (Lipschitz constant of ``grad_Theta c`` in Frobenius norm) and, on
    the segment ``[T1, T2]`` (where the argument needs them), ``L0 = max |Theta x_i - y_j| |x_i|``
    (convex in ``Theta``: attained at an end point). KL: ``L = L1 + L0^2/lam``; L2:
    ``L = L1 + ell0^2/lam`` with ``ell0^2 = mean_ij max_end |grad c_ij|^2``.
    Gradients by :func:`linear_generator` (exact plans); slack from the solver tolerance.

    Returns
    -------
    Smoothness
    """
    T1, T2, x, y = (_np.asarray(to_numpy(v), float) for v in (T1, T2, x, y))
    g1, g2 = linear_generator(T1, x, y, lam, reg, tol), linear_generator(T2, x, y, lam, reg, tol)
    xn = _np.linalg.norm(x, axis=1)                                  # (M,)
    L1 = float((xn ** 2).max())
    gn = [_np.linalg.norm((x @ T.T)[:, None, :] - y[None, :, :], axis=2) * xn[:, None] for T in (T1, T2)]
    gmax = _np.maximum(gn[0], gn[1])                                 # (M, N)
    L0 = float(gmax.max())
    ell0 = float(_np.sqrt(_np.mean(gmax ** 2)))
    L = L1 + (L0 ** 2 if reg == "kl" else ell0 ** 2) / lam
    dT = float(_np.linalg.norm(T1 - T2))
    scale = L0 * (1 + float(_np.abs(g1.plan).sum() + _np.abs(g2.plan).sum()))
    return Smoothness(Bound(float(_np.linalg.norm(g1.grad - g2.grad)), L * dT, 8 * tol * scale + 64 * EPS64 * scale),
                      L1, L0, ell0, L)


class DualStability(NamedTuple):
    distance: float         # distance from (Phi, Psi) to the optimal set of C2 (a line)
    corrected: Bound        # distance <= (M N + 1/pi_min) delta / sqrt(min(M, N))
    printed: Bound          # distance <= (1 + pi_min M N) delta / (pi_min sqrt(M + N))  (eq. 43-44)
    pi_min: float
    delta: float            # ||C1 - C2||_inf, the role of L0 |theta - theta'|


def dual_stability(C1, C2, lam, tol=1e-10):
    """SWGAN Thm H.1 (KL, uniform weights) in cost form.

    With ``(Phi, Psi)`` optimal for ``C1``, the optimal potentials of ``C2`` form the line
    ``(Phi2 + t, Psi2 + t)``; the distance of ``(Phi, Psi)`` to it is computed exactly
    (``t = -mean of the difference``). Bounds with ``delta = ||C1 - C2||_inf`` and ``pi_min``
    the smallest entry of both plans: the proof's residual is
    ``|d_ij| <= delta + lam |P1 - P2|_ij / pi_min`` (``log`` is ``1/pi_min``-Lipschitz), so
    ``||d||_2 <= M N delta + delta / pi_min`` (with Thm 3.3), and the projection onto the
    solutions of ``phi_i - psi_j = rhs_ij`` divides by the smallest *nonzero* singular value
    of that system, ``sqrt(min(M, N))``: the ``corrected`` bound. The ``printed`` bound
    (eq. 43) divides by the largest, ``sqrt(M + N)``.
    """
    r1, r2 = _solve(C1, lam, "kl", None, None, tol), _solve(C2, lam, "kl", None, None, tol)
    p1, q1, p2, q2 = (_np.asarray(to_numpy(v), float) for v in (r1.phi, r1.psi, r2.phi, r2.psi))
    D = _np.concatenate([p2 - p1, q2 - q1])
    dist = float(_np.linalg.norm(D - D.mean()))
    P1, P2 = _np.asarray(to_numpy(r1.plan), float), _np.asarray(to_numpy(r2.plan), float)
    M, N = P1.shape
    pmin = float(min(P1.min(), P2.min()))
    delta = float(_np.abs(_np.asarray(to_numpy(C1), float) - _np.asarray(to_numpy(C2), float)).max())
    scale = float(_np.abs(D).max() + _np.abs(p1).max() + _np.abs(q1).max())
    # a marginal error e_i of a solver plan moves its potential by about lam e_i / a_i
    merr = float(to_numpy(r1.marginal_error)) + float(to_numpy(r2.marginal_error))
    slack = 2 * math.sqrt(M + N) * lam * merr * max(M, N) + 64 * (M + N) * EPS64 * (scale + lam)
    corrected = Bound(dist, (M * N + 1 / pmin) * delta / math.sqrt(min(M, N)), slack)
    printed = Bound(dist, (1 + pmin * M * N) * delta / (pmin * math.sqrt(M + N)), slack)
    return DualStability(dist, corrected, printed, pmin, delta)


# ---------------------------------------------------------------- SWGAN Thm 5.2 (Algorithm 1 with an oracle)
def nonconvex_sgd(grad, theta0, alpha, T, error=None):
    """Algorithm 1 with an exact gradient oracle plus an injected error: ``theta <- theta - alpha g_t``,
    ``g_t = grad(theta_t) + error(t, theta_t)``. Returns ``(thetas (T+1, p), grad norms^2 (T,))``,
    the squared norms at ``t = 0..T-1`` (the paper's sum, up to its index shift)."""
    th = _np.array(theta0, dtype=float).ravel()
    out, norms = [th.copy()], []
    for t in range(T):
        g = _np.asarray(grad(th), float).ravel()
        norms.append(float(g @ g))
        e = _np.zeros_like(g) if error is None else _np.asarray(error(t, th), float).ravel()
        th = th - alpha * (g + e)
        out.append(th.copy())
    return _np.array(out), _np.array(norms)


def sgd_rate_bound(norms, L, Delta, eps2, sigma2=0.0):
    """SWGAN Thm 5.2, first regime (``alpha = 1/L``): ``mean_t |grad h(theta_t)|^2 <= 2 L Delta / T
    + eps^2 + sigma^2``; ``eps2`` may be the mean of per-step squared errors (Remark 5.2.3).

    Returns
    -------
    Bound
    """
    norms = _np.asarray(norms, float)
    T = norms.size
    v = float(norms.mean())
    return Bound(v, 2 * L * Delta / T + eps2 + sigma2, 64 * T * EPS64 * (v + L * abs(Delta) / T))


# ---------------------------------------------------------------- WWGAN ground metric
def image_w2(X, Y):
    """Wasserstein-2 distance between two images seen as histograms over their pixel grid
    (WWGAN eq. 2 with ``q = 2`` and ``d_Omega`` the Euclidean distance of pixel positions;
    POT ``emd2``). ``X``, ``Y`` (H, W) nonnegative with equal positive mass (normalised here)."""
    ot = _ot()
    X, Y = _np.asarray(to_numpy(X), float), _np.asarray(to_numpy(Y), float)
    H, W = X.shape
    yy, xx = _np.meshgrid(_np.arange(H), _np.arange(W), indexing="ij")
    pos = _np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    M = cost_matrix_host(pos, pos, "sqeuclidean")
    return math.sqrt(max(float(ot.emd2(X.ravel() / X.sum(), Y.ravel() / Y.sum(), M)), 0.0))
