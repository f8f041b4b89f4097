"""Convolutional encoders and decoders for small images (MNIST's ``(1, 28, 28)``, SVHN's ``(3, 32, 32)``).

Every convolution has kernel 4, stride 2 and padding 1, so it halves the height and width (rounding
down: 28 -> 14 -> 7 -> 3, 32 -> 16 -> 8 -> 4). The decoder's transposed convolutions undo the same
halvings exactly, with an output padding of one wherever the encoder rounded down.

Both networks accept any number of leading batch dimensions (enumerated labels, importance samples),
and both end or begin with a :class:`~pyro_partial.nn.ConcatMLP`, so extra inputs such as a one-hot
label are concatenated to the features, broadcasting their batch dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pyro_partial.nn.mlp import ACTIVATIONS, ConcatMLP

_KERNEL, _STRIDE, _PADDING = 4, 2, 1


def _check_image_shape(image_shape: Sequence[int], channels: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (channels, height, width) of positive sizes, got {image_shape}"
        )
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be a non-empty sequence of positive sizes, got {channels}")
    smallest = min(shape[1:])
    if smallest >> len(channels) < 1:
        raise ValueError(
            f"{len(channels)} stride-2 convolutions shrink an image of shape {shape} below one pixel; "
            f"use at most {smallest.bit_length() - 1} entries in channels"
        )
    return shape


def _halvings(size: int, times: int) -> list[int]:
    """``[size, size // 2, size // 4, ...]``, ``times + 1`` entries: the sizes through the encoder."""
    return [size >> i for i in range(times + 1)]


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


class ConvEncoder(nn.Module):
    """Images, optionally with extra inputs, to features: stride-2 convolutions, then a :class:`ConcatMLP`.

    :param image_shape: ``(C, H, W)`` of the input images.
    :param out_features: size of the output.
    :param hidden: hidden layer sizes of the fully connected part (may be empty).
    :param extra_features: total size of the extra inputs concatenated to the convolutional features.
    :param channels: output channels of each convolution (one halving of height and width each).
    :param activation: one of ``relu``, ``softplus``, ``tanh``, ``elu``, ``gelu``.

    ``forward(images, *extra)`` maps images ``(..., C, H, W)`` and extra inputs ``(..., E_i)`` (batch
    dimensions broadcast, ``Σ E_i = extra_features``) to ``(..., out_features)``. The convolutions run once
    per image, before broadcasting against the extra inputs.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        out_features: int,
        hidden: Sequence[int] = (),
        *,
        extra_features: int = 0,
        channels: Sequence[int] = (32, 64, 128),
        activation: str = "relu",
    ):
        super().__init__()
        _check_activation(activation)
        self.image_shape = _check_image_shape(image_shape, channels)
        in_channels, height, width = self.image_shape
        layers: list[nn.Module] = []
        for n_in, n_out in zip([in_channels, *channels[:-1]], channels, strict=True):
            layers += [nn.Conv2d(n_in, n_out, _KERNEL, _STRIDE, _PADDING), ACTIVATIONS[activation]()]
        self.convolutions = nn.Sequential(*layers, nn.Flatten(-3))
        times = len(channels)
        self.conv_features = channels[-1] * (height >> times) * (width >> times)
        self.head = ConcatMLP(self.conv_features + extra_features, hidden, out_features, activation)
        self.out_features = out_features

    def forward(self, images: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """Map images ``(..., C, H, W)`` and extra inputs ``(..., E_i)`` to ``(..., out_features)``."""
        if images.shape[-3:] != self.image_shape:
            raise ValueError(
                f"images must have shape (..., {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(images.shape)}"
            )
        batch_shape = images.shape[:-3]
        features = self.convolutions(images.reshape(-1, *self.image_shape))
        return self.head(features.reshape(*batch_shape, self.conv_features), *extra)


class ConvDecoder(nn.Module):
    """Features to image logits: a :class:`ConcatMLP`, then stride-2 transposed convolutions.

    :param in_features: total size of the inputs, concatenated along their last dimension.
    :param image_shape: ``(C, H, W)`` of the output images.
    :param hidden: hidden layer sizes of the fully connected part (may be empty).
    :param channels: input channels of each transposed convolution (one doubling of height and width
        each); the mirror image of :class:`ConvEncoder`'s ``channels``, e.g. ``(128, 64, 32)``.
    :param activation: one of ``relu``, ``softplus``, ``tanh``, ``elu``, ``gelu``.

    ``forward(*inputs)`` maps inputs ``(..., F_i)`` (batch dimensions broadcast, ``Σ F_i = in_features``)
    to unconstrained outputs ``(..., C, H, W)`` (e.g. Bernoulli logits).
    """

    def __init__(
        self,
        in_features: int,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (),
        *,
        channels: Sequence[int] = (128, 64, 32),
        activation: str = "relu",
    ):
        super().__init__()
        _check_activation(activation)
        self.image_shape = _check_image_shape(image_shape, channels)
        out_channels, height, width = self.image_shape
        times = len(channels)
        heights, widths = _halvings(height, times)[::-1], _halvings(width, times)[::-1]
        self.grid_shape = (channels[0], heights[0], widths[0])
        self.head = ConcatMLP(in_features, hidden, channels[0] * heights[0] * widths[0], activation)
        layers: list[nn.Module] = [ACTIVATIONS[activation](), nn.Unflatten(-1, self.grid_shape)]
        for i, n_in in enumerate(channels):
            last = i + 1 == times
            n_out = out_channels if last else channels[i + 1]
            output_padding = (heights[i + 1] - 2 * heights[i], widths[i + 1] - 2 * widths[i])
            layers.append(nn.ConvTranspose2d(n_in, n_out, _KERNEL, _STRIDE, _PADDING, output_padding))
            if not last:
                layers.append(ACTIVATIONS[activation]())
        self.deconvolutions = nn.Sequential(*layers)
        self.in_features = in_features

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Map inputs ``(..., F_i)`` (``Σ F_i = in_features``) to outputs ``(..., C, H, W)``."""
        features = self.head(*inputs)
        batch_shape = features.shape[:-1]
        images = self.deconvolutions(features.reshape(-1, features.shape[-1]))
        return images.reshape(*batch_shape, *self.image_shape)
