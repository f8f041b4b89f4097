"""The Multi-MNIST experiment: its scores against hand-built readings, the window outlines of its figure,
the batches it trains on, and tiny end-to-end runs on real MNIST through the runner (outputs, a resumed run
bit-identical to an uninterrupted one, figures, a nested MNIST model frozen and fine-tuned)."""

import csv
import json
import re

import matplotlib.image
import pytest
import torch

from pyro_partial.data.multi_mnist import make_multi_mnist
from pyro_partial.training import load_checkpoint_file, load_trained, runner
from pyro_partial_models.mnist import MNIST
from pyro_partial_models.multi_digit import MultiDigitVAE, Reading, coords_from_where
from pyro_partial_models.multi_mnist import MultiMNISTExperiment, gather_labelled, model_arguments
from pyro_partial_models.multi_mnist_figures import STEP_COLOURS, window_outlines
from pyro_partial_models.multi_mnist_scores import (
    SCORES,
    evaluate,
    evaluation_generator,
    match_steps,
    read_all,
)
from pyro_partial_models.ss_vae import SSVAE

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
    vae.read_canvases = lambda canvases, generator=None: perfect
    scores = evaluate(vae, data)
    assert tuple(scores) == SCORES
    oracle = scores.pop("true_window_digit_accuracy")  # the untrained sub-model's, through the true windows
    assert 0.0 <= oracle <= 1.0
    assert scores == {
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
    vae.read_canvases = lambda canvases, generator=None: damaged
    scores = evaluate(vae, data)
    same = bool(data.digits[row, 0] == data.digits[row, 1])
    assert scores["count_accuracy"] == pytest.approx(11 / 12)
    assert scores["digit_accuracy"] == pytest.approx(1 - (0 if same else 2) / n)
    assert scores["canvas_accuracy"] == pytest.approx(11 / 12)  # the canvas counted wrong
    assert scores["position_error_px"] == pytest.approx(10 / n, rel=1e-5)


def test_true_window_accuracy_reads_through_the_true_windows():
    """The oracle score: the sub-model reads the true windows of the true digits, whatever the guide
    infers; a wrong read of one true digit costs 1 / (number of true digits)."""
    data, vae, count_probs, digit_probs = true_reading()
    wrong = Reading(
        count_probs, torch.zeros(12, 3, 3), digit_probs.roll(1, -1), torch.zeros(12, 3, 10), data.patches
    )
    vae.read_canvases = lambda canvases, generator=None: wrong  # the guide's own reading is all wrong
    seen = []
    row = int((data.counts >= 1).nonzero()[0])

    def read_windows(canvases, coords, generator=None):
        seen.append(coords)
        probs = torch.nn.functional.one_hot(data.digits.clamp(min=0), 10).float()[: len(canvases)]
        probs[row, 0] = probs[row, 0].roll(1)  # one true digit misread
        return probs, torch.zeros(len(canvases), 3, 10), torch.zeros(len(canvases), 3, 28, 28)

    vae.guide.read_windows = read_windows
    scores = evaluate(vae, data)
    assert scores["matched_digit_accuracy"] == 0.0
    assert scores["true_window_digit_accuracy"] == pytest.approx(1 - 1 / int(data.counts.sum()))
    (coords,) = seen
    present = torch.arange(3) < data.counts[:, None]
    assert torch.equal(coords[present], coords_from_where(data.wheres)[present])


def test_the_paper_guides_evaluation_draws_are_seeded_and_leave_the_global_random_state():
    """The "paper" guide's q(y | g) averages draws of the style: an evaluation takes them from its own
    seeded generator, so it scores the same every time and torch's global random state is untouched,
    and another seed reads other probabilities."""
    g = torch.Generator().manual_seed(0)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, 12, seed=1)
    torch.manual_seed(0)
    digit_model = SSVAE(z_dim=4, hidden=(8,), guide_type="paper")
    vae = MultiDigitVAE(digit_model, canvas_channels=(4,), canvas_features=8, state_dim=4)
    state = torch.get_rng_state()
    assert evaluate(vae, data) == evaluate(vae, data)
    assert torch.equal(torch.get_rng_state(), state)
    coords = coords_from_where(data.wheres)
    probs = [
        vae.guide.read_windows(data.canvases, coords, torch.Generator().manual_seed(seed))[0]
        for seed in (0, 0, 1)
    ]
    assert torch.equal(probs[0], probs[1])
    assert not torch.allclose(probs[0], probs[2])
    assert torch.equal(torch.get_rng_state(), state)
    readings = [read_all(vae, data.canvases, generator=evaluation_generator(vae)) for _ in range(2)]
    assert torch.equal(readings[0].digit_probs, readings[1].digit_probs)


