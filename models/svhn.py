"""Semi-supervised SVHN (Siddharth et al. 2017, §4.1) with :class:`~pyro_partial.infer.SemiSupervisedELBO`.

The same experiment as :mod:`models.mnist` on 32×32 colour digits: convolutional networks by default,
a 15-dimensional style, 1000 labels. The last ``--validation-size`` images of the SVHN train file are
the validation set, the others are training images (labelled subset drawn once from ``--seed``); the
test error is measured on the test file's 26,032 images. The likelihood is the model's Bernoulli
cross-entropy on the RGB intensities in [0, 1] (see :mod:`models.ss_vae`).

    python -m models.svhn --labels 1000 --epochs 3 --seed 0
    pyro-partial train svhn --labels 1000 --epochs 3 --seed 0      # the same, through the console script
    pyro-partial plot svhn --run runs/svhn/labels1000_m2_conv_seed0

writes the same run directory as :mod:`models.mnist`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models import _semi_supervised as experiment
from pyro_partial.data.svhn import load_svhn

IMAGE_SHAPE = (3, 32, 32)
PROG = "python -m models.svhn"


def _flat(split: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = split
    return images.flatten(1), labels


def load_splits(root: Path | None, validation_size: int) -> experiment.Splits:
    """Training, validation (the train file's last ``validation_size`` rows) and test images, flattened."""
    train, validation = (
        _flat(load_svhn(split, root, validation_size=validation_size)) for split in ("train", "validation")
    )
    return experiment.Splits(IMAGE_SHAPE, *train, *validation, *load_test(root))


def load_test(root: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The flattened test images ``(N, 3072)`` and their labels."""
    return _flat(load_svhn("test", root))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Train (see module docstring); ``argv`` defaults to ``sys.argv[1:]``. Returns the results record."""
    parser = experiment.experiment_parser(
        "svhn", prog, __doc__, labels=1000, z_dim=15, network="conv", hidden=(500,)
    )
    parser.add_argument(
        "--validation-size", type=int, default=5000, help="train-file images held out for validation"
    )
    args = experiment.parse(parser, argv)
    return experiment.train(args, load_splits(args.data, args.validation_size))


def plot(argv: Sequence[str] | None = None, prog: str = "pyro-partial plot svhn") -> dict[str, Path]:
    """Write the figures of a trained SVHN run (``--run DIR``); returns ``{figure: path}``."""
    return experiment.plot(argv, "svhn", prog, load_test)


if __name__ == "__main__":
    main()
