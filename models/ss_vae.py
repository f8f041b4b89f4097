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
mixes labelled and unlabelled rows; train with :class:`pyro_partial.infer.SemiSupervisedELBO`. Model and
guide are the ``PyroModule`` objects :class:`SSVAEModel` and :class:`SSVAEGuide`, the submodules ``model`` and
``guide`` of :class:`SSVAE` (the experiment contract of :mod:`pyro_partial.training.experiment`).
Labels are one-hot (``OneHotCategorical``), so the site can be enumerated or relaxed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_partial.nn import ConcatMLP, ConvDecoder, ConvEncoder, GaussianHead

GUIDES = ("m2", "paper")
NETWORKS = ("mlp", "conv")


class Images:
    """The image layout shared by model and guide: ``(C, H, W)``, flattened to ``C·H·W`` features."""

    def __init__(self, image_shape: Sequence[int], network: str):
        self.shape = tuple(int(s) for s in image_shape)
        if len(self.shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {tuple(image_shape)}")
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        self.network = network
        self.size = math.prod(self.shape)

    def check(self, xs: torch.Tensor) -> None:
        """Raise a :class:`ValueError` unless ``xs`` are flattened images ``(batch, C·H·W)``."""
        if xs.dim() != 2 or xs.shape[-1] != self.size:
            raise ValueError(
                f"xs must be flattened images of shape (batch, {self.size}) for image_shape {self.shape}, "
                f"got {tuple(xs.shape)}"
            )

    def network_input(self, xs: torch.Tensor) -> torch.Tensor:
        """Flattened images ``(..., C·H·W)`` as the encoders take them (unflattened for convolutions)."""
        return xs if self.network == "mlp" else xs.unflatten(-1, self.shape)

    def flat_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """A decoder's output as logits of the flattened image, ``(..., C·H·W)``."""
        return logits if self.network == "mlp" else logits.flatten(-3)


def placeholder_labels(
    xs: torch.Tensor, ys: torch.Tensor | None, mask: torch.Tensor | None, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ys, mask)`` with the defaults: no labels is a fully unlabelled batch (a valid one-hot placeholder,
    masked out everywhere); labels without a mask are a fully labelled batch."""
    batch = xs.shape[0]
    if ys is None:
        ys = xs.new_zeros(batch, num_classes)
        ys[:, 0] = 1
        mask = torch.zeros(batch, dtype=torch.bool, device=xs.device)
    elif mask is None:
        mask = torch.ones(batch, dtype=torch.bool, device=xs.device)
    return ys, mask


class SSVAEModel(PyroModule):
    """p(x, y, z) = p(z) p(y) p(x | y, z), a Bernoulli decoder on flattened images.

    :param decoder: ``(z (..., Z), y (..., C)) ->`` Bernoulli logits of the image.
    """

    def __init__(self, decoder: nn.Module, images: Images, num_classes: int, z_dim: int):
        super().__init__()
        self.decoder, self.images, self.num_classes, self.z_dim = decoder, images, num_classes, z_dim

    def logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of the flattened image, ``(..., C·H·W)``, for styles ``(..., Z)`` and one-hot
        labels ``(..., C)``."""
        return self.images.flat_logits(self.decoder(z, y))

    def forward(self, xs: torch.Tensor, ys: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """``xs`` ``(B, C·H·W)``, ``ys`` one-hot ``(B, C)``, ``mask`` bool ``(B,)`` true where ``ys`` is a
        label."""
        self.images.check(xs)
        ys, mask = placeholder_labels(xs, ys, mask, self.num_classes)
        with pyro.plate("data", xs.shape[0]):
            self.generate(xs, ys, mask)

    def generate(
        self, xs: torch.Tensor, ys: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The sites z, y and x of a batch, inside its ``"data"`` plate; returns the values of ``(y, z)``,
        ``(..., B, C)`` and ``(..., B, Z)`` (``...``: enumeration dimensions)."""
        z = pyro.sample("z", dist.Normal(xs.new_zeros(()), 1.0).expand([self.z_dim]).to_event(1))
        prior = dist.OneHotCategorical(logits=xs.new_zeros(self.num_classes))
        y = pyro.sample("y", prior, obs=ys, obs_mask=mask)
        likelihood = dist.Bernoulli(logits=self.logits(z, y), validate_args=False)
        pyro.sample("x", likelihood.to_event(1), obs=xs)
        return y, z


class SSVAEGuide(PyroModule):
    """q(y, z | x) as q(y|x) q(z|x, y) (``"m2"``) or q(z|x) q(y|x, z) (``"paper"``).

    :param encoder_y: the classifier's logits ``(..., C)`` from the images (and, ``"paper"``, the style).
    :param encoder_z: the style's ``(loc, scale)`` from the images (and, ``"m2"``, the one-hot label).
    """

    def __init__(
        self, encoder_y: nn.Module, encoder_z: nn.Module, images: Images, num_classes: int, guide_type: str
    ):
        super().__init__()
        if guide_type not in GUIDES:
            raise ValueError(f"guide_type must be one of {GUIDES}, got {guide_type!r}")
        self.encoder_y, self.encoder_z, self.images = encoder_y, encoder_z, images
        self.num_classes, self.guide_type = num_classes, guide_type

    def forward(self, xs: torch.Tensor, ys: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """Same arguments as :meth:`SSVAEModel.forward`."""
        self.images.check(xs)
        ys, mask = placeholder_labels(xs, ys, mask, self.num_classes)
        images = self.images.network_input(xs)
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
    def class_probs(
        self, xs: torch.Tensor, num_samples: int = 10, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """q(y|x) ``(..., C)`` for flattened images ``xs`` ``(..., C·H·W)``; for the ``"paper"`` guide
        q(y|x) = E_q(z|x)[q(y|x, z)] is estimated with ``num_samples`` draws of z, taken from
        ``generator`` (on ``xs``'s device) or, by default, from torch's global random state."""
        images = self.images.network_input(xs)
        if self.guide_type == "m2":
            return self.encoder_y(images).softmax(-1)
        loc, scale = self.encoder_z(images)
        noise = torch.randn(
            (num_samples,) + loc.shape, dtype=loc.dtype, device=loc.device, generator=generator
        )
        z = loc + scale * noise
        return self.encoder_y(images, z).softmax(-1).mean(0)


class SSVAE(PyroModule):
    """Semi-supervised VAE with MLP or convolutional networks: :class:`SSVAEModel` as ``model`` and
    :class:`SSVAEGuide` as ``guide``.

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
        images = Images(image_shape, network)
        self.image_shape, self.x_dim = images.shape, images.size
        self.num_classes, self.z_dim, self.guide_type, self.network = num_classes, z_dim, guide_type, network
        self.hidden, self.activation, self.channels = tuple(hidden), activation, tuple(channels)

        def encoder(out_features: int, extra_features: int = 0) -> nn.Module:
            if network == "mlp":
                return ConcatMLP(self.x_dim + extra_features, hidden, out_features, activation)
            return ConvEncoder(
                self.image_shape, out_features, hidden, extra_features=extra_features, channels=channels,
                activation=activation,
            )  # fmt: skip

        if network == "mlp":
            decoder = ConcatMLP(z_dim + num_classes, hidden, self.x_dim, activation)
        else:
            decoder = ConvDecoder(
                z_dim + num_classes, self.image_shape, hidden, channels=channels[::-1], activation=activation
            )
        if guide_type == "m2":
            encoder_y = encoder(num_classes)
            encoder_z = GaussianHead(encoder(2 * z_dim, extra_features=num_classes))
        else:
            encoder_z = GaussianHead(encoder(2 * z_dim))
            encoder_y = encoder(num_classes, extra_features=z_dim)
        self.model = SSVAEModel(decoder, images, num_classes, z_dim)
        self.guide = SSVAEGuide(encoder_y, encoder_z, images, num_classes, guide_type)

    @torch.no_grad()
    def classify(
        self, xs: torch.Tensor, num_samples: int = 10, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Most probable class under q(y|x) for ``xs`` ``(B, C·H·W)``, shape ``(B,)`` (see
        :meth:`SSVAEGuide.class_probs`)."""
        return self.guide.class_probs(xs, num_samples, generator).argmax(-1)

    @torch.no_grad()
    def style(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> torch.Tensor:
        """The style's posterior mean for ``xs`` ``(B, C·H·W)``, shape ``(B, Z)``.

        The ``"m2"`` guide's q(z|x, y) takes the one-hot labels ``ys`` ``(B, C)``, by default the classes
        :meth:`classify` predicts; the ``"paper"`` guide's q(z|x) does not depend on ``ys``.
        """
        images = self.guide.images.network_input(xs)
        if self.guide_type == "paper":
            return self.guide.encoder_z(images)[0]
        if ys is None:
            ys = nn.functional.one_hot(self.classify(xs), self.num_classes).to(xs.dtype)
        return self.guide.encoder_z(images, ys)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Mean image E[x | y, z] in [0, 1], shape ``(..., C·H·W)``, for styles ``z`` ``(..., Z)`` and
        one-hot labels ``ys`` ``(..., C)`` (batch dimensions broadcast)."""
        return torch.sigmoid(self.model.logits(z, ys))

    @torch.no_grad()
    def reconstruct(self, xs: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction of ``xs`` ``(B, C·H·W)`` through the predicted class and the style's
        posterior mean, shape ``(B, C·H·W)``."""
        ys = nn.functional.one_hot(self.classify(xs), self.num_classes).to(xs.dtype)
        return self.decode(self.style(xs, ys), ys)
