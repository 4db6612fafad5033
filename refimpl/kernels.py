"""Backend kernels: the elementwise passes a training step repeats most, chosen once per array type.

Each kernel has an Array API **reference** (what numpy, array_api_strict and every other backend
run), a **CuPy** version fused into one ``ElementwiseKernel``/``ReductionKernel`` launch, and for
the flat Adam update a **NumPy** version that writes through one scratch buffer with ``out=``
(bitwise the reference, without its temporaries):

================  =======================================  ==========  ========
kernel            computes                                 reference   CuPy
================  =======================================  ==========  ========
``adam``          ``m, v, p`` of Adam, in place             9 arrays    1 launch
``bias_relu``     ``a = x + b``, ``h = max(a, 0)``           1 array     1 launch
``relu_mask``     what ``relu_apply`` needs of ``a``         1 array     none (``a`` itself)
``relu_apply``    ``e = d`` where ``a > 0``, else 0          1 array     1 launch
``penalty_seed``  ``P = lam mean r^2``, ``u = dP/dg``        12 arrays   3 launches
================  =======================================  ==========  ========

``r = ||g_b|| - 1`` (two-sided) or ``max(0, ||g_b|| - 1)`` (one-sided), ``u_b = (2 lam / B) r_b
g_b / ||g_b||`` (0 where ``g_b = 0``): the gradient penalty of Gulrajani et al. (2017) and Petzka et
al. (2018). NVRTC contracts ``a * b + c`` into fused multiply-adds, so the CuPy kernels equal the
reference to rounding (their tests state the tolerance), not bitwise.

Kernels are training-step internals: arguments are not validated (the public entry points
validate, :mod:`refimpl.validation`).
"""
from __future__ import annotations

import numpy as _np

from .backend import backend_name, namespace


# ----------------------------------------------------------------------------- reference (Array API)
class Reference:
    """The Array API versions (one code path for every backend), bound to the namespace ``xp``."""

    def __init__(self, xp):
        self.xp = xp

    def adam(self, p, m, v, g, b1, b2, step_size, eps_hat):
        xp = self.xp
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        p -= step_size * (m / (xp.sqrt(v) + eps_hat))

    def tdot(self, a, b):
        """``a^T b`` for ``a`` (R, m), ``b`` (R, n): one product, no transposed copy."""
        return self.xp.tensordot(a, b, axes=([0], [0]))

    def bias_relu(self, x, b):
        """``(a, h)``; ``x`` (a fresh product the caller owns) becomes ``a`` in place."""
        x += b
        return x, self.xp.maximum(x, 0.0)

    def relu_mask(self, a):
        return a > 0

    def relu_apply(self, mask, d, owned=False):
        """``d`` where ``mask``, else 0; ``owned``: ``d`` is the caller's to overwrite."""
        return self.xp.where(mask, d, 0.0)

    def penalty_seed(self, g, lam, one_sided):
        xp = self.xp
        norm = xp.sqrt(xp.sum(g * g, axis=1, keepdims=True))          # (B, 1)
        r = norm - 1.0
        if one_sided:
            r = xp.maximum(r, 0.0)
        pen = lam * xp.mean(r * r)
        pos = norm > 0
        coef = xp.where(pos, (2.0 * lam / g.shape[0]) * r / xp.where(pos, norm, 1.0), 0.0)
        return pen, coef * g


