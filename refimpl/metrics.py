"""Sample-quality metrics for the 2-D toy problems.

Protocol: ``conventions.md`` (shared folder), "2-D mixture protocol (PacGAN/VEEGAN)":
2,500 generated samples; a sample is *high quality* when it lies within 3 std of
its nearest mode; a mode is *recovered* when it has at least one high-quality
sample.

* :func:`mode_stats` and :func:`sliced_w1` run in the samples' own namespace ``xp``
  (only the final scalars come back to the host).
* :func:`w1` and :func:`w2` are exact: they copy the clouds to host NumPy
  (float64) and call POT's network simplex ``ot.emd2`` (POT is imported lazily;
  ``pip install POT`` or ``pip install 'refimpl[toy]'``).

Input rules: every public function validates at entry by the rules of
:mod:`refimpl.validation`: clouds are arrays (no lists), integer and bool clouds are
promoted to float64, float16 is refused, a float32 cloud with a float64 one is computed
in float64, and NaN/inf raise ``ValueError`` naming the argument (before any solver
runs); scalar parameters have the domains stated in each docstring.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as _np  # host side: POT inputs, random directions, index tables

from . import host_ot, validation as checks
from .backend import device_of, from_host, namespace, to_numpy
from .datasets import Mixture, get_dataset, sample
from .threads import thread_budget

__all__ = ["N_EVAL", "mode_stats", "w1", "w2", "sliced_w1", "evaluate"]

#: Number of generated samples of the evaluation protocol.
N_EVAL = 2500

#: Default number of random directions of :func:`sliced_w1`.
N_PROJECTIONS = 500


# ----------------------------------------------------------------------------- modes

@checks.checked()
def mode_stats(samples, centers, std):
    """Mode coverage and sample quality of 2-D samples against a Gaussian mixture.

    Parameters
    ----------
    samples : array, shape (n, d), n >= 1
        Generated samples, any backend (computed in their namespace ``xp``), finite.
    centers : array, shape (K, d), K >= 1
        Mode centres (a host NumPy array or an array of the samples' backend), finite.
    std : float > 0
        Per-coordinate std :math:`\\sigma` of the modes (finite).

    Returns
    -------
    dict
        ``modes`` (int): number of modes with at least one high-quality sample;
        ``high_quality`` (float): fraction of samples with
        :math:`\\min_k \\|x - c_k\\| \\le 3\\sigma`;
        ``counts`` (list of K ints): high-quality samples per mode, each sample
        assigned to its nearest centre (ties: lowest index);
        ``n`` (int): number of samples.

    Notes
    -----
    Protocol: conventions.md, "2-D mixture protocol"; distances are compared squared,
    :math:`\\|x - c_k\\|^2 \\le 9\\sigma^2`, in the samples' dtype.
    """
    samples = checks.array(samples, "samples", ndim=2)
    std = checks.real(std, "std", gt=0)
    xp = namespace(samples)
    if isinstance(centers, _np.ndarray) and xp is not _np:
        centers = checks.array(centers, "centers", shape=(None, samples.shape[1]))
        c = from_host(centers, xp, samples.dtype, device_of(samples))
    else:
        c = xp.astype(checks.array(centers, "centers", shape=(None, samples.shape[1]), xp=xp), samples.dtype)
    return _mode_stats(samples, c, std)


def _mode_stats(samples, c, std):
    xp = namespace(samples)
    n, K = samples.shape[0], c.shape[0]
    diff = xp.expand_dims(samples, axis=1) - xp.expand_dims(c, axis=0)      # (n, K, d)
    d2 = xp.sum(diff * diff, axis=2)                                         # (n, K)
    nearest = xp.argmin(d2, axis=1)                                          # (n,)
    hq = xp.min(d2, axis=1) <= 9.0 * float(std) ** 2                         # (n,)
    ks = xp.arange(K, dtype=nearest.dtype, device=device_of(samples))
    onehot = (xp.expand_dims(nearest, axis=1) == xp.expand_dims(ks, axis=0)) & xp.expand_dims(hq, axis=1)
    counts = to_numpy(xp.sum(xp.astype(onehot, xp.int64), axis=0))
    n_hq = int(to_numpy(xp.sum(xp.astype(hq, xp.int64))))
    return {"modes": int(_np.count_nonzero(counts)), "high_quality": n_hq / n,
            "counts": [int(v) for v in counts], "n": int(n)}


# ----------------------------------------------------------------------------- exact W1 / W2

def _cloud(x, name, xp=None):
    """Entry check of a point cloud: (n, d) or (n,), n >= 1."""
    x = checks.array(x, name, ndim=(1, 2), xp=xp)
    return x if x.ndim == 2 else namespace(x).reshape(x, (-1, 1))


def _clouds(x, y):
    x = _cloud(x, "x")
    y = _cloud(y, "y", namespace(x))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y must have the dimension of x, {x.shape[1]}, got {y.shape[1]}")
    return checks.common_float(x, y)


def _itermax(num_itermax):
    return None if num_itermax is None else checks.integer(num_itermax, "num_itermax", ge=1)


def _w1(x, y, num_itermax=None):
    a, b, s = host_ot.host_clouds(x, y)
    return s * host_ot.emd2_uniform(_np.sqrt(host_ot.sq_dists(a, b)), num_itermax)


@checks.checked(_w1)
def w1(x, y, *, num_itermax=None):
    """Exact 1-Wasserstein distance between two uniform point clouds.

    .. math:: W_1(\\mu, \\nu) = \\min_{P \\in \\Pi(1_n/n,\\, 1_m/m)} \\sum_{ij} P_{ij} \\|x_i - y_j\\|_2

    Parameters
    ----------
    x : array, shape (n, d) (or (n,) for 1-D)
    y : array, shape (m, d) (or (m,))
        Any backend; copied to host float64.
    num_itermax : int >= 1, optional
        Network-simplex iteration cap (default ``max(10**6, 20 n m)``).

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        By the input rules below: NaN/inf in ``x``
        or ``y``, empty clouds, other dimensions, a list instead of an array.
    RuntimeError
        When POT reports a non-optimal result (e.g. iteration cap reached).

    Notes
    -----
    Solved by POT ``ot.emd2`` on host NumPy. Protocol: conventions.md, "2-D mixture protocol".
    """
    x, y = _clouds(x, y)
    return _w1(x, y, _itermax(num_itermax))


@checks.checked()
def w2(x, y, *, num_itermax=None):
    """Exact 2-Wasserstein distance between two uniform point clouds.

    .. math:: W_2(\\mu, \\nu) = \\Big(\\min_{P \\in \\Pi(1_n/n,\\, 1_m/m)} \\sum_{ij} P_{ij} \\|x_i - y_j\\|_2^2\\Big)^{1/2}

    Parameters, input rules and errors as :func:`w1` (squared Euclidean cost, then the
    square root).

    Returns
    -------
    float
    """
    x, y = _clouds(x, y)
    num_itermax = _itermax(num_itermax)
    a, b, s = host_ot.host_clouds(x, y)
    return s * math.sqrt(max(host_ot.emd2_uniform(host_ot.sq_dists(a, b), num_itermax), 0.0))


def _w1_w2(x, y, num_itermax=None, threads=2):
    """(W1, W2) sharing the distance matrix; with ``threads >= 2`` the two network simplex
    solves run in two threads (POT's solver releases the GIL), else one after the other."""
    a, b, s = host_ot.host_clouds(x, y)
    d2 = host_ot.sq_dists(a, b)
    d = _np.sqrt(d2)
    if threads < 2:
        return s * host_ot.emd2_uniform(d, num_itermax), s * math.sqrt(max(host_ot.emd2_uniform(d2, num_itermax), 0.0))
    with ThreadPoolExecutor(max_workers=2) as ex:
        f1 = ex.submit(host_ot.emd2_uniform, d, num_itermax)
        f2 = ex.submit(host_ot.emd2_uniform, d2, num_itermax)
        return s * f1.result(), s * math.sqrt(max(f2.result(), 0.0))


# ----------------------------------------------------------------------------- sliced W1

def _quantile_table(n, m):
    """Exact 1-D quantile coupling of uniform n- and m-point measures (host int tables).

    The quantile functions are step functions with jumps at ``i/n`` and ``j/m``; on
    each piece ``(t_{k-1}, t_k)`` of the merged breakpoints the coupling pairs the
    sorted points ``ix_k = floor(s n)``, ``iy_k = floor(s m)`` (``s`` the midpoint),
    with mass ``t_k - t_{k-1}``. Computed in integers with denominator ``L = lcm(n, m)``.
    """
    L = n * m // math.gcd(n, m)
    bp = _np.union1d(_np.arange(n + 1, dtype=_np.int64) * (L // n),
                     _np.arange(m + 1, dtype=_np.int64) * (L // m))
    lo, hi = bp[:-1], bp[1:]
    ix = ((lo + hi) * n) // (2 * L)
    iy = ((lo + hi) * m) // (2 * L)
    w = (hi - lo) / L
    return ix, iy, w


@checks.checked()
def sliced_w1(x, y, n_projections=N_PROJECTIONS, *, rng):
    """Monte-Carlo sliced 1-Wasserstein distance (no POT needed), in the inputs' namespace.

    .. math:: SW_1(\\mu, \\nu) = \\mathbb{E}_{\\theta \\sim U(S^{d-1})}
              W_1(\\theta_\\# \\mu, \\theta_\\# \\nu)
              \\approx \\frac1P \\sum_{p=1}^P \\int_0^1 |F_{p}^{-1}(t) - G_{p}^{-1}(t)|\\, dt

    Parameters
    ----------
    x : array, shape (n, d) (or (n,) for 1-D), n >= 1
    y : array, shape (m, d) (or (m,)), m >= 1, same backend as ``x``
        Finite; integer clouds are promoted to float64, float32 with float64 gives
        float64.
    n_projections : int >= 1, optional
        Number ``P`` of random directions (default 500).
    rng : numpy.random.Generator or int
        Host generator (or seed) for the directions: ``theta = g / ||g||`` with
        ``g = rng.standard_normal((P, d))``.

    Returns
    -------
    float

    Notes
    -----
    Each 1-D term is exact: for equal sizes the mean absolute difference of the
    sorted projections; for unequal sizes the integral of the difference of the two
    quantile functions over the merged breakpoints ``{i/n} U {j/m}`` (quantile matching).
    Since projections are 1-Lipschitz, every term, hence the estimate, is
    ``<= W1(x, y)`` for any directions; the Monte-Carlo error of the mean of ``P``
    terms in ``[0, W1]`` is at most ``W1 * sqrt(log(2/delta)/(2P))`` with
    probability ``1 - delta`` (Hoeffding). In 1-D it equals the exact W1.
    Reference: conventions.md, "2-D mixture protocol" (evaluation metric of this project).
    """
    if not isinstance(rng, _np.random.Generator):
        rng = _np.random.default_rng(checks.integer(rng, "rng", ge=0))
    n_projections = checks.integer(n_projections, "n_projections", ge=1)
    x, y = _clouds(x, y)
    return _sliced_w1(x, y, n_projections, rng)


def _sliced_w1(x, y, n_projections, rng):
    xp = namespace(x, y)
    n, d = x.shape
    m = y.shape[0]
    top = float(to_numpy(xp.maximum(xp.max(xp.abs(x)), xp.max(xp.abs(y)))))
    s = 2.0 ** math.frexp(top)[1] if top > 0 else 1.0     # exact power-of-two scaling (see host_ot.host_clouds)
    x, y = x / s, y / s
    g = rng.standard_normal((n_projections, d))
    theta = g / _np.linalg.norm(g, axis=1, keepdims=True)
    dev = device_of(x)
    th = from_host(theta.T, xp, x.dtype, dev)                              # (d, P)
    px = xp.sort(x @ th, axis=0)                                            # (n, P)
    py = xp.sort(y @ th, axis=0)                                            # (m, P)
    if n == m:
        per_dir = xp.mean(xp.abs(px - py), axis=0)
    else:
        ix, iy, w = _quantile_table(n, m)
        gx = xp.take(px, from_host(ix, xp, xp.int64, dev), axis=0)
        gy = xp.take(py, from_host(iy, xp, xp.int64, dev), axis=0)
        wt = from_host(w, xp, x.dtype, dev)
        per_dir = xp.sum(xp.abs(gx - gy) * xp.expand_dims(wt, axis=1), axis=0)
    return s * float(to_numpy(xp.mean(per_dir)))


# ----------------------------------------------------------------------------- evaluate

@checks.checked()
def evaluate(samples, dataset_name, rng, n_target=N_EVAL, *, n_projections=N_PROJECTIONS, threads=None):
    """All toy metrics of generated samples against fresh target samples.

    Parameters
    ----------
    samples : array, shape (n, 2), n >= 1
        Generated samples (protocol: ``n = 2500``), any backend, finite (input rules
        of :mod:`refimpl.validation`: NaN/inf raise ``ValueError`` before any solver runs).
    dataset_name : str or Mixture or SwissRoll
    rng : numpy.random.Generator
        Draws the ``n_target`` target samples first, then the sliced-W1 directions.
    n_target : int >= 1, optional
        Number of fresh target samples (default 2,500).
    n_projections : int >= 1, optional
        Directions for :func:`sliced_w1`.
    threads : int >= 1, optional
        Threads for the two exact solves: 1 runs them one after the other, 2 or more
        concurrently. Default :func:`refimpl.threads.thread_budget` (so a run limited to one thread by
        ``--threads 1`` or by a Dask worker's ``OMP_NUM_THREADS=1`` stays on one core).
        The values do not depend on it.

    Returns
    -------
    dict
        ``modes`` (int or None) and ``high_quality`` (float or None) from
        :func:`mode_stats` against the dataset's centres (None for the swiss roll,
        which has no modes); ``w1``, ``w2`` (float): exact W1/W2 between the samples
        and the targets (:func:`w1`, :func:`w2`); ``sliced_w1`` (float): :func:`sliced_w1`
        between the same two clouds.

    Notes
    -----
    Protocol: conventions.md, "2-D mixture protocol". The two exact solves run
    concurrently in two threads when ``threads >= 2``.
    """
    spec = get_dataset(dataset_name)
    checks.random_generator(rng, "rng")
    n_target = checks.integer(n_target, "n_target", ge=1)
    n_projections = checks.integer(n_projections, "n_projections", ge=1)
    threads = thread_budget() if threads is None else checks.integer(threads, "threads", ge=1)
    samples = checks.array(samples, "samples", shape=(None, 2))
    xp = namespace(samples)
    target = sample(spec, n_target, rng, xp=xp, dtype=samples.dtype, device=device_of(samples))
    out = {"modes": None, "high_quality": None}
    if isinstance(spec, Mixture):
        c = from_host(spec.centers, xp, samples.dtype, device_of(samples))
        ms = _mode_stats(samples, c, spec.std)
        out["modes"], out["high_quality"] = ms["modes"], ms["high_quality"]
    out["w1"], out["w2"] = _w1_w2(samples, target, threads=threads)
    out["sliced_w1"] = _sliced_w1(samples, target, n_projections, rng)
    return out
