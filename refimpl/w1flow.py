"""Exact, non-parametric W1 forward-Euler particle flow (a checking tool for W1-FE).

Reference: ``papers/w1-forward-euler-ode.md`` (shared folder), eq. (4.1)
``Y_{n+1} = Y_n - eps * grad phi(Y_n)``, and conventions.md, "W1 forward Euler".
In this project's critic sign (``f = -phi``, large on data) the step is
``y <- y + eps * grad f(y)``. For ``n`` particles and ``n`` data points with uniform
weights an optimal coupling is a permutation ``T`` (POT's ``ot.emd`` returns a
vertex of the Birkhoff polytope), and away from its target the Kantorovich gradient
at ``y_i`` is the unit vector ``(T y_i - y_i)/|T y_i - y_i|``. A particle closer
than ``eps`` to its target stops on it:

.. math:: y_i' = y_i + \\min(\\varepsilon, d_i)\\, \\frac{T y_i - y_i}{d_i},
          \\qquad d_i = |T y_i - y_i|.

What is proved (and tested in tests/test_w1flow.py), with :math:`m_i = \\min(\\varepsilon, d_i)`:

1. :math:`W_1(\\mu', \\mu) \\le \\frac1n\\sum_i m_i \\le \\varepsilon` (couple ``y_i`` with ``y_i'``).
2. :math:`W_1(\\mu', \\nu) = W_1(\\mu, \\nu) - \\frac1n\\sum_i m_i` exactly: "<=" by the
   coupling ``y_i' -> T y_i``, ">=" by the triangle inequality and 1.
3. The matching used stays optimal after the step, and every matching optimal after
   the step was optimal before it (per particle ``|y_i' - P y_i| >= |y_i - P y_i| - m_i``,
   with equality for ``P = T``). Hence with a kept matching (``rematch=False``), or
   when the optimal matching at the start is unique, the flow reaches the data after
   exactly ``ceil(max_i d_i / eps)`` steps and :math:`W_1` after ``k`` steps is
   :math:`\\frac1n\\sum_i \\max(d_i - k\\varepsilon, 0)`.
   With ties, re-matching may switch to another optimal matching and take longer
   (particles ``{0, -1}``, data ``{2, 1}``, ``eps = 1``: 3 steps instead of 2).

Public functions validate at entry (:mod:`refimpl.validation`), before POT runs;
``eps`` is finite and > 0, ``n_steps`` an integer >= 0, a given matching a permutation.
Scalars may be Python or NumPy numbers (``numpy.float64``/``float32`` or a 0-d NumPy array
for ``eps``, NumPy integers for ``n_steps``, NumPy bools for the flags); they are converted
to Python numbers at entry, so none reaches array arithmetic (array_api_strict refuses
NumPy scalars there).
"""
from __future__ import annotations

import numpy as _np  # host side: the matching from POT

from . import validation as checks
from .backend import device_of, from_host, namespace, to_numpy
from . import host_ot
from . import metrics

__all__ = ["w1_matching", "w1_flow_step", "w1_flow"]


@checks.checked()
def w1_matching(particles, data):
    """Optimal W1 matching between two equal-size uniform clouds (POT ``ot.emd``, on host).

    Parameters
    ----------
    particles : array, shape (n, d)
    data : array, shape (n, d)
        Any backend.

    Returns
    -------
    perm : numpy.ndarray of int64, shape (n,)
        ``particles[i]`` is matched to ``data[perm[i]]``.
    cost : float
        :math:`\\frac1n \\sum_i |x_i - y_{perm(i)}| = W_1`.

    Raises
    ------
    TypeError, ValueError
        By the input rules below.
    RuntimeError
        When POT reports a non-optimal result or its plan is not a permutation.
    """
    return _w1_matching(*_pair(particles, data))


def _pair(particles, data):
    particles = checks.array(particles, "particles", ndim=2)
    data = checks.array(data, "data", shape=tuple(particles.shape), xp=namespace(particles))
    return checks.common_float(particles, data)


def _w1_matching(particles, data):
    ot = host_ot.import_ot()
    a, b, s = host_ot.host_clouds(particles, data)          # exact power-of-two scaling: no overflow near 1e200
    n = a.shape[0]
    M = _np.sqrt(host_ot.sq_dists(a, b))
    u = _np.full(n, 1.0 / n)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # result code checked below
        plan, log = ot.emd(u, u, M, numItermax=max(1_000_000, 20 * n * n), log=True)
    if log["result_code"] != 1:
        raise RuntimeError(f"POT emd did not reach the optimum (result_code {log['result_code']}: {log['warning']})")
    perm = _np.argmax(plan, axis=1).astype(_np.int64)
    if (_np.unique(perm).size != n
            or not _np.allclose(plan[_np.arange(n), perm], 1.0 / n, rtol=1e-9, atol=0.0)):
        raise RuntimeError("POT emd returned a plan that is not a permutation matrix")
    return perm, s * float(_np.mean(M[_np.arange(n), perm]))