def test_scores_reject_canvases_of_another_layout():
    data, vae, _, _ = true_reading()
    small = MultiDigitVAE(
        canvas_size=40, canvas_channels=(4,), canvas_features=8, state_dim=4, digit_hidden=(8,)
    )
    with pytest.raises(ValueError, match="canvases of 50 pixels with at most 3 digits, expected 40 pixels"):
        evaluate(small, data)


def test_match_steps_assigns_by_least_summed_distance():
    true = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]] * 3)
    inferred = torch.tensor(
        [
            [[0.0, 1.1], [0.1, 0.0], [1.0, 0.1]],  # all three read in another order
            [[0.9, 0.0], [0.0, 0.1], [0.0, 1.0]],  # two digits: the first two swapped, slot 2 absent
            [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]],  # one digit: slot 0 is the only step read
        ]
    )
    match = match_steps(inferred, true, torch.tensor([3, 2, 1]))
    assert match.tolist() == [[1, 2, 0], [1, 0, 2], [0, 1, 2]]


def test_matched_scores_ignore_the_reading_order():
    data, vae, count_probs, digit_probs = true_reading()
    wheres = data.wheres.clone()
    rows = (data.counts == 3).nonzero()[:, 0]
    order = torch.tensor([2, 0, 1])  # every three-digit canvas read right to left, starting in the middle
    digit_probs[rows] = digit_probs[rows][:, order]
    wheres[rows] = wheres[rows][:, order]
    reading = Reading(count_probs, wheres, digit_probs, torch.zeros(12, 3, 10), data.patches)
    vae.read_canvases = lambda canvases, generator=None: reading
    scores = evaluate(vae, data)
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
    images = window_outlines(torch.zeros(1, 50, 50), where, torch.tensor([[True]]))
    red = (images[0] == torch.tensor(STEP_COLOURS[0])[:, None, None]).all(0)
    rows, columns = red.nonzero().unbind(-1)
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (
        top,
        top + side - 1,
        left,
        left + side - 1,
    )
    assert int(red.sum()) == 4 * (side - 1)
    hidden = window_outlines(torch.zeros(1, 50, 50), where, torch.tensor([[False]]))
    assert (hidden == 0).all()


def test_batches_hide_the_labels_of_unlabelled_canvases():
    g = torch.Generator().manual_seed(0)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, 12, seed=1)
    tensors = model_arguments(data)
    index = torch.tensor([4, 0, 7, 11])
    labelled = torch.tensor([True, False, True, False])
    canvases, counts, digits, coords, mask = gather_labelled(tensors, (index, labelled))
    assert torch.equal(canvases, data.canvases[index]) and torch.equal(mask, labelled)
    assert torch.equal(counts, torch.where(labelled, data.counts[index], 0))
    true_digits = torch.nn.functional.one_hot(data.digits[index].clamp(min=0), 10).float()
    assert torch.equal(digits[labelled], true_digits[labelled])
    assert (digits[~labelled] == torch.eye(10)[0]).all()
    assert torch.equal(coords[labelled], coords_from_where(data.wheres[index])[labelled])
    assert (coords[~labelled] == coords_from_where(torch.zeros(3))).all()


def checkpoint_weights(run):
    return load_checkpoint_file(run / "checkpoint.ckpt")["state_dict"]


