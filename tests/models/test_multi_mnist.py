"""The Multi-MNIST experiment: its scores against hand-built readings, the window outlines of its figure,
and tiny end-to-end runs on real MNIST (outputs, exact resumption, figures, a nested MNIST model)."""

import csv
import json

import matplotlib.image
import pytest
import torch

from models import _semi_supervised, mnist, multi_mnist
from models.multi_digit import MultiDigitVAE, Reading
from pyro_partial.data.multi_mnist import make_multi_mnist

TINY = [
    "--train-canvases", "120", "--test-canvases", "40", "--labelled-canvases", "20", "--batch-size", "40",
    "--canvas-channels", "4", "4", "--canvas-features", "16", "--state-dim", "8", "--digit-hidden", "16",
    "--no-progress",
]  # fmt: skip


def true_reading():
    """12 canvases of random 'digits', a tiny model, and the true count and digit probabilities."""
    g = torch.Generator().manual_seed(0)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, 12, seed=1)
    vae = MultiDigitVAE(canvas_channels=(4,), canvas_features=8, state_dim=4, digit_hidden=(8,))
    count_probs = torch.nn.functional.one_hot(data.counts, 4).float()
    digit_probs = torch.nn.functional.one_hot(data.digits.clamp(min=0), 10).float()
    return data, vae, count_probs, digit_probs


def test_scores_of_a_perfect_and_of_a_damaged_reading():
    data, vae, count_probs, digit_probs = true_reading()
    perfect = Reading(count_probs, data.wheres.clone(), digit_probs, torch.zeros(12, 3, 10), data.patches)
    vae.read_canvases = lambda canvases: perfect
    assert multi_mnist.evaluate(vae, data) == {
        "count_accuracy": 1.0,
        "digit_accuracy": 1.0,
        "canvas_accuracy": 1.0,
        "position_error_px": 0.0,
        "matched_digit_accuracy": 1.0,
        "matched_position_error_px": 0.0,
    }

    n = int(data.counts.sum())
    row = int((data.counts >= 2).nonzero()[0])  # swap the first two digits: same multiset, two wrong reads
    order = torch.tensor([1, 0, 2])
    digit_probs[row] = digit_probs[row, order]
    wheres = data.wheres.clone()
    wheres[row, 0, 1] += 0.4  # 10 pixels to the right
    other = int((data.counts == 1).nonzero()[0])
    count_probs[other] = torch.nn.functional.one_hot(torch.tensor(3), 4).float()
    damaged = Reading(count_probs, wheres, digit_probs, torch.zeros(12, 3, 10), data.patches)
    vae.read_canvases = lambda canvases: damaged
    scores = multi_mnist.evaluate(vae, data)
    same = bool(data.digits[row, 0] == data.digits[row, 1])
    assert scores["count_accuracy"] == pytest.approx(11 / 12)
    assert scores["digit_accuracy"] == pytest.approx(1 - (0 if same else 2) / n)
    assert scores["canvas_accuracy"] == pytest.approx(11 / 12)  # the canvas counted wrong
    assert scores["position_error_px"] == pytest.approx(10 / n, rel=1e-5)


def test_match_steps_assigns_by_least_summed_distance():
    true = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]] * 3)
    inferred = torch.tensor(
        [
            [[0.0, 1.1], [0.1, 0.0], [1.0, 0.1]],  # all three read in another order
            [[0.9, 0.0], [0.0, 0.1], [0.0, 1.0]],  # two digits: the first two swapped, slot 2 absent
            [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]],  # one digit: slot 0 is the only step read
        ]
    )
    match = multi_mnist.match_steps(inferred, true, torch.tensor([3, 2, 1]))
    assert match.tolist() == [[1, 2, 0], [1, 0, 2], [0, 1, 2]]


def test_matched_scores_ignore_the_reading_order():
    data, vae, count_probs, digit_probs = true_reading()
    wheres = data.wheres.clone()
    rows = (data.counts == 3).nonzero()[:, 0]
    order = torch.tensor([2, 0, 1])  # every three-digit canvas read right to left, starting in the middle
    digit_probs[rows] = digit_probs[rows][:, order]
    wheres[rows] = wheres[rows][:, order]
    reading = Reading(count_probs, wheres, digit_probs, torch.zeros(12, 3, 10), data.patches)
    vae.read_canvases = lambda canvases: reading
    scores = multi_mnist.evaluate(vae, data)
    assert scores["matched_digit_accuracy"] == 1.0 and scores["matched_position_error_px"] == 0.0
    assert scores["canvas_accuracy"] == 1.0
    assert scores["position_error_px"] > 1.0
    different = (data.digits[rows] != data.digits[rows][:, order]).sum()
    assert scores["digit_accuracy"] == pytest.approx(1 - float(different) / int(data.counts.sum()))


