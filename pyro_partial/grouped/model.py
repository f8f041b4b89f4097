r"""A group-structured VAE (Multi-Level VAE, Bouchacourt et al. 2018) as a Pyro model and guide.

A batch holds ``G`` groups padded to ``K`` members: data ``x`` of shape ``(G, K, *event)`` and an optional
bool ``mask`` of shape ``(G, K)`` (true at present members; fixed-size groups need no mask). Padded
members must hold values in the likelihood's support (e.g. a copy of a present member, as
:func:`pyro_partial.data.grouped_sampler.pad_groups` produces); they are excluded from every term.

Plates (``max_plate_nesting = 2``)::

    plate "groups"  (dim -2, size G)   content C_G ~ N(0, I),      site shape (G, 1, D_c)
      plate "members" (dim -1, size K) style   S_i ~ N(0, I),      site shape (G, K, D_s)
                                       x_i ~ p(x_i | C_G, S_i),    batch shape (G, K)

The guide uses the same plates: :math:`q(C_G|X_G)` accumulates the members' evidence
(:func:`~pyro_partial.grouped.evidence.accumulate_gaussian_evidence`) and :math:`q(S_i|x_i)` is per member.
Both model and guide run under ``poutine.scale(1 / G)``, so any Pyro ELBO estimates the paper's objective
normalised per group (the group ELBO of Bouchacourt et al. 2018, averaged over the batch's groups)

.. math::

    \text{loss} = -\frac{1}{G} \sum_G \Big[ \sum_i \mathbb{E}_q \log p(x_i | C_G, S_i)
        - \sum_i \mathrm{KL}(q(S_i|x_i) \,\|\, p(S_i)) - \mathrm{KL}(q(C_G|X_G) \,\|\, p(C_G)) \Big],

with the content KL counted once per group and the sums over :math:`i` running over present members only.
When ``x`` is one process's share of a batch of ``num_groups`` groups (several processes, each taking some
of the batch's groups), model and guide take ``num_groups`` and scale by ``1 / num_groups`` instead, so that
the shares' losses sum to the whole batch's.

Model and guide are the ``PyroModule`` objects :class:`GroupedVAEModel` and :class:`GroupedVAEGuide`, the
submodules ``model`` and ``guide`` of :class:`GroupedVAE` (the experiment contract of
:mod:`pyro_partial.training.experiment`): ``SVI(vae.model, vae.guide, ...)`` and ``elbo(vae.model,
vae.guide)`` both train it.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from pyro_partial.grouped.evidence import METHODS, accumulate_gaussian_evidence


def _check_batch(x: torch.Tensor, mask: torch.Tensor | None, num_groups: int | None = None) -> float:
    """Check a batch's arguments; return the scale ``1 / num_groups`` (``1 / G`` by default)."""
    if x.dim() < 2:
        raise ValueError(f"x must have shape (G, K, *event) for G groups of K members, got {tuple(x.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != x.shape[:2]):
        raise ValueError(
            f"mask must be a bool tensor of shape (G, K) = {tuple(x.shape[:2])}, "
            f"got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    if num_groups is None:
        return 1.0 / x.shape[0]
    if num_groups < x.shape[0]:
        raise ValueError(f"num_groups must be at least the G = {x.shape[0]} groups of x, got {num_groups}")
    return 1.0 / num_groups


class GroupedVAEModel(PyroModule):
    r"""The model :math:`p(C_G) \prod_i p(S_i)\, p(x_i | C_G, S_i)`.

    :param decoder: maps ``content`` ``(..., G, 1, content_dim)`` and ``style`` ``(..., G, K, style_dim)``
        to a distribution with batch shape ``(..., G, K)`` and event shape ``event``.
    """

    def __init__(self, decoder: nn.Module, content_dim: int, style_dim: int):
        super().__init__()
        self.decoder, self.content_dim, self.style_dim = decoder, content_dim, style_dim

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, num_groups: int | None = None
    ) -> None:
        """Observe ``x`` ``(G, K, *event)``; ``mask`` bool ``(G, K)`` true at present members; ``num_groups``
        the groups of the whole batch when ``x`` is a share of it (default ``G``; see the module docstring).
        """
        scale = _check_batch(x, mask, num_groups)
        member_mask = True if mask is None else mask
        zeros = x.new_zeros(())
        with pyro.plate("groups", x.shape[0], dim=-2), poutine.scale(scale=scale):
            content = pyro.sample("content", dist.Normal(zeros, 1.0).expand([self.content_dim]).to_event(1))
            with pyro.plate("members", x.shape[1], dim=-1), poutine.mask(mask=member_mask):
                style = pyro.sample("style", dist.Normal(zeros, 1.0).expand([self.style_dim]).to_event(1))
                pyro.sample("x", self.decoder(content, style), obs=x)


class GroupedVAEGuide(PyroModule):
    r"""The guide :math:`q(C_G|X_G) \prod_i q(S_i|x_i)`.

    :param encoder: maps ``x`` ``(G, K, *event)`` to ``(content_loc, content_scale, style_loc,
        style_scale)`` of shapes ``(G, K, content_dim)`` and ``(G, K, style_dim)``: each member's own
        Gaussian evidence about the content and its style posterior.
    :param evidence: ``"product"`` (ML-VAE) or ``"average"`` (GVAE) accumulation of the content evidence.
    """

    def __init__(self, encoder: nn.Module, content_dim: int, style_dim: int, evidence: str = "product"):
        super().__init__()
        if evidence not in METHODS:
            raise ValueError(f"evidence must be one of {METHODS}, got {evidence!r}")
        self.encoder, self.content_dim, self.style_dim, self.evidence = (
            encoder,
            content_dim,
            style_dim,
            evidence,
        )

    def encode(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The guide's parameters for a batch ``x`` ``(G, K, *event)`` with ``mask`` ``(G, K)``.

        :returns: ``(content_loc, content_scale)`` of the group posterior, each ``(G, content_dim)``, and
            ``(style_loc, style_scale)`` of the members' posteriors, each ``(G, K, style_dim)``.
        """
        _check_batch(x, mask)
        content_loc, content_scale, style_loc, style_scale = self.encoder(x)
        expected = {"content": (*x.shape[:2], self.content_dim), "style": (*x.shape[:2], self.style_dim)}
        for name, loc, scale in (("content", content_loc, content_scale), ("style", style_loc, style_scale)):
            if loc.shape != expected[name] or scale.shape != expected[name]:
                raise ValueError(
                    f"encoder must return {name} loc and scale of shape {expected[name]}, "
                    f"got {tuple(loc.shape)} and {tuple(scale.shape)}"
                )
        group_loc, group_scale = accumulate_gaussian_evidence(content_loc, content_scale, mask, self.evidence)
        return group_loc, group_scale, style_loc, style_scale

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, num_groups: int | None = None
    ) -> None:
        """Same arguments as :meth:`GroupedVAEModel.forward`."""
        scale = _check_batch(x, mask, num_groups)
        group_loc, group_scale, style_loc, style_scale = self.encode(x, mask)
        member_mask = True if mask is None else mask
        with pyro.plate("groups", x.shape[0], dim=-2), poutine.scale(scale=scale):
            content_posterior = dist.Normal(group_loc.unsqueeze(-2), group_scale.unsqueeze(-2))
            pyro.sample("content", content_posterior.to_event(1))
            with pyro.plate("members", x.shape[1], dim=-1), poutine.mask(mask=member_mask):
                pyro.sample("style", dist.Normal(style_loc, style_scale).to_event(1))


class GroupedVAE(PyroModule):
    """A Multi-Level VAE with a content latent per group and a style latent per member:
    :class:`GroupedVAEModel` as ``model`` and :class:`GroupedVAEGuide` as ``guide``.

    :param encoder: the guide's network (see :class:`GroupedVAEGuide`).
    :param decoder: the model's network (see :class:`GroupedVAEModel`).
    :param content_dim: size :math:`D_c` of the content latent.
    :param style_dim: size :math:`D_s` of the style latent.
    :param evidence: ``"product"`` (ML-VAE) or ``"average"`` (GVAE) accumulation of the content evidence.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        content_dim: int,
        style_dim: int,
        evidence: str = "product",
    ):
        super().__init__()
        self.content_dim, self.style_dim, self.evidence = content_dim, style_dim, evidence
        self.guide = GroupedVAEGuide(encoder, content_dim, style_dim, evidence)
        self.model = GroupedVAEModel(decoder, content_dim, style_dim)
