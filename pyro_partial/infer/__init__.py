"""Objectives for partially supervised and disentangled models."""

from pyro_partial.infer.semi_supervised import SemiSupervisedELBO
from pyro_partial.infer.supervision import supervision_rate, supervision_weights

__all__ = ["SemiSupervisedELBO", "supervision_rate", "supervision_weights"]
