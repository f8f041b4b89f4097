"""The ``pyro-partial`` command: a tiny MNIST training run through the console script, in a fresh process
run outside the checkout (so the ``models`` package is found through the editable install), then the
run's figures."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from pyro_partial import cli

SCRIPT = Path(sys.executable).with_name("pyro-partial")
# the installed console script where there is one (CI installs it), else the same entry point as a module
COMMAND = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "pyro_partial.cli"]


def run(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*COMMAND, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_train_then_plot(real_data_root, tmp_path):
    train = [
        "train", "mnist", "--labels", "20", "--train-size", "300", "--batch-size", "100", "--hidden", "16",
        "--epochs", "1", "--seed", "3", "--data", str(real_data_root), "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    done = run(train, cwd=tmp_path)

    assert "epoch 1/1" in done.stderr  # the tqdm progress bar
    run_dir = tmp_path / "run"
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0"] and 0 <= float(rows[0]["val_error"]) <= 1
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert checkpoint["extra"]["epoch"] == 0 and "ss_vae" in checkpoint["modules"]
    results = json.loads((run_dir / "results.json").read_text())
    assert 0 <= results["test_error"] <= 1 and results["train_seconds"] > 0 and results["seed"] == 3
    assert results["command"].split() == ["pyro-partial", *train]
    assert not any(run_dir.glob(".*.tmp"))  # atomic writes leave no temporary files

    figures = tmp_path / "figures"
    plot = ["plot", "mnist", "--run", str(run_dir), "--out", str(figures), "--data", str(real_data_root)]
    assert cli.main([*plot, "--num-images", "4", "--digits", "1", "7"]) == 0

    assert sorted(p.name for p in figures.iterdir()) == [
        "analogies.png", "confusion.png", "learning_curves.png", "reconstructions.png",
        "style_variation_1.png", "style_variation_7.png",
    ]  # fmt: skip
    cell = 2 * 30  # 28-pixel digits, 2-pixel padding, every pixel doubled
    analogies = matplotlib.image.imread(figures / "analogies.png")[..., :3]
    assert analogies.shape == (4 * cell + 4, 11 * cell + 4, 3)
    columns = [analogies[:, 4 + j * cell : (j + 1) * cell] for j in range(11)]
    assert all(not np.allclose(columns[j], columns[j + 1]) for j in range(1, 10))  # digits 0..9 differ
    style = matplotlib.image.imread(figures / "style_variation_7.png")
    assert style.shape[:2] == (10 * cell + 4, 5 * cell + 4)  # 10 style dimensions, 5 values


def test_help_lists_the_experiments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "experiments: " in capsys.readouterr().out
    found = cli.experiments()
    assert found["mnist"] == found["svhn"] == {"train", "plot"}
    assert "ss_vae" not in found  # a model, not an experiment: no main()


def test_unknown_experiment_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "cifar"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cifar' (choose from" in capsys.readouterr().err


def test_outside_a_checkout_is_a_clear_error(monkeypatch, tmp_path):
    def no_models(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(cli.importlib, "import_module", no_models)
    monkeypatch.setattr(cli.pyro_partial, "__file__", str(tmp_path / "site" / "pyro_partial" / "__init__.py"))
    with pytest.raises(RuntimeError, match="models/ folder of a pyro-partial checkout"):
        cli.import_models()
