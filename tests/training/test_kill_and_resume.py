"""Crash safety: a run killed with SIGKILL at a random training step, or in the middle of a checkpoint write,
resumes to the same bits as a run never interrupted."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_partial.training import load_checkpoint_file

CHECKOUT = Path(__file__).resolve().parents[2]
EPOCHS = "6"


def start(out, *options):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.killed_run", str(out), EPOCHS, *options],
        cwd=CHECKOUT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def finish(out, *options):
    process = start(out, *options)
    process.communicate(timeout=300)
    assert process.returncode == 0


def kill_at(process, marker):
    """Read the process's output until the line ``marker``, then kill it with SIGKILL."""
    for line in process.stdout:
        if line.strip() == marker:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def assert_same_weights(a, b):
    first, second = load_checkpoint_file(a / "checkpoint.ckpt"), load_checkpoint_file(b / "checkpoint.ckpt")
    assert first["epoch"] == second["epoch"] == int(EPOCHS) - 1
    for name, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][name]), name
    optimisers = [run["optimizer_states"][0]["state"] for run in (first, second)]
    for state, other in zip(optimisers[0].values(), optimisers[1].values(), strict=True):
        assert all(torch.equal(state[key], other[key]) for key in state)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run never interrupted."""
    out = tmp_path_factory.mktemp("straight")
    finish(out)
    return out


def test_killed_at_a_random_step_then_resumed_is_bit_identical(tmp_path, straight):
    step = random.Random(os.getpid()).randrange(5, 20)  # 4 steps an epoch: after the first checkpoint
    kill_at(start(tmp_path / "killed", "slow-steps"), f"step {step}")
    assert (tmp_path / "killed" / "checkpoint.ckpt").is_file()
    finish(tmp_path / "killed", "--resume")
    assert_same_weights(straight, tmp_path / "killed")


def test_killed_while_writing_a_checkpoint_keeps_the_previous_one_and_resumes(tmp_path, straight):
    kill_at(start(tmp_path / "killed", "slow-writes"), "writing 1")  # the second epoch's checkpoint
    leftovers = list((tmp_path / "killed").glob(".checkpoint.ckpt.*.tmp"))
    assert len(leftovers) == 1  # the half-written file; the first epoch's checkpoint is intact
    assert load_checkpoint_file(tmp_path / "killed" / "checkpoint.ckpt")["epoch"] == 0
    finish(tmp_path / "killed", "--resume")
    assert not leftovers[0].exists()  # cleaned on the next start
    assert_same_weights(straight, tmp_path / "killed")
