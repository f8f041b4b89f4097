import json

import pytest
import torch

from benchmarks import flush_denormal_speed
from pyro_partial.training import runner
from pyro_partial_models.mnist import MNIST


def test_a_run_is_timed_with_flushing_off_on_and_off_again_and_the_loss_compared(
    real_data_root, tmp_path, single_thread, capsys
):
    run = tmp_path / "m2"
    args = ["--labels", "20", "--train-size", "400", "--batch-size", "100", "--hidden", "16", "--no-progress"]
    runner.train(MNIST(), [*args, "--data", str(real_data_root), "--epochs", "1", "--out", str(run)])
    out = tmp_path / "speed.md"
    flush_denormal_speed.main(
        ["--runs", str(run), "--batch-size", "20", "--repeats", "2", "--data", str(real_data_root)]
        + ["--out", str(out)]
    )
    [record] = json.loads(out.with_suffix(".json").read_text())["records"]
    steps = [record[name]["seconds"] for name in ("off", "on", "off again")]
    assert all(seconds > 0 for seconds in steps)
    assert record["ratio"] == pytest.approx(steps[1] / max(steps[0], steps[2]))
    # the same draws each time: flushing moves the loss by rounding at most, and "off" repeats exactly
    assert record["on"]["loss"] == pytest.approx(record["off"]["loss"], rel=1e-5)
    assert record["off again"]["loss"] == record["off"]["loss"]
    assert (
        f"| m2 | {steps[0]:.3f} | {steps[1]:.3f} | {steps[2]:.3f} | {record['ratio']:.2f} |"
        in out.read_text()
    )
    assert "| m2 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--batch-size 10001 exceeds the 10000 test images of"):
        flush_denormal_speed.time_steps(run, real_data_root, 10001, 1, 0)
    subnormal = torch.tensor(1e-310, dtype=torch.float64)
    assert (subnormal * 1.0).item() == 1e-310  # flushing is off again afterwards


def test_runs_without_checkpoints_bad_counts_and_other_experiments_are_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        flush_denormal_speed.main(["--runs", str(tmp_path)])
    assert error.value.code == 2 and "runs without a checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        flush_denormal_speed.main(["--runs", str(tmp_path), "--repeats", "0"])
    assert "--batch-size and --repeats must be at least 1, got 200 and 0" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "faces"}))
    with pytest.raises(ValueError, match="a 'faces' run; expected one of"):
        flush_denormal_speed.time_steps(tmp_path, None, 20, 1, 0)
