"""The Yale B grids' runs and their paired summary (fabricated ``results.json`` files, nothing trained)."""

import json
import sys

from benchmarks import faces_grid


def write_results(out, seed, identity, generative=None):
    out.mkdir(parents=True, exist_ok=True)
    scores = {"test_identity_error": identity, "test_light_error_deg": 5.0}
    scores["test_light_error_median_deg"] = 4.0
    if generative is not None:
        scores["test_generative_identity_error"] = generative
    (out / "results.json").write_text(json.dumps({"train_seconds": 60.0, "seed": seed, **scores}))


def test_alpha_grid_trains_each_alpha_and_the_longer_baseline(tmp_path, commands):
    faces_grid.main(
        ["alpha", "--alphas", "500", "--seeds", "3", "--epochs", "8", "--jobs", "1", "--runs", str(tmp_path)]
    )
    train = [sys.executable, "-m", "pyro_partial_models.cli", "train", "faces"]
    assert [command[: command.index("--out")] for command in commands] == [
        [*train, "--labels-fraction", "0.2", "--alpha", "500.0", "--epochs", "8", "--seed", "3"],
        [*train, "--labels-fraction", "0.2", "--baseline", "--epochs", "40", "--seed", "3"],
    ]
    outs = [command[command.index("--out") + 1] for command in commands]
    assert outs == [str(tmp_path / "alpha" / name) for name in ("vae_a500_s3", "baseline_s3")]


def test_alpha_grid_with_enumerate_adds_the_exact_run_of_each_alpha(tmp_path, commands):
    argv = [
        "alpha",
        "--alphas",
        "500",
        "--seeds",
        "0",
        "--epochs",
        "8",
        "--enumerate",
        "--jobs",
        "1",
        "--runs",
        str(tmp_path),
    ]
    faces_grid.main(argv)
    outs = [command[command.index("--out") + 1] for command in commands]
    names = ("vae_a500_s0", "vae_a500_enum_s0", "baseline_s0")
    assert outs == [str(tmp_path / "alpha" / name) for name in names]
    assert "--enumerate" in commands[1] and "--enumerate" not in commands[0] + commands[2]


def test_summary_pairs_each_vae_seed_with_its_baseline(tmp_path):
    grid = tmp_path / "full"
    for seed, (vae, baseline) in enumerate([(0.10, 0.13), (0.20, 0.21), (0.30, 0.35)]):
        write_results(grid / f"vae_e60_s{seed}", seed, vae, generative=0.5)
        write_results(grid / f"baseline_s{seed}", seed, baseline)
    table = faces_grid.main(["full", "--epochs", "60", "--summary-only", "--runs", str(tmp_path)])
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    # paired differences −3, −1, −5 points: mean −3.0, standard deviation 2.0
    assert rows["| vae_e60"].endswith("| 50.0 ± 0.0 (n=3) | -3.0 ± 2.0 (n=3) | 60 |")
    assert "20.0 ± 10.0 (n=3)" in rows["| vae_e60"]
    assert rows["| baseline"].endswith("| — |  | 60 |")
    assert (grid / "full.md").read_text() == table + "\n"


def test_another_size_names_and_pairs_its_own_runs(tmp_path, commands):
    argv = ["full", "--epochs", "5", "--size", "48", "--seeds", "1", "--jobs", "1", "--runs", str(tmp_path)]
    faces_grid.main(argv)
    outs = [command[command.index("--out") + 1] for command in commands]
    assert outs == [str(tmp_path / "full" / name) for name in ("vae_e5_size48_s1", "baseline_size48_s1")]
    assert all(command[command.index("--size") + 1] == "48" for command in commands)
    write_results(tmp_path / "full" / "vae_e5_size48_s1", 1, 0.10, generative=0.05)
    write_results(tmp_path / "full" / "baseline_size48_s1", 1, 0.15)
    table = faces_grid.main([*argv, "--summary-only"])
    row = next(line for line in table.splitlines() if line.startswith("| vae_e5_size48 "))
    assert row.split(" | ")[-2] == "-5.0 (n=1)"
