"""The MNIST experiment end to end on a small slice of real MNIST: outputs, and exact resumption."""

import csv
import json

import pytest
import torch

from models import mnist

ARGS = ["--labels", "20", "--train-size", "400", "--batch-size", "100", "--hidden", "32", "--no-progress"]


@pytest.fixture
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_runs_and_resumes_exactly(real_data_root, tmp_path, single_thread):
    data = ["--data", str(real_data_root)]
    straight = mnist.main([*ARGS, *data, "--epochs", "2", "--out", str(tmp_path / "straight")])
    mnist.main([*ARGS, *data, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = mnist.main([*ARGS, *data, "--epochs", "2", "--resume", "--out", str(tmp_path / "resumed")])

    assert resumed["test_error"] == straight["test_error"]
    assert 0.0 <= straight["test_error"] <= 1.0
    record = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert record["seed"] == 0 and record["labels"] == 20 and record["command"]
    assert record["environment"]["torch"] == torch.__version__
    for run in ("straight", "resumed"):
        with open(tmp_path / run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [row["epoch"] for row in rows] == ["0", "1"]
        assert float(rows[-1]["val_error"]) == pytest.approx(straight["val_error"])


def test_bad_label_count_is_a_clear_error(real_data_root, tmp_path):
    with pytest.raises(
        ValueError, match="num_labelled must be a positive multiple of the number of classes 10"
    ):
        mnist.main([*ARGS, "--data", str(real_data_root), "--labels", "15", "--out", str(tmp_path)])
