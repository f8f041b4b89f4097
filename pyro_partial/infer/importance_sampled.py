r"""The importance-sampled supervised term of Siddharth et al. (2017), eqs. 5-6, from a traced pass.

For a labelled row :math:`(x, y)` and :math:`S` draws :math:`z_s` of the guide's other latent variables
(:math:`y` clamped to its label), with :math:`w_s = q(y, z_s|x) / q(z_s|x)` the guide's density of the
label and :math:`r_s = q(z_s|x)`, the estimator ``"weighted"`` is

.. math::

    \hat{\mathcal{L}}_\text{sup} = \sum_s \frac{w_s}{\sum_{s'} w_{s'}} \log \frac{p(x, y, z_s)}{w_s r_s}
        + \log \frac{1}{S} \sum_s w_s + \sum_k \alpha_k \log \frac{1}{S} \sum_s w_{k,s}

and the estimator ``"importance_weighted"`` is

.. math::

    \hat{\mathcal{L}}^\text{IW}_\text{sup} = \log \frac{1}{S} \sum_s \frac{p(x, y, z_s)}{r_s}
        + \sum_k \alpha_k \log \frac{1}{S} \sum_s w_{k,s},

where :math:`w_{k,s}` is the guide's density of the label of site :math:`k` alone
(:math:`w_s = \prod_k w_{k,s}`): each site's classifier term :math:`\alpha_k \log q(y_k|x)` is estimated
from the same :math:`S` draws. With one labelled site, :math:`\alpha \log \frac{1}{S} \sum_s w_s` is the
paper's. Here the traces hold :math:`S` draws along ``sample_dim`` (and particles
along the dim to its left); every density is summed to one value per particle, sample and row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.trace_struct import Trace

from pyro_partial.infer.partial_sites import PartialSite, is_row_site
from pyro_partial.infer.pyro_internals import UNOBSERVED_SUFFIX, is_deterministic
from pyro_partial.infer.site_messengers import base_name, is_clamped

ESTIMATORS = ("weighted", "importance_weighted")


@dataclass(frozen=True)
class RowLayout:
    """Where a pass's draws lie: ``sample_dim`` (S draws), ``particle_dim`` (left of it), the row dims
    (of ``row_frames``), ``ndim`` batch dims in all, and the rows' ``scale``."""

    sample_dim: int
    particle_dim: int
    ndim: int
    row_frames: frozenset
    scale: float | torch.Tensor

    def keep(self) -> set[int]:
        """The batch dims a density keeps (the sample, particle and row dims); it is summed over the
        others."""
        return {self.sample_dim, self.particle_dim} | {dim for _, dim in self.row_frames}


@dataclass(frozen=True)
class RowDensities:
    r"""Per particle, sample and row: :math:`\log p(x, y, z_s)`, :math:`\log w_{k,s}` per labelled site
    :math:`k`, :math:`\log r_s`, and the guide's non-reparameterised draws' log-densities summed over the
    samples (for REINFORCE)."""

    log_p: torch.Tensor
    log_w: dict[str, torch.Tensor]
    log_r: torch.Tensor
    scores: list[torch.Tensor]

    @property
    def log_w_total(self) -> torch.Tensor:
        r""":math:`\log w_s = \sum_k \log w_{k,s}`, the guide's log-density of all the row's labels (0 without
        any)."""
        return sum(self.log_w.values(), torch.zeros(()))


