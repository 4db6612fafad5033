"""The backend kernel table (refimpl.kernels): which table each array type gets, the NumPy Adam
against the reference bitwise, and the fused CuPy kernels against the reference (GPU only)."""
import numpy as np
import pytest

from refimpl import kernels
from refimpl.backend import cuda_available, from_host, to_numpy


def test_each_array_type_gets_its_table_once(xp):
    a = xp.zeros((3,), dtype=xp.float64)
    k = kernels.for_array(a)
    assert kernels.for_array(xp.ones((2, 2), dtype=xp.float32)) is k
    name = type(k).__name__
    assert name == ("NumPyKernels" if xp is np else "Reference")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_adam_is_bitwise_the_reference(dtype):
    rng = np.random.default_rng(0)
    p, m, v, g = (rng.standard_normal(257).astype(dtype) for _ in range(4))
    v = np.abs(v)
    ref = [x.copy() for x in (p, m, v)]
    kernels.Reference(np).adam(*ref, g, 0.5, 0.9, 1e-3, 1e-8)
    got = [x.copy() for x in (p, m, v)]
    kernels.NumPyKernels(np).adam(*got, g, 0.5, 0.9, 1e-3, 1e-8)
    assert all(np.array_equal(a, b) for a, b in zip(ref, got))
    assert not np.array_equal(got[0], p)                       # it moved the parameters


def test_reference_penalty_seed_matches_its_formula(xp):
    rng = np.random.default_rng(1)
    g = rng.standard_normal((5, 3))
    g[2] = 0.0                                                 # a zero gradient: the direction is undefined
    for one_sided in (False, True):
        pen, u = kernels.for_array(from_host(g, xp, "float64")).penalty_seed(from_host(g, xp, "float64"), 2.0,
                                                                           one_sided)
        n = np.linalg.norm(g, axis=1, keepdims=True)
        r = np.maximum(n - 1, 0) if one_sided else n - 1
        want_u = np.where(n > 0, (2 * 2.0 / 5) * r / np.where(n > 0, n, 1), 0) * g
        assert float(pen) == pytest.approx(2.0 * np.mean(r ** 2), rel=1e-14)
        assert np.allclose(to_numpy(u), want_u, rtol=1e-14, atol=0) and np.all(to_numpy(u)[2] == 0)


CUDA, WHY = cuda_available()


@pytest.mark.skipif(not CUDA, reason=f"needs a CUDA device: {WHY}")
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-13)])
def test_fused_cupy_kernels_equal_the_reference(dtype, tol):
    """NVRTC contracts multiply-adds into FMAs: equal to relative ``tol``, not bitwise."""
    import cupy as cp
    rng = np.random.default_rng(2)
    ref, fused = kernels.Reference(cp), kernels.for_array(cp.zeros(1))
    assert type(fused).__name__ == "CuPyKernels"
    p, m, v, g = (cp.asarray(rng.standard_normal(1000).astype(dtype)) for _ in range(4))
    v = cp.abs(v)
    a, b = [x.copy() for x in (p, m, v)], [x.copy() for x in (p, m, v)]
    ref.adam(*a, g, 0.5, 0.9, 1e-3, 1e-8)
    fused.adam(*b, g, 0.5, 0.9, 1e-3, 1e-8)
    for x, y in zip(a, b):
        assert cp.allclose(x, y, rtol=tol, atol=tol)
    x, bias, d = (cp.asarray(rng.standard_normal(s).astype(dtype)) for s in ((6, 4), (4,), (6, 4)))
    for r, f in zip(ref.bias_relu(x, bias), fused.bias_relu(x, bias)):
        assert cp.array_equal(r, f)
    a_ = x + bias
    assert cp.array_equal(ref.relu_apply(ref.relu_mask(a_), d), fused.relu_apply(fused.relu_mask(a_), d))
    for one_sided in (False, True):
        (p1, u1), (p2, u2) = ref.penalty_seed(d, 10.0, one_sided), fused.penalty_seed(d, 10.0, one_sided)
        assert abs(float(p1) - float(p2)) <= tol * abs(float(p1)) and cp.allclose(u1, u2, rtol=tol, atol=tol)
