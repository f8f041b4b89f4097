"""Run several disentanglement metrics with one calling convention."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyro_partial.metrics.beta_vae import beta_vae_score
from pyro_partial.metrics.dci import dci_score
from pyro_partial.metrics.factor_vae import factor_vae_score
from pyro_partial.metrics.hoyer import hoyer_score
from pyro_partial.metrics.mig import mig_score
from pyro_partial.metrics.sampling import RepresentationFunction
from pyro_partial.metrics.sap import sap_score

METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "beta_vae": beta_vae_score,
    "factor_vae": factor_vae_score,
    "mig": mig_score,
    "dci": dci_score,
    "sap": sap_score,
    "hoyer": hoyer_score,
}
"""The metrics :func:`evaluate_disentanglement` runs, by name."""
SHARED_ARGUMENTS = ("dataset", "representation_function", "seed", "profile", "batch_size")
"""Arguments that :func:`evaluate_disentanglement` gives every metric itself."""


def metric_options(name: str) -> tuple[str, ...]:
    """The options metric ``name`` takes besides :data:`SHARED_ARGUMENTS` (e.g. FactorVAE's
    ``group_size``, the points per vote)."""
    parameters = inspect.signature(METRICS[name]).parameters
    return tuple(p for p in parameters if p not in SHARED_ARGUMENTS)


def evaluate_disentanglement(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    metrics: Iterable[str] | None = None,
    batch_size: int = 256,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """Merged score dicts of ``metrics`` (names in :data:`METRICS`; default all).

    :param options: per-metric options, ``{metric name: {option: value}}``, passed to that metric as
        keyword arguments; the metric's ``profile`` values hold for the options left out. E.g. Mathieu et
        al.'s (2019) FactorVAE setting, 1000 points per vote: ``{"factor_vae": {"group_size": 1000}}``.
        Each named metric must be among ``metrics``, each option among :func:`metric_options`.
    """
    names = list(METRICS) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"metrics must be names from {sorted(METRICS)}; got unknown {unknown}")
    options = {name: dict(values) for name, values in (options or {}).items()}
    for name, values in options.items():
        if name not in names:
            raise ValueError(f"options are given for metric {name!r}, which is not among the metrics {names}")
        allowed = metric_options(name)
        bad = sorted(set(values) - set(allowed))
        if bad:
            raise ValueError(f"unknown option(s) {bad} for metric {name!r}; it takes {list(allowed)}")
    scores: dict[str, float] = {}
    for name in names:
        scores.update(
            METRICS[name](
                dataset,
                representation_function,
                seed=seed,
                profile=profile,
                batch_size=batch_size,
                **options.get(name, {}),
            )
        )
    return scores
