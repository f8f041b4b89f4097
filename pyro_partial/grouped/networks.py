"""MLP encoder and Bernoulli decoder for :class:`~pyro_partial.grouped.GroupedVAE` on flat data (MNIST)."""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn

from pyro_partial.grouped.model import GroupedVAE
from pyro_partial.nn import MLP, ConcatMLP, GaussianHead


class MLPGroupEncoder(nn.Module):
    """One MLP per member giving its content evidence and its style posterior.

    Maps ``x`` ``(..., x_dim)`` to ``(content_loc, content_scale, style_loc, style_scale)``, shapes
    ``(..., content_dim)`` and ``(..., style_dim)``.
    """

    def __init__(self, x_dim: int, content_dim: int, style_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.content_dim = content_dim
        self.head = GaussianHead(MLP(x_dim, hidden, 2 * (content_dim + style_dim), activation="tanh"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(content_loc, content_scale, style_loc, style_scale)`` of members ``x`` ``(..., x_dim)``."""
        loc, scale = self.head(x)
        return (
            loc[..., : self.content_dim],
            scale[..., : self.content_dim],
            loc[..., self.content_dim :],
            scale[..., self.content_dim :],
        )


class BernoulliMLPDecoder(nn.Module):
    """``p(x | c, s) = Bernoulli(logits = MLP([c, s]))`` with event shape ``(x_dim,)``.

    Content ``(..., G, 1, content_dim)`` broadcasts against style ``(..., G, K, style_dim)``; the result has
    batch shape ``(..., G, K)``. Sample validation is off so grey-level targets in ``[0, 1]`` are allowed.
    """

    def __init__(self, x_dim: int, content_dim: int, style_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.body = ConcatMLP(content_dim + style_dim, hidden, x_dim, activation="tanh")

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> dist.Distribution:
        """The Bernoulli distribution of the members given ``content`` and ``style`` (shapes above)."""
        return dist.Bernoulli(logits=self.body(content, style), validate_args=False).to_event(1)


def mlp_grouped_vae(
    x_dim: int,
    content_dim: int = 10,
    style_dim: int = 10,
    hidden: Sequence[int] = (500,),
    evidence: str = "product",
) -> GroupedVAE:
    """A :class:`GroupedVAE` with ``x_dim``-``hidden`` tanh MLP encoder and Bernoulli decoder.

    The defaults (784-500 MLPs, 10-D content and style) are the MNIST setup of the paper's
    reimplementations; ``evidence`` is ``"product"`` (ML-VAE) or ``"average"`` (GVAE).
    """
    return GroupedVAE(
        MLPGroupEncoder(x_dim, content_dim, style_dim, hidden),
        BernoulliMLPDecoder(x_dim, content_dim, style_dim, hidden),
        content_dim,
        style_dim,
        evidence,
    )
