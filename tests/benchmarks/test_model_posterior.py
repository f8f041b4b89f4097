import json

import pytest

from benchmarks import model_posterior
from pyro_partial.training import runner
from pyro_partial_models.mnist import MNIST


def test_rescoring_a_run_reports_both_classifiers_and_is_kept(
    real_data_root, tmp_path, single_thread, capsys, monkeypatch
):
    run = tmp_path / "mnist"
    args = ["--labels", "20", "--train-size", "400", "--batch-size", "100", "--hidden", "32", "--no-progress"]
    trained = runner.train(
        MNIST(), [*args, "--data", str(real_data_root), "--epochs", "1", "--out", str(run)]
    )
    out = tmp_path / "table.md"
    argv = ["--runs", str(run), "--particles", "2", "--data", str(real_data_root), "--out", str(out)]
    model_posterior.main(argv)
    record = json.loads((run / "model_posterior_k2_s0.json").read_text())
    assert record["guide_error"] == pytest.approx(trained["test_error"])  # q(y|x) on the same test set
    assert 0.0 < record["model_error"] <= 1.0
    true, predicted, count = record["model_largest_confusion"]
    assert true != predicted and count > 0
    assert record["seed"] == 0 and record["command"].startswith("python ")
    text = out.read_text()
    assert f"| mnist | 1 | {100 * record['guide_error']:.2f} | {100 * record['model_error']:.2f} |" in text
    assert json.loads(out.with_suffix(".json").read_text())["records"] == [record]

    def fail(*args):
        raise AssertionError("a scored run is not scored again")

    monkeypatch.setattr(model_posterior, "classify", fail)
    model_posterior.main(argv)
    assert record["vectorize_particles"] is True
    with pytest.raises(AssertionError, match="not scored again"):  # drawn the other way: scored again
        model_posterior.main([*argv, "--sequential-particles"])
    with open(run / "checkpoint.ckpt", "ab") as checkpoint:  # the run trained on: its scores are stale
        checkpoint.write(b"\0")
    with pytest.raises(AssertionError, match="not scored again"):
        model_posterior.main(argv)
    assert "| mnist |" in capsys.readouterr().out


def test_unfinished_runs_and_bad_particles_are_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        model_posterior.main(["--runs", str(tmp_path)])
    assert error.value.code == 2 and "runs without a checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        model_posterior.main(["--runs", str(tmp_path), "--particles", "0"])
    assert "--particles must be positive, got 0" in capsys.readouterr().err
