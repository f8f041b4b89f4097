"""Auxiliary deep generative model (ADGM; Maaløe et al. 2016) with a partially labelled digit.

The M2 model of :mod:`pyro_partial_models.ss_vae` extended by an auxiliary variable a that the model
generates last, from everything else, and the guide draws first, from the image alone::

    model:  z ~ N(0, I_Z),  y ~ Cat(1/C),  x ~ Bernoulli(decoder(y, z)),  a ~ N(μ_p(x, y, z), σ_p(x, y, z))
    guide:  a ~ N(μ_q(x), σ_q(x)),  y ~ Cat(classifier(a, x)),  z ~ N(μ(a, x, y), σ(a, x, y))

Marginally p(x, y, z) is M2's, so the model is unchanged; what the auxiliary variable buys is a richer
guide: q(y|x) = E_q(a|x)[q(y|a, x)] and q(z|x, y) = E_q(a|x)[q(z|a, x, y)] are mixtures, not single
softmax and Gaussian layers (Maaløe et al., eq. 7). The label site is
``pyro.sample("y", ..., obs=ys, obs_mask=mask)`` in model and guide, so
:class:`~pyro_partial.infer.SemiSupervisedELBO` gives, with one importance sample, the labelled bound of
Maaløe et al.'s eq. 9 plus the classification term:

    L_sup(x, y) = E_q(a|x) q(z|a,x,y)[log p(x|y, z) p(y) p(z) p(a|x, y, z) − log q(a|x) q(z|a, x, y)]
                  + α log q(y|a, x),

and on unlabelled rows the bound of their eq. 10 with y summed out exactly. The networks are MLPs, and the
model sees flattened images ``(B, C·H·W)`` as :class:`~pyro_partial_models.ss_vae.SSVAE` does;
:class:`ADGM` offers the same ``classify``, ``style``, ``decode`` and ``reconstruct`` methods, so the
semi-supervised image experiments and their figures take either (``--model adgm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_partial.nn import ConcatMLP, GaussianHead
from pyro_partial_models.ss_vae import Images, SSVAEModel, placeholder_labels


class ADGMModel(SSVAEModel):
    """p(x, y, z, a) = p(z) p(y) p(x | y, z) p(a | x, y, z): M2's model and the auxiliary generated last.

    :param decoder: ``(z (..., Z), y (..., C)) ->`` Bernoulli logits of the flattened image.
    :param auxiliary: ``(x (..., D), y (..., C), z (..., Z)) ->`` the auxiliary's ``(loc, scale)``, each
        ``(..., A)``.
    """

    def __init__(
        self, decoder: nn.Module, auxiliary: nn.Module, images: Images, num_classes: int, z_dim: int
    ):
        super().__init__(decoder, images, num_classes, z_dim)
        self.auxiliary = auxiliary

    def generate(
        self, xs: torch.Tensor, ys: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """M2's sites z, y and x, then a, inside the batch's ``"data"`` plate; returns ``(y, z)``."""
        y, z = super().generate(xs, ys, mask)
        pyro.sample("a", dist.Normal(*self.auxiliary(xs, y, z)).to_event(1))
        return y, z


class ADGMGuide(PyroModule):
    """q(a, y, z | x) = q(a | x) q(y | a, x) q(z | a, x, y).

    :param encoder_a: ``x (..., D) ->`` the auxiliary's ``(loc, scale)``, each ``(..., A)``.
    :param encoder_y: ``(a (..., A), x (..., D)) ->`` the classifier's logits ``(..., C)``.
    :param encoder_z: ``(a, x, y (..., C)) ->`` the style's ``(loc, scale)``, each ``(..., Z)``.
    """

    def __init__(
        self,
        encoder_a: nn.Module,
        encoder_y: nn.Module,
        encoder_z: nn.Module,
        images: Images,
        num_classes: int,
    ):
        super().__init__()
        self.encoder_a, self.encoder_y, self.encoder_z = encoder_a, encoder_y, encoder_z
        self.images, self.num_classes = images, num_classes

    def forward(self, xs: torch.Tensor, ys: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """Same arguments as :meth:`ADGMModel.forward`."""
        self.images.check(xs)
        ys, mask = placeholder_labels(xs, ys, mask, self.num_classes)
        with pyro.plate("data", xs.shape[0]):
            a = pyro.sample("a", dist.Normal(*self.encoder_a(xs)).to_event(1))
            y_dist = dist.OneHotCategorical(logits=self.encoder_y(a, xs))
            y = pyro.sample("y", y_dist, obs=ys, obs_mask=mask)
            pyro.sample("z", dist.Normal(*self.encoder_z(a, xs, y)).to_event(1))

    @torch.no_grad()
    def class_probs(
        self, xs: torch.Tensor, num_samples: int = 10, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """q(y|x) = E_q(a|x)[q(y|a, x)] ``(..., C)`` for flattened images ``xs`` ``(..., C·H·W)``, estimated
        with ``num_samples`` draws of a, taken from ``generator`` (on ``xs``'s device) or, by default, from
        torch's global random state."""
        loc, scale = self.encoder_a(xs)
        noise = torch.randn(
            (num_samples,) + loc.shape, dtype=loc.dtype, device=loc.device, generator=generator
        )
        a = loc + scale * noise
        return self.encoder_y(a, xs).softmax(-1).mean(0)


class ADGM(PyroModule):
    """The auxiliary deep generative model: :class:`ADGMModel` as ``model`` and :class:`ADGMGuide` as
    ``guide``.

    :param image_shape: ``(C, H, W)``; data are flattened images in [0, 1] of shape ``(B, C·H·W)``.
    :param num_classes: C, the number of values of y.
    :param z_dim: style dimension Z.
    :param aux_dim: auxiliary dimension A (Maaløe et al. use 100).
    :param hidden: hidden layer sizes of every network.
    :param activation: activation of every network (see :class:`~pyro_partial.nn.MLP`).
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        z_dim: int = 10,
        aux_dim: int = 100,
        hidden: Sequence[int] = (500,),
        activation: str = "softplus",
    ):
        super().__init__()
        if aux_dim < 1:
            raise ValueError(f"aux_dim must be a positive dimension, got {aux_dim}")
        images = Images(image_shape, "mlp")
        self.image_shape, self.x_dim = images.shape, images.size
        self.num_classes, self.z_dim, self.aux_dim = num_classes, z_dim, aux_dim
        self.hidden, self.activation = tuple(hidden), activation

        def mlp(in_features: int, out_features: int) -> ConcatMLP:
            return ConcatMLP(in_features, hidden, out_features, activation)

        decoder = mlp(z_dim + num_classes, self.x_dim)
        auxiliary = GaussianHead(mlp(self.x_dim + num_classes + z_dim, 2 * aux_dim))
        encoder_a = GaussianHead(mlp(self.x_dim, 2 * aux_dim))
        encoder_y = mlp(aux_dim + self.x_dim, num_classes)
        encoder_z = GaussianHead(mlp(aux_dim + self.x_dim + num_classes, 2 * z_dim))
        self.model = ADGMModel(decoder, auxiliary, images, num_classes, z_dim)
        self.guide = ADGMGuide(encoder_a, encoder_y, encoder_z, images, num_classes)

    @torch.no_grad()
    def classify(
        self, xs: torch.Tensor, num_samples: int = 10, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Most probable class under q(y|x) for ``xs`` ``(B, C·H·W)``, shape ``(B,)`` (see
        :meth:`ADGMGuide.class_probs`)."""
        return self.guide.class_probs(xs, num_samples, generator).argmax(-1)

    @torch.no_grad()
    def style(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of q(z | a, x, y) at a = the mean of q(a|x), shape ``(B, Z)``, for ``xs`` ``(B, C·H·W)``
        and one-hot labels ``ys`` ``(B, C)`` (by default the classes :meth:`classify` predicts)."""
        if ys is None:
            ys = nn.functional.one_hot(self.classify(xs), self.num_classes).to(xs.dtype)
        a = self.guide.encoder_a(xs)[0]
        return self.guide.encoder_z(a, xs, ys)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Mean image E[x | y, z] in [0, 1], shape ``(..., C·H·W)``, for styles ``z`` ``(..., Z)`` and
        one-hot labels ``ys`` ``(..., C)`` (batch dimensions broadcast)."""
        return torch.sigmoid(self.model.decoder(z, ys))

    @torch.no_grad()
    def reconstruct(self, xs: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction of ``xs`` ``(B, C·H·W)`` through the predicted class and :meth:`style`, shape
        ``(B, C·H·W)``."""
        ys = nn.functional.one_hot(self.classify(xs), self.num_classes).to(xs.dtype)
        return self.decode(self.style(xs, ys), ys)
