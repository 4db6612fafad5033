"""The two network families of a GAN config: ``"mlp"`` (:class:`refimpl.nn.MLP`) and ``"dcgan"``
(:func:`refimpl.cnn.dcgan_generator`, :func:`refimpl.cnn.dcgan_critic`, seen through flat rows
by :class:`refimpl.cnn.flat.FlatIO`).

Every method of :mod:`refimpl.train` and its subclasses builds its generator and critic here,
so each takes either family. The MLP knobs (``gen_hidden``, ``critic_hidden``, the activations,
``weight_init``) shape ``"mlp"`` only; ``"dcgan"`` reads ``image_shape``, ``width``,
``critic_norm`` and ``gen_output``. A DCGAN method runs the per-step passes (its ``fused`` is
False: the fused steps of :mod:`refimpl.steps` are written for MLP layers), and its generator's
batch norm always uses the batch's statistics (training mode, samples included).
"""
from __future__ import annotations

import math

from .cnn.flat import FlatIO
from .nn import MLP

__all__ = ["ARCHS", "NETWORKS", "make_generator", "make_critic", "is_mlp"]

ARCHS = ("mlp", "dcgan")
#: the network types every GAN method takes
NETWORKS = (MLP, FlatIO)


def _dcgan_shape(cfg):
    shape = tuple(cfg.image_shape or ())
    if len(shape) != 3:
        raise ValueError(f"arch 'dcgan' needs image_shape (C, H, W), got {cfg.image_shape!r}")
    if math.prod(shape) != cfg.data_dim:
        raise ValueError(f"image_shape {shape} has {math.prod(shape)} values but data_dim is {cfg.data_dim}")
    return shape


def make_generator(cfg):
    """The generator of ``cfg``: rows (N, latent_dim) -> rows (N, data_dim).

    ``cfg`` is a :class:`refimpl.train.GANConfig` (or a config with its fields), checked when it
    was made (:mod:`refimpl.validation`); ``arch="dcgan"`` raises ``ValueError`` when ``image_shape``
    is not (C, H, W) with C * H * W == ``data_dim``."""
    if cfg.arch == "mlp":
        return MLP((cfg.latent_dim, *cfg.gen_hidden, cfg.data_dim), cfg.gen_activation, cfg.gen_output,
                   weight_init=cfg.weight_init, init_gain=cfg.init_gain)
    from .cnn import dcgan_generator
    return FlatIO(dcgan_generator(cfg.latent_dim, _dcgan_shape(cfg), cfg.width, output=cfg.gen_output))


def make_critic(cfg):
    """The critic of ``cfg``: rows (N, data_dim) -> scores (N, 1).

    ``cfg`` as in :func:`make_generator` (checked when it was made, :mod:`refimpl.validation`)."""
    if cfg.arch == "mlp":
        return MLP((cfg.data_dim, *cfg.critic_hidden, 1), cfg.critic_activation, "linear",
                   weight_init=cfg.weight_init, init_gain=cfg.init_gain)
    from .cnn import dcgan_critic
    return FlatIO(dcgan_critic(_dcgan_shape(cfg), cfg.width, norm=cfg.critic_norm))


def is_mlp(*nets):
    """True when every network is an :class:`refimpl.nn.MLP` (the fused steps' networks).

    A type test on network objects, no arrays (nothing to check, :mod:`refimpl.validation`)."""
    return all(isinstance(n, MLP) for n in nets)
