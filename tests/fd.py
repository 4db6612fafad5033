"""Central finite differences over parameter lists, shared by the method tests (float64)."""
import numpy as np

from refimpl.backend import to_numpy

H = 1e-6


def fd_host_params(fun, hp, h=H):
    """Central differences of scalar ``fun(host params)`` w.r.t. every entry of ``hp``
    (a list of ``(W, b)`` NumPy arrays); returns the same structure of gradients."""
    out = []
    for l, (W, b) in enumerate(hp):
        gl = []
        for k, a in enumerate((W, b)):
            g = np.zeros_like(a)
            for idx in np.ndindex(*a.shape):
                pp = [[w.copy(), c.copy()] for w, c in hp]
                pm = [[w.copy(), c.copy()] for w, c in hp]
                pp[l][k][idx] += h
                pm[l][k][idx] -= h
                g[idx] = (fun(pp) - fun(pm)) / (2 * h)
            gl.append(g)
        out.append(tuple(gl))
    return out


def assert_grads_close(grads, fd, rtol=1e-6, atol=1e-8):
    """Every (dW, db) of ``grads`` (any backend) equals the finite differences ``fd``."""
    for (gW, gb), (fW, fb) in zip(grads, fd):
        np.testing.assert_allclose(to_numpy(gW), fW, rtol=rtol, atol=atol)
        np.testing.assert_allclose(to_numpy(gb), fb, rtol=rtol, atol=atol)
