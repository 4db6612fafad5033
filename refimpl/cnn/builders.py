"""DCGAN-style critics and generators for 1x28x28, 3x32x32 and 3x64x64 images.

After the papers' descriptions (choices they leave open are listed in ``docs/cnn.md``):

* SWGAN, App. I.2 (MNIST): generator ``FC(128, 4096)-BN-ReLU-DECONV(256, 128, s2)-BN-ReLU-
  DECONV(128, 64, s2)-BN-ReLU-DECONV(64, 1, s2)``; discriminator ``CONV(1, 64, s2)-BN-LReLU-
  CONV(64, 128, s2)-BN-LReLU-CONV(128, 256, s2)-BN-LReLU-FC(4096, 1)``.
* WWGAN, Sec. 5 (CIFAR-10, CelebA 64x64): a critic of three convolutions with leaky ReLU and
  no batch norm (it would couple the samples of the gradient penalty); a generator of three
  transposed convolutions with batch norm; latent dimension 128.
* RWP/SBE, Sec. 5 and App. C, G (CIFAR-10, CelebA): "the DCGAN architecture" (Radford et al.
  2015); layer norm allowed.

Both builders use 5x5 kernels, stride 2 and padding 2 (a stride-2 convolution halves a size,
rounding up: 28 -> 14 -> 7 -> 4), so with ``width = 64`` the critic's last feature map of a
28x28 image is ``256 x 4 x 4 = 4096`` as in SWGAN's ``FC(4096, 1)``. A 64x64 image gets a
fourth stride-2 layer (``8 width`` channels), as DCGAN's 64x64 networks, so every last map is 4x4.
"""
from __future__ import annotations

from .layers import BatchNorm, Conv2d, ConvTranspose2d, Dense, LayerNorm
from .network import CNN

__all__ = ["dcgan_critic", "dcgan_generator", "IMAGE_SHAPES"]

#: image shapes the builders are made for (others of the form (C, H, H), H >= 8, work too)
IMAGE_SHAPES = ((1, 28, 28), (3, 32, 32), (3, 64, 64))
KERNEL, STRIDE, PADDING = 5, 2, 2
NORMS = ("layer", "batch", "none")


def _image_shape(image_shape):
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3 or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in image_shape):
        raise ValueError(f"image_shape must be (C, H, W) of positive integers, got {image_shape!r}")
    C, H, W = image_shape
    if H != W or H < 8:
        raise ValueError(f"image_shape must be square with H = W >= 8, got {tuple(image_shape)}")
    return tuple(image_shape)


def _sizes(H):
    """Spatial sizes from the image down to 4x4 by stride-2 halving (rounding up): 28 -> [28, 14, 7, 4]."""
    sizes = [H]
    while sizes[-1] > 4:
        sizes.append(-(-sizes[-1] // 2))
    if sizes[-1] != 4:
        raise ValueError(f"image size {H} does not halve down to 4x4; use 28, 32 or 64")
    return sizes


def _width(width):
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    return width


def dcgan_critic(image_shape=(3, 32, 32), width=64, norm="layer", activation="leaky_relu"):
    """A DCGAN critic: stride-2 5x5 convolutions to a 4x4 map, then a linear unit.

    Channels ``width, 2 width, 4 width`` (and ``8 width`` for 64x64); ``activation`` after
    every convolution (leaky ReLU, slope 0.2); the norm after every convolution but the
    first (DCGAN's rule); output ``(N, 1)``.

    Parameters
    ----------
    image_shape : (C, H, W)
        1x28x28, 3x32x32 or 3x64x64 (square sizes that halve to 4 work too).
    width : int
        Channels of the first convolution (64 in the papers).
    norm : {"layer", "batch", "none"}
        ``"layer"`` (default): layer norm, allowed with a gradient penalty (WGAN-GP, RWP, SBE,
        WWGAN); ``"none"``: WWGAN's literal critic; ``"batch"``: SWGAN's discriminator, which
        has no gradient penalty (:meth:`CNN.input_gradient` refuses batch norm).
    activation : str
        A name of :data:`refimpl.nn.ACTIVATIONS`.

    Raises
    ------
    ValueError
        A bad image shape, width, norm or activation.
    """
    C, H, _ = _image_shape(image_shape)
    width = _width(width)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    layers = []
    n_down = len(_sizes(H)) - 1
    for i in range(n_down):
        normed = i > 0 and norm != "none"
        layers.append(Conv2d(width * 2 ** i, KERNEL, STRIDE, PADDING, activation="linear" if normed else activation,
                             bias=not normed))
        if normed:
            layers.append((LayerNorm if norm == "layer" else BatchNorm)(activation=activation))
    layers.append(Dense(1))
    return CNN((C, H, H), tuple(layers))


def dcgan_generator(latent_dim=128, image_shape=(3, 32, 32), width=64, output="tanh"):
    """A DCGAN generator: a dense layer to a 4x4 map, then stride-2 5x5 transposed convolutions.

    ``Dense(latent_dim -> 4 width x 4 x 4)-BN-ReLU``, then per upsampling
    ``ConvTranspose2d-BN-ReLU`` halving the channels, the last one to ``C`` channels with
    ``output`` (tanh: images in [-1, 1]) and no norm. ``output_padding`` is 1 where the size
    doubles and 0 where it goes 4 -> 7 (28x28). For ``width = 64`` and 28x28 this is SWGAN's
    App. I.2 generator (``FC(128, 4096)``). Batch norm is per channel of the 4x4 map.

    Parameters
    ----------
    latent_dim : int
        Size of the latent code ``z`` (inputs ``(N, latent_dim)``): 128 in WWGAN and SWGAN,
        100 or 128 in RWP/SBE.
    image_shape : (C, H, W)
        1x28x28, 3x32x32 or 3x64x64.
    width : int
        Channels of the last hidden map (64 in the papers).
    output : str
        Output activation.

    Raises
    ------
    ValueError
        A bad latent size, image shape, width or activation.
    """
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    C, H, _ = _image_shape(image_shape)
    width = _width(width)
    sizes = _sizes(H)[::-1]                       # 4, ..., H
    n_up = len(sizes) - 1
    ch = width * 2 ** (n_up - 1)
    layers = [Dense(ch * 16, out_shape=(ch, 4, 4), bias=False), BatchNorm(activation="relu")]
    for i in range(n_up):
        op = sizes[i + 1] - (2 * sizes[i] - 1)    # (n - 1) 2 - 4 + 5 = 2n - 1, plus output_padding
        last = i == n_up - 1
        out_ch = C if last else ch // 2
        layers.append(ConvTranspose2d(out_ch, KERNEL, STRIDE, PADDING, op, activation=output if last else "linear",
                                      bias=last))
        if not last:
            layers.append(BatchNorm(activation="relu"))
        ch = out_ch
    return CNN((latent_dim,), tuple(layers))
