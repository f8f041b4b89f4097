"""The ML-VAE grid's runs and summary (fabricated ``results.json`` files, nothing trained)."""

import json
import sys

from benchmarks import mlvae_grid


def test_grid_trains_each_budget_with_and_without_held_out_digits(tmp_path, commands):
    mlvae_grid.main(["--seeds", "1", "--epochs", "5", "--no-holdout", "--jobs", "1", "--runs", str(tmp_path)])
    train = [sys.executable, "-m", "pyro_partial_models.cli", "train", "mlvae"]
    assert [command[: command.index("--out")] for command in commands] == [
        [*train, "--epochs", "5", "--seed", "1"],
        [*train, "--epochs", "5", "--holdout-classes", "--seed", "1"],
    ]
    assert [command[command.index("--out") + 1] for command in commands] == [
        str(tmp_path / "e5_s1"),
        str(tmp_path / "e5_all_s1"),
    ]


def test_summary_reads_nested_scores_and_leaves_missing_ones_out(tmp_path):
    for seed, (content, style) in enumerate([(0.9, 0.3), (0.8, 0.5)]):
        record = {
            "train_seconds": 100.0,
            "final_loss": 110.0 + seed,
            "classification": {"content": content, "style": style, "chance": 0.1},
        }
        (tmp_path / f"e20_all_s{seed}").mkdir()
        (tmp_path / f"e20_all_s{seed}" / "results.json").write_text(json.dumps(record))
    table = mlvae_grid.main(["--seeds", "0", "1", "--no-holdout", "--summary-only", "--runs", str(tmp_path)])
    row = next(line for line in table.splitlines() if line.startswith("| e20_all |"))
    cells = "0.850 ± 0.071 (n=2) | 0.400 ± 0.141 (n=2) | — | — | — | 110.5 ± 0.7 (n=2) | 100"
    assert row == f"| e20_all | {cells} |"
