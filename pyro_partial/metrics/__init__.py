"""Disentanglement metrics and errors of supervised latents.

Every disentanglement metric is called as ``metric(dataset, representation_function, seed=0,
profile="full", **options)`` with a :class:`~pyro_partial.data.GroundTruthDataset` and a function
mapping observations ``(N, *observation_shape)`` to codes ``(N, D)``; it returns a dict of floats.
``profile="full"`` equals google-research/disentanglement_lib's defaults, ``profile="fast"`` uses
smaller samples (see :mod:`pyro_partial.metrics.profiles`). The ``*_from_codes`` / matrix functions
score codes that are already computed.
"""

from pyro_partial.metrics.beta_vae import beta_vae_score
from pyro_partial.metrics.clustering import adjusted_rand_index, cluster_scores, mixture_assignments, purity
from pyro_partial.metrics.dci import dci_completeness, dci_disentanglement, dci_from_codes, dci_score
from pyro_partial.metrics.evaluate import METRICS, evaluate_disentanglement
from pyro_partial.metrics.factor_vae import factor_vae_score
from pyro_partial.metrics.hoyer import hoyer_score, hoyer_sparsity
from pyro_partial.metrics.mig import (
    discrete_mutual_information,
    histogram_discretize,
    mig_from_codes,
    mig_score,
)
from pyro_partial.metrics.profiles import PROFILES
from pyro_partial.metrics.sap import sap_from_matrix, sap_score, sap_score_matrix
from pyro_partial.metrics.supervised import (
    angular_error,
    angular_error_from_angles,
    classification_error,
    confusion_counts,
    direction_from_angles,
    largest_confusion,
    r2_score,
)

__all__ = [
    "METRICS",
    "PROFILES",
    "adjusted_rand_index",
    "angular_error",
    "angular_error_from_angles",
    "beta_vae_score",
    "classification_error",
    "cluster_scores",
    "confusion_counts",
    "dci_completeness",
    "dci_disentanglement",
    "dci_from_codes",
    "dci_score",
    "direction_from_angles",
    "discrete_mutual_information",
    "evaluate_disentanglement",
    "factor_vae_score",
    "hoyer_score",
    "hoyer_sparsity",
    "histogram_discretize",
    "largest_confusion",
    "mig_from_codes",
    "mig_score",
    "mixture_assignments",
    "purity",
    "r2_score",
    "sap_from_matrix",
    "sap_score",
    "sap_score_matrix",
]
