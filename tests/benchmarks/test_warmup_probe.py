import json

import pytest

from benchmarks import warmup_probe

TINY = ["--labels", "20", "--train-size", "400", "--batch-size", "100", "--hidden", "16", "--network", "conv"]


def test_each_warm_up_is_probed_on_the_same_batches_with_its_learning_rate_by_step(
    real_data_root, tmp_path, single_thread, capsys
):
    out = tmp_path / "probe.md"
    warmup_probe.main(
        ["--steps", "5", "--every", "2", "--warmups", "0", "4", "--out", str(out)]
        + ["--", *TINY, "--data", str(real_data_root)]
    )
    none, warm = json.loads(out.with_suffix(".json").read_text())["records"]
    assert (none["warmup"], warm["warmup"]) == (0, 4)
    assert [row["step"] for row in none["rows"]] == [0, 2, 4] == [row["step"] for row in warm["rows"]]
    assert [row["lr"] for row in none["rows"]] == [1e-3] * 3
    assert [row["lr"] for row in warm["rows"]] == pytest.approx([1e-3 / 4, 1e-3 * 3 / 4, 1e-3])
    # the first step's loss is computed before any update, on the same batch: the warm-up cannot change it
    assert warm["rows"][0]["loss"] == none["rows"][0]["loss"]
    assert warm["rows"][1]["loss"] != none["rows"][1]["loss"]
    rows = none["rows"] + warm["rows"]
    assert all(0 <= row["labelled_accuracy"] <= 1 and row["feature_spread"] > 0 for row in rows)
    assert f"| 4 | 2 | 0.00075 | {warm['rows'][1]['loss']:.6g} |" in out.read_text()
    assert "| warm-up steps | step |" in capsys.readouterr().out


def test_the_seed_inside_the_options_and_bad_counts_are_usage_errors(capsys):
    for argv in (["--", "--seed", "1"], ["--every", "0"]):
        with pytest.raises(SystemExit) as error:
            warmup_probe.main(argv)
        assert error.value.code == 2
    err = capsys.readouterr().err
    assert "give the seed as the probe's own --seed" in err
    assert "--steps and --every must be at least 1" in err
