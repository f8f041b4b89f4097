"""The engine on a CUDA device: training, mixed precision, and a resume there; skipped without a GPU."""

import pytest
import torch

from pyro_partial.training import load_checkpoint_file, runner
from tests.training.toy import Toy

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def train(out, *argv):
    return runner.train(
        Toy(), ["--no-progress", "--accelerator", "gpu", "--devices", "1", "--out", str(out), *argv]
    )


def test_a_run_trains_on_the_gpu_and_its_checkpoint_loads_on_the_cpu(tmp_path):
    results = train(tmp_path / "run", "--epochs", "2")
    assert results["device"].startswith("cuda")
    state = load_checkpoint_file(tmp_path / "run" / "checkpoint.ckpt")  # mapped to the CPU
    assert all(value.device.type == "cpu" for value in state["state_dict"].values())


def test_a_resume_on_the_gpu_is_bit_identical(tmp_path):
    train(tmp_path / "straight", "--epochs", "3")
    train(tmp_path / "resumed", "--epochs", "1")
    train(tmp_path / "resumed", "--epochs", "3", "--resume")
    straight = load_checkpoint_file(tmp_path / "straight" / "checkpoint.ckpt")["state_dict"]
    resumed = load_checkpoint_file(tmp_path / "resumed" / "checkpoint.ckpt")["state_dict"]
    assert all(torch.equal(value, resumed[name]) for name, value in straight.items())


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_runs_stay_finite(tmp_path, precision):
    results = train(tmp_path / precision, "--epochs", "2", "--precision", precision)
    assert torch.isfinite(torch.tensor(results["decoder_norm"]))
    state = load_checkpoint_file(tmp_path / precision / "checkpoint.ckpt")["state_dict"]
    assert all(torch.isfinite(value.float()).all() for value in state.values())
