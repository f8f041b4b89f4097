"""Data sets, semi-supervised splits and samplers."""

from pyro_partial.data.download import DownloadError
from pyro_partial.data.dsprites import DSprites, load_gif_traversals
from pyro_partial.data.ground_truth import GroundTruthDataset
from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups
from pyro_partial.data.integrity import DataFileError
from pyro_partial.data.mnist import load_mnist, mnist_dataset, mnist_root
from pyro_partial.data.multi_mnist import MultiMNIST, load_multi_mnist, make_multi_mnist
from pyro_partial.data.paths import cache_dir, data_root, download_root
from pyro_partial.data.pinwheel import Pinwheel, pinwheel_points
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit, validation_rows
from pyro_partial.data.svhn import load_svhn, read_svhn_mat, svhn_file
from pyro_partial.data.yaleb import YaleB
from pyro_partial.data.yaleb import train_test_split as yaleb_train_test_split

__all__ = [
    "DSprites",
    "DataFileError",
    "DownloadError",
    "GroundTruthDataset",
    "GroupedBatchSampler",
    "MultiMNIST",
    "Pinwheel",
    "SemiSupervisedBatchSampler",
    "SemiSupervisedSplit",
    "YaleB",
    "cache_dir",
    "data_root",
    "download_root",
    "load_gif_traversals",
    "load_mnist",
    "load_multi_mnist",
    "load_svhn",
    "make_multi_mnist",
    "mnist_dataset",
    "mnist_root",
    "pad_groups",
    "pinwheel_points",
    "read_svhn_mat",
    "svhn_file",
    "validation_rows",
    "yaleb_train_test_split",
]
