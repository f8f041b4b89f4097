"""The semi-supervised objective of Siddharth et al. (2017) as a Pyro ELBO.

For data with unlabelled rows x^n and labelled rows (x^m, y^m) the objective (to maximise) is (paper, eq. 4)

    L = Σ_n L_unsup(x^n) + γ Σ_m L_sup(x^m, y^m),

with ``L_unsup(x) = E_q(y,z|x)[log p(x, y, z) − log q(y, z|x)]`` and, for any guide dependency structure,
the importance-sampled supervised term (paper, eqs. 5-6): draw z_s from the guide with y clamped to its
label, s = 1..S, weigh each draw by w_s = q(y, z_s|x) / q(z_s|x) (the guide's density of the label), and

    L̂_sup = Σ_s (w_s / Σ_s' w_s') log[p(x, y, z_s) / q(y, z_s|x)] + (1 + α) log((1/S) Σ_s w_s).

With a guide q(y|x) q(z|x, y) the weights are all q(y|x) and L̂_sup is Kingma et al.'s M2 term
``E_q(z|x,y)[log p(x, y, z) − log q(z|x, y)] + α log q(y|x)``. The importance-weighted variant is

    L̂^IW_sup = log((1/S) Σ_s p(x, y, z_s) / q(z_s|x)) + α log((1/S) Σ_s w_s).

Implementation: two passes over the mini-batch. The unsupervised pass is Pyro's
:class:`~pyro.infer.TraceEnum_ELBO` computation with every site inside the data plate masked to the
unlabelled rows, the partially observed discrete sites enumerated in parallel or relaxed. The supervised
pass re-runs guide and model with the partially observed sites clamped to their labels, vectorised over
S importance samples, and evaluates L̂_sup from per-row log-densities. Masking whole passes rather than
single sites keeps labelled rows from pushing score-function noise into q(y|x) (Pyro issue #3255).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer.traceenum_elbo import TraceEnum_ELBO, _check_tmc_elbo_constraint, _compute_dice_elbo
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.enum_messenger import EnumMessenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape, check_traceenum_requirements, warn_if_nan

from pyro_partial.infer.decomposition import PARTICLE_PLATES
from pyro_partial.infer.decomposition_terms import Decomposition, DecompositionPart
from pyro_partial.infer.partial_sites import (
    UNOBSERVED,
    ClampUnlabelledSites,
    ConfigureUnlabelledSites,
    PartialSite,
    ValidatePartialSites,
    check_finite_inputs,
    check_guide_has_unobserved,
    find_partial_sites,
    is_clamped,
    is_deterministic,
    is_row_site,
    labelled_rows,
    restrict_to_rows,
    split_rows,
)

ESTIMATORS = ("weighted", "importance_weighted")
PARTICLE_PLATE, IMPORTANCE_PLATE = "_pyro_partial_particles", "_pyro_partial_importance"
"""The supervised pass's plates of particles and of importance samples."""


