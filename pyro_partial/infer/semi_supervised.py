r"""The semi-supervised objective of Siddharth et al. (2017) as a Pyro ELBO.

For data with unlabelled rows :math:`x^n` and labelled rows :math:`(x^m, y^m)` the objective (to maximise)
is (paper, eq. 4)

.. math::

    \mathcal{L} = \sum_n \mathcal{L}_\text{unsup}(x^n) + \gamma \sum_m \mathcal{L}_\text{sup}(x^m, y^m),

with :math:`\mathcal{L}_\text{unsup}(x) = \mathbb{E}_{q(y,z|x)}[\log p(x, y, z) - \log q(y, z|x)]` and,
for any guide dependency structure, the importance-sampled supervised term (paper, eqs. 5-6,
:mod:`pyro_partial.infer.importance_sampled`). With one importance sample it is

.. math::

    \hat{\mathcal{L}}_\text{sup} = \mathbb{E}_{q(z|x,y)}[\log p(x, y, z) - \log q(z|x, y)]
        + \sum_k \alpha_k \log q(y_k | x, z),

:math:`z` every latent variable of the row other than the labels (with a guide :math:`q(y|x)\, q(z|x, y)`,
Kingma et al.'s M2 term). A row may label only some of the partially observed sites: its supervised term
clamps those, and the others count among its latent variables :math:`z` (enumerated, relaxed or sampled as on
unlabelled rows).

Implementation: the rows are grouped by the sites they label
(:func:`~pyro_partial.infer.partial_sites.row_groups`), and each group is one pass over the mini-batch:
Pyro's :class:`~pyro.infer.TraceEnum_ELBO`
computation (DiCE, parallel enumeration), or the importance-sampled estimator for several importance
samples, with every site inside the data plate masked to the group's rows (or, with ``split_on``, run on
those rows only). Masking whole passes rather than single sites keeps labelled rows from pushing
score-function noise into :math:`q(y|x)` (Pyro issue #3255).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer.elbo import ELBOModule
from pyro.infer.traceenum_elbo import TraceEnum_ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.enum_messenger import EnumMessenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape, check_traceenum_requirements, warn_if_nan

from pyro_partial.infer.decomposition import PARTICLE_PLATES
from pyro_partial.infer.decomposition_terms import Decomposition, DecompositionPart
from pyro_partial.infer.importance_sampled import (
    ESTIMATORS,
    RowLayout,
    row_densities,
    row_estimate,
    surrogate,
)
from pyro_partial.infer.inputs import check_finite_inputs, model_errors_named
from pyro_partial.infer.partial_sites import (
    PartialSite,
    RowGroups,
    find_partial_sites,
    is_row_site,
    restrict_to_rows,
    row_groups,
)
from pyro_partial.infer.pyro_internals import (
    UNOBSERVED_SUFFIX,
    check_tmc_elbo_constraint,
    compute_dice_elbo,
    guess_max_plate_nesting,
    is_deterministic,
    pack_traces,
    vectorized_num_particles,
)
from pyro_partial.infer.row_split import RowSplit, find_row_split
from pyro_partial.infer.site_messengers import (
    ClampLabels,
    IntegrateUnlabelled,
    ReplaySubsamples,
    ValidatePartialSites,
    base_name,
    is_clamped,
)
from pyro_partial.infer.validation import check_options

PARTICLE_PLATE, IMPORTANCE_PLATE = "_pyro_partial_particles", "_pyro_partial_importance"
"""The supervised passes' plates of particles and of importance samples."""


@dataclass
class Pass:
    """One traced pass over a group of rows.

    :ivar model_trace: the model's trace, replayed against the guide's.
    :ivar guide_trace: the guide's trace.
    :ivar partials: the model's partially observed sites.
    :ivar groups: the batch's rows grouped by the sites they label (``None`` without partial sites).
    :ivar rows: the pass's rows (bool over the row dims); ``None`` without partial sites.
    :ivar latent: ``None`` for the unsupervised pass, else the sites integrated on its labelled rows.
    """

    model_trace: Trace
    guide_trace: Trace
    partials: dict[str, PartialSite]
    groups: RowGroups | None
    rows: torch.Tensor | None
    latent: frozenset | None

    @property
    def supervised(self) -> bool:
        """Whether the pass computes a supervised term (on labelled rows), not the unsupervised one."""
        return self.latent is not None


