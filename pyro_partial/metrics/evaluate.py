"""Run several disentanglement metrics with one calling convention."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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


def evaluate_disentanglement(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    metrics: Iterable[str] | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Merged score dicts of ``metrics`` (names in :data:`METRICS`; default all), each with its defaults."""
    names = list(METRICS) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"metrics must be names from {sorted(METRICS)}; got unknown {unknown}")
    scores: dict[str, float] = {}
    for name in names:
        scores.update(
            METRICS[name](dataset, representation_function, seed=seed, profile=profile, batch_size=batch_size)
        )
    return scores
