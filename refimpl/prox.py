"""Closed-form proximal steps of the two-delta model (Wasserstein proximal of GANs, Sec. 2.3).

The model is ``rho(theta) = alpha * delta_a + (1 - alpha) * delta_b`` with
``theta = (a, b)`` and a fixed weight ``alpha`` in ``[0, 1]``. Arrays of parameters
have shape ``(..., 2)`` with ``theta[..., 0] = a`` and ``theta[..., 1] = b``.

Paper: "Wasserstein proximal of GANs", Sec. 2.3, Prop. 5 and its proof in
Appendix B; errata in ``conventions.md`` ("Wasserstein proximal").

* ``d_W``: the constrained Wasserstein-2 metric of the model,
  ``d_W(t1, t2)^2 = alpha (a1 - a2)^2 + (1 - alpha) (b1 - b2)^2`` (Sec. 2.3, item 1).
  Each delta keeps its mass, so this is the cost of moving mass ``alpha`` from
  ``a1`` to ``a2`` and mass ``1 - alpha`` from ``b1`` to ``b2``; it equals
  ``W_2(rho_t1, rho_t2)`` on ``Theta = {a < 0 < b}`` (monotone coupling in 1-D).
* ``d_E``: the Euclidean distance of the parameters (Sec. 2.3, item 2).
* ``F_W1``: ``alpha |a - a*| + (1 - alpha) |b - b*|`` (Prop. 5), equal to
  ``W_1(rho_theta, rho_theta*)`` on ``Theta``. Off ``Theta`` the functions here still
  use these formulas (they are the parametric quantities of the paper).
* ``two_delta_prox``: the exact minimiser of ``F_W1(theta) + d(theta, theta_k)^2/(2h)``.
  The objective is separable; per coordinate (Appendix B)
  W-prox: ``a = shrink_{a*}(a_k, h)``, ``b = shrink_{b*}(b_k, h)``;
  E-prox: ``a = shrink_{a*}(a_k, alpha h)``, ``b = shrink_{b*}(b_k, (1 - alpha) h)``.

Zero-weight coordinates (``alpha = 0`` or ``1``): a coordinate whose delta has no
mass does not enter ``F_W1``. Under ``d_W`` it does not enter the distance either,
so every value is a minimiser; this module returns the minimiser closest to
``theta_k`` (the coordinate does not move). Under ``d_E`` the minimiser is unique and
is also ``theta_k``'s coordinate (``shrink`` with threshold 0 is the identity).

Every function validates at entry (:mod:`refimpl.validation`); ``alpha`` in ``[0, 1]``,
``h > 0``, ``t >= 0``, all finite.
"""
from __future__ import annotations


from refimpl import validation as checks
from refimpl.backend import device_of, namespace

METRICS = ("wasserstein", "euclidean")

__all__ = ["shrink", "two_delta_prox", "d_W", "d_E", "F_W1", "METRICS"]


# ----------------------------------------------------------------------------- checks
def _alpha(alpha):
    a = checks.real(alpha, "alpha")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {a}")
    return a


def _step(h):
    return checks.real(h, "h", gt=0.0)


def _broadcast_shape(*shapes, names=None):
    """NumPy/Array API broadcasting of shapes, or ValueError naming them."""
    nd = max(len(s) for s in shapes)
    out = []
    for i in range(-nd, 0):
        dims = {s[i] for s in shapes if len(s) >= -i and s[i] != 1}
        if len(dims) > 1:
            what = ", ".join(f"{n} {s}" for n, s in zip(names, shapes)) if names else ", ".join(map(str, shapes))
            raise ValueError(f"shapes {what} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _pairs(*named):
    """Validate ``(name, array)`` parameter arrays of shape ``(..., 2)``; broadcast and promote them."""
    xp = None
    arrs = []
    for n, x in named:
        arrs.append(checks.array(x, n, nonempty=False, xp=xp))
        xp = namespace(arrs[0])
    for (n, _), x in zip(named, arrs):
        if x.ndim < 1 or x.shape[-1] != 2:
            raise ValueError(f"{n} must have shape (..., 2) holding (a, b), got shape {tuple(x.shape)}")
    shape = _broadcast_shape(*[tuple(x.shape) for x in arrs], names=[n for n, _ in named])
    dt = xp.result_type(*arrs)
    return xp, [xp.broadcast_to(xp.astype(x, dt), shape) for x in arrs]


# ----------------------------------------------------------------------------- operators
@checks.checked()
def shrink(x, center, t):
    """Shrink ``x`` towards ``center`` by ``t`` (soft thresholding around ``center``).

    ``shrink_c(x, t) = x - t`` if ``x > c + t``; ``x + t`` if ``x < c - t``; ``c`` otherwise,
    the proximal map ``argmin_y t |y - c| + (y - x)^2 / 2``.
    Paper: Wasserstein proximal of GANs, Appendix B (proof of Prop. 5).

    Parameters
    ----------
    x : array, shape (...)
        Real floating array.
    center : array or float, shape broadcastable with ``x``
        The point ``c`` the values move towards.
    t : float
        Threshold, finite and ``>= 0``.

    Returns
    -------
    array, shape broadcast(x, center)
        In ``x``'s namespace and the promoted dtype. Rounding never carries a value
        past ``c``: with round-to-nearest, ``x > fl(c + t)`` implies ``x > c + t``
        exactly (no float lies strictly between ``c + t`` and its rounding), hence
        ``fl(x - t) >= c``; symmetrically for the other branch.

    Raises
    ------
    ValueError
        Non-finite ``x``, ``center`` or ``t``; ``t < 0``; shapes that do not broadcast.
    """
    x = checks.array(x, "x", nonempty=False)
    xp = namespace(x)
    if not checks.is_array(center):
        center = xp.asarray(checks.real(center, "center"), dtype=x.dtype, device=device_of(x))
    c = checks.array(center, "center", nonempty=False, xp=xp)
    tv = checks.real(t, "t", ge=0.0)
    return _shrink(x, c, tv)


def _shrink(x, c, tv):
    xp = namespace(x, c)
    shape = _broadcast_shape(tuple(x.shape), tuple(c.shape), names=("x", "center"))
    dt = xp.result_type(x, c)
    x = xp.broadcast_to(xp.astype(x, dt), shape)
    c = xp.broadcast_to(xp.astype(c, dt), shape)
    return xp.where(x > c + tv, x - tv, xp.where(x < c - tv, x + tv, c))


@checks.checked()
def d_W(theta1, theta2, alpha):
    """Constrained Wasserstein-2 distance between two two-delta models.

    ``d_W(t1, t2) = sqrt(alpha (a1 - a2)^2 + (1 - alpha) (b1 - b2)^2)``.
    Paper: Wasserstein proximal of GANs, Sec. 2.3, item 1 (``d_W`` before Prop. 5).

    Parameters
    ----------
    theta1, theta2 : array, shape (..., 2)
        Parameters ``(a, b)``; broadcast against each other.
    alpha : float in [0, 1]
        Mass of the delta at ``a``.

    Returns
    -------
    array, shape (...)
    """
    al = _alpha(alpha)
    xp, (t1, t2) = _pairs(("theta1", theta1), ("theta2", theta2))
    d = t1 - t2
    return xp.sqrt(al * d[..., 0] ** 2 + (1.0 - al) * d[..., 1] ** 2)


@checks.checked()
def d_E(theta1, theta2):
    """Euclidean distance ``sqrt((a1 - a2)^2 + (b1 - b2)^2)`` of two parameter pairs.

    Paper: Wasserstein proximal of GANs, Sec. 2.3, item 2.

    Parameters
    ----------
    theta1, theta2 : array, shape (..., 2)

    Returns
    -------
    array, shape (...)
    """
    xp, (t1, t2) = _pairs(("theta1", theta1), ("theta2", theta2))
    d = t1 - t2
    return xp.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)


