"""Semi-supervised MNIST (Siddharth et al. 2017, §4.1) with :class:`~pyro_partial.infer.SemiSupervisedELBO`.

A class-balanced labelled subset of ``--labels`` training images is drawn once from ``--seed``; the rest of
the first 50,000 training images are unlabelled, the last 10,000 are the validation set, and the test
error is measured on the 10,000 test images. Each epoch visits every unlabelled image once, mixed with
labelled images at the supervision rate ``--rho`` (by default the natural rate M / (N + M)). The
classifier weight is α = 50 per labelled row by default (``--alpha``; see :mod:`models._semi_supervised`).
The style has 10 dimensions; ``--network conv`` swaps the MLPs for convolutional networks.

    python -m models.mnist --labels 100 --epochs 3 --seed 0
    pyro-partial train mnist --labels 100 --epochs 3 --seed 0      # the same, through the console script
    pyro-partial plot mnist --run runs/mnist/labels100_m2_mlp_seed0

writes ``config.json``, ``metrics.csv`` (per epoch), ``checkpoint.pt`` (atomic, after every epoch;
``--resume`` continues exactly) and ``results.json`` (test error, time, command, versions, seed) under
``--out``; ``plot`` writes PNG figures of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models import _semi_supervised as experiment
from pyro_partial.data.mnist import load_mnist

IMAGE_SHAPE = (1, 28, 28)
PROG = "python -m models.mnist"


def load_splits(root: Path | None) -> experiment.Splits:
    """Training (first 50,000), validation (last 10,000 training) and test images, flattened."""
    train, validation, test = (load_mnist(split, root) for split in ("train", "validation", "test"))
    return experiment.Splits(IMAGE_SHAPE, *train, *validation, *test)


def load_test(root: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 flattened test images ``(10000, 784)`` and their labels."""
    return load_mnist("test", root)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Train (see module docstring); ``argv`` defaults to ``sys.argv[1:]``. Returns the results record."""
    parser = experiment.experiment_parser(
        "mnist", prog, __doc__, labels=100, z_dim=10, network="mlp", hidden=(500,)
    )
    args = experiment.parse(parser, argv)
    return experiment.train(args, load_splits(args.data))


def plot(argv: Sequence[str] | None = None, prog: str = "pyro-partial plot mnist") -> dict[str, Path]:
    """Write the figures of a trained MNIST run (``--run DIR``); returns ``{figure: path}``."""
    return experiment.plot(argv, "mnist", prog, load_test)


if __name__ == "__main__":
    main()
