r"""The decomposition objective of Mathieu et al. (2019), "Disentangling Disentanglement in VAEs", eq. 7.

Per data point :math:`x` (to maximise)

.. math::

    \mathcal{L}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)] - \beta\, \mathrm{KL}(q(z|x) \,\|\, p(z))
        - \alpha\, D(q(z), p(z)),

with :math:`q(z) = \frac{1}{N} \sum_n q(z|x_n)` the aggregate posterior of the mini-batch and :math:`D` the
MMD or the inclusive KL of :mod:`pyro_partial.infer.divergences`. :math:`\beta = 1, \alpha = 0` is the
ELBO; :math:`\beta` controls the overlap of the encodings, :math:`\alpha` makes :math:`q(z)` take the
prior's structure (sparsity, clusters).

Normalisation. :math:`D` is a batch-level quantity; the batch objective is the sum of
:math:`\mathcal{L}(x_n)` over the batch, so the divergence enters as :math:`-\alpha N D`, :math:`N` the
number of rows it was estimated from. Under a subsampling plate (or ``poutine.scale``) :math:`N` becomes
:math:`\sum_n \mathrm{scale}_n`, the number of data points the batch stands for, so that :math:`\alpha` has
the same per-data-point meaning as :math:`\beta`. This is the paper's reference code's convention too: its
batch objective sums :math:`\log p(x_n|z_n) - \beta\, \mathrm{KL}_n - \alpha D` over the rows, so
:math:`\alpha` multiplies :math:`N D` there as here, and its settings (e.g. :math:`\alpha \in \{0, 100\}`)
carry over unchanged.

:func:`decomposition_penalty` works on an already-computed (model, guide) trace pair and returns the
correction to add to an ELBO that counts the usual :math:`\log p(z) - \log q(z|x)` terms of the named
sites, so that any trace-based objective (e.g. :class:`~pyro_partial.infer.SemiSupervisedELBO`) can
carry :math:`\beta` and :math:`\alpha`;
:class:`DecompositionELBO` is Pyro's :class:`~pyro.infer.Trace_ELBO` with that correction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO
from pyro.infer.util import torch_item
from pyro.poutine.trace_struct import Trace

from pyro_partial.infer.divergences import MMD_SCALES, inclusive_kl, mmd_imq
from pyro_partial.infer.latent_draws import kl_or_estimate, latent_sites, plate_data_dim, site_draws
from pyro_partial.infer.validation import check_choice, check_count, check_real

DIVERGENCES = ("mmd", "inclusive_kl")
PARTICLE_PLATES = ("num_particles_vectorized",)
"""Plates whose draws are independent replicates of the whole batch (Pyro's vectorised particles)."""


def decomposition_penalty(
    model_trace: Trace,
    guide_trace: Trace,
    sites: Sequence[str],
    beta: float = 1.0,
    alpha: float = 0.0,
    divergence: str = "mmd",
    *,
    num_prior_samples: int = 1,
    mmd_scales: Sequence[float] = MMD_SCALES,
    per_dim: bool = True,
    particle_plates: Sequence[str] = PARTICLE_PLATES,
) -> torch.Tensor:
    r"""The term that turns an ELBO into Mathieu et al.'s objective on the latent ``sites``.

    For each site :math:`z` the returned tensor is

    .. math::

        -\beta \sum_n \mathrm{KL}(q(z|x_n) \,\|\, p(z)) - \alpha N D(q(z), p(z))
            - \sum_n [\log p(z_n) - \log q(z_n|x_n)],

    so that added to an ELBO estimate that counts the site's :math:`\log p(z_n) - \log q(z_n|x_n)` at the
    traced values (as Pyro's ``Trace_ELBO`` does) it replaces that single-sample term by
    :math:`-\beta\, \mathrm{KL} - \alpha N D`, exactly (the subtracted terms are the same tensors). The KL
    is analytic when :func:`torch.distributions.kl_divergence` knows the pair, otherwise the one-sample
    estimate :math:`\log q(z_n|x_n) - \log p(z_n)`. Every term carries the model site's ``scale`` and
    ``mask``.

    :math:`D` is estimated per replicate of the batch from the guide's draws, one :math:`z` per row of the
    data plate (masked rows excluded), against ``num_prior_samples`` draws per row of the model site's
    distribution (its prior, possibly conditional on other variables), which are reparameterised when the
    prior allows.

    Requirements: each site is latent in the model, reparameterised in the guide, and (for
    :math:`\alpha \ne 0`) lies
    inside exactly one data plate besides the ``particle_plates``; every other batch dimension has size 1
    (a site enumerated in parallel, or depending on an enumerated site, is not supported). The gradient
    is exact for guides without non-reparameterised sites upstream of the named sites: a score-function
    term of such a site still sees :math:`\log p(z) - \log q(z|x)` as its learning signal.

    :param model_trace: the model's trace, replayed against ``guide_trace``.
    :param guide_trace: the guide's trace.
    :param sites: names of the latent sites :math:`z` that carry :math:`\beta` and :math:`\alpha`.
    :param beta: :math:`\beta \ge 0`, the KL weight.
    :param alpha: :math:`\alpha \ge 0`, the divergence weight (per data point).
    :param divergence: ``"mmd"`` (:func:`~pyro_partial.infer.divergences.mmd_imq`) or ``"inclusive_kl"``
        (:func:`~pyro_partial.infer.divergences.inclusive_kl`).
    :param num_prior_samples: prior draws per batch row for :math:`D`.
    :param mmd_scales: kernel bandwidths for the MMD.
    :param per_dim: the MMD's per-dimension kernel (paper) or one kernel on whole vectors.
    :param particle_plates: names of plates that replicate the whole batch (estimates are summed over
        them, as the ELBO's terms are).
    :returns: a scalar tensor (to add to the ELBO, i.e. subtract from the loss).
    """
    check_decomposition_options(beta, alpha, divergence, num_prior_samples)
    if isinstance(sites, str) or not sites:
        raise ValueError(f"sites must be a non-empty sequence of site names, got {sites!r}")
    penalty = torch.zeros(())
    for name in sites:
        model_site, guide_site = latent_sites(model_trace, guide_trace, name)
        p, q, z = model_site["fn"], guide_site["fn"], guide_site["value"]
        _check_not_enumerated(guide_site, z.shape[: z.dim() - len(q.event_shape)])
        scale, mask = model_site["scale"], model_site["mask"]
        log_ratio = (
            scale_and_mask(p.log_prob(z), scale, mask).sum()
            - scale_and_mask(q.log_prob(z), guide_site["scale"], guide_site["mask"]).sum()
        )
        penalty = penalty - log_ratio
        if beta != 0:
            penalty = penalty - beta * scale_and_mask(kl_or_estimate(q, p, z), scale, mask).sum()
        if alpha != 0:
            divergences, counts = _batch_divergence(
                model_site, guide_site, divergence, num_prior_samples, mmd_scales, per_dim, particle_plates
            )
            penalty = penalty - alpha * (counts * divergences).sum()
    return penalty


class DecompositionELBO(Trace_ELBO):
    r"""Mathieu et al.'s (2019) objective for SVI,
    :math:`\mathbb{E}[\log p(x|z)] - \beta\, \mathrm{KL}(q(z|x) \,\|\, p(z)) - \alpha\, D(q(z), p(z))`.

    ``SVI(model, guide, optim, loss=DecompositionELBO(beta=..., alpha=..., divergence="mmd"))``. The
    model samples each named latent site inside a data plate, e.g.
    ``pyro.sample("z", prior)`` under ``pyro.plate("data", N)``, with ``prior`` any distribution of
    :mod:`pyro_partial.distributions`; the guide samples it from a reparameterised encoder. All other
    sites count as in :class:`~pyro.infer.Trace_ELBO`. See :func:`decomposition_penalty` for the exact
    estimator and its requirements, and the module docstring for the :math:`\alpha` normalisation.

    :param beta: :math:`\beta \ge 0`.
    :param alpha: :math:`\alpha \ge 0`.
    :param divergence: ``"mmd"`` or ``"inclusive_kl"``.
    :param latent_sites: the sites that carry :math:`\beta` and :math:`\alpha`.
    :param num_prior_samples: prior draws per batch row for :math:`D`.
    :param mmd_scales: kernel bandwidths of the MMD.
    :param per_dim: per-dimension MMD kernel (paper) or one kernel on whole vectors.
    :param kwargs: passed to :class:`~pyro.infer.Trace_ELBO` (``num_particles``, ``vectorize_particles``,
        ``max_plate_nesting``, ...).
    """

    def __init__(
        self,
        beta: float = 1.0,
        alpha: float = 0.0,
        divergence: str = "mmd",
        latent_sites: Sequence[str] = ("z",),
        *,
        num_prior_samples: int = 1,
        mmd_scales: Sequence[float] = MMD_SCALES,
        per_dim: bool = True,
        **kwargs,
    ):
        check_decomposition_options(beta, alpha, divergence, num_prior_samples)
        if isinstance(latent_sites, str) or not latent_sites:
            raise ValueError(f"latent_sites must be a non-empty sequence of site names, got {latent_sites!r}")
        super().__init__(**kwargs)
        self.beta = float(beta)
        self.alpha = float(alpha)
        self.divergence = divergence
        self.latent_sites = tuple(latent_sites)
        self.num_prior_samples = num_prior_samples
        self.mmd_scales = tuple(mmd_scales)
        self.per_dim = per_dim

    def penalty(self, model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
        """:func:`decomposition_penalty` with this objective's settings."""
        return decomposition_penalty(
            model_trace,
            guide_trace,
            self.latent_sites,
            self.beta,
            self.alpha,
            self.divergence,
            num_prior_samples=self.num_prior_samples,
            mmd_scales=self.mmd_scales,
            per_dim=self.per_dim,
        )

    def _differentiable_loss_particle(self, model_trace: Trace, guide_trace: Trace):
        for name, site in guide_trace.nodes.items():
            if name in self.latent_sites or site["type"] != "sample" or site["is_observed"]:
                continue  # the latent sites are checked by decomposition_penalty
            if not site["fn"].has_rsample:
                raise NotImplementedError(
                    f"DecompositionELBO needs reparameterised guide sites, but {name!r} "
                    f"({type(site['fn']).__name__}) is not: its score-function term would ignore β and α"
                )
        loss, surrogate_loss = super()._differentiable_loss_particle(model_trace, guide_trace)
        penalty = self.penalty(model_trace, guide_trace)
        return loss - torch_item(penalty), surrogate_loss - penalty

    def loss(self, model, guide, *args, **kwargs) -> float:
        """An estimate of the negative objective (one call of :meth:`differentiable_loss`, no gradients)."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))


def check_decomposition_options(beta: float, alpha: float, divergence: str, num_prior_samples: int) -> None:
    r"""Errors naming the argument, the value and the valid range for :math:`\beta`, :math:`\alpha`, the
    divergence and the number of prior samples."""
    check_real("beta", beta)
    check_real("alpha", alpha)
    check_choice("divergence", divergence, DIVERGENCES)
    check_count("num_prior_samples", num_prior_samples)


def _batch_divergence(
    model_site: dict,
    guide_site: dict,
    divergence: str,
    num_prior_samples: int,
    mmd_scales: Sequence[float],
    per_dim: bool,
    particle_plates: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """D(q(z), p(z)) per replicate and the number of data points each estimate stands for.

    :returns: two tensors of the replicate shape (the batch shape without the data dimension).
    """
    name, p, q, z = model_site["name"], model_site["fn"], guide_site["fn"], guide_site["value"]
    batch_shape = z.shape[: z.dim() - len(q.event_shape)]
    data_dim = plate_data_dim(model_site, batch_shape, particle_plates)
    mask = model_site["mask"]
    weights = torch.ones(batch_shape, dtype=z.dtype, device=z.device)
    if isinstance(mask, torch.Tensor):
        weights = weights * mask.expand(batch_shape)
    elif mask is False:
        weights = torch.zeros_like(weights)
    counts = (weights * model_site["scale"]).sum(data_dim)
    if not bool((weights.sum(data_dim) > 0).all()):
        raise ValueError(f"site {name!r}: D(q(z), p(z)) needs unmasked rows in every replicate of the batch")
    if divergence == "inclusive_kl":
        posterior = q.expand(batch_shape) if q.batch_shape != batch_shape else q
        return inclusive_kl(p, posterior, num_prior_samples, weights, data_dim), counts
    draws = site_draws(model_site, z, torch.ones_like(weights), particle_plates, ())
    zeta, prior_weights = draws.prior_draws(num_prior_samples)
    return mmd_imq(draws.z, zeta, mmd_scales, per_dim, draws.weights, prior_weights), draws.counts


def _check_not_enumerated(site: dict, batch_shape: torch.Size) -> None:
    """Every batch dim of size > 1 must belong to a plate (not to enumeration)."""
    plates = {f.dim for f in site["cond_indep_stack"] if f.vectorized and f.dim is not None}
    for dim in range(-len(batch_shape), 0):
        if dim not in plates and batch_shape[dim] != 1:
            raise NotImplementedError(
                f"site {site['name']!r} has batch shape {tuple(batch_shape)} whose dim {dim} is no plate "
                "(enumerated, or depending on an enumerated site); the decomposition objective needs a site "
                "that is not enumerated"
            )


__all__ = [
    "DIVERGENCES",
    "PARTICLE_PLATES",
    "DecompositionELBO",
    "check_decomposition_options",
    "decomposition_penalty",
]
