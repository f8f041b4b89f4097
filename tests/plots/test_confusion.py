"""The confusion-matrix figure: the counts written in its cells, its labels, and its errors."""

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from pyro_partial.plots.confusion import plot_confusion_matrix


def test_every_count_is_written_in_its_cell(tmp_path, monkeypatch):
    counts = np.array([[5, 0, 1], [0, 7, 0], [2, 446, 3]])
    drawn = {}
    savefig = Figure.savefig

    def keep_texts(figure, path, **kwargs):
        ax = figure.axes[0]
        drawn["cells"] = {
            (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
        }
        drawn["ticks"] = [label.get_text() for label in ax.get_xticklabels()]
        drawn["axes"] = (ax.get_ylabel(), ax.get_xlabel(), ax.get_title())
        savefig(figure, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_texts)
    path = plot_confusion_matrix(
        counts, tmp_path / "out" / "confusion.png", class_names="abc", title="digits"
    )

    assert drawn["cells"] == {(i, j): str(counts[i, j]) for i in range(3) for j in range(3)}
    assert drawn["ticks"] == ["a", "b", "c"]
    assert drawn["axes"] == ("True label", "Predicted label", "digits")
    assert path == tmp_path / "out" / "confusion.png" and matplotlib.image.imread(path).ndim == 3


def test_bad_counts_and_class_names_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"square matrix \(C, C\); got shape \(2, 3\)"):
        plot_confusion_matrix(np.zeros((2, 3), dtype=int), tmp_path / "confusion.png")
    with pytest.raises(ValueError, match="class_names must name the 2 classes of counts; got 3 names"):
        plot_confusion_matrix(np.zeros((2, 2), dtype=int), tmp_path / "confusion.png", class_names="abc")
