"""Device-resident data for GPU training: upload once, sample batches by index on the device.

Per step the only host-to-device traffic is one index array (the batch) and one
noise array (the latent codes), both drawn on the host from the run's
``numpy.random.Generator`` so a CuPy run sees the same stream as a NumPy run.
"""
from __future__ import annotations

import numpy as np

from refimpl.backend import from_host, namespace
from refimpl.images import load_images
from refimpl.train import ArrayData


def flatten_images(images):
    """(N, C, H, W) -> (N, C*H*W), C-H-W row-major (the MLPs' input layout)."""
    xp = namespace(images)
    n = images.shape[0]
    return xp.reshape(images, (n, -1))


def device_dataset(name, xp, data_dir=None, split="train", dtype="float32", device=None, limit=None):
    """Load an image data set on the host, upload it once, return ``(ArrayData, image_shape)``.

    ``ArrayData.sample(rng, n)`` draws ``n`` indices on the host and gathers the batch
    on the device with ``xp.take`` (no per-step copy of images).
    """
    images, _ = load_images(name, data_dir=data_dir, split=split, limit=limit)   # host float32 (N, C, H, W)
    shape = tuple(images.shape[1:])
    flat = np.ascontiguousarray(images.reshape(images.shape[0], -1))
    return ArrayData(from_host(flat, xp, dtype, device)), shape


def noise(rng, n, dim, like):
    """Latent codes ``N(0, I)`` (n, dim): one host draw, one transfer, on ``like``'s device."""
    xp = namespace(like)
    return from_host(rng.standard_normal((n, dim)), xp, like.dtype, getattr(like, "device", None))
