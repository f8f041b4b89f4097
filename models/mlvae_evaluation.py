"""Evaluating a trained Multi-Level VAE on images of seen and held-out labels (Bouchacourt et al. 2018, §5).

:func:`evaluate` reports, on the evaluation images of all labels (:mod:`pyro_partial.grouped.evaluation`):

- the group label predicted from the content means vs from the style means (logistic regression on one half
  of the evaluation images, accuracy on the other half), on all labels, among the training labels only and
  among the held-out labels only (the style of a label never trained on must carry its shape, since the
  content has not learned it);
- the label of ``k = 1, 2, 5, 10`` images identified from their accumulated content posterior by nearest
  centroid among all labels, for training labels and for held-out (unseen) labels.

:func:`write_swap_grid` draws the swap grid: rows take the style of an evaluation image, columns the content
of a group of evaluation images of one label (held-out labels included).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pyro_partial.grouped import (
    GroupedVAE,
    ImageCodes,
    content_style_accuracy,
    encode_images,
    group_identification_accuracy,
    save_swap_grid,
    swap_grid,
)

GROUP_SIZES = (1, 2, 5, 10)


def evaluate(
    vae: GroupedVAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    holdout: Sequence[int],
    seed: int,
    group_sizes: Sequence[int] = GROUP_SIZES,
) -> dict[str, Any]:
    """Evaluate on ``images`` ``(N, x_dim)`` with integer ``labels`` ``(N,)`` (see the module docstring).

    :param holdout: the labels left out of training.
    :param seed: seed of the probes' splits and of the identification queries.
    :returns: ``classification`` (``{"content", "style", "chance"}``: group label from content vs style means,
        all images), ``classification_seen`` (the same among the training labels' images, if any label is
        held out), ``classification_unseen`` (the same among the held-out labels' images, if two or more are
        held out), ``identification_seen`` / ``identification_unseen`` (``{str(k): accuracy}``, nearest
        centroid among all labels of the content posterior of ``k`` images of a training / held-out label).
    """
    codes = encode_images(vae, images)
    results: dict[str, Any] = {"classification": content_style_accuracy(codes, labels, seed=seed)}
    unseen = torch.isin(labels, torch.tensor(list(holdout), dtype=labels.dtype, device=labels.device))
    if unseen.any():  # the labels trained on: only for those could training drain the label from the style
        seen_codes = ImageCodes(*(tensor[~unseen] for tensor in codes))
        results["classification_seen"] = content_style_accuracy(seen_codes, labels[~unseen], seed=seed)
    if len(holdout) >= 2:
        unseen_codes = ImageCodes(*(tensor[unseen] for tensor in codes))
        results["classification_unseen"] = content_style_accuracy(unseen_codes, labels[unseen], seed=seed)
    seen_labels = labels[~unseen].unique().tolist()
    for name, query in (("seen", seen_labels), ("unseen", list(holdout))):
        if query:
            accuracy = group_identification_accuracy(
                codes.content_loc,
                codes.content_scale,
                labels,
                query_labels=query,
                group_sizes=group_sizes,
                evidence=vae.evidence,
                seed=seed,
            )
            results[f"identification_{name}"] = {str(k): v for k, v in accuracy.items()}
    return results


def swap_grid_labels(labels: Sequence[int], holdout: Sequence[int], columns: int) -> list[int]:
    """The labels of a swap grid's ``columns`` columns, in increasing order: up to half of them held-out
    labels (the first of ``holdout``), the rest the smallest training labels among ``labels``."""
    unseen = sorted(set(holdout))[: columns // 2]
    seen = sorted(set(labels) - set(holdout))
    return sorted(unseen + seen[: columns - len(unseen)])


def write_swap_grid(
    vae: GroupedVAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    holdout: Sequence[int],
    image_shape: Sequence[int],
    path: str | os.PathLike,
    *,
    rows: int = 8,
    columns: int = 10,
    group_size: int = 5,
) -> tuple[Path, list[int]]:
    """Save the swap grid of ``vae`` on ``images`` ``(N, x_dim)`` with ``labels`` ``(N,)`` at ``path``.

    Rows take the styles of the first ``rows`` images; columns the contents of groups of ``group_size``
    images of one label each, the first such images after the style rows, for the labels
    :func:`swap_grid_labels` chooses.

    :returns: the figure's path and the columns' labels.
    """
    column_labels = swap_grid_labels(labels.unique().tolist(), holdout, columns)
    style_images, rest, rest_labels = images[:rows], images[rows:], labels[rows:]
    groups = []
    for label in column_labels:
        members = rest[rest_labels == label][:group_size]
        if len(members) < group_size:
            raise ValueError(
                f"label {label} has {len(members)} evaluation images after the {rows} style rows; "
                f"a content group needs group_size={group_size}"
            )
        groups.append(members)
    content_groups = torch.stack(groups)
    grid = swap_grid(vae, style_images, content_groups)
    return save_swap_grid(grid, style_images, content_groups[:, 0], path, image_shape), column_labels