class SemiSupervisedELBO(TraceEnum_ELBO):
    """Siddharth et al.'s (2017) semi-supervised objective for models with partially observed sites.

    The model marks each partially labelled variable with ``pyro.sample(name, d, obs=y, obs_mask=m)``,
    ``m`` a bool tensor true on labelled rows (rows with ``m`` false may hold any valid placeholder).
    The guide samples the same variable either with ``pyro.sample(name, q, obs=y, obs_mask=m)`` too
    (recommended: enumeration is then configured automatically), or directly as
    ``pyro.sample(name + "_unobserved", q)``. Any guide dependency structure works: q(y|x) q(z|x, y)
    (Kingma et al.'s M2) or q(z|x) q(y|x, z) (Siddharth et al.).

    Control flow may depend on the data: a partially observed site inside a ``poutine.mask`` that removes
    it from some rows (the steps of a loop of random length, :func:`pyro_partial.random_length.random_steps`,
    whose count is itself partially observed and enumerated on unlabelled rows) uses its labels on the rows
    where it is present; a row is labelled for all the partially observed sites present on it or for none.

    Use it wherever Pyro takes an ELBO: ``SVI(model, guide, optim, loss=SemiSupervisedELBO(...))`` or
    ``SemiSupervisedELBO(...)(model, guide)`` as a ``torch.nn.Module`` for plain PyTorch loops.

    :param alpha: α, the extra weight of the classifier term log q(y|x) on labelled rows.
    :param gamma: γ, the weight of each labelled row's supervised term relative to an unlabelled row's
        ELBO (see :func:`~pyro_partial.infer.supervision_weights` to derive γ and α from a supervision
        rate ρ).
    :param num_particles: number of independent estimates averaged (as in Pyro's ELBOs).
    :param num_importance_samples: S, the importance samples per labelled row in L̂_sup.
    :param estimator: ``"weighted"`` (the paper's L̂_sup) or ``"importance_weighted"`` (L̂^IW_sup).
    :param relax: ``{site name: temperature}`` for discrete sites to integrate on unlabelled rows by a
        Gumbel-softmax relaxation (``OneHotCategorical`` sites only) instead of exact enumeration.
    :param max_plate_nesting: as in :class:`~pyro.infer.TraceEnum_ELBO` (guessed when omitted).
    :param vectorize_particles: vectorise the ``num_particles`` estimates in one plate.
    :param strict_enumeration_warning: warn when no site is enumerated (off by default: fully labelled
        batches and relaxed sites legitimately enumerate nothing).
    :param split_on: name of the model argument holding the ``obs_mask`` (e.g. ``"mask"``). When given,
        every tensor argument whose first dimension is the batch size is split into its unlabelled and
        its labelled rows, and each pass runs on its own rows only: about twice as fast on mixed batches,
        since labelled rows no longer go through the enumerated branches. Calls that leave the argument
        out (or pass ``None``) are computed by masking. Requires batch-first
        per-row arguments and a guide that writes ``obs=..., obs_mask=...``. Without it, model and guide
        see the whole batch in both passes, and masking does the split (any argument layout works).
    :param decomposition: a :class:`~pyro_partial.infer.Decomposition` that gives latent sites (e.g. the
        style z) Mathieu et al.'s β on their KL and α·D(q(z), p(z)), q(z) the aggregate posterior of the
        whole mini-batch, labelled and unlabelled rows together. On unlabelled rows, with y enumerated, the
        draws of z under each value of y count with weight q(y|x) (so q(z|x) = Σ_y q(y|x) q(z|x, y)
        exactly, differentiable in the classifier); on labelled rows the S importance draws count with
        the normalised weights w_s (1/S each for a guide q(y|x) q(z|x, y)). A labelled row's β term is
        weighted by γ like the rest of its ELBO; D counts every row once. With ``gamma=0`` the labelled
        rows are not traced and D uses the unlabelled rows only. β = 1, α = 0 is the plain objective.
    """

    def __init__(
        self,
        alpha: float = 0.0,
        gamma: float = 1.0,
        *,
        num_particles: int = 1,
        num_importance_samples: int = 1,
        estimator: str = "weighted",
        relax: Mapping[str, float] | None = None,
        max_plate_nesting: float = float("inf"),
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = False,
        split_on: str | None = None,
        decomposition: Decomposition | None = None,
    ):
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {gamma}")
        if int(num_importance_samples) != num_importance_samples or num_importance_samples < 1:
            raise ValueError(
                f"num_importance_samples must be a positive integer, got {num_importance_samples}"
            )
        relax = dict(relax or {})
        for name, temperature in relax.items():
            if not temperature > 0:
                raise ValueError(f"relax[{name!r}]: the temperature must be positive, got {temperature}")
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.num_importance_samples = int(num_importance_samples)
        self.estimator = estimator
        self.relax = relax
        self.split_on = split_on
        self.decomposition = decomposition

    # ---------------------------------------------------------------- public API

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs) -> torch.Tensor:
        """The negative objective −(Σ_n L_unsup + γ Σ_m L̂_sup), differentiable (a DiCE surrogate whose
        value is the estimate and whose gradient is an unbiased gradient estimate)."""
        check_finite_inputs(model, args, kwargs)
        halves = None if self.split_on is None else split_rows(model, self.split_on, args, kwargs)
        if halves is not None:
            objective = self._split_objective(model, guide, *halves)
        else:
            objective = torch.zeros(())
            for model_trace, guide_trace, partials in self._unlabelled_traces(model, guide, args, kwargs):
                objective = objective + _compute_dice_elbo(model_trace, guide_trace)
                parts: list[DecompositionPart] = []
                self._collect(parts, model_trace, guide_trace)
                rows = labelled_rows(partials)
                if rows is not None and self.gamma != 0 and bool(rows.mask.any()):
                    objective = objective + self.gamma * self._supervised_objective(
                        model, guide, args, kwargs, partials, parts
                    )
                objective = objective + self._penalty(parts)
        loss = -objective / self.num_particles
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)

    def _split_objective(
        self, model: Callable, guide: Callable, unlabelled: tuple | None, labelled: tuple | None
    ) -> torch.Tensor:
        """Both passes, each on its own rows (``split_on``; ``(args, kwargs)`` or ``None`` per half)."""
        objective = torch.zeros(())
        parts: list[list[DecompositionPart]] = [
            [] for _ in range(1 if self.vectorize_particles else self.num_particles)
        ]
        if unlabelled is not None:
            traces = self._unlabelled_traces(model, guide, *unlabelled)
            for particle_parts, (model_trace, guide_trace, _) in zip(parts, traces, strict=True):
                objective = objective + _compute_dice_elbo(model_trace, guide_trace)
                self._collect(particle_parts, model_trace, guide_trace)
        if labelled is not None and self.gamma != 0:
            if self.max_plate_nesting == float("inf"):
                self._guess_max_plate_nesting(model, guide, *labelled)
            for particle_parts in parts:
                objective = objective + self.gamma * self._supervised_objective(
                    model, guide, *labelled, parts=particle_parts
                )
        for particle_parts in parts:
            objective = objective + self._penalty(particle_parts)
        return objective

    def _collect(
        self,
        parts: list[DecompositionPart],
        model_trace: Trace,
        guide_trace: Trace,
        weights: torch.Tensor | None = None,
        kl_factor: float = 1.0,
    ) -> None:
        """Append one pass's decomposition terms to ``parts`` (nothing without ``decomposition``)."""
        if self.decomposition is not None:
            parts.append(
                self.decomposition.collect(
                    model_trace,
                    guide_trace,
                    weights,
                    kl_factor,
                    replicate_plates=(*PARTICLE_PLATES, PARTICLE_PLATE),
                    sample_plates=(IMPORTANCE_PLATE,),
                )
            )

    def _penalty(self, parts: list[DecompositionPart]) -> torch.Tensor:
        """The decomposition terms of one particle's passes (zero without ``decomposition``)."""
        return torch.zeros(()) if self.decomposition is None else self.decomposition.penalty(parts)

    # ---------------------------------------------------------------- unsupervised pass

    def _unlabelled_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> Iterator[tuple[Trace, Trace, dict[str, PartialSite]]]:
        """Yield enumerated (model, guide) trace pairs whose row sites are masked to unlabelled rows."""
        model = ValidatePartialSites()(ConfigureUnlabelledSites(self.relax, enumerate_sites=False)(model))
        guide = ValidatePartialSites()(ConfigureUnlabelledSites(self.relax, enumerate_sites=True)(guide))
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        if self.vectorize_particles:
            guide = self._vectorized_num_particles(guide)
            model = self._vectorized_num_particles(model)
        guide = EnumMessenger(first_available_dim=-1 - self.max_plate_nesting)(guide)
        model = EnumMessenger()(model)  # allocates enumeration dims to the left of the guide's
        for _ in range(1 if self.vectorize_particles else self.num_particles):
            yield self._get_unlabelled_trace(model, guide, args, kwargs)

    def _get_unlabelled_trace(
        self, model, guide, args, kwargs
    ) -> tuple[Trace, Trace, dict[str, PartialSite]]:
        guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace), graph_type="flat").get_trace(
            *args, **kwargs
        )
        partials = find_partial_sites(model_trace)
        _check_relaxed_sites_exist(self.relax, partials)
        check_guide_has_unobserved(partials, guide_trace)
        _drop_observations(guide_trace)
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        rows = labelled_rows(partials)
        if rows is not None:
            for trace in (model_trace, guide_trace):
                for site in trace.nodes.values():
                    if site["type"] == "sample" and is_row_site(site, rows):
                        restrict_to_rows(site, ~rows.mask)
        model_trace.compute_log_prob()
        guide_trace.compute_score_parts()
        if is_validation_enabled():
            for trace in (model_trace, guide_trace):
                for site in trace.nodes.values():
                    if site["type"] == "sample":
                        check_site_shape(site, self.max_plate_nesting)
            check_traceenum_requirements(model_trace, guide_trace)
            _check_tmc_elbo_constraint(model_trace, guide_trace)
        guide_trace.pack_tensors()
        model_trace.pack_tensors(guide_trace.plate_to_symbol)
        return model_trace, guide_trace, partials

    # ---------------------------------------------------------------- supervised pass

    def _supervised_objective(
        self,
        model: Callable,
        guide: Callable,
        args: tuple,
        kwargs: dict,
        partials: dict[str, PartialSite] | None = None,
        parts: list[DecompositionPart] | None = None,
    ) -> torch.Tensor:
        """γ-free Σ_m L̂_sup(x^m, y^m) (a surrogate with the right value and gradient) for one particle set.

        ``partials`` (from the unsupervised pass) supply the labels to a guide that samples
        ``{name}_unobserved`` directly; a guide writing ``obs=..., obs_mask=...`` supplies its own.
        The pass's decomposition terms are appended to ``parts``.
        """
        particle_plate = self.vectorize_particles and self.num_particles > 1
        user_nesting = int(self.max_plate_nesting) - (1 if particle_plate else 0)
        sample_dim, particle_dim = -1 - user_nesting, -2 - user_nesting
        ndim = user_nesting + 2

        def vectorized(fn):
            def wrapped(*a, **k):
                num_particles = self.num_particles if particle_plate else 1
                with pyro.plate(PARTICLE_PLATE, num_particles, dim=particle_dim):
                    with pyro.plate(IMPORTANCE_PLATE, self.num_importance_samples, dim=sample_dim):
                        return fn(*a, **k)

            return wrapped

        guide = ClampUnlabelledSites(partials)(ValidatePartialSites()(vectorized(guide)))
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model = poutine.replay(ValidatePartialSites()(vectorized(model)), trace=guide_trace)
        model_trace = poutine.trace(model).get_trace(*args, **kwargs)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        partials = find_partial_sites(model_trace)
        check_guide_has_unobserved(partials, guide_trace)
        for base in partials:
            if not is_clamped(guide_trace.nodes[base + UNOBSERVED]):
                raise ValueError(
                    f"site {base!r}: the labels for the supervised pass come from the guide's own "
                    f"obs=/obs_mask= for the site; write pyro.sample({base!r}, q, obs=..., obs_mask=...) "
                    "in the guide (needed with split_on)"
                )
        partial = labelled_rows(partials)  # the labelled rows: mask, plates and scale
        rows = partial.mask
        keep = {sample_dim, particle_dim} | {dim for _, dim in partial.row_frames}

        def row_log_prob(site, mask, value=None) -> torch.Tensor:
            log_prob = site["fn"].log_prob(site["value"] if value is None else value)
            log_prob = scale_and_mask(log_prob, _relative_scale(site["scale"], partial.scale), mask)
            return _sum_to_rows(log_prob, ndim, keep, site["name"])

        log_p = log_w = log_r = torch.zeros(())
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample" or is_deterministic(site):
                continue
            if not site["is_observed"] and name not in guide_trace.nodes:
                raise NotImplementedError(
                    f"model site {name!r} is latent but absent from the guide; SemiSupervisedELBO's "
                    "supervised term needs every latent variable in the guide"
                )
            if is_row_site(site, partial):
                log_p = log_p + row_log_prob(site, _and(site["mask"], rows))
        score_sites = []
        for site in guide_trace.nodes.values():
            if site["type"] != "sample" or site["is_observed"] or is_deterministic(site):
                continue
            if is_clamped(site):  # the label's guide density, on the rows where the site is present
                log_w = log_w + row_log_prob(site, partials[site["name"][: -len(UNOBSERVED)]].mask)
                continue
            in_rows = is_row_site(site, partial)
            log_prob = row_log_prob(site, _and(site["mask"], rows) if in_rows else site["mask"])
            if in_rows:
                log_r = log_r + log_prob
            if not getattr(site["fn"], "has_rsample", False):
                score_sites.append(log_prob.sum(sample_dim, keepdim=True))

        term = self._row_estimate(log_p, log_w, log_r, sample_dim)
        term = scale_and_mask(term, partial.scale, rows)
        surrogate = term.sum()
        for score in score_sites:  # REINFORCE for non-reparameterised draws: E[f ∇ Σ_s log q(z_s)]
            surrogate = surrogate + (term.detach() * (score - score.detach())).sum()
        if parts is not None and self.decomposition is not None:
            # the S draws of a labelled row represent the guide's q(z | x, y) with weights w_s / Σ_s' w_s'
            shape = list(log_w.shape)
            shape[sample_dim] = self.num_importance_samples
            weights = torch.softmax(log_w.expand(shape), sample_dim) * rows
            self._collect(parts, model_trace, guide_trace, weights, kl_factor=self.gamma)
        return surrogate

    def _row_estimate(
        self, log_p: torch.Tensor, log_w: torch.Tensor, log_r: torch.Tensor, sample_dim: int
    ) -> torch.Tensor:
        """L̂_sup per row from per-sample log p(x, y, z_s), log w_s, log q(z_s|x); shapes (P, S, rows...)."""
        log_p, log_w, log_r = torch.broadcast_tensors(log_p, log_w, log_r)
        num_samples = self.num_importance_samples
        log_mean_w = torch.logsumexp(log_w, sample_dim, keepdim=True) - math.log(num_samples)
        if self.estimator == "weighted":
            normalised = torch.softmax(log_w, sample_dim)
            elbo = (normalised * (log_p - log_w - log_r)).sum(sample_dim, keepdim=True)
            return elbo + (1.0 + self.alpha) * log_mean_w
        log_mean_ratio = torch.logsumexp(log_p - log_r, sample_dim, keepdim=True) - math.log(num_samples)
        return log_mean_ratio + self.alpha * log_mean_w


