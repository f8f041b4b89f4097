"""Semi-supervised MNIST (Siddharth et al. 2017, §4.1): :mod:`pyro_partial_models.semi_supervised_images` on
28×28 digits, MLP networks and a 10-dimensional style by default (``--network conv`` for convolutions).

The first 50,000 training images are the training set (``--labels`` of them labelled), the last 10,000 the
validation set; the test error is measured on the 10,000 test images.

    pyro-partial train mnist --labels 100 --epochs 3 --seed 0
    pyro-partial plot mnist --run runs/mnist/labels100_m2_mlp_seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pyro_partial.data.mnist import load_mnist
from pyro_partial_models.semi_supervised_images import SemiSupervisedImages, Splits

IMAGE_SHAPE = (1, 28, 28)


class MNIST(SemiSupervisedImages):
    """``mnist``: the semi-supervised experiment on MNIST (see the module docstring)."""

    name = "mnist"
    description = __doc__

    def load_splits(self, args: argparse.Namespace) -> Splits:
        train, validation, test = (
            load_mnist(split, args.data, download=args.download) for split in ("train", "validation", "test")
        )
        return Splits(IMAGE_SHAPE, *train, *validation, *test)

    def load_test(self, root: Path | None, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The 10,000 flattened test images ``(10000, 784)`` and their labels."""
        return load_mnist("test", root, download=download)
