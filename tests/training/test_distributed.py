"""Distributed data parallel training on the CPU: 2 processes, the gloo backend."""

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
