"""Figures of a latent space (Mathieu et al. 2019): traversals, per-class ``|z_d|`` bars, aggregate posterior.

- :func:`traversal_grid` decodes a code with one dimension at a time swept over a range of values, as a
  grid ``(dims, values, C, H, W)`` for :func:`pyro_partial.plots.grids.save_grid`; :func:`traversal_values`
  gives each dimension the range its codes use, and :func:`write_traversals` draws the traversals of the
  dimensions of largest variance;
- :func:`class_mean_abs` and :func:`plot_class_mean_abs`: the average magnitude of each (std-normalised)
  code dimension per class, the sparsity figure of the paper: a sparse representation uses few
  dimensions per class;
- :func:`plot_aggregate_posterior`: a 2-D scatter of the aggregate posterior q(z) = (1/N) Σ_n q(z | x_n)
  (one draw or mean per data point) over samples of the prior p(z).

The plots are drawn on a :class:`matplotlib.figure.Figure` (no pyplot state, no display needed) and
written as PNG files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from pyro_partial.plots.grids import save_figure, save_grid


@torch.no_grad()
def traversal_grid(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    values: torch.Tensor,
    dims: Sequence[int] | None = None,
) -> torch.Tensor:
    """Decode ``z`` with dimension d set to each of ``values`` in turn, for every d in ``dims``.

    :param decode: codes ``(..., D)`` to mean images ``(..., C, H, W)`` in [0, 1].
    :param z: the code to start from, shape ``(D,)`` (e.g. the encoder mean of one image).
    :param values: the values to sweep, shape ``(V,)`` (the same for every dimension) or ``(D, V)``
        (one range per dimension, e.g. quantiles of the codes).
    :param dims: the dimensions to traverse, default all ``D``.
    :returns: a grid ``(len(dims), V, C, H, W)``: row i varies dimension ``dims[i]``.
    """
    if z.dim() != 1:
        raise ValueError(f"z must be one code of shape (D,), got {tuple(z.shape)}")
    dim = z.shape[0]
    dims = list(range(dim)) if dims is None else list(dims)
    if not dims or any(not 0 <= d < dim for d in dims):
        raise ValueError(f"dims must be a non-empty list of indices in [0, {dim}), got {dims}")
    if values.dim() == 1:
        values = values.expand(dim, -1)
    if values.dim() != 2 or values.shape[0] != dim or values.shape[1] < 1:
        raise ValueError(f"values must have shape (V,) or ({dim}, V) with V >= 1, got {tuple(values.shape)}")
    rows = z.expand(len(dims), values.shape[1], dim).clone()  # (R, V, D)
    for row, d in enumerate(dims):
        rows[row, :, d] = values[d]
    images = decode(rows)
    if images.dim() != 5:
        raise ValueError(f"decode must return images (..., C, H, W), got shape {tuple(images.shape)}")
    return images


def traversal_values(codes: torch.Tensor, steps: int = 9, coverage: float = 0.9) -> torch.Tensor:
    """Per-dimension traversal ranges ``(D, steps)``: evenly spaced between the ``(1 ± coverage) / 2``
    quantiles of each dimension of ``codes`` ``(N, D)``, so that every dimension is swept over the values the
    encoder actually uses."""
    if codes.dim() != 2 or len(codes) == 0 or not codes.dtype.is_floating_point:
        raise ValueError(
            f"codes must be a floating-point tensor (N, D) with N >= 1, got {tuple(codes.shape)}"
        )
    if steps < 1 or not 0 < coverage <= 1:
        raise ValueError(f"steps must be positive and coverage lie in (0, 1], got {steps} and {coverage}")
    levels = codes.new_tensor([(1 - coverage) / 2, (1 + coverage) / 2])
    bounds = torch.quantile(codes, levels, dim=0)  # (2, D)
    fractions = torch.linspace(0.0, 1.0, steps, dtype=codes.dtype, device=codes.device)
    return bounds[0, :, None] + (bounds[1] - bounds[0])[:, None] * fractions


def image_shape(obs_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` of image observations of shape ``obs_shape``: images ``(C, H, W)`` as they are, flattened
    square grey images ``(H·W,)`` unflattened to ``(1, H, W)``."""
    obs_shape = tuple(obs_shape)
    if len(obs_shape) == 3:
        return obs_shape
    side = math.isqrt(math.prod(obs_shape))
    if len(obs_shape) != 1 or side * side != obs_shape[0]:
        raise ValueError(f"observations of shape {obs_shape} are no images: expected (C, H, W) or (H·W,)")
    return (1, side, side)