def test_runs_resume_bit_identically_and_plot(real_data_root, tmp_path, single_thread):
    data = ["--data", str(real_data_root)]
    experiment = MultiMNISTExperiment()
    straight = runner.train(experiment, [*TINY, *data, "--epochs", "2", "--out", str(tmp_path / "straight")])
    runner.train(experiment, [*TINY, *data, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = runner.train(
        experiment, [*TINY, *data, "--epochs", "2", "--resume", "--out", str(tmp_path / "resumed")]
    )

    weights = checkpoint_weights(tmp_path / "straight")
    resumed_weights = checkpoint_weights(tmp_path / "resumed")
    assert weights.keys() == resumed_weights.keys()
    assert all(torch.equal(value, resumed_weights[name]) for name, value in weights.items())
    for name in ("count_accuracy", "digit_accuracy", "canvas_accuracy", "position_error_px"):
        assert resumed[f"test_{name}"] == straight[f"test_{name}"]
    assert 0.0 <= straight["test_count_accuracy"] <= 1.0 and straight["nested"] is False
    record = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert record["seed"] == 0 and record["labelled_canvases"] == 20 and record["train_seconds"] > 0
    assert record["command"].startswith("pyro-partial train multi_mnist --train-canvases 120 ")
    with open(tmp_path / "resumed" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert float(rows[-1]["count_accuracy"]) == straight["test_count_accuracy"]

    paths = runner.plot(experiment, ["--run", str(tmp_path / "straight"), *data, "--num-images", "3"])
    assert sorted(paths) == ["decomposition", "reconstructions"]
    assert all(path.parent == tmp_path / "straight" / "figures" for path in paths.values())
    cell = 2 * 52  # 50-pixel canvases, 2-pixel padding, every pixel doubled
    assert matplotlib.image.imread(paths["decomposition"]).shape[:2] == (3 * cell + 4, 5 * cell + 4)
    assert matplotlib.image.imread(paths["reconstructions"]).shape[:2] == (2 * cell + 4, 3 * cell + 4)


def test_nested_mnist_model(real_data_root, tmp_path, single_thread):
    """The SSVAE of an MNIST run is the frozen per-digit sub-model, and the run reports its digits;
    fine-tuned, it starts from the run's weights and learns them."""
    data = ["--data", str(real_data_root)]
    source = tmp_path / "mnist"
    runner.train(
        MNIST(),
        ["--labels", "20", "--train-size", "200", "--hidden", "16", "--epochs", "1", "--no-progress",
         *data, "--out", str(source)],
    )  # fmt: skip
    trained, _ = load_trained(MNIST(), source)
    experiment = MultiMNISTExperiment()
    run = tmp_path / "nested"
    results = runner.train(
        experiment, [*TINY, *data, "--epochs", "1", "--nested-mnist", str(source), "--out", str(run)]
    )

    assert results["nested"] is True and 0.0 <= results["test_digit_accuracy"] <= 1.0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["nested_digit_model"]["hidden"] == [16]
    vae, _ = load_trained(experiment, run)
    assert vae.freeze_digit_model
    for part in ("model", "guide"):
        nested = getattr(vae, part).digit.state_dict()
        for name, value in getattr(trained, part).state_dict().items():
            assert torch.equal(nested[name], value), f"{part}.{name}"

    finetuned = tmp_path / "finetuned"
    nested_args = ["--nested-mnist", str(source), "--finetune-nested"]
    results = runner.train(experiment, [*TINY, *data, "--epochs", "1", *nested_args, "--out", str(finetuned)])
    assert results["finetune_nested"] is True
    vae, _ = load_trained(experiment, finetuned)
    assert not vae.freeze_digit_model
    for part in ("model", "guide"):
        learned = getattr(vae, part).digit.state_dict()
        original = getattr(trained, part).state_dict()
        assert any(not torch.equal(learned[name], value) for name, value in original.items()), part


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--labelled-canvases", "10"], "--labelled-canvases must be a positive multiple of 4, got 10"),
        (
            ["--labelled-canvases", "100", "--train-canvases", "100"],
            "--labelled-canvases must be smaller than --train-canvases",
        ),
        (["--finetune-nested"], "--finetune-nested needs --nested-mnist"),
        (["--rho", "1.5"], r"--rho must lie in \(0, 1\), got 1.5"),
        (["--temperature", "0"], "--temperature must be positive, got 0.0"),
        (["--state-dim", "0"], "--state-dim must be positive"),
    ],
)
def test_bad_arguments_are_usage_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        runner.parse(MultiMNISTExperiment(), [*argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_loading_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run directory written by training"):
        load_trained(MultiMNISTExperiment(), tmp_path)
