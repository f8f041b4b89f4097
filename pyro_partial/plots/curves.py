"""Learning curves: columns of a run's ``metrics.csv`` (one row per epoch) against the epoch, as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from pyro_partial.plots.grids import save_figure
from pyro_partial.training.records import MetricsCSV


def plot_learning_curves(
    metrics_csv: str | os.PathLike,
    columns: Sequence[str],
    path: str | os.PathLike,
    *,
    ylabel: str,
    scale: float = 1.0,
    title: str | None = None,
) -> Path:
    """Plot ``scale · column`` against the number of epochs completed (``epoch + 1``), one line per column
    of ``metrics_csv``, and write it as a PNG (no pyplot state, no display needed).

    Rows where a column is empty (an epoch without that score) are skipped for that column.

    :param columns: names of numeric columns; each must be in the file's header.
    :param scale: e.g. 100 to plot error rates in percent.
    :returns: the path written.
    :raises FileNotFoundError: no file at ``metrics_csv``.
    :raises ValueError: the file has no rows, or lacks one of ``columns``.
    """
    if not Path(metrics_csv).is_file():
        raise FileNotFoundError(f"no metrics file at {metrics_csv}: a run writes it after its first epoch")
    rows = MetricsCSV(metrics_csv).rows
    if not rows:
        raise ValueError(f"{metrics_csv} has no rows of metrics")
    missing = [column for column in columns if column not in rows[0]]
    if missing:
        raise ValueError(f"{metrics_csv} has no column {missing}; its columns are {list(rows[0])}")
    figure = Figure(figsize=(5.5, 3.5), layout="constrained")
    ax = figure.subplots()
    for column in columns:
        scored = [row for row in rows if row[column] != ""]
        epochs = [int(row["epoch"]) + 1 for row in scored]
        values = [scale * float(row[column]) for row in scored]
        ax.plot(epochs, values, marker="." if len(scored) < 30 else None, label=column.replace("_", " "))
    ax.set_xlabel("epochs completed")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(figure, path)
