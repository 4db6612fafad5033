"""Exact discrete OT on the host, through POT: the solves behind :func:`refimpl.metrics.w1`,
:func:`refimpl.metrics.w2` and :mod:`refimpl.w1flow`.

Unchecked by design (:mod:`refimpl.validation`): the callers validate their
inputs first. The clouds are copied to the host in float64 and scaled by a power of two.
"""
from __future__ import annotations

import math

import numpy as _np

from .backend import to_numpy


def import_ot():
    try:
        import ot
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("exact Wasserstein metrics need POT: pip install POT "
                          "(or pip install 'refimpl[toy]')") from e
    return ot


def host_clouds(x, y):
    """Host float64 copies divided by a power of two ``s`` near their largest coordinate, and ``s``.

    W1 and W2 are positively homogeneous (``W(s x, s y) = s W(x, y)``) and dividing by a power of
    two is exact, so the squared distances neither overflow (coordinates near 1e200) nor
    underflow (near 1e-200) and the result is ``s`` times the solve on the scaled clouds.
    """
    a = _np.asarray(to_numpy(x), dtype=_np.float64).reshape(x.shape[0], -1)
    b = _np.asarray(to_numpy(y), dtype=_np.float64).reshape(y.shape[0], -1)
    top = max(float(_np.max(_np.abs(a))), float(_np.max(_np.abs(b))))
    s = 2.0 ** math.frexp(top)[1] if top > 0 else 1.0
    return a / s, b / s, s


def sq_dists(a, b):
    """(n, m) squared Euclidean distances by coordinate differences (no cancellation)."""
    d2 = _np.zeros((a.shape[0], b.shape[0]))
    for k in range(a.shape[1]):
        diff = a[:, k, None] - b[None, :, k]
        d2 += diff * diff
    return d2


def emd2_uniform(M, num_itermax):
    """Exact OT cost ``min_P <P, M>`` with uniform marginals; raises if POT is not optimal."""
    ot = import_ot()
    n, m = M.shape
    a = _np.full(n, 1.0 / n)
    b = _np.full(m, 1.0 / m)
    if num_itermax is None:
        num_itermax = max(1_000_000, 20 * n * m)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the result code is checked below
        cost, log = ot.emd2(a, b, M, numItermax=int(num_itermax), log=True)
    if log["result_code"] != 1:
        raise RuntimeError(f"POT emd2 did not reach the optimum (result_code {log['result_code']}: "
                           f"{log['warning']}); numItermax was {num_itermax}")
    return float(cost)
