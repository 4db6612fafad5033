"""The chance baseline of the 2-D mixtures: a Gaussian with the data's mean and covariance,
evaluated by the same protocol as a generator (:func:`refimpl.metrics.evaluate`), so a result
can be read against what no training at all would give (conventions.md, "2-D mixture protocol").
"""
from __future__ import annotations

import numpy as _np  # host side: the Gaussian cloud

from . import validation as checks
from .datasets import Mixture, get_dataset
from .metrics import N_EVAL, N_PROJECTIONS, evaluate

__all__ = ["mixture_moments", "chance_baseline"]

@checks.checked()
def mixture_moments(dataset_name):
    """Exact mean and covariance of a Gaussian-mixture dataset.

    Parameters
    ----------
    dataset_name : str or Mixture

    Returns
    -------
    mean : numpy.ndarray, shape (2,)
        :math:`\\mu = \\frac1K \\sum_k c_k`.
    cov : numpy.ndarray, shape (2, 2)
        :math:`\\Sigma = \\frac1K \\sum_k (c_k - \\mu)(c_k - \\mu)^T + \\sigma^2 I`
        (law of total covariance for equal weights).

    Raises
    ------
    ValueError
        An unknown name, or a dataset that is not a mixture (the swiss roll).
    """
    spec = get_dataset(dataset_name)
    if not isinstance(spec, Mixture):
        raise ValueError(f"dataset_name must name a Gaussian mixture (ring8, grid25), got {spec.name!r}")
    c = _np.asarray(spec.centers, dtype=_np.float64)                        # (K, 2)
    mean = c.mean(axis=0)
    d = c - mean
    cov = d.T @ d / c.shape[0] + float(spec.std) ** 2 * _np.eye(c.shape[1])
    return mean, cov


@checks.checked()
def chance_baseline(dataset_name, rng, n=N_EVAL, n_target=N_EVAL, *, cloud_rng, n_projections=N_PROJECTIONS):
    """The toy metrics of a structureless cloud: a Gaussian with the data's mean and covariance.

    Scalars are checked at entry.

    The reference against which mode counts and high-quality fractions must be read: a
    generator that learned nothing but the first two moments of the data scores this.

    Parameters
    ----------
    dataset_name : str or Mixture
        A Gaussian-mixture dataset (``ring8``, ``grid25``).
    rng : numpy.random.Generator
        Used exactly as :func:`evaluate` uses it (the ``n_target`` targets, then the sliced-W1
        directions): passing a generator seeded as a model's evaluation gives the same targets.
    n : int, optional
        Cloud size (the protocol's 2,500 generated samples).
    n_target : int, optional
        Target samples (as :func:`evaluate`).
    cloud_rng : numpy.random.Generator
        Draws the cloud: ``x = mean + g @ L.T`` with ``g = cloud_rng.standard_normal((n, 2))``
        and ``L = cholesky(cov)`` (:func:`mixture_moments`), float64 on the host.
    n_projections : int, optional
        Directions of :func:`sliced_w1`.

    Returns
    -------
    metrics : dict
        :func:`evaluate`'s keys (``modes``, ``high_quality``, ``w1``, ``w2``, ``sliced_w1``)
        plus ``n``, ``mean`` (list of 2) and ``cov`` (2 x 2 nested list).
    cloud : numpy.ndarray, shape (n, 2), float64

    Raises
    ------
    ValueError
        Not a mixture, ``n`` or ``n_target`` < 1.
    TypeError
        ``rng`` or ``cloud_rng`` not a ``numpy.random.Generator``.

    Notes
    -----
    For grid25 the cloud is :math:`N(0, 8.0025\\, I)` (std 2.829); its expected high-quality
    fraction is about :math:`\\sum_k N(c_k; \\mu, \\Sigma)\\, \\pi (3\\sigma)^2 \\approx 1.6\\%`
    and it covers about 18 modes with 2,500 samples (issue 11: "modes" alone is meaningless).
    Protocol: conventions.md, "2-D mixture protocol".
    """
    n = checks.integer(n, "n", ge=1)
    n_target = checks.integer(n_target, "n_target", ge=1)
    for name, g in (("rng", rng), ("cloud_rng", cloud_rng)):
        checks.random_generator(g, name)
    mean, cov = mixture_moments(dataset_name)
    L = _np.linalg.cholesky(cov)
    cloud = mean + cloud_rng.standard_normal((n, mean.shape[0])) @ L.T      # (n, 2)
    out = evaluate(cloud, dataset_name, rng, n_target, n_projections=n_projections)
    return {**out, "n": n, "mean": mean.tolist(), "cov": cov.tolist()}, cloud
