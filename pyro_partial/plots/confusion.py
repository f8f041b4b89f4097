"""A confusion matrix as a PNG figure: which classes a classifier mistakes for which."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from pyro_partial.plots.grids import save_figure


def plot_confusion_matrix(
    counts: np.ndarray,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Draw ``counts`` ``(C, C)`` (row: true class, column: predicted class, e.g.
    :func:`~pyro_partial.metrics.confusion_counts`) with each cell's count written in it, and write it as
    a PNG (no pyplot figure state, no display needed).

    :param class_names: the ``C`` tick labels (default ``0 .. C - 1``).
    :returns: the path written.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"counts must be a square matrix (C, C); got shape {counts.shape}")
    if class_names is not None and len(class_names) != len(counts):
        raise ValueError(
            f"class_names must name the {len(counts)} classes of counts; got {len(class_names)} names"
        )
    size = 1.5 + 0.5 * len(counts)
    figure = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = figure.subplots()
    display = ConfusionMatrixDisplay(counts, display_labels=class_names)
    display.plot(ax=ax, cmap="Blues", values_format="d", colorbar=True)
    for text in display.text_.ravel():
        text.set_fontsize(7)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(figure, path)