def row_densities(
    model_trace: Trace,
    guide_trace: Trace,
    partials: Mapping[str, PartialSite],
    rows: torch.Tensor,
    layout: RowLayout,
) -> RowDensities:
    """Sum each site's log-density to one value per particle, sample and row (masked to the pass's rows
    by the sites' masks, and a label's guide density to the ``rows`` where it is labelled; sites outside
    the rows' plates count only as score functions)."""

    def row_log_prob(site, mask) -> torch.Tensor:
        log_prob = site["fn"].log_prob(site["value"])
        log_prob = scale_and_mask(log_prob, _relative_scale(site["scale"], layout.scale), mask)
        return _sum_to_rows(log_prob, layout, site["name"])

    log_p = log_r = torch.zeros(())
    log_w: dict[str, torch.Tensor] = {}
    for site in model_trace.nodes.values():
        if site["type"] == "sample" and not is_deterministic(site) and is_row_site(site, layout.row_frames):
            log_p = log_p + row_log_prob(site, site["mask"])
    scores = []
    for site in guide_trace.nodes.values():
        if site["type"] != "sample" or site["is_observed"] or is_deterministic(site):
            continue
        if is_clamped(site):  # the label's guide density, on the labelled entries of the pass's rows
            base = base_name(site["name"], UNOBSERVED_SUFFIX)
            log_w[base] = row_log_prob(site, partials[base].mask & rows)
            continue
        in_rows = is_row_site(site, layout.row_frames)
        log_prob = row_log_prob(site, site["mask"])
        if in_rows:
            log_r = log_r + log_prob
        if not getattr(site["fn"], "has_rsample", False):
            scores.append(log_prob.sum(layout.sample_dim, keepdim=True))
    return RowDensities(log_p, log_w, log_r, scores)


def row_estimate(
    densities: RowDensities, alpha: Mapping[str, float], estimator: str, sample_dim: int
) -> torch.Tensor:
    r""":math:`\hat{\mathcal{L}}_\text{sup}` (or :math:`\hat{\mathcal{L}}^\text{IW}_\text{sup}`) per particle
    and row, the samples reduced along ``sample_dim``."""
    log_p, log_w, log_r = torch.broadcast_tensors(densities.log_p, densities.log_w_total, densities.log_r)
    num_samples = log_p.shape[sample_dim]

    def log_mean(t: torch.Tensor) -> torch.Tensor:
        t = t.expand(log_p.shape)
        return torch.logsumexp(t, sample_dim, keepdim=True) - math.log(num_samples)

    classifier = sum((alpha[name] * log_mean(w) for name, w in densities.log_w.items()), torch.zeros(()))
    if estimator == "weighted":
        normalised = torch.softmax(log_w, sample_dim)
        elbo = (normalised * (log_p - log_w - log_r)).sum(sample_dim, keepdim=True)
        return elbo + log_mean(log_w) + classifier
    return log_mean(log_p - log_r) + classifier


def surrogate(term: torch.Tensor, scores: list[torch.Tensor]) -> torch.Tensor:
    r"""Sum over rows of ``term``, plus the REINFORCE terms
    :math:`\mathbb{E}[\text{term}\, \nabla \sum_s \log q(z_s)]` of non-reparameterised draws: the value is the
    estimate, the gradient an unbiased gradient estimate."""
    total = term.sum()
    for score in scores:
        total = total + (term.detach() * (score - score.detach())).sum()
    return total


def _relative_scale(scale, row_scale):
    """A site's scale relative to the scale applied to its row's whole supervised term."""
    if isinstance(scale, torch.Tensor) or isinstance(row_scale, torch.Tensor):
        return scale / row_scale
    return 1.0 if scale == row_scale else scale / row_scale


def _sum_to_rows(log_prob: torch.Tensor, layout: RowLayout, name: str) -> torch.Tensor:
    """Sum a log-density over every batch dim except the particle, sample and row dims."""
    ndim = layout.ndim
    if log_prob.dim() > ndim:
        raise NotImplementedError(
            f"site {name!r} has log_prob shape {tuple(log_prob.shape)} with more than {ndim} batch dims "
            "in the importance-sampled supervised term; is it enumerated? Enumeration on labelled rows "
            "needs num_importance_samples=1"
        )
    log_prob = log_prob.reshape((1,) * (ndim - log_prob.dim()) + tuple(log_prob.shape))
    keep = layout.keep()
    dims = [d for d in range(-ndim, 0) if d not in keep and log_prob.shape[d] > 1]
    return log_prob.sum(dims, keepdim=True) if dims else log_prob


__all__ = ["ESTIMATORS", "RowDensities", "RowLayout", "row_densities", "row_estimate", "surrogate"]
