"""Checkpoint files: atomic writes, reads that refuse code, named errors for damaged files, RNG states."""

import os
import pickle
import random

import numpy as np
import pytest
import torch

from pyro_partial.training.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    load_checkpoint_file,
    rng_state,
    set_rng_state,
)


def test_the_checkpoint_plugin_round_trips_tensors_and_plain_values(tmp_path):
    state = {"state_dict": {"w": torch.arange(3.0)}, "epoch": 2, "callbacks": {"rng": rng_state()}}
    io = AtomicCheckpointIO()
    io.save_checkpoint(state, tmp_path / "c.ckpt")
    loaded = io.load_checkpoint(tmp_path / "c.ckpt")
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"]) and loaded["epoch"] == 2
    io.remove_checkpoint(tmp_path / "c.ckpt")
    assert not (tmp_path / "c.ckpt").exists()


class Payload:
    def __reduce__(self):
        return (os.mkdir, ("/tmp/pyro_partial_pwned",))


def test_a_crafted_pickle_is_refused_and_never_run(tmp_path):
    path = tmp_path / "checkpoint.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(
        CheckpointError,
        match=r"holds objects other than tensors .*weights_only=True\) and not run: .*posix.mkdir",
    ):
        load_checkpoint_file(path)
    assert not os.path.exists("/tmp/pyro_partial_pwned")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (os.urandom(4096), "truncated or not a torch.save file"),
        (b"not a checkpoint, a text file\n", "truncated or not a torch.save file"),
    ],
    ids=["empty", "random-bytes", "text"],
)
def test_damaged_checkpoints_are_named_errors(tmp_path, content, message):
    path = tmp_path / "checkpoint.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"checkpoint {path}.*{message}"):
        load_checkpoint_file(path)


def test_a_truncated_checkpoint_is_a_named_error(tmp_path):
    path = tmp_path / "checkpoint.ckpt"
    torch.save({"state_dict": {"w": torch.randn(1000)}}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or not a torch.save file"):
        load_checkpoint_file(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint_file(tmp_path / "missing.ckpt")


def test_generator_states_survive_a_weights_only_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002
    torch.manual_seed(3)
    np.random.standard_normal()  # noqa: NPY002  (a cached Gaussian is part of NumPy's state)
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.random(), np.random.standard_normal(), torch.rand(3))  # noqa: NPY002
    random.seed(9)
    np.random.seed(9)  # noqa: NPY002
    torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), np.random.random(), np.random.standard_normal(), torch.rand(3))  # noqa: NPY002
    assert again[:3] == expected[:3] and torch.equal(again[3], expected[3])
    assert pickle.dumps(state["python"])  # plain values
