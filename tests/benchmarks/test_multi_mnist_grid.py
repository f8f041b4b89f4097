"""The Multi-MNIST grid's named runs for the window experiments (issue #23): a window weight, longer
training, test-time refinement and glimpse search as run names and arguments, and their second summary
table (fabricated ``results.json`` files, so nothing is trained)."""

import json
import sys

from benchmarks import multi_mnist_grid

GRID = ["--labelled", "1000", "--seeds", "0", "--alpha-where", "250", "--long-epochs", "12", "--jobs", "1"]


def test_window_weight_longer_and_refined_runs_are_named_and_passed_their_arguments(tmp_path, commands):
    multi_mnist_grid.main([*GRID, "--runs", str(tmp_path), "--refine-steps", "50", "--refine-lr", "0.05"])
    names = ["l1000_refine50", "l1000_where250_refine50", "l1000_e12_refine50"]
    assert [command[command.index("--out") + 1] for command in commands] == [
        str(tmp_path / f"{name}_s0") for name in names
    ]
    train = [sys.executable, "-m", "pyro_partial_models.cli", "train", "multi_mnist", "--labelled-canvases"]
    refine = ["--refine-steps", "50", "--refine-lr", "0.05", "--seed", "0"]
    assert [command[: command.index("--out")] for command in commands] == [
        [*train, "1000", *refine],
        [*train, "1000", "--alpha-where", "250", *refine],
        [*train, "1000", "--epochs", "12", *refine],
    ]


def test_searched_runs_are_named_after_the_refinement_and_passed_the_radius(tmp_path, commands):
    multi_mnist_grid.main([*GRID, "--runs", str(tmp_path), "--refine-steps", "50", "--search-radius", "2"])
    names = ["l1000_refine50_search2", "l1000_where250_refine50_search2", "l1000_e12_refine50_search2"]
    assert [command[command.index("--out") + 1] for command in commands] == [
        str(tmp_path / f"{name}_s0") for name in names
    ]
    for command in commands:
        options = command[: command.index("--out")]
        assert options[-6:] == ["--refine-lr", "0.05", "--search-radius", "2", "--seed", "0"]


def test_jittered_runs_are_named_before_the_refinement_and_passed_the_jitter(tmp_path, commands):
    multi_mnist_grid.main([*GRID[:4], "--jobs", "1", "--runs", str(tmp_path), "--glimpse-jitter", "2.5"])
    multi_mnist_grid.main([*GRID[:4], "--jobs", "1", "--runs", str(tmp_path), "--glimpse-jitter", "2"]
                          + ["--refine-steps", "50"])  # fmt: skip
    assert [command[command.index("--out") + 1] for command in commands] == [
        str(tmp_path / "l1000_jitter2.5_s0"),
        str(tmp_path / "l1000_jitter2_refine50_s0"),
    ]
    first, second = (command[: command.index("--out")] for command in commands)
    assert first[-4:] == ["--glimpse-jitter", "2.5", "--seed", "0"]
    assert second[-8:-4] == ["--glimpse-jitter", "2", "--refine-steps", "50"]


def test_without_refinement_the_names_have_no_suffix(tmp_path, commands):
    multi_mnist_grid.main([*GRID, "--runs", str(tmp_path)])
    assert [command[command.index("--out") + 1] for command in commands] == [
        str(tmp_path / f"{name}_s0") for name in ("l1000", "l1000_where250", "l1000_e12")
    ]
    options = ("--refine-steps", "--search-radius", "--glimpse-jitter")
    assert not any(option in command for command in commands for option in options)


def test_window_table_reports_refined_searched_and_true_window_scores(tmp_path):
    scores = {
        "test_count_accuracy": 0.9,
        "test_digit_accuracy": 0.2,
        "test_matched_digit_accuracy": 0.25,
        "test_canvas_accuracy": 0.4,
        "test_matched_position_error_px": 4.0,
        "test_true_window_digit_accuracy": 0.8,
        "test_refined_matched_digit_accuracy": 0.5,
        "test_refined_matched_position_error_px": 2.5,
        "test_refine_seconds": 90.0,
        "test_searched_matched_digit_accuracy": 0.6,
        "test_searched_matched_position_error_px": 2.0,
        "test_search_seconds": 30.0,
    }
    for seed, shift in ((0, 0.0), (1, 0.1)):
        out = tmp_path / f"l1000_refine50_s{seed}"
        out.mkdir()
        shifted = {key: value + shift for key, value in scores.items()}
        (out / "results.json").write_text(json.dumps({"train_seconds": 100.0, **shifted}))
    table = multi_mnist_grid.main(
        ["--summary-only", "--runs", str(tmp_path), "--labelled", "1000", "--seeds", "0", "1"]
        + ["--refine-steps", "50", "--alpha-where", "250"]
    )
    rows = table.splitlines()
    assert (
        "| l1000_refine50 | 30.0 ± 7.1 (n=2) | 55.0 ± 7.1 (n=2) | 85.0 ± 7.1 (n=2) | 4.0 ± 0.1 (n=2) "
        "| 2.5 ± 0.1 (n=2) | 90.0 ± 0.1 (n=2) | 65.0 ± 7.1 (n=2) | 2.0 ± 0.1 (n=2) | 30.1 ± 0.1 (n=2) |"
        in rows
    )
    assert "| l1000_where250_refine50 | — | — | — | — | — | — | — | — | — |" in rows  # not run yet
    assert (tmp_path / "multi_mnist.md").read_text() == table + "\n"
