"""The ``pyro-partial`` command: a tiny MNIST training run through the console script in a fresh process run
outside the checkout, then the run's figures; and the package built as a wheel, installed outside the
checkout, training MNIST on its own."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from pyro_partial_models import cli

SCRIPT = Path(sys.executable).with_name("pyro-partial")
# the installed console script where there is one (CI installs it), else the same entry point as a module
COMMAND = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "pyro_partial_models.cli"]
CHECKOUT = Path(__file__).resolve().parents[2]
UNPACKAGED = (
    ".git",
    ".venv",
    "build",
    "_build",
    "dist",
    "runs",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
)


def run(args, cwd, command=COMMAND, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_train_then_plot(real_data_root, tmp_path):
    train = [
        "train", "mnist", "--labels", "20", "--train-size", "300", "--batch-size", "100", "--hidden", "16",
        "--epochs", "1", "--seed", "3", "--data", str(real_data_root), "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    done = run(train, cwd=tmp_path)

    assert "Epoch 0: 100%" in done.stdout  # Lightning's progress bar (on stdout)
    run_dir = tmp_path / "run"
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0"] and 0 <= float(rows[0]["val_error"]) <= 1
    checkpoint = torch.load(run_dir / "checkpoint.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 0 and "loss_fn.model.decoder.0.weight" in checkpoint["state_dict"]
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
    assert (
        "experiments: dsprites, faces, mlvae, mnist, multi_mnist, pinwheel, sparsity, svhn"
        in capsys.readouterr().out
    )
    for name in cli.EXPERIMENTS:
        assert cli.experiment(name).name == name


def test_every_experiment_takes_the_device_options(capsys):
    for name in cli.EXPERIMENTS:
        with pytest.raises(SystemExit):
            cli.main(["train", name, "--help"])
        usage = capsys.readouterr().out
        for option in ("--accelerator", "--devices", "--strategy", "--num-nodes", "--precision", "--logger"):
            assert option in usage, (name, option)


def test_unknown_experiment_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "cifar"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cifar' (choose from" in capsys.readouterr().err


def test_a_wheel_installed_outside_the_checkout_trains_mnist(real_data_root, tmp_path):
    """``pip install .`` into a directory of its own (the dependencies come from this environment), then
    ``pyro-partial train mnist`` run from elsewhere: the installed package needs nothing from the checkout."""
    source, wheels, site = tmp_path / "source", tmp_path / "wheels", tmp_path / "site"
    # built from a copy of the sources: building in the checkout would leave a build/ folder there
    shutil.copytree(CHECKOUT, source, ignore=shutil.ignore_patterns(*UNPACKAGED))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True
    )
    (wheel,) = wheels.glob("pyro_partial-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    assert (site / "pyro_partial_models" / "cli.py").is_file() and not (site / "models").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import pyro_partial, pyro_partial_models; print(pyro_partial.__file__, pyro_partial_models.__file__)"
    )
    env = {"PYTHONPATH": str(site), "PYRO_PARTIAL_DATA": str(real_data_root)}
    done = run(["-c", probe], elsewhere, command=[sys.executable], env=env)
    assert all(path.startswith(str(site)) for path in done.stdout.split())
    train = ["-m", "pyro_partial_models.cli", "train", "mnist", "--train-size", "2000", "--epochs", "1"]
    run([*train, "--hidden", "32", "--no-progress"], elsewhere, command=[sys.executable], env=env)
    results = json.loads(next((elsewhere / "runs" / "mnist").glob("*/results.json")).read_text())
    assert results["epochs"] == 1 and 0 <= results["test_error"] <= 1
