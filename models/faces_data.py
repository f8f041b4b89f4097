"""The faces experiment's data: Yale B split into training and held-out faces, the subject-balanced labelled
subset of the training faces, and its mini-batches with the labels of unlabelled rows hidden.

The cropped faces (``<data root>/yaleb/CroppedYale.zip``, 2,414 images, 38 subjects, 64 light
directions, :class:`pyro_partial.data.yaleb.YaleB`) are resized to ``size`` x ``size``; ``test_fraction`` of
each subject's images are held out at random with ``split_seed``
(:func:`pyro_partial.data.yaleb.train_test_split`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from pyro_partial.data.semi_supervised import SemiSupervisedSplit
from pyro_partial.data.yaleb import YaleB, train_test_split
from pyro_partial.distributions.lighting import direction_from_angles
from pyro_partial_models.faces_vae import NUM_IDENTITIES, placeholders


@dataclass(frozen=True)
class FacesData:
    """Faces ``(N, 1, H, W)`` in [0, 1], subject indices ``(N,)`` in ``0..37`` and unit light vectors
    ``(N, 3)`` of the training and held-out test split."""

    train_x: torch.Tensor
    train_subject: torch.Tensor
    train_light: torch.Tensor
    test_x: torch.Tensor
    test_subject: torch.Tensor
    test_light: torch.Tensor


def load_faces(
    root: str | os.PathLike | None,
    size: int,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    *,
    download: bool = False,
) -> FacesData:
    """Yale B resized to ``size`` x ``size``, split by :func:`pyro_partial.data.yaleb.train_test_split`
    (``round(test_fraction · n_s)`` random images of each subject ``s`` held out).

    :param root: data root (default ``$PYRO_PARTIAL_DATA``; see :class:`~pyro_partial.data.yaleb.YaleB`).
    :param download: download a missing archive.
    """
    faces = YaleB(root, size=(size, size), download=download)
    x = faces.images.unsqueeze(1).float() / 255.0
    subject = torch.from_numpy(faces.subject)
    angles = np.stack([faces.azimuth, faces.elevation], axis=-1)
    light = torch.from_numpy(direction_from_angles(angles)).float()
    train, test = (
        torch.from_numpy(rows) for rows in train_test_split(faces.subject, test_fraction, split_seed)
    )
    return FacesData(x[train], subject[train], light[train], x[test], subject[test], light[test])


def labelled_split(subject: torch.Tensor, fraction: float, seed: int) -> SemiSupervisedSplit | None:
    """The subject-balanced labelled subset of ``round(fraction · N / 38) · 38`` (at least 38) of the ``N``
    training faces with subjects ``subject`` ``(N,)``, drawn from ``seed``, or ``None`` for ``fraction = 1``
    (every face labelled)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if fraction == 1.0:
        return None
    per_subject = max(1, round(fraction * len(subject) / NUM_IDENTITIES))
    return SemiSupervisedSplit(subject, per_subject * NUM_IDENTITIES, seed=seed, num_classes=NUM_IDENTITIES)


def hide_unlabelled(tensors: Mapping[str, torch.Tensor], item: tuple[torch.Tensor, torch.Tensor]) -> tuple:
    """The gather of :class:`~pyro_partial.training.DeviceBatches`: one batch ``(index, is_labelled)`` of the
    tensors ``{"images": (N, 1, H, W), "identity": one-hot (N, 38), "light": (N, 3)}`` as the model's
    arguments ``(images, identity, light, is_labelled)``, the labels of unlabelled rows replaced by
    :func:`~pyro_partial_models.faces_vae.placeholders` (so nothing can leak from them)."""
    index, is_labelled = item
    images = tensors["images"][index]
    identity, light = placeholders(
        len(index), tensors["identity"].shape[-1], dtype=images.dtype, device=images.device
    )
    keep = is_labelled.unsqueeze(-1)
    identity = torch.where(keep, tensors["identity"][index], identity)
    light = torch.where(keep, tensors["light"][index], light)
    return images, identity, light, is_labelled
