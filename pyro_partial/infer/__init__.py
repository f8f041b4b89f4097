"""Objectives for partially supervised and disentangled models."""

from pyro_partial.infer.decomposition import DecompositionELBO, decomposition_penalty
from pyro_partial.infer.decomposition_terms import Decomposition
from pyro_partial.infer.divergences import imq_kernel, inclusive_kl, mmd_imq
from pyro_partial.infer.log_evidence import class_log_posterior, most_probable_class, row_log_evidence
from pyro_partial.infer.semi_supervised import SemiSupervisedELBO
from pyro_partial.infer.supervision import supervision_rate, supervision_weights

__all__ = [
    "Decomposition",
    "DecompositionELBO",
    "SemiSupervisedELBO",
    "class_log_posterior",
    "decomposition_penalty",
    "imq_kernel",
    "inclusive_kl",
    "mmd_imq",
    "most_probable_class",
    "row_log_evidence",
    "supervision_rate",
    "supervision_weights",
]