@checks.checked()
def F_W1(theta, theta_star, alpha):
    """Wasserstein-1 loss of the two-delta model, ``alpha |a - a*| + (1 - alpha) |b - b*|``.

    Paper: Wasserstein proximal of GANs, Prop. 5 (equals ``W_1(rho_theta, rho_theta*)``
    on ``Theta = {a < 0 < b}``).

    Parameters
    ----------
    theta, theta_star : array, shape (..., 2)
    alpha : float in [0, 1]

    Returns
    -------
    array, shape (...)
    """
    al = _alpha(alpha)
    xp, (t, ts) = _pairs(("theta", theta), ("theta_star", theta_star))
    d = xp.abs(t - ts)
    return al * d[..., 0] + (1.0 - al) * d[..., 1]


@checks.checked()
def two_delta_prox(theta, theta_star, alpha, h, metric="wasserstein"):
    """Exact proximal step ``argmin_theta F_W1(theta) + d(theta, theta_k)^2 / (2h)``.

    With ``theta_k = theta`` (the current point):

    * ``metric="wasserstein"`` (``d = d_W``):
      ``a = shrink_{a*}(a_k, h)``, ``b = shrink_{b*}(b_k, h)``
      (the weight ``alpha`` multiplies both terms of a coordinate and cancels);
    * ``metric="euclidean"`` (``d = d_E``):
      ``a = shrink_{a*}(a_k, alpha h)``, ``b = shrink_{b*}(b_k, (1 - alpha) h)``.

    Paper: Wasserstein proximal of GANs, Prop. 5 and Appendix B.

    At ``alpha = 0`` (``a`` has no mass) or ``alpha = 1`` (``b`` has no mass) the
    W-prox objective does not depend on that coordinate; the minimiser closest to
    ``theta_k`` is returned, i.e. that coordinate does not move.

    Parameters
    ----------
    theta : array, shape (..., 2)
        Current parameters ``theta_k = (a_k, b_k)``.
    theta_star : array, shape (..., 2)
        Target ``(a*, b*)`` of the loss; broadcast against ``theta``.
    alpha : float in [0, 1]
        Mass of the delta at ``a``.
    h : float > 0
        Proximal step size.
    metric : {"wasserstein", "euclidean"}

    Returns
    -------
    array, shape broadcast(theta, theta_star)
        ``theta_{k+1}`` in the input namespace and promoted dtype.

    Raises
    ------
    ValueError
        Non-finite inputs, ``alpha`` outside ``[0, 1]``, ``h <= 0``, a last axis other
        than 2, shapes that do not broadcast, or an unknown ``metric``.
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    al = _alpha(alpha)
    hv = _step(h)
    xp, (t, ts) = _pairs(("theta", theta), ("theta_star", theta_star))
    a, b = t[..., 0], t[..., 1]
    if metric == "wasserstein":
        a_new = a if al == 0.0 else _shrink(a, ts[..., 0], hv)
        b_new = b if al == 1.0 else _shrink(b, ts[..., 1], hv)
    else:
        a_new = _shrink(a, ts[..., 0], al * hv)
        b_new = _shrink(b, ts[..., 1], (1.0 - al) * hv)
    return xp.stack([a_new, b_new], axis=-1)
