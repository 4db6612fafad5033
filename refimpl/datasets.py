"""Toy 2-D datasets: the 8-mode ring, the 25-mode grid and a swiss roll.

Protocol: ``conventions.md`` (shared folder), "2-D mixture protocol (PacGAN/VEEGAN)".

* ``ring8``  -- 8 equally weighted isotropic Gaussians with centres
  :math:`(\\cos 2\\pi k/8, \\sin 2\\pi k/8)`, :math:`k = 0..7`, std 0.01.
* ``grid25`` -- 25 equally weighted isotropic Gaussians with centres
  :math:`\\{-4,-2,0,2,4\\}^2`, std 0.05.
* ``grid25-lim-ye`` -- Lim & Ye's grid (the SWGAN paper's data): 25 equally weighted
  isotropic Gaussians with centres :math:`\\{-21,-10.5,0,10.5,21\\}^2`, variance 0.1
  (std :math:`\\sqrt{0.1}`).
* ``swissroll`` -- scikit-learn's ``make_swiss_roll`` restricted to its two
  "roll" coordinates and divided by 7.5 (the WGAN-GP toy convention):
  :math:`t = \\tfrac{3\\pi}{2}(1 + 2u)`, :math:`u \\sim U(0, 1)`,
  :math:`p = (t\\cos t,\\ t\\sin t) + 0.25\\,\\xi`, :math:`\\xi \\sim N(0, I_2)`,
  returned as :math:`p / 7.5`, which lies in about :math:`[-1.4, 1.8]\\times[-1.6, 2.0]`.
  It has no modes.

Random numbers are drawn on the host from the ``numpy.random.Generator`` passed
in and moved to the requested backend with :func:`refimpl.backend.from_host`, so
the same seed gives the same numbers on every backend (float32 is the rounded
float64 draw).

Input rules (:mod:`refimpl.validation`): centres are finite, ``std``, ``noise`` and
``scale`` finite with ``std > 0``, ``noise >= 0``, ``scale > 0``; ``n`` an integer
``>= 0``; ``dtype`` float32 or float64 (float16 raises ``TypeError``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as _np  # host-side specs and random draws only

from . import validation as checks
from .backend import dtype_of, from_host

__all__ = ["Mixture", "SwissRoll", "DATASETS", "CLAIMED_MODES", "get_dataset", "sample", "ring8", "grid25",
           "grid25_lim_ye"]


def _host_args(n, rng):
    return checks.integer(n, "n", ge=0), checks.random_generator(rng)


def _readonly(a):
    a = _np.array(a, dtype=_np.float64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Mixture:
    """Equally weighted mixture of isotropic 2-D Gaussians.

    Parameters
    ----------
    name : str
        Dataset name.
    centers : numpy.ndarray, shape (K, 2)
        Mode centres :math:`c_k` (host array, stored read-only as float64).
    std : float
        Per-coordinate standard deviation :math:`\\sigma` of every mode.

    Notes
    -----
    Density :math:`p(x) = \\frac1K \\sum_k N(x; c_k, \\sigma^2 I_2)`.
    """

    name: str
    centers: _np.ndarray = field(repr=False)
    std: float

    def __post_init__(self):
        c = _readonly(checks.array(self.centers, "centers", shape=(None, 2)))
        object.__setattr__(self, "centers", c)
        object.__setattr__(self, "std", checks.real(self.std, "std", gt=0))

    @property
    def n_modes(self):
        """Number of modes ``K``."""
        return int(self.centers.shape[0])

    @checks.checked()
    def sample_host(self, n, rng):
        """Host draw: ``(x, labels)`` with ``x`` (n, 2) float64 and ``labels`` (n,) int64.

        Draw order (fixed, part of the reproducibility contract): first the mode labels
        ``rng.integers(0, K, size=n)``, then ``rng.standard_normal((n, 2))``.
        """
        n, rng = _host_args(n, rng)
        labels = rng.integers(0, self.n_modes, size=n).astype(_np.int64)
        noise = rng.standard_normal((n, 2))
        return self.centers[labels] + self.std * noise, labels


@dataclass(frozen=True)
class SwissRoll:
    """2-D swiss roll (scikit-learn's formula, roll coordinates only), no modes.

    Parameters
    ----------
    name : str
        Dataset name.
    noise : float
        Std of the Gaussian noise added before scaling (sklearn's ``noise``), default 0.25.
    scale : float
        Divisor applied at the end, default 7.5.

    Notes
    -----
    :math:`t = \\tfrac{3\\pi}{2}(1 + 2u)`, :math:`x = (t\\cos t + \\nu\\xi_1,\\
    t\\sin t + \\nu\\xi_2) / s`. Draw order: ``u = rng.random(n)`` then
    ``xi = rng.standard_normal((n, 2))``.
    """

    name: str = "swissroll"
    noise: float = 0.25
    scale: float = 7.5

    n_modes = 0

    def __post_init__(self):
        object.__setattr__(self, "noise", checks.real(self.noise, "noise", ge=0))
        object.__setattr__(self, "scale", checks.real(self.scale, "scale", gt=0))

    @checks.checked()
    def sample_host(self, n, rng):
        """Host draw: ``(x, t)`` with ``x`` (n, 2) float64 and the roll parameter ``t`` (n,).
        """
        n, rng = _host_args(n, rng)
        t = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
        xi = rng.standard_normal((n, 2))
        x = _np.stack([t * _np.cos(t), t * _np.sin(t)], axis=1) + self.noise * xi
        return x / self.scale, t


def ring8():
    """The 8-mode ring: centres ``(cos 2 pi k/8, sin 2 pi k/8)``, std 0.01."""
    k = _np.arange(8)
    c = _np.stack([_np.cos(2 * _np.pi * k / 8), _np.sin(2 * _np.pi * k / 8)], axis=1)
    return Mixture("ring8", c, 0.01)


def grid25():
    """The 25-mode grid: centres ``{-4,-2,0,2,4}^2`` (row-major in x then y), std 0.05."""
    v = _np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    c = _np.array([(a, b) for a in v for b in v])
    return Mixture("grid25", c, 0.05)


def grid25_lim_ye():
    """Lim & Ye's 25-mode grid (Geometric GAN, ``datasets/toy.py`` exp4; the SWGAN paper's Sec. 6.1
    data): centres ``linspace(-21, 21, 5)^2`` (spacing 10.5, row-major in x then y), variance 0.1
    (std ``sqrt(0.1)``, about 0.316)."""
    v = _np.linspace(-21.0, 21.0, 5)
    c = _np.array([(a, b) for a in v for b in v])
    return Mixture("grid25-lim-ye", c, math.sqrt(0.1))


DATASETS = {"ring8": ring8(), "grid25": grid25(), "grid25-lim-ye": grid25_lim_ye(), "swissroll": SwissRoll()}
#: the number of distinct modes each mixture claims (tests/test_datasets.py checks the centres against it)
CLAIMED_MODES = {"ring8": 8, "grid25": 25, "grid25-lim-ye": 25}


@checks.checked()
def get_dataset(name):
    """Spec of a dataset by name (a spec passes through unchanged).

    Parameters
    ----------
    name : str or Mixture or SwissRoll

    Returns
    -------
    Mixture or SwissRoll

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known names.
    """
    if isinstance(name, (Mixture, SwissRoll)):
        return name
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}") from None


@checks.checked()
def sample(name_or_spec, n, rng, xp=_np, dtype="float64", device=None, *, return_labels=False):
    """Draw ``n`` points of a toy dataset into backend ``xp``.

    Parameters
    ----------
    name_or_spec : str or Mixture or SwissRoll
        ``"ring8"``, ``"grid25"``, ``"swissroll"`` or a spec.
    n : int
        Number of points (>= 0).
    rng : numpy.random.Generator
        Host generator; all randomness comes from it (see the specs for the draw order).
    xp : namespace, optional
        Target Array API namespace (default NumPy).
    dtype : {"float64", "float32"} or dtype, optional
    device : optional
        Target device (``None``: the backend's default).
    return_labels : bool, optional
        Also return the mode label of each point (int64, shape (n,), in ``xp``);
        for the swiss roll the "label" is the roll parameter ``t`` (float, in ``xp``).

    Returns
    -------
    x : array, shape (n, 2)
        In ``xp`` with ``dtype``. With ``return_labels``, ``(x, labels)``.

    Notes
    -----
    Protocol: conventions.md, "2-D mixture protocol (PacGAN/VEEGAN)".
    """
    spec = get_dataset(name_or_spec)
    checks.random_generator(rng, "rng")
    n = checks.integer(n, "n", ge=0)
    dt = dtype_of(xp, dtype)
    if dt not in (xp.float32, xp.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    x, lab = spec.sample_host(n, rng)
    out = from_host(x, xp, dtype, device)
    if not return_labels:
        return out
    if isinstance(spec, Mixture):
        return out, from_host(lab, xp, xp.int64, device)
    return out, from_host(lab, xp, dtype, device)
