"""Data sets, semi-supervised splits and samplers."""

from pyro_partial.data.ground_truth import GroundTruthDataset
from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups
from pyro_partial.data.mnist import load_mnist, mnist_dataset, mnist_root
from pyro_partial.data.paths import cache_dir, data_root
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit, validation_rows
from pyro_partial.data.svhn import load_svhn, read_svhn_mat, svhn_file

__all__ = [
    "GroundTruthDataset",
    "GroupedBatchSampler",
    "SemiSupervisedBatchSampler",
    "SemiSupervisedSplit",
    "cache_dir",
    "data_root",
    "load_mnist",
    "load_svhn",
    "mnist_dataset",
    "mnist_root",
    "pad_groups",
    "read_svhn_mat",
    "svhn_file",
    "validation_rows",
]
