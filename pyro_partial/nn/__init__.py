"""Neural-network building blocks shared by the models in ``models/``."""

from pyro_partial.nn.conv import ConvDecoder, ConvEncoder
from pyro_partial.nn.mlp import MLP, ConcatMLP, GaussianHead
from pyro_partial.nn.spatial import read_patch, write_patch

__all__ = ["MLP", "ConcatMLP", "ConvDecoder", "ConvEncoder", "GaussianHead", "read_patch", "write_patch"]