def write_traversals(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    codes: torch.Tensor,
    path: str | os.PathLike,
    max_dims: int = 10,
    steps: int = 9,
) -> Path:
    """Traversals of code ``z`` ``(D,)`` over the ``max_dims`` dimensions of largest variance among ``codes``
    ``(N, D)``, each over its :func:`traversal_values`, as a PNG grid (row: dimension, in increasing order).

    :param decode: codes ``(..., D)`` to mean images ``(..., C, H, W)`` in [0, 1] (:func:`traversal_grid`).
    :returns: the path written.
    """
    if codes.dim() != 2 or z.shape != codes.shape[1:]:
        raise ValueError(
            f"z must be one code (D,) of codes (N, D), got {tuple(z.shape)} and {tuple(codes.shape)}"
        )
    dims = codes.var(0).argsort(descending=True)[:max_dims].sort().values.tolist()
    grid = traversal_grid(decode, z, traversal_values(codes, steps), dims)
    return save_grid(grid, path)


def class_mean_abs(
    codes: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None, normalise: bool = True
) -> torch.Tensor:
    """Average ``|z_d|`` over the codes of each class: ``A[k, d] = mean_{n: y_n = k} |z_nd| / s_d``.

    With ``normalise`` s_d is the standard deviation of dimension d over all codes (not centred
    codes, as in the paper's Hoyer sparsity), so that a dimension cannot look small merely by a small
    scale; otherwise s_d = 1.

    :param codes: ``(N, D)``, e.g. encoder means.
    :param labels: int ``(N,)`` in ``[0, K)``.
    :param num_classes: K, default ``labels.max() + 1``.
    :returns: ``(K, D)``; a class without codes gets a row of NaN.
    """
    if codes.dim() != 2 or labels.shape != codes.shape[:1]:
        raise ValueError(
            f"codes must have shape (N, D) and labels (N,), got {tuple(codes.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or bool((labels < 0).any()):
        raise ValueError("labels must be non-negative integers")
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if bool((labels >= num_classes).any()):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    magnitude = codes.abs()
    if normalise:
        std = codes.std(0, correction=1)
        magnitude = magnitude / torch.where(std > 0, std, torch.ones_like(std))
    sums = codes.new_zeros(num_classes, codes.shape[1]).index_add_(0, labels, magnitude)
    counts = torch.bincount(labels, minlength=num_classes).to(codes.dtype)
    return sums / counts.unsqueeze(-1)  # 0/0 = NaN for an empty class


def plot_class_mean_abs(
    means: torch.Tensor,
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Bar charts of :func:`class_mean_abs`'s ``(K, D)`` matrix, one panel per class, written as a PNG.

    :returns: the path written.
    """
    if means.dim() != 2:
        raise ValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
    num_classes, dim = means.shape
    names = [str(k) for k in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"class_names must have {num_classes} entries, got {len(names)}")
    columns = min(num_classes, 5)
    rows = -(-num_classes // columns)
    figure = Figure(figsize=(2.6 * columns, 1.9 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    top = float(torch.nan_to_num(means, nan=0.0).max()) * 1.05 or 1.0
    for k, ax in enumerate(axes.flat):
        if k >= num_classes:
            ax.set_axis_off()
            continue
        ax.bar(range(dim), means[k].detach().cpu().numpy(), width=0.8, color="tab:blue")
        ax.set_title(names[k], fontsize=9)
        ax.set_ylim(0, top)
    for ax in axes[-1]:
        ax.set_xlabel("latent dimension d")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean |z_d|")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_aggregate_posterior(
    z: torch.Tensor,
    prior_samples: torch.Tensor,
    path: str | os.PathLike,
    labels: torch.Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Scatter of 2-D codes ``z`` ``(N, 2)`` (coloured by ``labels`` ``(N,)`` if given) over prior samples
    ``(M, 2)`` in grey, written as a PNG; returns the path."""
    for name, points in (("z", z), ("prior_samples", prior_samples)):
        if points.dim() != 2 or points.shape[1] != 2:
            raise ValueError(f"{name} must have shape (N, 2), got {tuple(points.shape)}")
    if labels is not None and labels.shape != z.shape[:1]:
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {tuple(labels.shape)}")
    figure = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = figure.subplots()
    prior_samples, z = prior_samples.detach().cpu().numpy(), z.detach().cpu().numpy()
    ax.scatter(prior_samples[:, 0], prior_samples[:, 1], s=4, c="0.75", label="prior p(z)")
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=6, c="tab:blue", label="q(z)")
        ax.legend(loc="upper right", fontsize=8, markerscale=2)
    else:
        points = ax.scatter(z[:, 0], z[:, 1], s=6, c=labels.cpu().numpy(), cmap="tab10", vmin=0, vmax=9)
        handles, names = points.legend_elements()
        ax.legend([ax.collections[0], *handles], ["prior p(z)", *(f"q(z), {n}" for n in names)], fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(figure, path)


__all__ = [
    "class_mean_abs",
    "image_shape",
    "plot_aggregate_posterior",
    "plot_class_mean_abs",
    "traversal_grid",
    "traversal_values",
    "write_traversals",
]
