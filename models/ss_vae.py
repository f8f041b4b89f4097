"""Semi-supervised VAE for images: digit y (partially labelled) and style z.

Generative model (Kingma et al. 2014, Siddharth et al. 2017, §4.1)::

    z ~ N(0, I_Z),   y ~ Cat(1/C),   x ~ Bernoulli(decoder(y, z))

Two guide factorisations are provided:

- ``"m2"``:    q(y|x) q(z|x, y)   (Kingma et al.'s M2; importance weights constant),
- ``"paper"``: q(z|x) q(y|x, z)   (Siddharth et al.; log q(y|x) estimated by importance sampling).

The networks are MLPs on the flattened image (``network="mlp"``) or convolutional (``network="conv"``,
:class:`~pyro_partial.nn.ConvEncoder` / :class:`~pyro_partial.nn.ConvDecoder`); either way the model sees
flattened images ``(B, C·H·W)``. The likelihood is a Bernoulli on intensities in [0, 1] (the
cross-entropy, as in Kingma et al. and Pyro's SS-VAE; for grey-level or colour intensities it is not a
normalised density, but its maximiser is the intensity itself), for MNIST and SVHN alike.

The label site is ``pyro.sample("y", ..., obs=ys, obs_mask=mask)`` in both model and guide, so a batch
mixes labelled and unlabelled rows; train with :class:`pyro_partial.infer.SemiSupervisedELBO`.
Labels are one-hot (``OneHotCategorical``), so the site can be enumerated or relaxed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_partial.nn import ConcatMLP, ConvDecoder, ConvEncoder, GaussianHead

GUIDES = ("m2", "paper")
NETWORKS = ("mlp", "conv")


class SSVAE(nn.Module):
    """Semi-supervised VAE with MLP or convolutional networks.

    :param image_shape: ``(C, H, W)``; data are flattened images in [0, 1] of shape ``(B, C·H·W)``.
    :param num_classes: C, the number of values of y.
    :param z_dim: style dimension (10 for MNIST and 15 for SVHN in Siddharth et al.).
    :param hidden: hidden layer sizes of every network's fully connected part.
    :param guide_type: ``"m2"`` or ``"paper"`` (see module docstring).
    :param network: ``"mlp"`` or ``"conv"``.
    :param activation: activation of every network (see :class:`~pyro_partial.nn.MLP`).
    :param channels: the convolutional encoders' channels per stride-2 layer (the decoder uses them in
        reverse); only for ``network="conv"``.
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        z_dim: int = 10,
        hidden: Sequence[int] = (500,),
        guide_type: str = "m2",
        network: str = "mlp",
        activation: str = "softplus",
        channels: Sequence[int] = (32, 64, 128),
    ):
        super().__init__()
        if guide_type not in GUIDES:
            raise ValueError(f"guide_type must be one of {GUIDES}, got {guide_type!r}")
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {image_shape}")
        self.x_dim = math.prod(self.image_shape)
        self.num_classes, self.z_dim, self.guide_type, self.network = num_classes, z_dim, guide_type, network
        self.hidden, self.activation, self.channels = tuple(hidden), activation, tuple(channels)
        if network == "mlp":
            self.decoder = ConcatMLP(z_dim + num_classes, hidden, self.x_dim, activation)
        else:
            self.decoder = ConvDecoder(
                z_dim + num_classes, self.image_shape, hidden, channels=channels[::-1], activation=activation
            )
        if guide_type == "m2":
            self.encoder_y = self._encoder(num_classes)
            self.encoder_z = GaussianHead(self._encoder(2 * z_dim, extra_features=num_classes))
        else:
            self.encoder_z = GaussianHead(self._encoder(2 * z_dim))
            self.encoder_y = self._encoder(num_classes, extra_features=z_dim)

    def _encoder(self, out_features: int, extra_features: int = 0) -> nn.Module:
        """A network mapping the images (as :meth:`_network_input` shapes them) and extra inputs."""
        if self.network == "mlp":
            return ConcatMLP(self.x_dim + extra_features, self.hidden, out_features, self.activation)
        return ConvEncoder(
            self.image_shape,
            out_features,
            self.hidden,
            extra_features=extra_features,
            channels=self.channels,
            activation=self.activation,
        )

    def _network_input(self, xs: torch.Tensor) -> torch.Tensor:
        """Flattened images ``(..., C·H·W)`` as the encoders take them."""
        return xs if self.network == "mlp" else xs.unflatten(-1, self.image_shape)

    def _logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of the flattened image, ``(..., C·H·W)``."""
        logits = self.decoder(z, y)
        return logits if self.network == "mlp" else logits.flatten(-3)

    def _inputs(self, xs: torch.Tensor, ys: torch.Tensor | None, mask: torch.Tensor | None):
        if xs.dim() != 2 or xs.shape[-1] != self.x_dim:
            raise ValueError(
                f"xs must be flattened images of shape (batch, {self.x_dim}) for image_shape "
                f"{self.image_shape}, got {tuple(xs.shape)}"
            )
        batch = xs.shape[0]
        if ys is None:  # fully unlabelled batch: a valid placeholder, masked out everywhere
            ys = torch.zeros(batch, self.num_classes, dtype=xs.dtype, device=xs.device)
            ys[:, 0] = 1
            mask = torch.zeros(batch, dtype=torch.bool, device=xs.device)
        elif mask is None:
            mask = torch.ones(batch, dtype=torch.bool, device=xs.device)
        return ys, mask

    def model(self, xs: torch.Tensor, ys: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """p(x, y, z); ``xs`` ``(B, C·H·W)``, ``ys`` one-hot ``(B, C)``, ``mask`` bool ``(B,)`` true where
        ``ys`` is a label."""
        ys, mask = self._inputs(xs, ys, mask)
        pyro.module("ss_vae", self)
        with pyro.plate("data", xs.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([self.z_dim]).to_event(1))
            prior = dist.OneHotCategorical(logits=xs.new_zeros(self.num_classes))
            y = pyro.sample("y", prior, obs=ys, obs_mask=mask)
            likelihood = dist.Bernoulli(logits=self._logits(z, y), validate_args=False)
            pyro.sample("x", likelihood.to_event(1), obs=xs)

    def guide(self, xs: torch.Tensor, ys: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """q(y, z|x) in the chosen factorisation; same arguments as :meth:`model`."""
        ys, mask = self._inputs(xs, ys, mask)
        pyro.module("ss_vae", self)
        images = self._network_input(xs)
        with pyro.plate("data", xs.shape[0]):
            if self.guide_type == "m2":
                y_dist = dist.OneHotCategorical(logits=self.encoder_y(images))
                y = pyro.sample("y", y_dist, obs=ys, obs_mask=mask)
                pyro.sample("z", dist.Normal(*self.encoder_z(images, y)).to_event(1))
            else:
                z = pyro.sample("z", dist.Normal(*self.encoder_z(images)).to_event(1))
                y_dist = dist.OneHotCategorical(logits=self.encoder_y(images, z))
                pyro.sample("y", y_dist, obs=ys, obs_mask=mask)

    @torch.no_grad()
    def classify(self, xs: torch.Tensor, num_samples: int = 10) -> torch.Tensor:
        """Most probable class under q(y|x) for ``xs`` ``(B, C·H·W)``, shape ``(B,)``.

        For the ``"paper"`` guide q(y|x) = E_q(z|x)[q(y|x, z)] is estimated with ``num_samples`` draws.
        """
        images = self._network_input(xs)
        if self.guide_type == "m2":
            return self.encoder_y(images).argmax(-1)
        loc, scale = self.encoder_z(images)
        z = loc + scale * torch.randn((num_samples,) + loc.shape, dtype=loc.dtype, device=loc.device)
        probs = self.encoder_y(images, z).softmax(-1).mean(0)
        return probs.argmax(-1)

    @torch.no_grad()
    def style(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> torch.Tensor:
        """The style's posterior mean for ``xs`` ``(B, C·H·W)``, shape ``(B, Z)``.

        The ``"m2"`` guide's q(z|x, y) takes the one-hot labels ``ys`` ``(B, C)``, by default the classes
        :meth:`classify` predicts; the ``"paper"`` guide's q(z|x) does not depend on ``ys``.
        """
        images = self._network_input(xs)
        if self.guide_type == "paper":
            return self.encoder_z(images)[0]
        if ys is None:
            ys = nn.functional.one_hot(self.classify(xs), self.num_classes).to(xs.dtype)
        return self.encoder_z(images, ys)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Mean image E[x | y, z] in [0, 1], shape ``(..., C·H·W)``, for styles ``z`` ``(..., Z)`` and
        one-hot labels ``ys`` ``(..., C)`` (batch dimensions broadcast)."""
        return torch.sigmoid(self._logits(z, ys))

    @torch.no_grad()
    def reconstruct(self, xs: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction of ``xs`` ``(B, C·H·W)`` through the predicted class and the style's
        posterior mean, shape ``(B, C·H·W)``."""
        ys = nn.functional.one_hot(self.classify(xs), self.num_classes).to(xs.dtype)
        return self.decode(self.style(xs, ys), ys)
