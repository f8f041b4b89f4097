"""Semi-supervised VAE for MNIST-like data: digit y (partially labelled) and style z.

Generative model (Kingma et al. 2014, Siddharth et al. 2017, §4.1)::

    z ~ N(0, I_Z),   y ~ Cat(1/C),   x ~ Bernoulli(decoder(y, z))

Two guide factorisations are provided:

- ``"m2"``:    q(y|x) q(z|x, y)   (Kingma et al.'s M2; importance weights constant),
- ``"paper"``: q(z|x) q(y|x, z)   (Siddharth et al.; log q(y|x) estimated by importance sampling).

The label site is ``pyro.sample("y", ..., obs=ys, obs_mask=mask)`` in both model and guide, so a batch
mixes labelled and unlabelled rows; train with :class:`pyro_partial.infer.SemiSupervisedELBO`.
Labels are one-hot (``OneHotCategorical``), so the site can be enumerated or relaxed.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_partial.nn import MLP, ConcatMLP, GaussianHead

GUIDES = ("m2", "paper")


class SSVAE(nn.Module):
    """MLP semi-supervised VAE.

    :param x_dim: data dimension (784 for flattened MNIST); data in [0, 1], shape ``(B, x_dim)``.
    :param num_classes: C, the number of values of y.
    :param z_dim: style dimension (10 in Siddharth et al., 50 in Pyro's SS-VAE tutorial).
    :param hidden: hidden layer sizes of every network.
    :param guide_type: ``"m2"`` or ``"paper"`` (see module docstring).
    """

    def __init__(
        self,
        x_dim: int = 784,
        num_classes: int = 10,
        z_dim: int = 10,
        hidden: Sequence[int] = (500,),
        guide_type: str = "m2",
        activation: str = "softplus",
    ):
        super().__init__()
        if guide_type not in GUIDES:
            raise ValueError(f"guide_type must be one of {GUIDES}, got {guide_type!r}")
        self.x_dim, self.num_classes, self.z_dim, self.guide_type = x_dim, num_classes, z_dim, guide_type
        self.decoder = ConcatMLP(z_dim + num_classes, hidden, x_dim, activation)
        if guide_type == "m2":
            self.encoder_y = MLP(x_dim, hidden, num_classes, activation)
            self.encoder_z = GaussianHead(ConcatMLP(x_dim + num_classes, hidden, 2 * z_dim, activation))
        else:
            self.encoder_z = GaussianHead(MLP(x_dim, hidden, 2 * z_dim, activation))
            self.encoder_y = ConcatMLP(x_dim + z_dim, hidden, num_classes, activation)

    def _inputs(self, xs: torch.Tensor, ys: torch.Tensor | None, mask: torch.Tensor | None):
        if xs.dim() != 2 or xs.shape[-1] != self.x_dim:
            raise ValueError(f"xs must have shape (batch, {self.x_dim}), got {tuple(xs.shape)}")
        batch = xs.shape[0]
        if ys is None:  # fully unlabelled batch: a valid placeholder, masked out everywhere
            ys = torch.zeros(batch, self.num_classes, dtype=xs.dtype, device=xs.device)
            ys[:, 0] = 1
            mask = torch.zeros(batch, dtype=torch.bool, device=xs.device)
        elif mask is None:
            mask = torch.ones(batch, dtype=torch.bool, device=xs.device)
        return ys, mask

    def model(self, xs: torch.Tensor, ys: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """p(x, y, z); ``ys`` one-hot ``(B, C)``, ``mask`` bool ``(B,)`` true where ``ys`` is a label."""
        ys, mask = self._inputs(xs, ys, mask)
        pyro.module("ss_vae", self)
        with pyro.plate("data", xs.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([self.z_dim]).to_event(1))
            prior = dist.OneHotCategorical(logits=xs.new_zeros(self.num_classes))
            y = pyro.sample("y", prior, obs=ys, obs_mask=mask)
            pyro.sample(
                "x", dist.Bernoulli(logits=self.decoder(z, y), validate_args=False).to_event(1), obs=xs
            )

    def guide(self, xs: torch.Tensor, ys: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """q(y, z|x) in the chosen factorisation; same arguments as :meth:`model`."""
        ys, mask = self._inputs(xs, ys, mask)
        pyro.module("ss_vae", self)
        with pyro.plate("data", xs.shape[0]):
            if self.guide_type == "m2":
                y = pyro.sample("y", dist.OneHotCategorical(logits=self.encoder_y(xs)), obs=ys, obs_mask=mask)
                pyro.sample("z", dist.Normal(*self.encoder_z(xs, y)).to_event(1))
            else:
                z = pyro.sample("z", dist.Normal(*self.encoder_z(xs)).to_event(1))
                pyro.sample("y", dist.OneHotCategorical(logits=self.encoder_y(xs, z)), obs=ys, obs_mask=mask)

    @torch.no_grad()
    def classify(self, xs: torch.Tensor, num_samples: int = 10) -> torch.Tensor:
        """Most probable class under q(y|x), shape ``(B,)``.

        For the ``"paper"`` guide q(y|x) = E_q(z|x)[q(y|x, z)] is estimated with ``num_samples`` draws.
        """
        if self.guide_type == "m2":
            return self.encoder_y(xs).argmax(-1)
        loc, scale = self.encoder_z(xs)
        z = loc + scale * torch.randn((num_samples,) + loc.shape, dtype=loc.dtype, device=loc.device)
        probs = self.encoder_y(xs, z).softmax(-1).mean(0)
        return probs.argmax(-1)