def test_window_outlines_follow_the_spatial_convention():
    """A window of side 20 whose top-left corner is at pixel (row 5, column 10) of a 50-pixel canvas."""
    side, top, left = 20, 5, 10
    s = side / 50
    where = torch.tensor([[[s, 2 * left / 50 - 1 + s, 2 * top / 50 - 1 + s]]])
    images = multi_mnist.window_outlines(torch.zeros(1, 50, 50), where, torch.tensor([[True]]))
    red = (images[0] == multi_mnist.STEP_COLOURS[0][:, None, None]).all(0)
    rows, columns = red.nonzero().unbind(-1)
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (
        top,
        top + side - 1,
        left,
        left + side - 1,
    )
    assert int(red.sum()) == 4 * (side - 1)
    hidden = multi_mnist.window_outlines(torch.zeros(1, 50, 50), where, torch.tensor([[False]]))
    assert (hidden == 0).all()


def test_runs_resumes_exactly_and_plots(real_data_root, tmp_path, single_thread):
    data = ["--data", str(real_data_root)]
    straight = multi_mnist.main([*TINY, *data, "--epochs", "2", "--out", str(tmp_path / "straight")])
    multi_mnist.main([*TINY, *data, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = multi_mnist.main(
        [*TINY, *data, "--epochs", "2", "--resume", "--out", str(tmp_path / "resumed")]
    )

    for name in ("count_accuracy", "digit_accuracy", "canvas_accuracy", "position_error_px"):
        assert resumed[f"test_{name}"] == straight[f"test_{name}"]
    assert 0.0 <= straight["test_count_accuracy"] <= 1.0 and straight["nested"] is False
    record = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert record["seed"] == 0 and record["labelled_canvases"] == 20 and record["train_seconds"] > 0
    assert record["command"].startswith("python -m models.multi_mnist --train-canvases 120 ")
    with open(tmp_path / "resumed" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert float(rows[-1]["count_accuracy"]) == straight["test_count_accuracy"]

    paths = multi_mnist.plot(["--run", str(tmp_path / "straight"), *data, "--num-images", "3"])
    assert sorted(paths) == ["decomposition", "reconstructions"]
    cell = 2 * 52  # 50-pixel canvases, 2-pixel padding, every pixel doubled
    assert matplotlib.image.imread(paths["decomposition"]).shape[:2] == (3 * cell + 4, 5 * cell + 4)
    assert matplotlib.image.imread(paths["reconstructions"]).shape[:2] == (2 * cell + 4, 3 * cell + 4)


def test_nested_mnist_model(real_data_root, tmp_path, single_thread):
    """The SSVAE of an MNIST run is the frozen per-digit sub-model, and the run reports its digits."""
    data = ["--data", str(real_data_root)]
    source = tmp_path / "mnist"
    mnist.main(["--labels", "20", "--train-size", "200", "--hidden", "16", "--epochs", "1", "--no-progress",
                *data, "--out", str(source)])  # fmt: skip
    trained, _ = _semi_supervised.load_trained(source)
    run = tmp_path / "nested"
    results = multi_mnist.main(
        [*TINY, *data, "--epochs", "1", "--nested-mnist", str(source), "--out", str(run)]
    )

    assert results["nested"] is True and 0.0 <= results["test_digit_accuracy"] <= 1.0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["nested_digit_model"]["hidden"] == [16]
    vae, _ = multi_mnist.load_trained(run)
    for name, value in trained.state_dict().items():
        assert torch.equal(vae.digit_model.state_dict()[name], value), name

    finetuned = tmp_path / "finetuned"
    nested = ["--nested-mnist", str(source), "--finetune-nested"]
    results = multi_mnist.main([*TINY, *data, "--epochs", "1", *nested, "--out", str(finetuned)])
    assert results["finetune_nested"] is True
    vae, _ = multi_mnist.load_trained(finetuned)
    assert not vae.freeze_digit_model
    learned = vae.digit_model.state_dict()
    assert any(not torch.equal(learned[name], value) for name, value in trained.state_dict().items())


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        multi_mnist.parse(["--labelled-canvases", "10"])
    with pytest.raises(SystemExit):
        multi_mnist.parse(["--labelled-canvases", "100", "--train-canvases", "100"])
    with pytest.raises(SystemExit):
        multi_mnist.parse(["--finetune-nested"])  # nothing nested to fine-tune
    with pytest.raises(FileNotFoundError, match="--run must be a run directory"):
        multi_mnist.load_trained(tmp_path)
