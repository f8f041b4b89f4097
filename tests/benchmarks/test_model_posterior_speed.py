import json

import pytest

from benchmarks import model_posterior_speed


def test_both_ways_are_timed_and_recorded(tmp_path, single_thread, capsys):
    out = tmp_path / "speed.json"
    argv = ["--models", "m2", "adgm", "--rows", "4", "--particles", "2", "--repeats", "1", "--out", str(out)]
    model_posterior_speed.main(argv)
    record = json.loads(out.read_text())
    assert record["seed"] == 0 and record["command"].startswith("python ")
    assert set(record["timings"]) == {"m2", "adgm"}
    for timing in record["timings"].values():
        assert timing["speedup"] == pytest.approx(timing["one_by_one_s"] / timing["at_once_s"])
    assert "| adgm |" in capsys.readouterr().out


def test_bad_counts_are_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        model_posterior_speed.main(["--particles", "0", "--out", str(tmp_path / "speed.json")])
    assert error.value.code == 2 and "--particles must be positive, got 0" in capsys.readouterr().err
