"""Loading a trained module back from a run directory."""

import json

import pytest
import torch

from pyro_partial.training import load_trained_module


def write_run(run_dir, experiment="faces"):
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"experiment": experiment, "model": {"width": 3}}))
    trained = torch.nn.Linear(3, 2)
    torch.save({"modules": {"net": trained.state_dict()}}, run_dir / "checkpoint.pt")
    return trained


def build(config):
    return torch.nn.Linear(config["model"]["width"], 2).train()


def test_the_module_comes_back_trained_and_in_eval_mode(tmp_path):
    trained = write_run(tmp_path / "run")
    module, config = load_trained_module(tmp_path / "run", "net", build, experiments=("faces",))
    assert config["experiment"] == "faces" and not module.training
    assert torch.equal(module.weight, trained.weight) and torch.equal(module.bias, trained.bias)


def test_bad_run_directories_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found: --run must be a run directory"):
        load_trained_module(tmp_path, "net", build)
    write_run(tmp_path / "run", experiment="mlvae")
    with pytest.raises(ValueError, match="is a 'mlvae' run, not a faces or multi_mnist run"):
        load_trained_module(tmp_path / "run", "net", build, experiments=("multi_mnist", "faces"))
