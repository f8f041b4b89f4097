"""Data sets, semi-supervised splits and samplers."""

from pyro_partial.data.ground_truth import GroundTruthDataset
from pyro_partial.data.paths import cache_dir, data_root

__all__ = ["GroundTruthDataset", "cache_dir", "data_root"]
