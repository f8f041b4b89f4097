import matplotlib.image
import pytest
from matplotlib.figure import Figure

from pyro_partial.plots import plot_learning_curves
from pyro_partial.training import MetricsCSV


@pytest.fixture
def metrics(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsCSV(path)
    for epoch, (val, test) in enumerate([(0.5, 0.6), (0.25, ""), (0.125, 0.2)]):
        log.append({"epoch": epoch, "val_error": val, "test_error": test})
    return path


def test_learning_curves_plot_the_scaled_columns_per_epoch(metrics, tmp_path, monkeypatch):
    drawn = {}
    savefig = Figure.savefig

    def keep_lines(figure, path, **kwargs):
        for line in figure.axes[0].get_lines():
            drawn[line.get_label()] = (list(line.get_xdata()), list(line.get_ydata()))
        savefig(figure, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_lines)
    path = plot_learning_curves(
        metrics, ["val_error", "test_error"], tmp_path / "out" / "curves.png", ylabel="%", scale=100
    )

    assert drawn == {"val error": ([1, 2, 3], [50.0, 25.0, 12.5]), "test error": ([1, 3], [60.0, 20.0])}
    assert path == tmp_path / "out" / "curves.png" and matplotlib.image.imread(path).ndim == 3


def test_learning_curves_name_a_missing_column(metrics, tmp_path):
    with pytest.raises(
        ValueError, match=r"no column \['train_error'\]; its columns are \['epoch', 'val_error'"
    ):
        plot_learning_curves(metrics, ["val_error", "train_error"], tmp_path / "curves.png", ylabel="%")


def test_learning_curves_need_rows(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,val_error\n")
    with pytest.raises(ValueError, match="has no rows"):
        plot_learning_curves(tmp_path / "metrics.csv", ["val_error"], tmp_path / "curves.png", ylabel="%")


def test_learning_curves_name_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics file at .*metrics.csv"):
        plot_learning_curves(tmp_path / "metrics.csv", ["val_error"], tmp_path / "curves.png", ylabel="%")
