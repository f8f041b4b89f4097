"""The draws of a latent site that Mathieu et al.'s (2019) terms are estimated from.

Shared by :func:`~pyro_partial.infer.decomposition_penalty` (one trace pair) and
:class:`~pyro_partial.infer.Decomposition` (several weighted passes): the checked (model, guide) sites,
the KL of a draw, the data plate, and the draws of :math:`z` and of its prior, flattened to ``(R, M, E)``
(R replicates of the batch, M draws) for :func:`~pyro_partial.infer.divergences.mmd_imq`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from pyro.poutine.trace_struct import Trace
from torch.distributions import Distribution, kl_divergence


def latent_sites(model_trace: Trace, guide_trace: Trace, name: str) -> tuple[dict, dict]:
    """The model's and the guide's site ``name``, checked to be latent and reparameterised in the guide."""
    for trace, role in ((model_trace, "model"), (guide_trace, "guide")):
        site = trace.nodes.get(name)
        if site is None or site["type"] != "sample":
            found = sorted(n for n, s in trace.nodes.items() if s["type"] == "sample")
            raise ValueError(f"latent site {name!r} not found in the {role}; its sample sites are {found}")
        if site["is_observed"]:
            raise ValueError(f"site {name!r} is observed in the {role}; β and α apply to latent sites only")
    guide_site = guide_trace.nodes[name]
    if not guide_site["fn"].has_rsample:
        raise ValueError(
            f"site {name!r}: the guide's {type(guide_site['fn']).__name__} has no reparameterised sampler; "
            "the decomposition objective needs a reparameterised encoder"
        )
    return model_trace.nodes[name], guide_site


def kl_or_estimate(q, p, z: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(q \,\|\, p)` per batch element: analytic if registered, else
    :math:`\log q(z) - \log p(z)` at the draw :math:`z`."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return q.log_prob(z) - p.log_prob(z)


def plate_data_dim(site: dict, batch_shape: torch.Size, particle_plates: Sequence[str]) -> int:
    """The negative batch dim of the site's single data plate (the others are particle plates)."""
    plates = {f.dim: f.name for f in site["cond_indep_stack"] if f.vectorized and f.dim is not None}
    data = [(dim, plate) for dim, plate in plates.items() if plate not in particle_plates]
    if not data:
        raise ValueError(
            f"site {site['name']!r} is outside a batch plate: the divergence D(q(z), p(z)) needs one z per "
            "data point, so sample it inside pyro.plate('data', N)"
        )
    if len(data) > 1:
        raise NotImplementedError(
            f"site {site['name']!r} lies in several data plates {sorted(p for _, p in data)}; the aggregate "
            "posterior is only supported over one plate"
        )
    data_dim = data[0][0]
    if data_dim < -len(batch_shape):
        raise ValueError(f"site {site['name']!r}: its value is not expanded over plate {data[0][1]!r}")
    return data_dim


@dataclass
class SiteDraws:
    """One pass's draws of a latent site, flattened to ``(R, M)`` (R replicates of the batch, M draws).

    :ivar z: the guide's draws, ``(R, M, E)`` (E = the event size).
    :ivar weights: their weights in :math:`q(z)`, ``(R, M)``: zero on masked rows, summing to one per row.
    :ivar counts: the number of data points the pass stands for, ``(R,)``.
    :ivar prior: the model's distribution of the site, expanded to the batch shape the prior draws take.
    :ivar prior_weights: the weights of those draws, of the prior's batch shape.
    :ivar replicate_dim: the (negative) batch dim of the replicates, or ``None`` when R = 1.
    """

    z: torch.Tensor
    weights: torch.Tensor
    counts: torch.Tensor
    prior: Distribution
    prior_weights: torch.Tensor
    replicate_dim: int | None

    def prior_draws(self, num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``num_samples`` draws of the prior per batch element, ``(R, num_samples · M', E)``, and their
        weights ``(R, num_samples · M')`` (reparameterised when the prior allows)."""
        prior = self.prior
        zeta = prior.rsample((num_samples,)) if prior.has_rsample else prior.sample((num_samples,))
        zeta = zeta.reshape(num_samples, *prior.batch_shape, -1)
        weights = self.prior_weights.expand(num_samples, *prior.batch_shape)
        return _flatten(zeta, self.replicate_dim, 1), _flatten(weights, self.replicate_dim, 0)


def site_draws(
    model_site: dict,
    z: torch.Tensor,
    weights: torch.Tensor,
    replicate_plates: Sequence[str],
    sample_plates: Sequence[str],
) -> SiteDraws:
    """The draws of a latent site :math:`z` with their ``weights`` (broadcast to its batch shape), flattened
    per replicate of the batch (the ``replicate_plates``); ``sample_plates`` hold several draws per row."""
    batch_shape = weights.shape
    mask = model_site["mask"]
    if isinstance(mask, torch.Tensor):
        weights = weights * mask.expand(batch_shape)
    elif mask is False:
        weights = torch.zeros_like(weights)
    data_dim = plate_data_dim(model_site, batch_shape, (*replicate_plates, *sample_plates))
    replicate_dim = _plate_dim(model_site, replicate_plates)
    # prior draws per row and replicate, and along the other dims (enumerated values, importance samples)
    # only where the prior's batch shape has them; each weighs as much as the draws of z it stands for
    rows = [
        size if dim in (data_dim, replicate_dim) else 1
        for dim, size in zip(range(-len(batch_shape), 0), batch_shape, strict=True)
    ]
    prior_shape = torch.broadcast_shapes(model_site["fn"].batch_shape, torch.Size(rows))
    counts = _flatten((weights * model_site["scale"]).expand(batch_shape), replicate_dim, 0).sum(-1)
    return SiteDraws(
        z=_flatten(z.reshape(*batch_shape, -1), replicate_dim, 1),
        weights=_flatten(weights, replicate_dim, 0),
        counts=counts,
        prior=model_site["fn"].expand(prior_shape),
        prior_weights=sum_to(weights, prior_shape),
        replicate_dim=replicate_dim,
    )


def sum_to(weights: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Broadcast to ``shape``, summing out (marginalising) the dims that ``shape`` lacks or has as 1."""
    return weights.expand(torch.broadcast_shapes(weights.shape, shape)).sum_to_size(shape)


def _plate_dim(site: dict, plates: Sequence[str]) -> int | None:
    dims = [f.dim for f in site["cond_indep_stack"] if f.vectorized and f.name in plates]
    if len(dims) > 1:
        raise NotImplementedError(f"site {site['name']!r} lies in several replicate plates of {plates}")
    return dims[0] if dims else None


def _flatten(tensor: torch.Tensor, replicate_dim: int | None, event_dims: int) -> torch.Tensor:
    """``(*batch, *event)`` to ``(R, M, *event)``: the replicate dim first, every other batch dim in M."""
    tensor = tensor.unsqueeze(0) if replicate_dim is None else tensor.movedim(replicate_dim - event_dims, 0)
    return tensor.reshape(tensor.shape[0], -1, *tensor.shape[tensor.dim() - event_dims :])


__all__ = ["SiteDraws", "kl_or_estimate", "latent_sites", "plate_data_dim", "site_draws", "sum_to"]