class SemiSupervisedELBO(TraceEnum_ELBO):
    r"""Siddharth et al.'s (2017) semi-supervised objective for models with partially observed sites.

    The model marks each partially labelled variable with ``pyro.sample(name, d, obs=y, obs_mask=m)``,
    ``m`` a bool tensor true on labelled rows (rows with ``m`` false may hold any valid placeholder);
    several sites may have masks of their own. The guide samples the same variable either with
    ``pyro.sample(name, q, obs=y, obs_mask=m)`` too (recommended: enumeration is then configured
    automatically), or directly as ``pyro.sample(name + "_unobserved", q)``. Any guide dependency structure
    works: :math:`q(y|x)\, q(z|x, y)` (Kingma et al.'s M2) or :math:`q(z|x)\, q(y|x, z)` (Siddharth et al.).

    Model and guide may be functions or ``PyroModule`` objects (under
    ``pyro.settings.set(module_local_params=True)`` too), wrapped in Pyro's handlers (``poutine.scale``,
    ``poutine.mask``, ``poutine.block``, ``config_enumerate``), and may subsample their data plate: every
    pass of one call sees the same subsample.

    Control flow may depend on the data: a partially observed site inside a ``poutine.mask`` that removes
    it from some rows (the steps of a loop of random length, :func:`pyro_partial.poutine.random_steps`,
    whose count is itself partially observed and enumerated on unlabelled rows) uses its labels on the rows
    where it is present.

    Use it wherever Pyro takes an ELBO: ``SVI(model, guide, optim, loss=SemiSupervisedELBO(...))`` or
    ``SemiSupervisedELBO(...)(model, guide)`` as a ``torch.nn.Module`` (Pyro's ``ELBOModule``) for plain
    PyTorch or Lightning loops.

    There is no JIT variant: Pyro's ``JitTraceEnum_ELBO`` traces one fixed computation, but here the passes
    (one per group of rows) and their shapes depend on which rows of each mini-batch are labelled. For the
    same reason ``torch.compile`` of the ``ELBOModule`` breaks the graph at every data-dependent step
    (grouping rows, Pyro's Python-level handlers and trace bookkeeping) and recompiles for new batch
    compositions, which makes it slower than eager execution: run it eagerly (compile the model's and
    guide's networks instead, e.g. ``torch.compile`` on the encoder and decoder modules).

    :param alpha: :math:`\alpha \ge 0`, the extra weight of the classifier term :math:`\log q(y|x)` on
        labelled rows; a mapping ``{site: α}`` gives each partially observed site its own (e.g.
        ``{"y": 50.0, "thickness": 1.0}``), and must name every one.
    :param gamma: :math:`\gamma \ge 0`, the weight of each labelled row's supervised term relative to an
        unlabelled row's ELBO (see :func:`~pyro_partial.infer.supervision_weights` to derive :math:`\gamma`
        and :math:`\alpha` from a supervision rate :math:`\rho`).
    :param num_particles: number of independent estimates averaged (as in Pyro's ELBOs).
    :param num_importance_samples: :math:`S`, the importance samples per labelled row in
        :math:`\hat{\mathcal{L}}_\text{sup}`. With :math:`S > 1`, the sites unlabelled on a labelled row are
        not enumerated there but sampled from the guide (with score-function gradients for discrete ones) or
        relaxed.
    :param estimator: ``"weighted"`` (the paper's :math:`\hat{\mathcal{L}}_\text{sup}`) or
        ``"importance_weighted"`` (:math:`\hat{\mathcal{L}}^\text{IW}_\text{sup}`).
    :param relax: ``{site name: temperature}`` for discrete sites to integrate on unlabelled rows by a
        Gumbel-softmax relaxation (``OneHotCategorical`` sites only) instead of exact enumeration.
    :param max_plate_nesting: as in :class:`~pyro.infer.TraceEnum_ELBO`; guessed when omitted, by a run of
        model and guide that consumes no random numbers.
    :param vectorize_particles: vectorise the ``num_particles`` estimates in one plate.
    :param strict_enumeration_warning: warn when no site is enumerated (off by default: fully labelled
        batches and relaxed sites legitimately enumerate nothing).
    :param split_on: ``True`` (or, as in earlier versions, a string such as ``"mask"``) to run each pass on
        its own rows only: about twice as fast on mixed batches, since labelled rows no longer go through
        the enumerated branches. The rows are found from the ``obs_mask`` of the model's sites (one run of
        the model without gradients), and every tensor argument whose first dimension is the data plate's
        size is split along it (and so is a ``poutine.mask`` / ``poutine.scale`` wrapper's tensor); the
        argument names are not read. Requires the rows in one data plate and a guide that writes
        ``obs=..., obs_mask=...``. Calls whose rows cannot be split this way (a subsampling data plate,
        arguments without a row dimension) are computed by masking, as without ``split_on``: model and
        guide see the whole batch in every pass, and masking does the split.
    :param decomposition: a :class:`~pyro_partial.infer.Decomposition` that gives latent sites (e.g. the
        style :math:`z`) Mathieu et al.'s :math:`\beta` on their KL and :math:`\alpha\, D(q(z), p(z))`,
        :math:`q(z)` the aggregate posterior of the whole mini-batch, labelled and unlabelled rows
        together. On unlabelled rows, with :math:`y` enumerated, the draws of :math:`z` under each value of
        :math:`y` count with weight :math:`q(y|x)` (so :math:`q(z|x) = \sum_y q(y|x)\, q(z|x, y)` exactly,
        differentiable in the classifier); on labelled rows the :math:`S` importance draws count with the
        normalised weights :math:`w_s` (:math:`1/S` each for a guide :math:`q(y|x)\, q(z|x, y)`). A
        labelled row's :math:`\beta` term is weighted by :math:`\gamma` like the rest of its ELBO;
        :math:`D` counts every row once. With ``gamma=0`` the labelled rows are not traced and :math:`D`
        uses the unlabelled rows only. :math:`\beta = 1, \alpha = 0` is the plain objective.
    """

    def __init__(
        self,
        alpha: float | Mapping[str, float] = 0.0,
        gamma: float = 1.0,
        *,
        num_particles: int = 1,
        num_importance_samples: int = 1,
        estimator: str = "weighted",
        relax: Mapping[str, float] | None = None,
        max_plate_nesting: float = float("inf"),
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = False,
        split_on: str | bool | None = None,
        decomposition: Decomposition | None = None,
    ):
        relax = dict(relax or {})
        check_options(
            alpha=alpha,
            gamma=gamma,
            num_particles=num_particles,
            num_importance_samples=num_importance_samples,
            estimator=estimator,
            estimators=ESTIMATORS,
            relax=relax,
            max_plate_nesting=max_plate_nesting,
        )
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )
        self.alpha = dict(alpha) if isinstance(alpha, Mapping) else float(alpha)
        self.gamma = float(gamma)
        self.num_importance_samples = int(num_importance_samples)
        self.estimator = estimator
        self.relax = relax
        self.split_on = split_on
        self.decomposition = decomposition

    # ---------------------------------------------------------------- public API

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs) -> torch.Tensor:
        r"""The negative objective
        :math:`-(\sum_n \mathcal{L}_\text{unsup} + \gamma \sum_m \hat{\mathcal{L}}_\text{sup})`,
        differentiable (a DiCE surrogate whose value is the estimate and whose gradient is an unbiased
        gradient estimate)."""
        check_finite_inputs(model, args, kwargs)
        model, guide = ValidatePartialSites()(model), ValidatePartialSites()(guide)
        if self.max_plate_nesting == float("inf"):
            with model_errors_named():
                guess_max_plate_nesting(self, model, guide, args, kwargs)
        split = find_row_split(model, guide, args, kwargs) if self.split_on else None
        subsamples = ReplaySubsamples()  # one subsample of each plate per call, shared by every pass
        model, guide = subsamples(model), subsamples(guide)
        objective = torch.zeros(())
        for _ in range(1 if self.vectorize_particles else self.num_particles):
            objective = objective + self._particle_objective(model, guide, args, kwargs, split)
        loss = -objective / self.num_particles
        warn_if_nan(loss, "loss")
        return loss

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        """The objective as a ``torch.nn.Module`` (Pyro's ``ELBOModule``) whose forward is the loss and whose
        parameters are the model's and guide's (pass the modules, not their bound ``forward``)."""
        for role, fn in (("model", model), ("guide", guide)):
            owner = getattr(fn, "__self__", None)
            if isinstance(owner, torch.nn.Module) and not isinstance(fn, torch.nn.Module):
                raise ValueError(
                    f"{role}: got the bound method {fn.__name__!r} of a {type(owner).__name__}; pass the "
                    "module itself, so that its parameters are the ELBOModule's (else nothing is trained)"
                )
        return super().__call__(model, guide)

    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """The value of :meth:`differentiable_loss` as a float, computed without gradients."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """:meth:`differentiable_loss` as a float, its gradients accumulated into the parameters'
        ``.grad`` (as ``SVI.step`` needs)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)

    def compute_marginals(self, model: Callable, guide: Callable, *args, **kwargs):
        """Not available: on an ``obs_mask`` model Pyro's version reads only the guide's enumerated
        ``{name}_unobserved`` sites. Use the guide's :math:`q(y|x)` for the label's posterior."""
        raise NotImplementedError(
            "SemiSupervisedELBO.compute_marginals is not implemented for partially observed models; "
            "read the posterior of a label from the guide's q(y|x) on unlabelled rows"
        )

    def sample_posterior(self, model: Callable, guide: Callable, *args, **kwargs):
        """Not available, for the reason given in :meth:`compute_marginals`."""
        raise NotImplementedError(
            "SemiSupervisedELBO.sample_posterior is not implemented for partially observed models; "
            "sample the guide (labels are its obs on labelled rows)"
        )

    def alpha_of(self, site: str) -> float:
        r"""The classifier weight :math:`\alpha` of a partially observed site."""
        return self.alpha[site] if isinstance(self.alpha, dict) else self.alpha

    # ---------------------------------------------------------------- orchestration

    def _particle_objective(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict, split: RowSplit | None
    ) -> torch.Tensor:
        """One estimate of the objective: the unlabelled rows' pass and one pass per group of labelled rows,
        each on the whole batch (masked to its rows) or, with ``split``, on its rows only."""
        parts: list[DecompositionPart] = []
        objective = torch.zeros(())
        whole = (model, guide, args, kwargs)
        groups = None if split is None else split.groups
        labels = None
        if split is None or bool(split.groups.unlabelled.any()):
            call = whole if split is None else split.call(*whole, split.groups.unlabelled)
            traced = self._trace_pass(*call, latent=None)
            objective = objective + self._enumerated_objective(traced, parts)
            if split is None:
                groups, labels = traced.groups, {n: p.obs for n, p in traced.partials.items()}
        if groups is not None and self.gamma != 0:
            for latent, rows in groups.labelled.items():
                call = whole if split is None else split.call(*whole, rows)
                traced = self._trace_pass(*call, latent=latent, labels=labels)
                objective = objective + self.gamma * self._supervised_objective(traced, parts)
        if self.decomposition is not None and parts:
            objective = objective + self.decomposition.penalty(parts)
        return objective

    # ---------------------------------------------------------------- one pass

    def _trace_pass(
        self,
        model: Callable,
        guide: Callable,
        args: tuple,
        kwargs: dict,
        latent: frozenset | None,
        labels: Mapping[str, torch.Tensor] | None = None,
    ) -> Pass:
        """Trace model and guide for the rows that label no site (``latent=None``: every partially observed
        site is integrated) or the labelled rows whose unlabelled sites are ``latent`` (the other sites
        clamped to their labels, from the guide's ``obs=`` or from ``labels``), every row site masked to
        those rows."""
        supervised = latent is not None
        enumerated = not supervised or self.num_importance_samples == 1
        if supervised:  # the plates first, so that a clamped label takes their shape
            guide, model = self._plated(guide), self._plated(model)
        elif self.vectorize_particles:
            guide, model = vectorized_num_particles(self, guide), vectorized_num_particles(self, model)
        guide = ClampLabels(latent, labels)(IntegrateUnlabelled(self.relax, enumerated, latent)(guide))
        model = IntegrateUnlabelled(self.relax, False, latent)(model)
        if enumerated:
            guide = EnumMessenger(first_available_dim=-1 - self._nesting(supervised))(guide)
            model = EnumMessenger()(model)  # allocates enumeration dims to the left of the guide's
        with model_errors_named():
            guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
            model_trace = poutine.trace(
                poutine.replay(model, trace=guide_trace), graph_type="flat"
            ).get_trace(*args, **kwargs)
        partials = find_partial_sites(model_trace)
        self._check_partial_sites(partials, guide_trace, supervised)
        groups = row_groups(partials)
        rows = None
        if groups is not None:
            rows = groups.unlabelled if not supervised else groups.labelled.get(latent)
            if rows is None:  # the group is not in this call (masking: it was found in the first pass)
                rows = torch.zeros_like(groups.unlabelled)
        _drop_observations(guide_trace)
        _drop_deterministic(model_trace)
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self._nesting(supervised))
        model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
        if rows is not None:
            for trace in (model_trace, guide_trace):
                for site in trace.nodes.values():
                    if site["type"] == "sample" and is_row_site(site, groups.row_frames):
                        restrict_to_rows(site, rows)
        return Pass(model_trace, guide_trace, partials, groups, rows, latent)

    def _plated(self, fn: Callable) -> Callable:
        """``fn`` inside the supervised passes' plates of particles and of importance samples."""
        particle_dim, sample_dim = self._supervised_dims()
        num_particles = self.num_particles if self.vectorize_particles else 1

        def plated(*args, **kwargs):
            with pyro.plate(PARTICLE_PLATE, num_particles, dim=particle_dim):
                with pyro.plate(IMPORTANCE_PLATE, self.num_importance_samples, dim=sample_dim):
                    return fn(*args, **kwargs)

        return plated

    def _user_nesting(self) -> int:
        """The model's own plate nesting (without Pyro's particle plate)."""
        particle_plate = self.vectorize_particles and self.num_particles > 1
        return int(self.max_plate_nesting) - (1 if particle_plate else 0)

    def _supervised_dims(self) -> tuple[int, int]:
        user = self._user_nesting()
        return -2 - user, -1 - user

    def _nesting(self, supervised: bool) -> int:
        return self._user_nesting() + 2 if supervised else int(self.max_plate_nesting)

    def _check_partial_sites(
        self, partials: dict[str, PartialSite], guide_trace: Trace, supervised: bool
    ) -> None:
        # sites may be absent from a supervised pass (a loop of random length runs to the largest label)
        known = not supervised
        _check_names("relax=", sorted(self.relax), partials, unknown=known, missing=False)
        if isinstance(self.alpha, dict):
            _check_names("alpha=", sorted(self.alpha), partials, unknown=known, missing=True)
        for base in partials:
            if base + UNOBSERVED_SUFFIX not in guide_trace.nodes:
                raise ValueError(
                    f"the model's site {base!r} is partially observed (obs_mask) but the guide has no site "
                    f"{base + UNOBSERVED_SUFFIX!r}; sample it in the guide over the whole batch, e.g. "
                    f"pyro.sample({base!r}, q_{base}, obs={base}s, obs_mask=mask) as in the model"
                )

    # ---------------------------------------------------------------- estimators

    def _enumerated_objective(self, traced: Pass, parts: list[DecompositionPart]) -> torch.Tensor:
        """The DiCE estimate of the pass's ELBO, with its classifier terms Σ_k α_k log q(y_k|·) when labels
        are clamped (costs, in expectation over the enumerated values they depend on); appends the pass's
        decomposition terms to ``parts``."""
        model_trace, guide_trace = traced.model_trace, traced.guide_trace
        for name in [n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and is_clamped(s)]:
            # the label's guide density leaves the guide (no density in the ELBO, no score function) and
            # enters the model as the cost α log q(y|·), in place of the latent half masked out here
            guide_site = guide_trace.nodes[name]
            base = base_name(name, UNOBSERVED_SUFFIX)
            mask = traced.partials[base].mask
            model_site = model_trace.nodes[name]
            model_site["fn"] = ScaledLogDensity(guide_site["fn"], self.alpha_of(base))
            model_site["mask"] = mask if traced.rows is None else mask & traced.rows
            model_site["scale"] = guide_site["scale"]
            model_site["is_observed"] = True
            guide_trace.remove_node(name)
        if traced.supervised and traced.groups is not None:
            _mask_outside_rows(model_trace, guide_trace, traced.groups.row_frames)
        model_trace.compute_log_prob()
        guide_trace.compute_score_parts()
        if is_validation_enabled():
            nesting = self._nesting(traced.supervised)
            for trace in (model_trace, guide_trace):
                for site in trace.nodes.values():
                    if site["type"] == "sample":
                        check_site_shape(site, nesting)
            check_traceenum_requirements(model_trace, guide_trace)
            check_tmc_elbo_constraint(model_trace, guide_trace)
        self._collect(parts, model_trace, guide_trace, kl_factor=self.gamma if traced.supervised else 1.0)
        _promote_log_densities(model_trace, guide_trace)
        pack_traces(model_trace, guide_trace)
        return compute_dice_elbo(model_trace, guide_trace)

    def _supervised_objective(self, traced: Pass, parts: list[DecompositionPart]) -> torch.Tensor:
        """γ-free Σ_m L̂_sup over the pass's rows: the DiCE form for one importance sample, the
        importance-sampled estimator otherwise."""
        _check_latents_in_guide(traced.model_trace, traced.guide_trace)
        for base in traced.partials:
            site = traced.guide_trace.nodes[base + UNOBSERVED_SUFFIX]
            if not is_clamped(site) and base not in traced.latent:
                raise ValueError(
                    f"site {base!r}: the labels for the supervised pass come from the guide's own "
                    f"obs=/obs_mask= for the site, but the guide samples {base + UNOBSERVED_SUFFIX!r} "
                    "without them (an autoguide, or a raw site); with split_on, write "
                    f"pyro.sample({base!r}, q, obs=..., obs_mask=...) in the guide, or use split_on=None"
                )
        if self.num_importance_samples == 1:
            return self._enumerated_objective(traced, parts)
        particle_dim, sample_dim = self._supervised_dims()
        layout = RowLayout(
            sample_dim, particle_dim, self._nesting(True), traced.groups.row_frames, traced.groups.scale
        )
        densities = row_densities(
            traced.model_trace, traced.guide_trace, traced.partials, traced.rows, layout
        )
        alpha = {name: self.alpha_of(name) for name in densities.log_w}
        term = row_estimate(densities, alpha, self.estimator, sample_dim)
        term = scale_and_mask(term, layout.scale, traced.rows)
        if self.decomposition is not None:
            # the S draws of a labelled row represent the guide's q(z | x, y) with weights w_s / Σ_s' w_s'
            log_w = densities.log_w_total
            shape = list(torch.broadcast_shapes(log_w.shape, term.shape))
            shape[sample_dim] = self.num_importance_samples
            weights = torch.softmax(log_w.expand(shape), sample_dim) * traced.rows
            self._collect(parts, traced.model_trace, traced.guide_trace, weights, kl_factor=self.gamma)
        return surrogate(term, densities.scores)

    # ---------------------------------------------------------------- decomposition

    def _collect(
        self,
        parts: list[DecompositionPart],
        model_trace: Trace,
        guide_trace: Trace,
        weights: torch.Tensor | None = None,
        kl_factor: float = 1.0,
    ) -> None:
        """Append one pass's decomposition terms (nothing without ``decomposition``)."""
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


