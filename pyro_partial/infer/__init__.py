"""Objectives for partially supervised and disentangled models."""

from pyro_partial.infer.decomposition import DecompositionELBO, decomposition_penalty
from pyro_partial.infer.decomposition_terms import Decomposition
from pyro_partial.infer.divergences import imq_kernel, inclusive_kl, mmd_imq
from pyro_partial.infer.semi_supervised import SemiSupervisedELBO
from pyro_partial.infer.supervision import supervision_rate, supervision_weights

__all__ = [
    "Decomposition",
    "DecompositionELBO",
    "SemiSupervisedELBO",
    "decomposition_penalty",
    "imq_kernel",
    "inclusive_kl",
    "mmd_imq",
    "supervision_rate",
    "supervision_weights",
]
