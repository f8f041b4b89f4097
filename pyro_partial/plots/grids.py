"""Figures of a conditional image model with a class y and a style z: reconstructions, analogies and
style variation, as image grids and PNG files.

The grids are tensors of shape ``(rows, columns, C, H, W)`` with intensities in [0, 1].
:func:`grid_image` lays one out as a single RGB image (for ``plt.imshow``) and :func:`save_grid` writes
that as a PNG, whose pixel size follows from the grid alone: ``scale · (rows · (H + padding) + padding)``
by ``scale · (columns · (W + padding) + padding)``, so figures can be compared and tested. Files are
written with :func:`matplotlib.image.imsave` (no figure, no display needed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import matplotlib.image
import numpy as np
import torch
import torchvision
from matplotlib.figure import Figure


class ConditionalImageModel(Protocol):
    """What the figures need: ``pyro_partial_models.ss_vae.SSVAE`` is one.

    Images are flattened, ``(B, C·H·W)``; labels are one-hot, ``(B, num_classes)``.
    """

    image_shape: tuple[int, int, int]
    num_classes: int
    z_dim: int

    def style(self, xs: torch.Tensor) -> torch.Tensor:
        """Inferred style ``(B, z_dim)``."""

    def decode(self, z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Mean image ``(..., C·H·W)`` in [0, 1]."""

    def reconstruct(self, xs: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction ``(B, C·H·W)``."""


def _images(model: ConditionalImageModel, flat: torch.Tensor) -> torch.Tensor:
    return flat.reshape(*flat.shape[:-1], *model.image_shape)


@torch.no_grad()
def reconstruction_grid(model: ConditionalImageModel, xs: torch.Tensor) -> torch.Tensor:
    """Row 0: the images ``xs`` ``(B, C·H·W)``; row 1: their reconstructions. Shape ``(2, B, C, H, W)``."""
    return _images(model, torch.stack([xs, model.reconstruct(xs)]))


@torch.no_grad()
def analogy_grid(model: ConditionalImageModel, xs: torch.Tensor) -> torch.Tensor:
    """One row per image of ``xs`` ``(B, C·H·W)``: the image, then its inferred style rendered with each
    class 0, 1, ..., num_classes − 1. Shape ``(B, 1 + num_classes, C, H, W)``."""
    z = model.style(xs)  # (B, Z)
    classes = torch.eye(model.num_classes, dtype=xs.dtype, device=xs.device)  # (K, K)
    generated = model.decode(z[:, None, :], classes[None, :, :])  # (B, K, C·H·W)
    return _images(model, torch.cat([xs[:, None, :], generated], dim=1))


@torch.no_grad()
def style_variation_grid(
    model: ConditionalImageModel, label: int, values: Sequence[float] | torch.Tensor = (-2, -1, 0, 1, 2)
) -> torch.Tensor:
    """The class ``label`` fixed, one style dimension varied per row: row ``d``, column ``j`` decodes the
    style with dimension ``d`` set to ``values[j]`` and the others at the prior mean 0.
    Shape ``(z_dim, len(values), C, H, W)``."""
    if not 0 <= label < model.num_classes:
        raise ValueError(f"label must lie in [0, {model.num_classes}), got {label}")
    values = torch.as_tensor(values, dtype=torch.get_default_dtype())
    if values.dim() != 1 or len(values) == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {tuple(values.shape)}")
    z = torch.zeros(model.z_dim, len(values), model.z_dim)
    dims = torch.arange(model.z_dim)
    z[dims, :, dims] = values  # z[d, j, d] = values[j]
    y = torch.nn.functional.one_hot(torch.tensor(label), model.num_classes).to(z.dtype)
    return _images(model, model.decode(z, y))


def grid_image(grid: torch.Tensor, *, padding: int = 2, scale: int = 1) -> np.ndarray:
    """Lay out a grid ``(rows, columns, C, H, W)`` (C = 1 or 3, values in [0, 1]) as one RGB image, white
    ``padding`` pixels between images, every pixel repeated ``scale`` times in both directions.

    :returns: float array of shape ``(scale · (rows · (H + padding) + padding),
        scale · (columns · (W + padding) + padding), 3)``, e.g. for ``plt.imshow``.
    """
    if grid.dim() != 5 or grid.shape[2] not in (1, 3):
        raise ValueError(f"grid must have shape (rows, columns, 1 or 3, H, W), got {tuple(grid.shape)}")
    if scale < 1 or padding < 0:
        raise ValueError(f"scale must be >= 1 and padding >= 0, got scale={scale}, padding={padding}")
    rows, columns = grid.shape[:2]
    flat = grid.detach().cpu().float().clamp(0, 1).reshape(rows * columns, *grid.shape[2:])
    image = torchvision.utils.make_grid(flat, nrow=columns, padding=padding, pad_value=1.0)  # (3, H', W')
    image = image.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return image.permute(1, 2, 0).numpy()


def save_grid(grid: torch.Tensor, path: str | os.PathLike, *, padding: int = 2, scale: int = 2) -> Path:
    """Write :func:`grid_image` of ``grid`` as a PNG file; return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, grid_image(grid, padding=padding, scale=scale), format="png")
    return path


def save_figure(figure: Figure, path: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Write a matplotlib ``figure`` (made with :class:`~matplotlib.figure.Figure`, no pyplot state) as a PNG
    at ``path``, creating its directory; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=dpi)
    return path


def write_figures(
    model: ConditionalImageModel,
    xs: torch.Tensor,
    out_dir: str | os.PathLike,
    *,
    labels: Iterable[int] | None = None,
    values: Sequence[float] = (-2, -1, 0, 1, 2),
    scale: int = 2,
) -> dict[str, Path]:
    """Write ``reconstructions.png``, ``analogies.png`` and ``style_variation_{label}.png`` for each of
    ``labels`` (by default every class) into ``out_dir``; return ``{figure name: path}``.

    :param xs: test images ``(B, C·H·W)``, the rows of the reconstruction and analogy figures.
    """
    figures = {"reconstructions": reconstruction_grid(model, xs), "analogies": analogy_grid(model, xs)}
    for label in range(model.num_classes) if labels is None else labels:
        figures[f"style_variation_{label}"] = style_variation_grid(model, label, values)
    out_dir = Path(out_dir)
    return {name: save_grid(grid, out_dir / f"{name}.png", scale=scale) for name, grid in figures.items()}
