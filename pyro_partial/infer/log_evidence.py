r"""Importance-weighted estimates of each row's evidence, and the class posterior they give.

For a model :math:`p(x, z)` and a guide :math:`q(z|x)` whose latent variables all sit in the rows of a
``"data"`` plate, :func:`row_log_evidence` estimates, row by row,

.. math::

    \log p(x) \approx \log \frac{1}{K} \sum_{k=1}^K \frac{p(x, z_k)}{q(z_k|x)}, \qquad z_k \sim q(z|x),

the bound of Burda et al. (2016, eq. 8): below :math:`\log p(x)` in expectation, tighter as :math:`K`
grows, exact for any :math:`K` when the guide is the posterior. Partially observed sites
(``pyro.sample(..., obs=y, obs_mask=m)``) count as Pyro scores them: labelled entries as observations,
unlabelled ones as latent variables drawn from the guide.

:func:`class_log_posterior` observes one latent site at each of :math:`C` candidate values :math:`y_c` and
normalises those evidences,

.. math::

    \log p(y_c | x) \approx \log \hat p(x, y_c) - \log \sum_{c'} \hat p(x, y_{c'}),

the model's own classifier (Bayes' rule on its joint density), with the guide as the proposal for every
other latent variable: in Kingma et al.'s M2, :math:`q(z|x, y_c)`; :func:`most_probable_class` takes its
argmax over a data set, chunk by chunk. Both are ordinary Pyro: the traces come
from ``poutine.trace`` and ``poutine.replay``, the masked, scaled densities from
:meth:`~pyro.poutine.Trace.compute_log_prob`, and with ``vectorize_particles=True`` the :math:`K` draws
come at once from the particle plate of Pyro's :class:`~pyro.infer.ELBO` (``vectorize_particles``, with
``max_plate_nesting`` guessed as Pyro guesses it), for models whose batch dimensions broadcast.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample

from pyro_partial.infer.pyro_internals import (
    PARTICLE_PLATE,
    guess_max_plate_nesting,
    is_deterministic,
    preserved_rng_state,
    vectorized_num_particles,
)
from pyro_partial.infer.site_messengers import ObserveLatents


def row_log_evidence(
    model: Callable,
    guide: Callable,
    *args,
    num_particles: int = 1,
    plate: str = "data",
    observe: dict[str, torch.Tensor] | None = None,
    vectorize_particles: bool = False,
    max_plate_nesting: int | None = None,
    **kwargs,
) -> torch.Tensor:
    r"""The importance-weighted estimate of :math:`\log p(x)` of each row of ``plate``, shape ``(B,)``.

    :param model: the Pyro model, called as ``model(*args, **kwargs)``.
    :param guide: its guide, called with the same arguments; every latent site of both must lie in
        ``plate``.
    :param num_particles: :math:`K`, the number of guide draws per row.
    :param plate: the name of the plate whose rows are the observations.
    :param observe: optional ``{site: value}`` of latent sites to observe, in model and guide
        (:class:`~pyro_partial.infer.site_messengers.ObserveLatents`): the estimate is then of
        :math:`\log p(x, \text{values})`.
    :param vectorize_particles: draw the :math:`K` particles at once, in an outermost plate of size
        :math:`K` (as ``Trace_ELBO(vectorize_particles=True)`` does), rather than one after another; model
        and guide must then broadcast their batch dimensions (every site's value gains a leading ``(K,)``),
        and memory grows :math:`K`-fold.
    :param max_plate_nesting: with ``vectorize_particles``, the number of plates model and guide nest (the
        particle plate goes left of them); by default guessed from one run of both, as Pyro's ELBO guesses
        it, without consuming random numbers.

    The value is differentiable; its gradient is that of the importance-weighted bound when every guide
    draw is reparameterised (a discrete draw gets no score-function term).
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be positive, got {num_particles}")
    if observe:
        model, guide = ObserveLatents(observe)(model), ObserveLatents(observe)(guide)
    if vectorize_particles and num_particles > 1:
        model, guide = _in_particle_plate(model, guide, num_particles, max_plate_nesting, args, kwargs)
        try:
            log_weights = _log_weights(model, guide, plate, args, kwargs)
        except ValueError as error:
            if max_plate_nesting is None:
                raise
            raise ValueError(
                f"{error}\n(with vectorize_particles and max_plate_nesting={max_plate_nesting}: is it at "
                f"least the number of plates model and guide nest? max_plate_nesting=None guesses it)"
            ) from error
    else:
        log_weights = torch.stack(
            [_log_weights(model, guide, plate, args, kwargs) for _ in range(num_particles)]
        )
    return log_weights.logsumexp(0) - math.log(num_particles)


def class_log_posterior(
    model: Callable,
    guide: Callable,
    site: str,
    values: torch.Tensor,
    *args,
    num_particles: int = 1,
    plate: str = "data",
    vectorize_particles: bool = False,
    max_plate_nesting: int | None = None,
    **kwargs,
) -> torch.Tensor:
    r""":math:`\log p(y_c | x)` of each row, shape ``(B, C)``: the site ``site`` observed at each of the
    ``C`` candidate ``values`` in turn (shape ``(C,) + event_shape``, e.g. ``torch.eye(C)`` for a one-hot
    site), each evidence estimated by :func:`row_log_evidence` with ``num_particles`` draws (and its
    ``vectorize_particles`` and ``max_plate_nesting``, guessed once for all candidates), and normalised
    over the candidates. The remaining arguments are the model's and guide's; ``site`` should be unlabelled
    in them (a labelled entry keeps its label, whatever the candidate).

    The candidates share their random numbers (common random numbers): each is estimated from the same
    random state, so where the guide's other draws do not depend on the candidate (a guide
    :math:`q(y|x)\,q(z|x)`) every candidate is scored on the very same draws, and where they do (M2's
    :math:`q(z|x, y)`) on the same reparameterisation noise. The evidences' differences, which decide the
    posterior, then carry far less sampling noise than independent draws would give them."""
    if values.dim() < 1 or len(values) < 2:
        raise ValueError(
            f"values must hold C >= 2 candidate values of site {site!r} along dim 0, got shape "
            f"{tuple(values.shape)}"
        )
    if vectorize_particles and num_particles > 1 and max_plate_nesting is None:
        observed = ObserveLatents({site: values[0]})
        max_plate_nesting = _guess_plate_nesting(observed(model), observed(guide), args, kwargs)
    evidences = []
    for index, value in enumerate(values):
        # every candidate but the last starts from the same random state and leaves it unchanged
        same_draws = preserved_rng_state() if index < len(values) - 1 else contextlib.nullcontext()
        with same_draws:
            evidence = row_log_evidence(
                model,
                guide,
                *args,
                num_particles=num_particles,
                plate=plate,
                observe={site: value},
                vectorize_particles=vectorize_particles,
                max_plate_nesting=max_plate_nesting,
                **kwargs,
            )
        evidences.append(evidence)
    return torch.stack(evidences, -1).log_softmax(-1)


def most_probable_class(
    model: Callable,
    guide: Callable,
    site: str,
    values: torch.Tensor,
    xs: torch.Tensor,
    num_particles: int = 1,
    batch_size: int = 500,
    plate: str = "data",
    vectorize_particles: bool = False,
) -> torch.Tensor:
    """The index ``(N,)`` of the most probable of the candidate ``values`` of ``site`` for each of the ``N``
    rows of ``xs``, under :func:`class_log_posterior`, for a model and guide called as ``model(xs)`` on
    chunks of ``batch_size`` rows (so that memory stays bounded: ``batch_size × num_particles`` rows at
    once when ``vectorize_particles``), returned on ``xs``'s device."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    chunks = []
    for start in range(0, len(xs), batch_size):
        rows = xs[start : start + batch_size]
        log_posterior = class_log_posterior(
            model,
            guide,
            site,
            values,
            rows,
            num_particles=num_particles,
            plate=plate,
            vectorize_particles=vectorize_particles,
        )
        chunks.append(log_posterior.argmax(-1).to(xs.device))
    return torch.cat(chunks)


def _log_weights(model: Callable, guide: Callable, plate: str, args: tuple, kwargs: dict) -> torch.Tensor:
    """One importance weight per row, ``log p(x, z) - log q(z|x)`` for one draw z of the guide, shape ``(B,)``
    (``(K, B)`` when model and guide run in a particle plate of size K)."""
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    log_p = _sum_to_rows(model_trace, plate, latent_only=False)
    if log_p.dim() == 0:
        raise ValueError(f"the model has no sample sites in the plate {plate!r}")
    return log_p - _sum_to_rows(guide_trace, plate, latent_only=True)


def _guess_plate_nesting(model: Callable, guide: Callable, args: tuple, kwargs: dict) -> int:
    """The number of plates model and guide nest, guessed as Pyro's ELBO guesses it (one run of both),
    without consuming random numbers."""
    elbo = Trace_ELBO()
    guess_max_plate_nesting(elbo, model, guide, args, kwargs)
    return elbo.max_plate_nesting


def _in_particle_plate(
    model: Callable,
    guide: Callable,
    num_particles: int,
    max_plate_nesting: int | None,
    args: tuple,
    kwargs: dict,
) -> tuple[Callable, Callable]:
    """Model and guide inside the outermost particle plate of Pyro's ELBO, of size ``num_particles``."""
    if max_plate_nesting is None:
        max_plate_nesting = _guess_plate_nesting(model, guide, args, kwargs)
    if max_plate_nesting < 0:
        raise ValueError(f"max_plate_nesting must be non-negative, got {max_plate_nesting}")
    elbo = Trace_ELBO(
        num_particles=num_particles, vectorize_particles=True, max_plate_nesting=max_plate_nesting
    )
    return vectorized_num_particles(elbo, model), vectorized_num_particles(elbo, guide)


def _sum_to_rows(trace: Trace, plate: str, latent_only: bool) -> torch.Tensor:
    """Sum the log-densities of a trace's sample sites (its latent ones only, for a guide) to one value per
    row of ``plate``, shape ``(B,)``, or ``(K, B)`` per particle and row in a particle plate of size K (a
    scalar 0 when there are none)."""
    _check_particles_leftmost(trace)
    trace.compute_log_prob()
    total = torch.zeros(())
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or is_deterministic(site):
            continue
        if latent_only and site["is_observed"]:
            continue
        frames = [f for f in site["cond_indep_stack"] if f.vectorized and f.name == plate]
        if not frames:
            raise ValueError(
                f"site {name!r} is outside the plate {plate!r}: a per-row evidence needs every sample site "
                f"in the rows of {plate!r} (pass plate= to name the rows' plate)"
            )
        kept = [f for f in site["cond_indep_stack"] if f.vectorized and f.name == PARTICLE_PLATE] + frames[:1]
        log_prob = site["log_prob"]
        nesting = max(-f.dim for f in kept)
        log_prob = log_prob.reshape((1,) * max(0, nesting - log_prob.dim()) + tuple(log_prob.shape))
        other_dims = [d for d in range(-log_prob.dim(), 0) if d not in {f.dim for f in kept}]
        per_row = log_prob.sum(other_dims) if other_dims else log_prob
        total = total + per_row.expand([f.size for f in kept])
    return total


def _check_particles_leftmost(trace: Trace) -> None:
    """Refuse a trace whose particle plate is not left of every other plate (a ``max_plate_nesting`` given
    smaller than the plates model and guide nest), naming the plate it collides with."""
    for site in trace.nodes.values():
        if site["type"] != "sample":
            continue
        frames = [f for f in site["cond_indep_stack"] if f.vectorized]
        particles = next((f for f in frames if f.name == PARTICLE_PLATE), None)
        if particles is None:
            continue
        for frame in frames:
            if frame is not particles and frame.dim <= particles.dim:
                raise ValueError(
                    f"max_plate_nesting is too small: plate {frame.name!r} sits at dim {frame.dim}, not "
                    f"right of the particle plate at dim {particles.dim}; give at least the number of plates "
                    f"model and guide nest, or None to guess it"
                )
