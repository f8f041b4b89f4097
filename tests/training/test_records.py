"""Run records: parsed arguments and timing."""

import argparse
import time

from pyro_partial.training import add_run_arguments, parse_recording_command, parsed_arguments, run_timing


def test_parsed_arguments_are_json_ready_without_the_command(tmp_path):
    args = argparse.Namespace(out=tmp_path / "run", seed=3, command="python -m x", labels=[1, 2])
    assert parsed_arguments(args) == {"out": str(tmp_path / "run"), "seed": 3, "labels": [1, 2]}


def test_run_timing_sums_every_epoch_and_measures_this_invocation():
    began = time.perf_counter()
    timing = run_timing([{"seconds": 1.5}, {"seconds": 2.25}], began)
    assert timing["train_seconds"] == 3.75
    assert 0.0 <= timing["wall_seconds_this_invocation"] < 60.0


def test_run_arguments_are_shared_and_data_is_optional(tmp_path):
    parser = argparse.ArgumentParser()
    add_run_arguments(parser, "faces")
    args = parser.parse_args(["--data", str(tmp_path), "--resume"])
    assert (args.data, args.out, args.resume, args.no_progress) == (tmp_path, None, True, False)
    assert "runs/faces/" in parser.format_help()
    without_data = argparse.ArgumentParser()
    add_run_arguments(without_data, "decomposition", data=False)
    assert not hasattr(without_data.parse_args([]), "data")


def test_the_recorded_command_reproduces_the_arguments():
    parser = argparse.ArgumentParser(prog="python -m models.x")
    parser.add_argument("--name")
    args = parse_recording_command(parser, ["--name", "two words"])
    assert args.command == "python -m models.x --name 'two words'"
    assert parse_recording_command(parser, []).command == "python -m models.x"
