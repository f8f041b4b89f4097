"""Distributed data parallel training on the CPU: 2 processes, the gloo backend."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

CHECKOUT = Path(__file__).resolve().parents[2]


def probe(out, devices):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.training.ddp_probe", str(out), str(devices)],
        cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_gradient_averaged_over_two_ranks_is_the_single_process_gradient(tmp_path):
    probe(tmp_path, 1)
    probe(tmp_path, 2)
    single = torch.load(tmp_path / "grads_1_rank0.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"grads_2_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert set(single) == {
        "loss_fn.model.means",
        "loss_fn.guide.classifier.weight",
        "loss_fn.guide.classifier.bias",
    }
    for name, grad in single.items():
        assert grad.dtype == torch.float64 and grad.abs().sum() > 0
        for rank in ranks:
            torch.testing.assert_close(rank[name], grad, rtol=1e-12, atol=1e-12)


def test_two_processes_train_mnist_from_the_command_line_and_rank_zero_writes_the_run(
    real_data_root, tmp_path
):
    """``pyro-partial train mnist --devices 2 --strategy ddp`` on the CPU: Lightning starts the second
    process; the run files are written once; the losses follow the one-process run on the same global
    batches (the Monte Carlo noise of z differs: each rank draws its own)."""
    command = [sys.executable, "-m", "pyro_partial_models.cli", "train", "mnist", "--labels", "20"]
    options = [
        "--train-size",
        "400",
        "--batch-size",
        "100",
        "--hidden",
        "32",
        "--epochs",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYRO_PARTIAL_DATA": str(real_data_root)}
    losses = {}
    for devices in (1, 2):
        out = tmp_path / f"devices{devices}"
        ddp = ["--devices", str(devices), "--accelerator", "cpu"] + (
            ["--strategy", "ddp"] if devices > 1 else []
        )
        argv = [*command, *options, *ddp, "--out", str(out)]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert sorted(p.name for p in out.iterdir()) == [
            "checkpoint.ckpt",
            "config.json",
            "metrics.csv",
            "results.json",
        ]
        results = json.loads((out / "results.json").read_text())
        assert results["world_size"] == devices and results["epochs"] == 2
        assert done.stdout.count("test accuracy") == 1, done.stdout  # the summary line from rank 0 only
        with open(out / "metrics.csv", newline="") as f:
            losses[devices] = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses[2]) == 2
    for one, two in zip(losses[1], losses[2], strict=True):
        assert abs(two - one) < 0.005 * abs(one)
