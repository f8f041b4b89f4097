"""Errors of supervised latents: classification error and confusion counts, R² and angular error.

These take predictions and targets directly (numpy arrays or torch tensors), e.g. the predicted
identity and lighting direction of Yale B faces (Siddharth et al. 2017, sec. 4).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import confusion_matrix


def classification_error(pred, target) -> float:
    """Fraction of misclassified rows.

    Args:
        pred: class indices ``(N,)`` or scores / probabilities ``(N, C)`` (argmax taken).
        target: class indices ``(N,)`` or one-hot ``(N, C)``.
    """
    pred, target = _label_pairs(pred, target)
    return float(np.mean(pred != target))


def confusion_counts(pred, target, num_classes: int) -> np.ndarray:
    """Confusion matrix ``(num_classes, num_classes)``: entry ``[i, j]`` counts the rows of class ``i``
    predicted as class ``j`` (rows sum to the class sizes, the diagonal to the correct predictions).

    Args:
        pred: class indices ``(N,)`` or scores / probabilities ``(N, C)`` (argmax taken).
        target: class indices ``(N,)`` or one-hot ``(N, C)``, in ``0 .. num_classes - 1``.
    """
    pred, target = _label_pairs(pred, target)
    for name, labels in (("pred", pred), ("target", target)):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f"{name} holds classes {labels.min()}..{labels.max()}, outside 0..{num_classes - 1}"
            )
    return confusion_matrix(target, pred, labels=np.arange(num_classes))


def largest_confusion(counts: np.ndarray) -> tuple[int, int]:
    """``(true class, predicted class)`` of the largest off-diagonal entry of :func:`confusion_counts`
    ``(C, C)``, ``C >= 2`` (the first such entry where several tie)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or len(counts) < 2:
        raise ValueError(
            f"counts must be a square matrix (C, C) with C >= 2 classes; got shape {counts.shape}"
        )
    off_diagonal = np.where(np.eye(len(counts), dtype=bool), -1, counts)
    true, predicted = np.unravel_index(np.argmax(off_diagonal), counts.shape)
    return int(true), int(predicted)


def r2_score(pred, target) -> float:
    r"""Coefficient of determination :math:`1 - \sum (y - \hat{y})^2 / \sum (y - \bar{y})^2`.

    Args:
        pred, target: ``(N,)`` or ``(N, P)``; for ``P`` outputs the scores are averaged uniformly.
    """
    pred, target = _numpy(pred), _numpy(target)
    if pred.shape != target.shape or pred.ndim not in (1, 2) or pred.shape[0] < 2:
        raise ValueError(
            f"pred and target must both be (N,) or (N, P) with N >= 2; got {pred.shape}, {target.shape}"
        )
    pred, target = pred.reshape(pred.shape[0], -1), target.reshape(target.shape[0], -1)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    if np.any(total == 0):
        raise ValueError("target must vary in every column (R² is undefined for a constant target)")
    residual = ((target - pred) ** 2).sum(axis=0)
    return float(np.mean(1.0 - residual / total))


def angular_error(pred, target):
    r"""Angle in degrees between direction vectors, row by row.

    Args:
        pred, target: 3-vectors ``(N, 3)`` (or ``(3,)``), unit or not, none of them zero.

    Returns:
        Angles in ``[0, 180]`` of shape ``(N,)`` (or a scalar): a tensor if either input is a tensor
        (differentiable away from 0 and 180 degrees), else a float64 numpy array. Computed as
        :math:`\operatorname{atan2}(|p \times t|, p \cdot t)`, accurate for small and large angles alike.
    """
    as_tensor = isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor)
    p, t = _vectors(pred, "pred"), _vectors(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target must have the same shape (N, 3); got {tuple(p.shape)}, {tuple(t.shape)}"
        )
    dtype = torch.promote_types(p.dtype, t.dtype)
    p, t = p.to(dtype), t.to(dtype)
    angle = torch.rad2deg(torch.atan2(torch.linalg.cross(p, t).norm(dim=-1), (p * t).sum(dim=-1)))
    return angle if as_tensor else angle.numpy()


def direction_from_angles(angles):
    r"""Unit vectors ``(N, 3)`` from ``(azimuth, elevation)`` pairs in degrees ``(N, 2)``.

    Azimuth :math:`a` turns about the vertical axis and elevation :math:`e` lifts towards it:
    :math:`(\cos e \sin a, \sin e, \cos e \cos a)`; ``(0, 0)`` points along the third axis (towards the camera
    for Yale B light sources).
    """
    as_tensor = isinstance(angles, torch.Tensor)
    angles = angles if as_tensor else torch.as_tensor(np.asarray(angles, dtype=np.float64))
    if angles.shape[-1:] != (2,):
        raise ValueError(
            f"angles must have shape (N, 2) = (azimuth, elevation) in degrees; got {tuple(angles.shape)}"
        )
    azimuth, elevation = torch.deg2rad(angles).unbind(-1)
    direction = torch.stack(
        [elevation.cos() * azimuth.sin(), elevation.sin(), elevation.cos() * azimuth.cos()], dim=-1
    )
    return direction if as_tensor else direction.numpy()


def angular_error_from_angles(pred, target):
    """Angle in degrees between the directions of ``(azimuth, elevation)`` pairs ``(N, 2)`` in degrees."""
    return angular_error(direction_from_angles(pred), direction_from_angles(target))


def _vectors(x, name: str) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    if x.shape[-1:] != (3,) or x.ndim > 2:
        raise ValueError(f"{name} must have shape (N, 3) or (3,); got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.double()
    if torch.any(x.detach().norm(dim=-1) == 0):
        raise ValueError(f"{name} holds a zero vector, which has no direction")
    return x


def _label_pairs(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """Class indices ``(N,)`` of ``pred`` and ``target`` as :func:`classification_error` takes them."""
    pred, target = _labels(pred, "pred"), _labels(target, "target")
    if pred.shape != target.shape or pred.size == 0:
        raise ValueError(
            f"pred and target must hold the same number N >= 1 of rows; got {pred.shape}, {target.shape}"
        )
    return pred, target


def _labels(x, name: str) -> np.ndarray:
    x = _numpy(x)
    if x.ndim == 2:
        return x.argmax(axis=1)
    if x.ndim != 1:
        raise ValueError(f"{name} must be class indices (N,) or scores (N, C); got shape {x.shape}")
    return x


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
