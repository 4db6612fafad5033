"""Gradient checks by central finite differences in float64 on a host copy (after
``torch.autograd.gradcheck``/``gradgradcheck`` and JAX's ``check_grads``)."""
from __future__ import annotations

import numpy as _np

from ..backend import device_of, from_host, namespace, to_numpy

__all__ = ["check_grad", "check_vjp", "check_mlp", "numeric_grad"]


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
