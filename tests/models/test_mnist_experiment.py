"""The MNIST experiment end to end on a small slice of real MNIST: outputs, exact resumption, figures."""

import csv
import json
import re

import matplotlib.image
import pytest
import torch

from pyro_partial.training import load_checkpoint_file, runner
from pyro_partial_models.mnist import MNIST


def train(argv):
    return runner.train(MNIST(), argv, prog="python -m pyro_partial_models.cli train mnist")


ARGS = ["--labels", "20", "--train-size", "400", "--batch-size", "100", "--hidden", "32", "--no-progress"]


def test_runs_and_resumes_exactly(real_data_root, tmp_path, single_thread):
    data = ["--data", str(real_data_root)]
    straight = train([*ARGS, *data, "--epochs", "2", "--out", str(tmp_path / "straight")])
    train([*ARGS, *data, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = train([*ARGS, *data, "--epochs", "2", "--resume", "--out", str(tmp_path / "resumed")])

    assert resumed["test_error"] == straight["test_error"]
    weights = [
        load_checkpoint_file(tmp_path / run / "checkpoint.ckpt")["state_dict"]
        for run in ("straight", "resumed")
    ]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert 0.0 <= straight["test_error"] <= 1.0
    record = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert record["seed"] == 0 and record["labels"] == 20
    assert record["command"].startswith("python -m pyro_partial_models.cli train mnist --labels 20 ")
    assert record["command"].endswith("--resume --out " + str(tmp_path / "resumed"))
    assert record["environment"]["torch"] == torch.__version__
    for run in ("straight", "resumed"):
        with open(tmp_path / run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [row["epoch"] for row in rows] == ["0", "1"]
        assert float(rows[-1]["val_error"]) == pytest.approx(straight["val_error"])
        assert float(rows[-1]["test_error"]) == pytest.approx(straight["test_error"])
    # model selection: the test error of the epoch with the lowest validation error
    best = min(rows, key=lambda row: float(row["val_error"]))
    assert straight["best_val_epoch"] == int(best["epoch"])
    assert straight["test_error_at_best_val"] == pytest.approx(float(best["test_error"]))


def test_conv_paper_guide_run_and_its_figures(real_data_root, tmp_path, single_thread, capsys):
    """The convolutional networks with the paper's guide train through the same driver, and the run
    directory is enough to draw its figures."""
    conv = ["--network", "conv", "--channels", "4", "8", "--hidden", "16", "--guide", "paper"]
    run = tmp_path / "run"
    data = ["--data", str(real_data_root)]
    results = train([*ARGS, *conv, *data, "--train-size", "200", "--epochs", "1", "--out", str(run)])
    assert results["network"] == "conv" and 0.0 <= results["test_error"] <= 1.0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["network"] == "conv" and config["model"]["z_dim"] == 10

    paths = runner.plot(MNIST(), ["--run", str(run), *data, "--num-images", "3", "--digits", "4"])

    assert sorted(paths) == [
        "analogies",
        "confusion",
        "learning_curves",
        "reconstructions",
        "style_variation_4",
    ]
    assert all(path.parent == run / "figures" for path in paths.values())
    # the confusion matrix counts every test image once: a row of it holds all the images of its class
    summary = re.search(
        r"largest confusion: (\d+) of (\d+) test images of class (\d) classified as (\d)",
        capsys.readouterr().out,
    )
    confused, class_size, true, predicted = map(int, summary.groups())
    _, test_y = MNIST().load_test(real_data_root, download=False)
    assert class_size == int((test_y == true).sum()) and 0 <= confused <= class_size and true != predicted
    # 3 rows of (input, digits 0..9), 28-pixel images, 2-pixel padding, every pixel doubled
    assert matplotlib.image.imread(paths["analogies"]).shape[:2] == (2 * (3 * 30 + 2), 2 * (11 * 30 + 2))


def test_adgm_run_resumes_loads_and_draws_its_figures(real_data_root, tmp_path, single_thread):
    """``--model adgm`` trains through the same driver, resumes exactly, and its run directory rebuilds the
    ADGM for the figures."""
    adgm = ["--model", "adgm", "--aux-dim", "4", "--train-size", "200", "--data", str(real_data_root)]
    straight = train([*ARGS, *adgm, "--epochs", "2", "--out", str(tmp_path / "straight")])
    train([*ARGS, *adgm, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = train([*ARGS, *adgm, "--epochs", "2", "--resume", "--out", str(tmp_path / "resumed")])
    assert straight["model"] == "adgm" and resumed["test_error"] == straight["test_error"]
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["model"]["model"] == "adgm" and config["model"]["aux_dim"] == 4
    run = ["--run", str(tmp_path / "straight"), "--data", str(real_data_root), "--num-images", "2"]
    paths = runner.plot(MNIST(), [*run, "--digits", "1"])
    assert {"analogies", "reconstructions", "confusion"} <= set(paths)


def test_restarts_share_the_labelled_subset_of_their_split_seed(real_data_root, tmp_path):
    """``--split-seed`` fixes the labelled subset while ``--seed`` starts another restart on it."""
    experiment = MNIST()

    def labelled_rows(*argv):
        args = runner.parse(experiment, [*ARGS, "--data", str(real_data_root), "--out", str(tmp_path), *argv])
        setup = experiment.build(args, experiment.load_data(args))
        return experiment.run_name(args), setup.batches.sampler.split.labelled

    plain_name, plain = labelled_rows("--seed", "0")
    restart_name, restart = labelled_rows("--seed", "1000", "--split-seed", "0")
    _, other = labelled_rows("--seed", "1000")
    assert torch.equal(restart, plain) and not torch.equal(other, plain)
    assert (plain_name, restart_name) == ("labels20_m2_mlp_seed0", "labels20_m2_mlp_split0_seed1000")


def test_alpha_schedule_trains_each_epoch_at_its_weight_and_resumes_exactly(
    real_data_root, tmp_path, single_thread
):
    data = ["--data", str(real_data_root), "--train-size", "200"]
    schedule = ["--alpha", "50", "--alpha-start", "500", "--alpha-epochs", "2"]
    straight = train([*ARGS, *data, *schedule, "--epochs", "3", "--out", str(tmp_path / "straight")])
    train([*ARGS, *data, *schedule, "--epochs", "2", "--out", str(tmp_path / "resumed")])
    resume = ["--epochs", "3", "--resume", "--out", str(tmp_path / "resumed")]
    resumed = train([*ARGS, *data, *schedule, *resume])
    constant = train([*ARGS, *data, "--alpha", "500", "--epochs", "1", "--out", str(tmp_path / "constant")])

    rows = {}
    for run in ("straight", "resumed", "constant"):
        with open(tmp_path / run / "metrics.csv", newline="") as f:
            rows[run] = list(csv.DictReader(f))
    assert [float(row["alpha"]) for row in rows["straight"]] == [500.0, 275.0, 50.0]
    untimed = {run: [{k: v for k, v in row.items() if k != "seconds"} for row in rows[run]] for run in rows}
    assert untimed["resumed"] == untimed["straight"]
    assert resumed["test_error"] == straight["test_error"]
    assert (resumed["alpha_start"], resumed["alpha_epochs"]) == (500.0, 2)
    # epoch 0 of the schedule is the constant α = 500 run's epoch 0 (same seed: same batches and noise)
    assert float(rows["straight"][0]["loss"]) == pytest.approx(float(rows["constant"][0]["loss"]), rel=1e-6)
    assert "alpha" not in rows["constant"][0] and constant["alpha_start"] is None


def test_resuming_with_other_model_arguments_is_a_clear_error(
    real_data_root, tmp_path, single_thread, capsys
):
    data = ["--data", str(real_data_root), "--train-size", "200", "--out", str(tmp_path)]
    train([*ARGS, *data, "--epochs", "1"])
    with pytest.raises(SystemExit) as exit_info:
        train([*ARGS, *data, "--epochs", "2", "--resume", "--z-dim", "4"])
    assert exit_info.value.code == 2 and "z_dim: saved 10, asked 4" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--labels", "15"], "--labels must be a positive multiple of 10, got 15"),
        (["--alpha", "-1"], "--alpha must be a non-negative number, got -1.0"),
        (["--alpha", "nan"], "--alpha must be a non-negative number, got nan"),
        (["--z-dim", "0"], "--z-dim must be a positive dimension, got 0"),
        (["--rho", "1.5"], "--rho must lie in (0, 1), got 1.5"),
        (["--model", "adgm", "--network", "conv"], "--model adgm has MLP networks only, got --network conv"),
        (["--aux-dim", "0"], "--aux-dim must be a positive dimension, got 0"),
        (["--split-seed", "-1"], "--split-seed must be a non-negative integer, got -1"),
        (["--alpha-start", "-5"], "--alpha-start must be a non-negative number, got -5.0"),
        (["--alpha-start", "inf"], "--alpha-start must be a non-negative number, got inf"),
        (["--alpha-start", "500", "--alpha-epochs", "0"], "--alpha-epochs must be at least 1, got 0"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        train([*ARGS, "--data", str(tmp_path / "no-data"), "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
