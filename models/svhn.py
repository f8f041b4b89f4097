"""Semi-supervised SVHN (Siddharth et al. 2017, §4.1): :mod:`pyro_partial_models.semi_supervised_images` on
32×32 colour digits, convolutional networks, a 15-dimensional style and 1,000 labels by default.

The last ``--validation-size`` images of the SVHN train file are the validation set, the others training
images; the test error is measured on the test file's 26,032 images. The likelihood is the model's Bernoulli
cross-entropy on the RGB intensities in [0, 1] (see :mod:`pyro_partial_models.ss_vae`).

    pyro-partial train svhn --labels 1000 --epochs 3 --seed 0
    pyro-partial plot svhn --run runs/svhn/labels1000_m2_conv_seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pyro_partial.data.svhn import load_svhn
from pyro_partial_models.semi_supervised_images import SemiSupervisedImages, Splits

IMAGE_SHAPE = (3, 32, 32)


class SVHN(SemiSupervisedImages):
    """``svhn``: the semi-supervised experiment on SVHN (see the module docstring)."""

    name = "svhn"
    description = __doc__
    labels = 1000
    z_dim = 15
    network = "conv"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The shared options and ``--validation-size``."""
        super().add_arguments(parser)
        parser.add_argument(
            "--validation-size", type=int, default=5000, help="train-file images held out for validation"
        )

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        """The shared checks, and ``--validation-size`` positive."""
        problems = super().check_arguments(args)
        if args.validation_size < 1:
            problems.append(f"--validation-size must be a positive number, got {args.validation_size}")
        return problems

    def load_splits(self, args: argparse.Namespace) -> Splits:
        train, validation = (
            flat(load_svhn(split, args.data, validation_size=args.validation_size, download=args.download))
            for split in ("train", "validation")
        )
        return Splits(IMAGE_SHAPE, *train, *validation, *self.load_test(args.data, args.download))

    def load_test(self, root: Path | None, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The flattened test images ``(N, 3072)`` and their labels."""
        return flat(load_svhn("test", root, download=download))


def flat(split: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, 32, 32)`` and labels ``(N,)`` as flattened images ``(N, 3072)`` and the labels."""
    images, labels = split
    return images.flatten(1), labels
