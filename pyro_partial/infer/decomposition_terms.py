r"""Mathieu et al.'s :math:`\beta` and :math:`\alpha\, D(q(z), p(z))` for objectives that trace one
mini-batch in several passes.

:func:`~pyro_partial.infer.decomposition_penalty` works on one (model, guide) trace pair holding one
unweighted draw of :math:`z` per data row. An objective such as
:class:`~pyro_partial.infer.SemiSupervisedELBO` traces a mini-batch in several passes, and represents a row
by several weighted draws of :math:`z`: on unlabelled rows the partially observed discrete site :math:`y` is
enumerated, so :math:`z` has one draw per value of :math:`y`; on labelled rows :math:`z` has :math:`S`
importance samples. :class:`Decomposition` collects every pass (:meth:`Decomposition.collect`) and adds, per
particle (:meth:`Decomposition.penalty`),

.. math::

    -(\beta - 1) \sum_n \sum_i w_{ni}\, \mathrm{KL}(q_{ni} \,\|\, p_{ni})
        - \alpha N\, \mathrm{MMD}^2(q(z), p(z)),

where :math:`i` runs over the draws :math:`z_{ni}` of row :math:`n` with weights :math:`w_{ni}`
(:math:`\sum_i w_{ni} = 1`), :math:`q_{ni}` and :math:`p_{ni}` are the guide's and the model's
distributions of the site at that draw, and :math:`q(z) = \frac{1}{N} \sum_n \sum_i w_{ni}\, q_{ni}(z)` is
the aggregate posterior of the whole mini-batch, every pass together. :math:`N` counts the rows (with their
subsampling scale), as in :func:`~pyro_partial.infer.decomposition_penalty`.

The weights of a row's draws:

- over the values of the guide's parallel-enumerated sites, their probabilities under the guide,
  e.g. :math:`q(y|x)` for the M2 guide :math:`q(y|x)\, q(z|x, y)`:
  :math:`q(z|x) = \sum_y q(y|x)\, q(z|x, y)` is then used exactly, the KL is its enumerated expectation
  :math:`\sum_y q(y|x)\, \mathrm{KL}(q(z|x, y) \,\|\, p(z|y))` (as in the ELBO), and both terms are
  differentiable in the classifier :math:`q(y|x)`;
- times the ``weights`` given to :meth:`Decomposition.collect` (e.g. the self-normalised importance
  weights of labelled rows, under which :math:`S` draws of :math:`q(z|x)` represent :math:`q(z|x, y)`).

Adding :math:`-(\beta - 1)\, \mathrm{KL}` leaves the pass's own estimate of :math:`-\mathrm{KL}` in place,
so :math:`\beta = 1` and :math:`\alpha = 0` change nothing; the added KL is analytic when
:func:`torch.distributions.kl_divergence` knows the pair, else the one-sample
:math:`\log q(z) - \log p(z)`. :math:`D` is the MMD of :func:`~pyro_partial.infer.divergences.mmd_imq`
(weighted by :math:`w_{ni}`, and over prior draws weighted alike); the inclusive KL is not available here,
since it would need every pass's encoders as one mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.trace_struct import Trace
from torch.distributions import Distribution

from pyro_partial.infer.decomposition import PARTICLE_PLATES, check_decomposition_options
from pyro_partial.infer.divergences import MMD_SCALES, mmd_imq
from pyro_partial.infer.latent_draws import SiteDraws, kl_or_estimate, latent_sites, site_draws, sum_to


@dataclass
class DecompositionPart:
    r"""What :meth:`Decomposition.collect` keeps of one pass: the :math:`\beta` term (a scalar tensor)
    and, when :math:`\alpha \ne 0`, the draws of each latent site."""

    kl: torch.Tensor
    draws: dict[str, SiteDraws] = field(default_factory=dict)


class Decomposition:
    r""":math:`\beta` and :math:`\alpha\, D(q(z), p(z))` on latent sites of a multi-pass objective (see the
    module docstring).

    Pass it to an objective that supports it, e.g.
    ``SemiSupervisedELBO(alpha=50.0, decomposition=Decomposition(beta=4.0, alpha=100.0))``, where its
    ``alpha`` is Mathieu et al.'s weight of :math:`D` (the objective's own ``alpha`` is Siddharth et al.'s
    classifier weight).

    Requirements as for :func:`~pyro_partial.infer.decomposition_penalty`: each site is latent in the
    model, reparameterised in the guide and (for :math:`\alpha \ne 0`) inside one data plate besides the
    replicate and sample plates; its model distribution may vary along the guide's enumeration dims (a
    conditional prior :math:`p(z|y)`) but not along dims the guide lacks (model-side enumeration). The
    gradient is exact for guides whose sites upstream of the named sites are reparameterised, enumerated or
    fixed to labels.

    :param beta: :math:`\beta \ge 0`, the weight of the sites' :math:`\mathrm{KL}(q \,\|\, p)`.
    :param alpha: :math:`\alpha \ge 0`, the weight of :math:`D(q(z), p(z))` per data point.
    :param latent_sites: the sites :math:`z` that carry :math:`\beta` and :math:`\alpha`.
    :param num_prior_samples: prior draws per batch element for :math:`D`.
    :param mmd_scales: kernel bandwidths of the MMD.
    :param per_dim: per-dimension MMD kernel (paper) or one kernel on whole vectors.
    """

    def __init__(
        self,
        beta: float = 1.0,
        alpha: float = 0.0,
        latent_sites: Sequence[str] = ("z",),
        *,
        num_prior_samples: int = 1,
        mmd_scales: Sequence[float] = MMD_SCALES,
        per_dim: bool = True,
    ):
        check_decomposition_options(beta, alpha, "mmd", num_prior_samples)
        if isinstance(latent_sites, str) or not latent_sites:
            raise ValueError(f"latent_sites must be a non-empty sequence of site names, got {latent_sites!r}")
        self.beta = float(beta)
        self.alpha = float(alpha)
        self.latent_sites = tuple(latent_sites)
        self.num_prior_samples = num_prior_samples
        self.mmd_scales = tuple(mmd_scales)
        self.per_dim = per_dim

    def __repr__(self) -> str:
        return f"Decomposition(beta={self.beta:g}, alpha={self.alpha:g}, latent_sites={self.latent_sites})"

    def collect(
        self,
        model_trace: Trace,
        guide_trace: Trace,
        weights: torch.Tensor | None = None,
        kl_factor: float = 1.0,
        *,
        replicate_plates: Sequence[str] = PARTICLE_PLATES,
        sample_plates: Sequence[str] = (),
    ) -> DecompositionPart:
        r"""The terms of one pass, from its model trace (replayed against the guide's) and guide trace.

        :param weights: extra weights of the draws, broadcastable to the sites' batch shapes; they must
            sum to one over the draws of each row (``sample_plates`` and enumeration dims) and may be zero
            on rows the pass leaves out.
        :param kl_factor: a factor of the :math:`\beta` term (e.g. :math:`\gamma`, the weight of a
            labelled row's ELBO).
        :param replicate_plates: plates whose draws are independent replicates of the batch (particles):
            D is estimated per replicate.
        :param sample_plates: plates of several draws per row (importance samples).
        """
        branch = _enumerated_probs(guide_trace)
        kl = torch.zeros(())
        draws = {}
        for name in self.latent_sites:
            model_site, guide_site = latent_sites(model_trace, guide_trace, name)
            p, q, z = model_site["fn"], guide_site["fn"], guide_site["value"]
            batch_shape = z.shape[: z.dim() - len(q.event_shape)]
            _check_prior_shape(name, p, batch_shape)
            w = torch.ones(batch_shape, dtype=z.dtype, device=z.device)
            for factor in (branch, weights):
                if factor is not None:
                    w = sum_to(w * factor, batch_shape)
            if self.beta != 1:
                terms = scale_and_mask(w * kl_or_estimate(q, p, z), model_site["scale"], model_site["mask"])
                kl = kl - kl_factor * (self.beta - 1.0) * terms.sum()
            if self.alpha != 0:
                draws[name] = site_draws(model_site, z, w, replicate_plates, sample_plates)
        return DecompositionPart(kl, draws)

    def penalty(self, parts: Sequence[DecompositionPart]) -> torch.Tensor:
        r"""The terms of one particle's passes: their :math:`\beta` terms and
        :math:`-\alpha \sum_r N_r\, \mathrm{MMD}^2_r`, the MMD of each replicate :math:`r` of the batch
        pooling the draws of every pass (a scalar to add to the objective)."""
        total = torch.zeros(())
        for part in parts:
            total = total + part.kl
        if self.alpha == 0 or not parts:
            return total
        for name in self.latent_sites:
            draws = [part.draws[name] for part in parts]
            replicates = {d.z.shape[0] for d in draws}
            if len(replicates) > 1:
                raise ValueError(
                    f"site {name!r}: the passes hold different numbers of replicates {replicates}"
                )
            z = torch.cat([d.z for d in draws], -2)
            weights = torch.cat([d.weights for d in draws], -1)
            if not bool(((weights > 0).sum(-1) >= 2).all()):
                raise ValueError(
                    f"site {name!r}: D(q(z), p(z)) needs at least two draws with positive weight in every "
                    "replicate of the batch"
                )
            zeta, prior_weights = zip(*(d.prior_draws(self.num_prior_samples) for d in draws), strict=True)
            mmd = mmd_imq(
                z, torch.cat(zeta, -2), self.mmd_scales, self.per_dim, weights, torch.cat(prior_weights, -1)
            )
            counts = sum(d.counts for d in draws)
            total = total - self.alpha * (counts * mmd).sum()
        return total


def _enumerated_probs(guide_trace: Trace) -> torch.Tensor | None:
    """The guide's probability of each combination of its parallel-enumerated values (their product)."""
    log_q = None
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and not site["is_observed"] and "_enumerate_dim" in site["infer"]:
            log_prob = site["fn"].log_prob(site["value"])
            log_q = log_prob if log_q is None else log_q + log_prob
    return None if log_q is None else log_q.exp()


def _check_prior_shape(name: str, prior: Distribution, batch_shape: torch.Size) -> None:
    try:
        fits = torch.broadcast_shapes(prior.batch_shape, batch_shape) == batch_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise NotImplementedError(
            f"site {name!r}: the model's distribution has batch shape {tuple(prior.batch_shape)}, which "
            f"does not broadcast to the guide's {tuple(batch_shape)} (a model-side enumerated site?); the "
            "decomposition terms need every batch dim of the prior in the guide"
        )


__all__ = ["Decomposition", "DecompositionPart"]
