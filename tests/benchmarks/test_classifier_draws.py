import json

import pytest

from benchmarks import classifier_draws
from pyro_partial.training import runner
from pyro_partial_models.mnist import MNIST


def test_the_spread_over_evaluation_seeds_starts_from_the_runs_own_score(
    real_data_root, tmp_path, single_thread, capsys
):
    """An ADGM run: evaluation seed 0 with 10 draws is the score training recorded, the other seeds move
    it, and the records name every seed's error."""
    run = tmp_path / "adgm"
    args = ["--labels", "20", "--train-size", "400", "--batch-size", "100", "--hidden", "16", "--no-progress"]
    trained = runner.train(
        MNIST(),
        [*args, "--model", "adgm", "--aux-dim", "4", "--data", str(real_data_root), "--epochs", "1"]
        + ["--out", str(run)],
    )
    out = tmp_path / "draws.md"
    classifier_draws.main(
        ["--runs", str(run), "--eval-seeds", "4", "--data", str(real_data_root), "--out", str(out)]
    )
    [record] = json.loads(out.with_suffix(".json").read_text())["records"]
    assert len(record["errors"]) == 4 and record["draws"] == 10 and record["epochs"] == 1
    assert record["errors"][0] == pytest.approx(trained["test_error"], abs=1e-12)
    assert record["std"] > 0 and record["mean"] == pytest.approx(sum(record["errors"]) / 4)
    assert f"| adgm | 1 | 10 | 4 | {100 * record['mean']:.2f} |" in out.read_text()
    assert "| adgm |" in capsys.readouterr().out


def test_runs_of_other_experiments_and_bad_counts_are_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        classifier_draws.main(["--runs", str(tmp_path)])
    assert error.value.code == 2 and "runs without a checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        classifier_draws.main(["--runs", str(tmp_path), "--eval-seeds", "0"])
    assert "--eval-seeds must be positive, got 0" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "faces"}))
    with pytest.raises(ValueError, match="a 'faces' run; expected one of"):
        classifier_draws.spread(tmp_path, None, 2, 10)
