"""Run records: the metrics file, the results record and the command that reproduces a run."""

import csv
import json
import subprocess
import sys

import pyro
import pytest
import torch

from pyro_partial.training import MetricsCSV, write_results
from pyro_partial.training.runner import parse, recorded_arguments
from tests.training.toy import Toy


def test_metrics_csv_truncates_on_resume(tmp_path):
    metrics = MetricsCSV(tmp_path / "m.csv")
    for epoch in range(3):
        metrics.append({"epoch": epoch, "loss": float(epoch)})
    reopened = MetricsCSV(tmp_path / "m.csv")
    reopened.truncate(1)
    reopened.append({"epoch": 1, "loss": 9.0, "accuracy": 0.5})
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["loss"], r["accuracy"]) for r in rows] == [("0", "0.0", ""), ("1", "9.0", "0.5")]
    with pytest.raises(ValueError, match="needs an 'epoch' field"):
        reopened.append({"loss": 1.0})


def test_results_record_command_versions_and_seed(tmp_path):
    record = write_results(tmp_path / "r.json", {"test_error": 0.1}, seed=7)
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk == record
    assert on_disk["seed"] == 7 and on_disk["test_error"] == 0.1
    assert on_disk["environment"]["torch"] == torch.__version__
    assert on_disk["environment"]["pyro"] == pyro.__version__
    assert on_disk["command"]


def test_command_line_names_the_module_when_run_with_dash_m(tmp_path):
    script = "from pyro_partial.training.records import command_line; print(command_line())"
    (tmp_path / "probe_module.py").write_text(script)
    out = subprocess.run(
        [sys.executable, "-m", "probe_module", "--seed", "3"], cwd=tmp_path, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    assert out == "python -m probe_module --seed 3"


def test_the_recorded_command_reproduces_the_arguments(tmp_path):
    args = parse(Toy(), ["--z-dim", "3", "--out", str(tmp_path / "a b")], prog="pyro-partial train toy")
    assert args.command == f"pyro-partial train toy --z-dim 3 --out '{tmp_path / 'a b'}'"
    recorded = recorded_arguments(args)
    assert recorded["z_dim"] == 3 and recorded["seed"] == 0 and recorded["precision"] == "32-true"
    assert not {"out", "resume", "command", "data", "accelerator", "devices"} & set(recorded)
    assert json.loads(json.dumps(recorded)) == recorded  # JSON-ready
