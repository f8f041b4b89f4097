r"""Evaluating a trained :class:`~pyro_partial.grouped.GroupedVAE` (Bouchacourt et al. 2018, section 5).

Three checks of whether the content latent carries the group and the style latent the rest:

- :func:`content_style_accuracy`: a linear classifier predicts each image's group label from its content
  posterior mean and, separately, from its style posterior mean. A disentangled model gives high content
  accuracy and style accuracy near chance.
- :func:`group_identification_accuracy`: inference for (possibly unseen) groups from ``k`` images. The
  content posterior of ``k`` images of one label, accumulated as in training (the paper's product of the
  members' Gaussians, :math:`\sigma_G^{-2} = \sum_i \sigma_i^{-2}`,
  :math:`\mu_G = \sigma_G^2 \sum_i \sigma_i^{-2} \mu_i`), is
  assigned to the nearest label centroid; accuracy should rise with ``k`` also for labels never trained on.
- :func:`swap_grid` / :func:`save_swap_grid`: decode the style of one image with the content of another
  group.

Per-image posteriors come from :func:`encode_images`, which treats every image as a group of one, so the
content posterior of an image is its own evidence :math:`q(C|x_i)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pyro_partial.grouped.evidence import accumulate_gaussian_evidence
from pyro_partial.grouped.model import GroupedVAE
from pyro_partial.plots.grids import save_figure


class ImageCodes(NamedTuple):
    """Per-image posteriors: content evidence ``(N, content_dim)`` and style posterior ``(N, style_dim)``."""

    content_loc: torch.Tensor
    content_scale: torch.Tensor
    style_loc: torch.Tensor
    style_scale: torch.Tensor


def _check_labels(labels: torch.Tensor, num: int) -> np.ndarray:
    labels = torch.as_tensor(labels)
    if labels.shape != (num,) or labels.dtype.is_floating_point:
        raise ValueError(
            f"labels must be an integer tensor of shape ({num},), got {labels.dtype} {labels.shape}"
        )
    return labels.cpu().numpy()


@torch.no_grad()
def encode_images(vae: GroupedVAE, images: torch.Tensor, batch_size: int = 1000) -> ImageCodes:
    """Encode ``images`` ``(N, *event)`` one by one, each as a group of one member.

    The images are encoded in chunks of ``batch_size`` on the module's device; the codes are returned on
    the images' device.

    :returns: :class:`ImageCodes` with tensors of shape ``(N, content_dim)`` and ``(N, style_dim)``.
    """
    if images.dim() < 1 or len(images) == 0:
        raise ValueError(f"images must have shape (N, *event) with N > 0, got {tuple(images.shape)}")
    device = next(vae.parameters(), images).device
    parts = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size].to(device).unsqueeze(1)
        content_loc, content_scale, style_loc, style_scale = vae.guide.encode(chunk)
        parts.append((content_loc, content_scale, style_loc.squeeze(1), style_scale.squeeze(1)))
    return ImageCodes(*(torch.cat(tensors).to(images.device) for tensors in zip(*parts, strict=True)))


def content_style_accuracy(
    codes: ImageCodes, labels: torch.Tensor, *, test_fraction: float = 0.5, seed: int = 0
) -> dict[str, float]:
    """Test accuracy of predicting ``labels`` ``(N,)`` from the content means vs from the style means.

    Both classifiers are multinomial logistic regressions on standardised features, trained and tested on
    the same stratified split of the ``N`` images (``test_fraction`` of them for testing).

    :returns: ``{"content": accuracy, "style": accuracy, "chance": share of the test split's most
        frequent label}`` (the accuracy of always guessing that label).
    """
    y = _check_labels(labels, len(codes.content_loc))
    rows = np.arange(len(y))
    train, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=y)
    result = {}
    for name, features in (("content", codes.content_loc), ("style", codes.style_loc)):
        features = features.cpu().double().numpy()
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        classifier.fit(features[train], y[train])
        result[name] = float(classifier.score(features[test], y[test]))
    result["chance"] = float(np.bincount(y[test]).max() / len(test))
    return result


def group_identification_accuracy(
    content_loc: torch.Tensor,
    content_scale: torch.Tensor,
    labels: torch.Tensor,
    *,
    query_labels: Sequence[int] | None = None,
    group_sizes: Sequence[int] = (1, 2, 5, 10),
    queries_per_label: int = 100,
    evidence: str = "product",
    seed: int = 0,
) -> dict[int, float]:
    """Identify a group's label from the content posterior of ``k`` of its images, by nearest centroid.

    Each label's images are split in half at random. The first half are *reference* images: their
    accumulated content posterior mean is the label's centroid, which is where the posterior of ever more
    images of that label converges to. From the second half, ``queries_per_label`` groups of ``k``
    distinct images are drawn per query label; each group's accumulated content posterior mean is
    assigned to the label with the nearest centroid (Euclidean distance), among all labels present.
    Nearest-centroid needs no classifier beyond the model itself, so it measures the content space
    directly, and it applies unchanged to labels the model never saw; chance is one over the number
    of labels.

    :param content_loc: per-image content evidence means ``(N, D)`` (see :func:`encode_images`).
    :param content_scale: per-image content evidence scales ``(N, D)``.
    :param labels: integer group labels ``(N,)``.
    :param query_labels: labels whose groups are queried (e.g. the held-out ones); all labels if ``None``.
    :param group_sizes: the numbers ``k`` of images per query group.
    :param queries_per_label: query groups per label and group size.
    :param evidence: ``"product"`` (ML-VAE) or ``"average"`` (GVAE) accumulation, as in the model.
    :param seed: seed of the reference/query split and of the query draws.
    :returns: ``{k: accuracy}`` over all query groups of size ``k``.
    """
    y = _check_labels(labels, len(content_loc))
    if content_scale.shape != content_loc.shape or content_loc.dim() != 2:
        raise ValueError(
            f"content_loc and content_scale must both have shape (N, D), got {tuple(content_loc.shape)} "
            f"and {tuple(content_scale.shape)}"
        )
    candidates = np.unique(y)
    queried = candidates if query_labels is None else np.asarray(query_labels)
    missing = np.setdiff1d(queried, candidates)
    if missing.size:
        raise ValueError(f"query_labels {missing.tolist()} have no images among labels {candidates.tolist()}")
    counts = dict(zip(*np.unique(y, return_counts=True), strict=True))
    rarest = min(counts[label] - counts[label] // 2 for label in queried)
    if min(counts.values()) < 2 or not 1 <= min(group_sizes) <= max(group_sizes) <= rarest:
        raise ValueError(
            f"group_sizes must lie between 1 and {rarest} (the query images of the rarest queried label) "
            f"and every label needs 2 images, got group_sizes={list(group_sizes)} and label counts {counts}"
        )
    rng = np.random.default_rng(seed)
    references, pools = {}, {}
    for label in candidates:
        members = rng.permutation(np.flatnonzero(y == label))
        references[label], pools[label] = members[: len(members) // 2], members[len(members) // 2 :]
    centroids = torch.stack(
        [
            accumulate_gaussian_evidence(
                content_loc[references[k]], content_scale[references[k]], None, evidence
            )[0]
            for k in candidates
        ]
    )
    accuracy = {}
    for size in group_sizes:
        query_index = np.stack(
            [rng.choice(pools[k], size, replace=False) for k in queried for _ in range(queries_per_label)]
        )
        query_loc, _ = accumulate_gaussian_evidence(
            content_loc[query_index], content_scale[query_index], None, evidence
        )
        predicted = candidates[torch.cdist(query_loc, centroids).argmin(-1).cpu().numpy()]
        accuracy[size] = float((predicted == np.repeat(queried, queries_per_label)).mean())
    return accuracy


@torch.no_grad()
def swap_grid(
    vae: GroupedVAE,
    style_images: torch.Tensor,
    content_groups: torch.Tensor,
    content_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode every style source with every content source: the mean of ``p(x | C_j, S_i)``.

    :param style_images: ``(R, *event)``; row ``i`` uses the style posterior mean of image ``i``.
    :param content_groups: ``(M, K, *event)``; column ``j`` uses the accumulated content posterior mean of
        group ``j`` (``K = 1`` takes the content of single images).
    :param content_mask: optional bool ``(M, K)``, true at present members of the content groups.
    :returns: ``(R, M, *event)`` on the device of ``style_images``, cell ``(i, j)`` the decoder's mean at
        ``(C_j, S_i)`` (computed on the module's device).
    """
    if content_groups.shape[2:] != style_images.shape[1:]:
        raise ValueError(
            f"content_groups must have shape (M, K, *event) with event {tuple(style_images.shape[1:])} of "
            f"style_images (R, *event), got {tuple(content_groups.shape)}"
        )
    device = next(vae.parameters(), style_images).device
    if content_mask is not None:
        content_mask = content_mask.to(device)
    content, _, _, _ = vae.guide.encode(content_groups.to(device), content_mask)
    _, _, style, _ = vae.guide.encode(style_images.to(device).unsqueeze(1))
    num_content, num_style = len(content), len(style)
    # content sources are the decoder's groups and style sources its members: (M, 1, D_c) with (M, R, D_s)
    likelihood = vae.model.decoder(content.unsqueeze(1), style.squeeze(1).expand(num_content, num_style, -1))
    return likelihood.mean.transpose(0, 1).to(style_images.device)


