r"""Accumulating the members' Gaussian evidence about a shared group latent.

In the Multi-Level VAE (Bouchacourt et al. 2018) every member :math:`x_i` of a group gives a diagonal
Gaussian :math:`q(C|x_i) = \mathcal{N}(\mu_i, \mathrm{diag}(\sigma_i^2))` for the group's content :math:`C`,
and the group posterior is their normalised product

.. math::

    \sigma_G^{-2} = \sum_i \sigma_i^{-2}, \qquad \mu_G = \sigma_G^2 \sum_i \sigma_i^{-2} \mu_i.

The Group VAE of Hosoya (2019) averages instead (:math:`\mu_G = \frac{1}{K} \sum_i \mu_i`,
:math:`\sigma_G^2 = \frac{1}{K} \sum_i \sigma_i^2` over the :math:`K` present members), which keeps the
posterior's width independent of the group size.
"""

from __future__ import annotations

import torch

METHODS = ("product", "average")


def _check_inputs(loc: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Validate shapes and values; return a bool mask of shape ``loc.shape[:-1]`` (all true when absent)."""
    if loc.dim() < 2:
        raise ValueError(
            f"loc must have shape (..., K, D) with K members and D features, got {tuple(loc.shape)}"
        )
    if scale.shape != loc.shape:
        raise ValueError(f"scale must have the shape of loc {tuple(loc.shape)}, got {tuple(scale.shape)}")
    if mask is None:
        mask = torch.ones(loc.shape[:-1], dtype=torch.bool, device=loc.device)
    elif mask.dtype != torch.bool or mask.shape != loc.shape[:-1]:
        raise ValueError(
            f"mask must be a bool tensor of shape (..., K) = {tuple(loc.shape[:-1])}, "
            f"got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    if not mask.any(-1).all():
        raise ValueError("mask leaves a group without members: every group needs at least one present member")
    if not (scale > 0).logical_or(~mask.unsqueeze(-1)).all():
        raise ValueError("scale must be positive at every present member")
    return mask


def accumulate_gaussian_evidence(
    loc: torch.Tensor,
    scale: torch.Tensor,
    mask: torch.Tensor | None = None,
    method: str = "product",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Combine the members' diagonal Gaussians :math:`\mathcal{N}(\mathrm{loc}, \mathrm{scale}^2)` into one
    Gaussian per group.

    :param loc: member means, shape ``(..., K, D)`` for ``K`` (padded) members and ``D`` features.
    :param scale: member standard deviations, positive at present members, shape ``(..., K, D)``.
    :param mask: optional bool tensor ``(..., K)``, true at present members. Absent members are excluded
        exactly: their values (even ``nan``) reach neither the result nor its gradient.
    :param method: ``"product"`` for the ML-VAE product of Gaussians, ``"average"`` for the GVAE average.
    :returns: ``(loc_G, scale_G)``, each of shape ``(..., D)``.

    The product is computed in log-precision space,
    :math:`\log \sigma_G^{-2} = \operatorname{logsumexp}_i(-2 \log \sigma_i)` and
    :math:`\mu_G = \sum_i \operatorname{softmax}_i(-2 \log \sigma_i)\, \mu_i`, so it neither overflows for
    large groups nor for very confident members.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    mask = _check_inputs(loc, scale, mask)
    present = mask.unsqueeze(-1)
    loc = torch.where(present, loc, torch.zeros((), dtype=loc.dtype, device=loc.device))
    scale = torch.where(present, scale, torch.ones((), dtype=scale.dtype, device=scale.device))
    if method == "product":
        log_precision = (-2.0 * scale.log()).masked_fill(~present, -float("inf"))
        total_log_precision = log_precision.logsumexp(-2)
        weights = (log_precision - total_log_precision.unsqueeze(-2)).exp()
        return (weights * loc).sum(-2), (-0.5 * total_log_precision).exp()
    count = mask.sum(-1, keepdim=True).to(loc.dtype)
    variance = scale.square().masked_fill(~present, 0.0)
    return loc.sum(-2) / count, (variance.sum(-2) / count).sqrt()
