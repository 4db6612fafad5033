"""The CuPy side of refimpl: device-resident data, image-scale experiments, GPU benchmark.

The library code in ``refimpl/`` is backend-agnostic; this package only adds what a
GPU run needs around it. It imports without CuPy; anything that needs a device calls
:func:`require_cupy`, which fails at once with the reason (CuPy missing, or no CUDA
device) and how to fix it.
"""
from refimpl.backend import cuda_available, get_namespace


def require_cupy():
    """The CuPy Array API namespace, or ``RuntimeError`` naming what is missing."""
    return get_namespace("cupy")


__all__ = ["require_cupy", "cuda_available"]