def save_swap_grid(
    grid: torch.Tensor,
    style_images: torch.Tensor,
    content_images: torch.Tensor,
    path: str | os.PathLike,
    image_shape: Sequence[int],
) -> Path:
    """Save a swap grid as a PNG, with the style sources as a first column and content sources as a first row;
    return its path.

    :param grid: ``(R, M, *event)`` from :func:`swap_grid`.
    :param style_images: the ``R`` style sources ``(R, *event)``.
    :param content_images: one image per content source ``(M, *event)`` (e.g. each group's first member).
    :param image_shape: ``(H, W)`` or ``(H, W, 3)`` that one event reshapes to for display.
    """
    rows, cols = grid.shape[:2]
    if style_images.shape[0] != rows or content_images.shape[0] != cols:
        raise ValueError(
            f"style_images must have {rows} and content_images {cols} images to match the grid "
            f"{tuple(grid.shape[:2])}, got {style_images.shape[0]} and {content_images.shape[0]}"
        )
    figure = Figure(figsize=(cols + 1, rows + 1))
    axes = figure.subplots(rows + 1, cols + 1, squeeze=False)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.98, wspace=0.05, hspace=0.05)
    for ax in axes.flat:
        ax.set_axis_off()

    def show(ax, image: torch.Tensor) -> None:
        ax.imshow(image.detach().cpu().reshape(*image_shape).numpy(), cmap="gray", vmin=0.0, vmax=1.0)

    for j in range(cols):
        show(axes[0, j + 1], content_images[j])
    for i in range(rows):
        show(axes[i + 1, 0], style_images[i])
        for j in range(cols):
            show(axes[i + 1, j + 1], grid[i, j])
    axes[0, 0].text(0.5, 0.5, "style \u2193\ncontent \u2192", ha="center", va="center", fontsize=7)
    return save_figure(figure, path, dpi=80)
