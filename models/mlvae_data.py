"""The Multi-Level VAE experiment's data: images grouped by an integer label, split into training and
evaluation images.

- ``mnist``: the 60,000 training images for training, the 10,000 test images for evaluation, grouped by
  digit.
- ``yaleb``: the 2,414 cropped Yale B faces of 38 subjects under 64 lightings
  (:class:`pyro_partial.data.yaleb.YaleB`), resized to ``(H, W)`` and grouped by subject; 40% of every
  subject's images, drawn with the run's seed (:func:`pyro_partial.data.yaleb.train_test_split`), are the
  evaluation images, so lighting varies within every group of both parts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pyro_partial.data import mnist, yaleb

DATASETS = ("mnist", "yaleb")
NUM_LABELS = {"mnist": mnist.NUM_CLASSES, "yaleb": 38}
"""The number of group labels of each data set: digits, Yale B subjects."""
YALEB_TEST_FRACTION = 0.4


@dataclass(frozen=True)
class GroupedImages:
    """Flattened images in ``[0, 1]`` with integer group labels ``0..num_labels-1``.

    ``train_x`` ``(N, x_dim)`` and ``train_y`` ``(N,)`` for training, ``test_x`` ``(M, x_dim)`` and
    ``test_y`` ``(M,)`` for evaluation; one image reshapes to ``image_shape`` ``(H, W)``.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    image_shape: tuple[int, int]
    num_labels: int


def load_grouped_images(
    name: str,
    root: str | os.PathLike | None,
    yaleb_size: Sequence[int],
    seed: int,
    *,
    download: bool = False,
) -> GroupedImages:
    """MNIST grouped by digit, or Yale B grouped by subject (see the module docstring).

    :param name: ``"mnist"`` or ``"yaleb"``.
    :param root: data root (default ``$PYRO_PARTIAL_DATA``).
    :param yaleb_size: ``(H, W)`` the faces are resized to.
    :param seed: seed of the Yale B evaluation images' draw.
    :param download: download missing files.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    if name == "mnist":
        train_x, train_y = mnist.load_mnist("train", root, validation_size=0, download=download)
        test_x, test_y = mnist.load_mnist("test", root, download=download)
        return GroupedImages(train_x, train_y, test_x, test_y, mnist.IMAGE_SHAPE, NUM_LABELS[name])
    size = tuple(int(s) for s in yaleb_size)
    faces = yaleb.YaleB(root, size=size, download=download)
    images = faces.images.flatten(1).to(torch.get_default_dtype()) / 255
    labels = torch.from_numpy(faces.subject)
    train, test = (
        torch.from_numpy(rows) for rows in yaleb.train_test_split(faces.subject, YALEB_TEST_FRACTION, seed)
    )
    return GroupedImages(
        images[train], labels[train], images[test], labels[test], size, faces.factor_sizes[0]
    )