class NumPyKernels(Reference):
    """NumPy: the flat Adam update through one scratch buffer (bitwise :meth:`Reference.adam`), and
    bias + ReLU and the ReLU backward in place on owned arrays (equal values; a masked entry of the
    backward is ``-0.0`` where ``d < 0``)."""

    def tdot(self, a, b):
        return a.T @ b                               # tensordot's reshapes cost ~35 us of Python a call

    def bias_relu(self, x, b):
        """In place: ``x`` becomes ``h = max(x + b, 0)``, returned as both ``a`` and ``h`` (the ReLU
        mask ``a > 0`` equals ``h > 0``)."""
        x += b
        _np.maximum(x, 0.0, out=x)
        return x, x

    def relu_apply(self, mask, d, owned=False):
        if owned:
            return _np.multiply(d, mask, out=d)
        return _np.where(mask, d, 0.0)

    def adam(self, p, m, v, g, b1, b2, step_size, eps_hat):
        if not all(isinstance(s, float) for s in (step_size, eps_hat)):
            return Reference.adam(self, p, m, v, g, b1, b2, step_size, eps_hat)
        tmp = _np.multiply(g, 1.0 - b1)
        m *= b1
        m += tmp
        _np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v *= b2
        v += tmp
        _np.sqrt(v, out=tmp)
        tmp += eps_hat
        _np.divide(m, tmp, out=tmp)
        tmp *= step_size
        p -= tmp


# ----------------------------------------------------------------------------- CuPy
class CuPyKernels(Reference):
    """Fused CuPy kernels, compiled on first use (NVRTC)."""

    def __init__(self, cp):
        super().__init__(cp)
        self.cp = cp
        ek, rk = cp.ElementwiseKernel, cp.ReductionKernel
        self._adam = ek("T g, T b1, T b2, T step, T eps", "T p, T m, T v",
                        "m = b1 * m + ((T)1 - b1) * g; v = b2 * v + ((T)1 - b2) * (g * g); "
                        "p -= step * (m / (sqrt(v) + eps));", "refimpl_adam")
        self._bias_relu = ek("T x, T b", "T a, T h", "a = x + b; h = a > (T)0 ? a : (T)0;", "refimpl_bias_relu")
        self._relu_apply = ek("T a, T d", "T e", "e = a > (T)0 ? d : (T)0;", "refimpl_relu_apply")
        self._sumsq = rk("T x", "T y", "x * x", "a + b", "y = a", "0", "refimpl_sumsq")
        self._pen_r2 = ek("T n2, int32 one_sided", "T r2",
                          "T r = sqrt(n2) - (T)1; if (one_sided && r < (T)0) r = 0; r2 = r * r;", "refimpl_pen_r2")
        self._pen_u = ek("T n2, T g, T scale, int32 one_sided", "T u",
                         "T n = sqrt(n2); T r = n - (T)1; if (one_sided && r < (T)0) r = 0; "
                         "u = n > (T)0 ? scale * r / n * g : (T)0;", "refimpl_pen_u")

    def tdot(self, a, b):
        return a.T @ b

    def adam(self, p, m, v, g, b1, b2, step_size, eps_hat):
        dt = p.dtype.type
        self._adam(g, dt(b1), dt(b2), step_size if hasattr(step_size, "shape") else dt(step_size),
                   eps_hat if hasattr(eps_hat, "shape") else dt(eps_hat), p, m, v)

    def bias_relu(self, x, b):
        return self._bias_relu(x, b)

    def relu_mask(self, a):
        return a

    def relu_apply(self, a, d, owned=False):
        return self._relu_apply(a, d)

    def penalty_seed(self, g, lam, one_sided):
        n2 = self._sumsq(g, axis=1, keepdims=True)                    # (B, 1)
        flag = _np.int32(bool(one_sided))
        pen = lam * self.cp.mean(self._pen_r2(n2, flag))
        return pen, self._pen_u(n2, g, g.dtype.type(2.0 * lam / g.shape[0]), flag)


_BY_TYPE = {}


def for_array(a):
    """The kernel table for ``a``'s array type (memoised: chosen once per type)."""
    t = type(a)
    k = _BY_TYPE.get(t)
    if k is None:
        xp = namespace(a)
        name = backend_name(xp)
        if name == "cupy":
            import cupy
            k = CuPyKernels(cupy)
        elif name == "numpy":
            k = NumPyKernels(xp)
        else:
            k = Reference(xp)
        _BY_TYPE[t] = k
    return k