class ScaledLogDensity(dist.TorchDistribution):
    """A distribution whose log-density is ``factor`` times ``base``'s (the classifier term as a cost)."""

    arg_constraints: dict = {}

    def __init__(self, base: dist.TorchDistribution, factor: float):
        self.base, self.factor = base, factor
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self):
        """The support of ``base``."""
        return self.base.support

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``factor * base.log_prob(value)``, of shape ``base.log_prob(value).shape``."""
        return self.factor * self.base.log_prob(value)


def _check_names(
    option: str, names: list[str], partials: dict[str, PartialSite], unknown: bool, missing: bool
) -> None:
    """Raise naming the sites an option names that are not partially observed sites (``unknown``), and
    the partially observed sites it leaves out (``missing``)."""
    extra = sorted(set(names) - set(partials))
    if extra and unknown:
        raise ValueError(
            f"{option} names {extra}, but the model's partially observed sites are {sorted(partials)}"
        )
    absent = sorted(set(partials) - set(names))
    if absent and missing:
        raise ValueError(
            f"{option} gives no value for the partially observed site(s) {absent}; name every one of "
            f"{sorted(partials)} (or pass one float for all)"
        )


def _check_latents_in_guide(model_trace: Trace, guide_trace: Trace) -> None:
    for name, site in model_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and name not in guide_trace.nodes:
            raise NotImplementedError(
                f"model site {name!r} is latent but absent from the guide; SemiSupervisedELBO's "
                "supervised term needs every latent variable in the guide"
            )


def _drop_observations(guide_trace: Trace) -> None:
    """Remove the guide's observed sites (``{name}_observed``, deterministic merges): the labels' guide
    density belongs to the supervised term, and as a guide 'sample' it would add a spurious score term."""
    for name in [n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and s["is_observed"]]:
        guide_trace.remove_node(name)


def _drop_deterministic(model_trace: Trace) -> None:
    """Remove the model's deterministic merges of partially observed sites: they have no density, and
    Pyro gives an integer-valued one a float32 zero log-density, which breaks float64 models."""
    for name in [n for n, s in model_trace.nodes.items() if s["type"] == "sample" and is_deterministic(s)]:
        model_trace.remove_node(name)


def _mask_outside_rows(model_trace: Trace, guide_trace: Trace, row_frames: frozenset) -> None:
    """In a supervised pass, sites outside the rows' plates (global latents) count in the unsupervised
    pass only: their densities are masked out here, their guide score functions (unmasked) kept."""
    for trace in (model_trace, guide_trace):
        for site in trace.nodes.values():
            if site["type"] == "sample" and not is_row_site(site, row_frames):
                site["mask"] = False


def _promote_log_densities(*traces: Trace) -> None:
    """Casts every sample site's ``log_prob`` and ``score_parts`` to their common (widest) dtype, in place.

    Under mixed precision (``torch.autocast``) a network's output, hence its site's log density, may be
    bfloat16 or float16 while a fixed prior's is float32; the tensor contraction of enumerated sites needs
    one dtype.
    """
    sites = [site for trace in traces for site in trace.nodes.values() if site["type"] == "sample"]
    tensors = [site["log_prob"] for site in sites if "log_prob" in site]
    tensors += [part for site in sites for part in site.get("score_parts", ()) if torch.is_tensor(part)]
    dtypes = {tensor.dtype for tensor in tensors if tensor.is_floating_point()}
    if len(dtypes) < 2:
        return
    common = functools.reduce(torch.promote_types, dtypes)
    for site in sites:
        if "log_prob" in site:
            site["log_prob"] = site["log_prob"].to(common)
        if "score_parts" in site:
            site["score_parts"] = site["score_parts"]._replace(
                **{
                    name: part.to(common)
                    for name, part in site["score_parts"]._asdict().items()
                    if torch.is_tensor(part) and part.is_floating_point()
                }
            )
