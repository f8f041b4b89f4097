import csv
import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyro_partial.training import MetricsCSV, atomic_write, fit, write_results


class TinyVAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(3, 4)
        self.decoder = torch.nn.Linear(2, 3)
        self.norm = torch.nn.BatchNorm1d(3)  # has buffers, which the param store does not keep

    def model(self, x):
        pyro.module("vae", self)
        shift = pyro.param("shift", torch.zeros(3))  # a free-standing param
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z) + shift, 1.0).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("vae", self)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = self.encoder(self.norm(x)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


DATA = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))


def batches(epoch):
    order = torch.randperm(32, generator=torch.Generator().manual_seed(1000 + epoch))
    return [(DATA[order[i : i + 8]],) for i in range(0, 32, 8)]


def run(run_dir, epochs, resume=False):
    pyro.clear_param_store()
    vae = TinyVAE()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 0.05}), Trace_ELBO())
    history = fit(
        svi,
        batches,
        epochs=epochs,
        modules={"vae": vae},
        run_dir=run_dir,
        resume=resume,
        evaluate=lambda epoch: {"shift0": pyro.param("shift")[0].item()},
        progress=False,
    )
    return vae, history


def test_resume_continues_exactly(tmp_path):
    pyro.set_rng_seed(0)
    straight, straight_history = run(tmp_path / "straight", epochs=4)
    pyro.set_rng_seed(0)
    run(tmp_path / "resumed", epochs=2)
    pyro.set_rng_seed(123)  # resuming must restore the RNG itself
    resumed, resumed_history = run(tmp_path / "resumed", epochs=4, resume=True)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert [r["loss"] for r in straight_history] == [r["loss"] for r in resumed_history]
    with open(tmp_path / "resumed" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["loss"]) == pytest.approx(straight_history[-1]["loss"])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*checkpoint.pt"):
        run(tmp_path, epochs=1, resume=True)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


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
    assert (
        on_disk["environment"]["torch"] == torch.__version__
        and on_disk["environment"]["pyro"] == pyro.__version__
    )
    assert on_disk["command"]


def test_command_line_names_the_module_when_run_with_dash_m(tmp_path):
    import subprocess
    import sys

    script = "from pyro_partial.training.records import command_line; print(command_line())"
    (tmp_path / "probe_module.py").write_text(script)
    out = subprocess.run(
        [sys.executable, "-m", "probe_module", "--seed", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "python -m probe_module --seed 3"
