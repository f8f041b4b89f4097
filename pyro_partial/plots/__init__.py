"""Figures: image grids of conditional models, latent traversals and statistics, confusion matrices and
learning curves, written as PNG files without a display."""

from pyro_partial.plots.confusion import plot_confusion_matrix
from pyro_partial.plots.curves import plot_learning_curves
from pyro_partial.plots.grids import (
    analogy_grid,
    grid_image,
    reconstruction_grid,
    save_figure,
    save_grid,
    style_variation_grid,
    write_figures,
)
from pyro_partial.plots.latent import (
    class_mean_abs,
    plot_aggregate_posterior,
    plot_class_mean_abs,
    traversal_grid,
)

__all__ = [
    "analogy_grid",
    "class_mean_abs",
    "grid_image",
    "plot_aggregate_posterior",
    "plot_class_mean_abs",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "reconstruction_grid",
    "save_figure",
    "save_grid",
    "style_variation_grid",
    "traversal_grid",
    "write_figures",
]