def _drop_observations(guide_trace: Trace) -> None:
    """Remove the guide's observed sites (``{name}_observed``, deterministic merges): the labels' guide
    density belongs to the supervised pass, and as a guide 'sample' it would add a spurious score term."""
    for name in [n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and s["is_observed"]]:
        guide_trace.remove_node(name)


def _check_relaxed_sites_exist(relax: Mapping[str, float], partials: dict[str, PartialSite]) -> None:
    missing = sorted(set(relax) - set(partials))
    if missing:
        raise ValueError(
            f"relax= names {missing}, but the model's partially observed sites are {sorted(partials)}"
        )


def _and(mask, rows: torch.Tensor) -> torch.Tensor:
    if mask is None or mask is True:
        return rows
    if mask is False:
        return torch.zeros_like(rows)
    return mask & rows


def _relative_scale(scale, row_scale):
    """A site's scale relative to the scale applied to its row's whole supervised term."""
    if isinstance(scale, torch.Tensor) or isinstance(row_scale, torch.Tensor):
        return scale / row_scale
    return 1.0 if scale == row_scale else scale / row_scale


def _sum_to_rows(log_prob: torch.Tensor, ndim: int, keep: set[int], name: str) -> torch.Tensor:
    """Sum a log-density over every batch dim except the particle, sample and row dims."""
    if log_prob.dim() > ndim:
        raise NotImplementedError(
            f"site {name!r} has log_prob shape {tuple(log_prob.shape)} with more than {ndim} batch dims "
            "in the supervised pass; is it enumerated in the model? Model-side enumeration is not supported "
            "on labelled rows"
        )
    log_prob = log_prob.reshape((1,) * (ndim - log_prob.dim()) + tuple(log_prob.shape))
    dims = [d for d in range(-ndim, 0) if d not in keep and log_prob.shape[d] > 1]
    return log_prob.sum(dims, keepdim=True) if dims else log_prob
