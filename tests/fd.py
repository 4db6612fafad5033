"""Central finite differences over parameter lists, shared by the method tests (float64).

A thin use of :mod:`refimpl.testing` (``numeric_grad``, the engine of ``check_grad``)."""
import numpy as np

from refimpl.backend import to_numpy
from refimpl.testing import numeric_grad

H = 1e-6


def fd_host_params(fun, hp, h=H):
    """Central differences of scalar ``fun(host params)`` w.r.t. every entry of ``hp``
    (a list of ``(W, b)`` NumPy arrays); returns the same structure of gradients."""
    return numeric_grad(fun, [tuple(layer) for layer in hp], h=h)


def assert_grads_close(grads, fd, rtol=1e-6, atol=1e-8):
    """Every (dW, db) of ``grads`` (any backend) equals the finite differences ``fd``."""
    for (gW, gb), (fW, fb) in zip(grads, fd):
        np.testing.assert_allclose(to_numpy(gW), fW, rtol=rtol, atol=atol)
        np.testing.assert_allclose(to_numpy(gb), fb, rtol=rtol, atol=atol)
