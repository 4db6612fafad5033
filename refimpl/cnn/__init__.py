"""Convolutional critics and generators with hand-written forward, backward, input-gradient and
double-backward passes (``docs/cnn.md``).

* :mod:`refimpl.cnn.conv`: convolution and transposed convolution as im2col + one matrix product;
* :mod:`refimpl.cnn.norms`: the normaliser shared by layer norm and batch norm, with its second derivative;
* :mod:`refimpl.cnn.layers`: the layer specs (:class:`Dense`, :class:`Conv2d`, :class:`ConvTranspose2d`,
  :class:`LayerNorm`, :class:`BatchNorm`) and their passes;
* :mod:`refimpl.cnn.network`: :class:`CNN`, the network type with :class:`refimpl.nn.MLP`'s four passes;
* :mod:`refimpl.cnn.builders`: :func:`dcgan_critic`, :func:`dcgan_generator`.
"""
from .builders import IMAGE_SHAPES, dcgan_critic, dcgan_generator
from .layers import BatchNorm, Conv2d, ConvTranspose2d, Dense, LayerNorm
from .network import CNN, Cache, Tape

__all__ = ["CNN", "Cache", "Tape", "Dense", "Conv2d", "ConvTranspose2d", "LayerNorm", "BatchNorm",
           "dcgan_critic", "dcgan_generator", "IMAGE_SHAPES"]