@checks.checked()
def w1_flow_step(particles, data, eps, *, matching=None):
    """One exact W1 forward-Euler step of the particles towards the data.

    Parameters
    ----------
    particles : array, shape (n, d), n >= 1
    data : array, shape (n, d), same backend
        Finite.
    eps : float
        Step length :math:`\\varepsilon > 0`, finite.
    matching : integer array, shape (n,), optional
        A permutation of ``0..n-1`` (host NumPy or the particles' backend) to use
        instead of solving; anything else raises ``ValueError``. It must be optimal for
        the result to be a W1-FE step (optimality is not checked). Default:
        :func:`w1_matching`.

    Returns
    -------
    array, shape (n, d)
        :math:`y_i + \\min(\\varepsilon, d_i)(T y_i - y_i)/d_i` (exactly ``T y_i``
        when :math:`d_i \\le \\varepsilon`), in the particles' namespace, promoted dtype
        and device.

    Notes
    -----
    Paper eq. (4.1) with the sign of conventions.md, "W1 forward Euler".
    """
    eps = checks.real(eps, "eps", gt=0)
    particles, data = _pair(particles, data)
    perm = None if matching is None else _permutation(matching, particles.shape[0])
    return _w1_flow_step(particles, data, eps, perm)


def _permutation(matching, n):
    """Host int64 copy of ``matching`` after checking it is a permutation of ``0..n-1``."""
    if not checks.is_array(matching):
        raise TypeError(f"matching must be an integer array, got {type(matching).__name__}")
    if not namespace(matching).isdtype(matching.dtype, "integral"):
        raise TypeError(f"matching must be an integer array, got dtype {matching.dtype}")
    perm = _np.asarray(to_numpy(matching), dtype=_np.int64)
    if perm.shape != (n,) or not _np.array_equal(_np.sort(perm), _np.arange(n)):
        raise ValueError(f"matching must be a permutation of 0..{n - 1} (shape ({n},)), got {perm!r}")
    return perm


def _w1_flow_step(particles, data, eps, perm=None):
    xp = namespace(particles, data)
    if perm is None:
        perm = _w1_matching(particles, data)[0]
    target = xp.take(data, from_host(perm, xp, xp.int64, device_of(data)), axis=0)
    diff = target - particles
    dist = xp.sqrt(xp.sum(diff * diff, axis=1, keepdims=True))          # (n, 1)
    near = dist <= eps
    safe = xp.where(near, xp.ones_like(dist), dist)
    moved = particles + (eps / safe) * diff
    return xp.where(near, target, moved)


@checks.checked()
def w1_flow(particles, data, eps, n_steps, *, rematch=True, return_particles=False):
    """Run the exact W1 forward-Euler flow and record W1 to the data.

    Parameters
    ----------
    particles : array, shape (n, d)
    data : array, shape (n, d), same backend
        Finite.
    eps : float
        Step length, finite and > 0.
    n_steps : int >= 0
        Number of steps.
    rematch : bool, optional
        Solve a new optimal matching at every step (default, the W1-FE flow). With
        ``False`` the first matching is kept: it stays optimal along the flow (module
        docstring, item 3), so this is still an exact W1-FE flow, with deterministic
        tie-breaking.
    return_particles : bool, optional
        Also return the final particles.

    Returns
    -------
    list of float, length ``n_steps + 1``
        :math:`W_1(\\mu_k, \\nu)` for ``k = 0..n_steps`` (exact, POT ``emd2``).
        With ``return_particles``: ``(values, particles)``.
    """
    eps = checks.real(eps, "eps", gt=0)
    n_steps = checks.integer(n_steps, "n_steps", ge=0)
    rematch = checks.boolean(rematch, "rematch")
    return_particles = checks.boolean(return_particles, "return_particles")
    particles, data = _pair(particles, data)
    values = [metrics.w1.unchecked(particles, data)]
    perm = None if rematch else _w1_matching(particles, data)[0]
    for _ in range(n_steps):
        particles = _w1_flow_step(particles, data, eps, perm)
        values.append(metrics.w1.unchecked(particles, data))
    return (values, particles) if return_particles else values
