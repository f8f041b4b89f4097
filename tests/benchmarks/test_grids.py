"""The benchmark grids' bookkeeping: which runs are trained or resumed, and the summaries of finished runs
(fabricated ``results.json`` files here, so nothing is trained)."""

import json
import shutil
import statistics
import sys

import pytest

from benchmarks import decomposition_grid, grid, mnist_table1, multi_mnist_grid


def write_results(out, **scores):
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps({"train_seconds": 10.0, **scores}))


def test_mean_std_formats_the_sample_mean_and_standard_deviation():
    assert grid.mean_std([]) == "—"
    assert grid.mean_std([0.25], scale=100, digits=1) == "25.0 (n=1)"
    values = [0.1, 0.2, 0.6]
    expected = f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f} (n=3)"
    assert grid.mean_std(values, scale=100) == expected == "30.00 ± 26.46 (n=3)"


def test_train_once_starts_resumes_and_skips(tmp_path, commands):
    fresh, interrupted, finished = tmp_path / "fresh", tmp_path / "interrupted", tmp_path / "finished"
    interrupted.mkdir()
    (interrupted / "checkpoint.ckpt").write_bytes(b"")
    write_results(finished)
    for out in (fresh, interrupted, finished):
        grid.train_once(grid.TrainingRun("mnist", ("--seed", "3"), out))
    train_mnist = [sys.executable, "-m", "pyro_partial_models.cli", "train", "mnist"]
    assert commands == [
        [*train_mnist, "--seed", "3", "--out", str(fresh), "--no-progress"],
        [
            *train_mnist,
            "--seed",
            "3",
            "--out",
            str(interrupted),
            "--no-progress",
            "--resume",
        ],
    ]
    assert (fresh / "log.txt").is_file()


def test_train_once_flushes_new_runs_and_switches_resumed_ones_by_override(tmp_path, commands):
    fresh, interrupted = tmp_path / "fresh", tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "checkpoint.ckpt").write_bytes(b"")
    for out in (fresh, interrupted):
        grid.train_once(grid.TrainingRun("mnist", ("--seed", "3"), out, flush_denormal=True))
    fresh_command, resumed_command = commands
    assert fresh_command[5:9] == ["--seed", "3", "--flush-denormal", "--out"]
    assert "--override" not in fresh_command
    assert resumed_command[5:11] == [
        "--seed",
        "3",
        "--flush-denormal",
        "--override",
        "flush-denormal",
        "--out",
    ]
    assert resumed_command[-1] == "--resume"


def test_train_once_trains_on_a_finished_run_asked_for_more_epochs(tmp_path, commands):
    short, long = tmp_path / "short", tmp_path / "long"
    for out, epochs in ((short, 100), (long, 130)):
        write_results(out, epochs=epochs)
        (out / "checkpoint.ckpt").write_bytes(b"")
        grid.train_once(grid.TrainingRun("mnist", ("--epochs", "130"), out, epochs=130))
    assert commands == [
        [
            *(sys.executable, "-m", "pyro_partial_models.cli", "train", "mnist"),
            "--epochs",
            "130",
            "--out",
            str(short),
            "--no-progress",
            "--resume",
        ]
    ]


def write_mnist_run(out, test_errors, val_errors, seconds=100.0):
    """A finished ``pyro-partial train mnist`` run directory with these per-epoch errors."""
    out.mkdir(parents=True)
    rows = ["epoch,loss,seconds,val_error,test_error,labelled_train_error"]
    rows += [f"{i},1.0,1.0,{v},{t},0.0" for i, (t, v) in enumerate(zip(test_errors, val_errors, strict=True))]
    (out / "metrics.csv").write_text("\n".join(rows) + "\n")
    (out / "results.json").write_text(json.dumps({"epochs": len(test_errors), "train_seconds": seconds}))


def test_mnist_table_runs_are_named_by_their_settings_and_passed_them():
    run = mnist_table1.Run(100, "0.2", 1, 130, z_dim="50", lr="4.2e-4")
    assert run.directory(grid.ROOT, "table").name == "l100_r0.2_s1_z50_lr4.2e-4"
    assert run.settings() == "e130_r0.2_z50_lr4.2e-4"
    assert run.arguments(None) == [
        *("--labels", "100", "--epochs", "130", "--seed", "1"),
        *("--rho", "0.2", "--z-dim", "50", "--lr", "4.2e-4"),
    ]
    default = mnist_table1.Run(600, "natural", 0, 3)
    assert default.directory(grid.ROOT, "table").name == "l600_rnatural_s0"
    assert default.settings() == "e3_rnatural"
    assert default.arguments(None) == ["--labels", "600", "--epochs", "3", "--seed", "0"]
    adgm = mnist_table1.Run(100, "0.2", 2, 10, z_dim="50", lr="1e-3", model="adgm")
    assert adgm.directory(grid.ROOT, "table").name == "l100_r0.2_s2_z50_lr1e-3_adgm"
    assert adgm.settings() == "e10_r0.2_z50_lr1e-3_adgm"
    assert adgm.arguments(None)[-2:] == ["--model", "adgm"]
    conv = mnist_table1.Run(100, "0.2", 0, 10, z_dim="50", lr="1e-3", network="conv")
    assert conv.directory(grid.ROOT, "table").name == "l100_r0.2_s0_z50_lr1e-3_conv"
    assert conv.settings() == "e10_r0.2_z50_lr1e-3_conv"
    assert conv.arguments(None)[-2:] == ["--network", "conv"]
    warm = mnist_table1.Run(600, "0.2", 0, 6, z_dim="50", lr="1e-3", network="conv", warmup=500)
    assert warm.directory(grid.ROOT, "table").name == "l600_r0.2_s0_z50_lr1e-3_conv_w500"
    assert warm.settings() == "e6_r0.2_z50_lr1e-3_conv_w500"
    assert warm.arguments(None)[-4:] == ["--network", "conv", "--lr-warmup-steps", "500"]
    decayed = mnist_table1.Run(
        600, "0.2", 0, 6, z_dim="50", lr="1e-3", network="conv", warmup=500, decay="0.8"
    )
    assert decayed.directory(grid.ROOT, "table").name == "l600_r0.2_s0_z50_lr1e-3_conv_w500_d0.8"
    assert decayed.settings() == "e6_r0.2_z50_lr1e-3_conv_w500_d0.8"
    assert decayed.arguments(None)[-4:] == ["--lr-warmup-steps", "500", "--lr-decay", "0.8"]


def test_mnist_table_summarises_the_first_epochs_of_each_run(tmp_path, commands):
    runs_dir = tmp_path / "table"
    # seed 0: best validation at epoch 1; seed 1 trained longer: only its first 3 epochs count
    write_mnist_run(runs_dir / "l100_r0.2_s0_z50", [0.3, 0.1, 0.2], [0.3, 0.1, 0.2], seconds=30.0)
    write_mnist_run(runs_dir / "l100_r0.2_s1_z50", [0.5, 0.4, 0.3, 0.0], [0.5, 0.4, 0.3, 0.0], seconds=40.0)
    argv = ["table", "--summary-only", "--runs", str(tmp_path), "--rho", "0.2", "--z-dim", "50"]
    mnist_table1.main([*argv, "--labels", "100", "600", "--seeds", "0", "1", "--epochs", "3"])
    rows = (runs_dir / "table1_e3_r0.2_z50.md").read_text().splitlines()
    assert rows[0].endswith("3 epochs, ρ = 0.2, z = 50:")
    # final: 0.2 and 0.3; best validation: 0.1 and 0.3; time only from the run of exactly 3 epochs
    assert rows[4].startswith("| 100 | 25.00 ± 7.07 (n=2) | 20.00 ± 14.14 (n=2) | 30 | 9.71 | 11.97 |")
    assert rows[5].startswith("| 600 | — | — | — |")
    assert commands == []
    assert (runs_dir / "table1_e3_r0.2_z50_curves.png").stat().st_size > 0


def test_mnist_restarts_choose_by_validation_error_and_train_on_the_chosen_and_restart_zero(
    tmp_path, commands
):
    grid_dir = tmp_path / "restarts"
    settings = "_z50_lr1e-3"
    names = {  # (seed, restart) -> directory: restart r > 0 has seed + 1000 r on the seed's labelled subset
        (seed, r): f"l100_r0.2_s{seed + 1000 * r}{'' if r == 0 else f'_split{seed}'}{settings}"
        for seed in (0, 1)
        for r in range(3)
    }
    # validation error at epoch 2 (the choice): seed 0 picks restart 2, seed 1 keeps restart 0
    validation = {(0, 0): 0.30, (0, 1): 0.25, (0, 2): 0.20, (1, 0): 0.10, (1, 1): 0.40, (1, 2): 0.15}
    for key, name in names.items():
        write_mnist_run(grid_dir / name, [0.5, 0.4], [0.9, validation[key]])
    argv = ["restarts", "--runs", str(tmp_path), "--labels", "100", "--seeds", "0", "1", "--rho", "0.2"]
    argv += ["--z-dim", "50", "--lr", "1e-3", "--restarts", "3", "--select-epochs", "2", "--epochs", "4"]
    argv += ["--jobs", "1"]  # one run at a time: the commands come in the order they are issued
    mnist_table1.main(argv)
    # the six candidates are finished at 2 epochs; only the chosen and restart 0 are trained on to 4
    trained = [command[command.index("--out") + 1] for command in commands]
    assert trained == [str(grid_dir / names[key]) for key in ((0, 0), (0, 2), (1, 0))]
    assert commands[1][commands[1].index("--seed") + 1] == "2000"
    assert commands[1][commands[1].index("--split-seed") + 1] == "0"
    assert all(command[command.index("--epochs") + 1] == "4" for command in commands)

    finals = {(0, 0): 0.30, (0, 2): 0.10, (1, 0): 0.05}  # final test error after 4 epochs
    for key, error in finals.items():
        shutil.rmtree(grid_dir / names[key])
        write_mnist_run(grid_dir / names[key], [0.5, 0.4, 0.3, error], [0.9, validation[key], 0.1, 0.1])
    mnist_table1.main([*argv, "--summary-only"])
    rows = (grid_dir / "restarts_e4_r0.2_z50_lr1e-3_k3_sel2.md").read_text().splitlines()
    assert rows[4] == "| 0 | 30.00 / 25.00 / 20.00 | 2 | 10.00 | 30.00 | -20.00 |"
    assert rows[5] == "| 1 | 10.00 / 40.00 / 15.00 | 0 | 5.00 | 5.00 | +0.00 |"
    assert rows[6].startswith("| mean ± std | | | 7.50 ± 3.54 (n=2) | 17.50 ± 17.68 (n=2) | -10.00 ± 14.14")
    assert len(commands) == 3


def test_mnist_restarts_train_every_restart_with_the_network_warm_up_and_decay_asked_for(tmp_path, commands):
    argv = ["restarts", "--runs", str(tmp_path), "--labels", "100", "--seeds", "0", "--rho", "0.2"]
    argv += ["--network", "conv", "--lr-warmup-steps", "50", "--lr-decay", "0.9"]
    argv += ["--restarts", "2", "--select-epochs", "1", "--epochs", "2", "--jobs", "1"]
    mnist_table1.main(argv)
    # nothing finishes here, so only the two candidates are started, each a convolutional run in its directory
    assert [command[command.index("--out") + 1] for command in commands] == [
        str(tmp_path / "restarts" / name)
        for name in ("l100_r0.2_s0_conv_w50_d0.9", "l100_r0.2_s1000_split0_conv_w50_d0.9")
    ]
    assert all(command[command.index("--network") + 1] == "conv" for command in commands)
    assert all(command[command.index("--lr-warmup-steps") + 1] == "50" for command in commands)
    assert all(command[command.index("--lr-decay") + 1] == "0.9" for command in commands)


@pytest.mark.parametrize(
    "option, refusal",
    [
        (("--lr-decay", "1.5"), "--lr-decay must be a factor in (0, 1], got 1.5"),
        (("--lr-decay", "nan"), "--lr-decay must be a factor in (0, 1], got nan"),
        (("--lr-decay", "fast"), "argument --lr-decay: invalid float value: 'fast'"),
        (("--lr=-0.001",), "--lr must be a positive finite number, got -0.001"),
        # not one of argparse's negative numbers: passed on as one word, or the training parser would read
        # "-1e-3" as an option and say only "expected one argument"
        (("--lr=-1e-3",), "--lr must be a positive finite number, got -0.001"),
        (("--lr", "inf"), "--lr must be a positive finite number, got inf"),
        (("--z-dim", "0"), "--z-dim must be a positive dimension, got 0"),
        (("--rho", "1.2"), "--rho must lie in (0, 1), got 1.2"),
        (("--labels", "15"), "--labels must be a positive multiple of 10, got 15"),
    ],
)
def test_mnist_grids_refuse_a_bad_run_before_starting_any(tmp_path, commands, capsys, option, refusal):
    # every run of the grid is refused, and the refusal comes before any command is issued
    argv = ["table", "--runs", str(tmp_path), "--labels", "100", "--seeds", "0", "1", "--epochs", "1"]
    bad = [*argv[:3], *option] if option[0] == "--labels" else [*argv, *option]
    with pytest.raises(SystemExit) as exit_info:
        mnist_table1.main([*bad, "--jobs", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"pyro-partial train mnist: error: {refusal}" in error
    assert "pyro-partial train mnist refuses the run " + str(tmp_path / "table") in error
    assert "no run of the grid was started" in error
    assert "usage:" not in error  # the training command's usage names every option: the error is enough
    assert commands == []


def test_a_grid_starts_no_run_when_a_later_one_is_refused(tmp_path, commands, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    with pytest.raises(SystemExit) as exit_info:
        grid.train_all(
            [
                grid.TrainingRun("mnist", ("--seed", "3"), good),
                grid.TrainingRun("mnist", ("--z-dim", "0"), bad),
            ],
            parallel=1,
        )
    assert exit_info.value.code == 2
    assert f"pyro-partial train mnist refuses the run {bad} (above)" in capsys.readouterr().err
    assert commands == [] and not good.exists()


def test_a_negative_number_is_attached_to_its_option():
    words = ("--lr", "-1e-3", "--beta", "-inf", "--seed", "3", "--flag", "--alpha=-2e-1", "-1e-3", "-x")
    assert grid.attach_negative_numbers(words) == [
        *("--lr=-1e-3", "--beta=-inf", "--seed", "3", "--flag", "--alpha=-2e-1", "-1e-3", "-x")
    ]


def test_the_dsprites_grid_refuses_a_negative_beta_with_the_training_check(tmp_path, commands, capsys):
    # f"{-1e-05:g}" is "-1e-05", which argparse alone would take for an option ("expected one argument")
    argv = ["independence", "--runs", str(tmp_path), "--priors", "anisotropic", "--betas=-1e-5"]
    with pytest.raises(SystemExit) as exit_info:
        decomposition_grid.main([*argv, "--jobs", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "pyro-partial train dsprites: error: --beta and --alpha must be non-negative, got -1e-05" in error
    assert commands == []


def test_an_accepted_run_keeps_what_its_check_printed(tmp_path, monkeypatch, capsys):
    def warn_and_accept(experiment, parser, argv):
        print("UserWarning: a warning of the training command", file=sys.stderr)

    monkeypatch.setattr(grid.runner, "check_arguments", warn_and_accept)
    grid.TrainingRun("mnist", ("--seed", "3"), tmp_path / "run").check()
    assert "UserWarning: a warning of the training command" in capsys.readouterr().err


def test_grids_check_only_the_runs_still_to_train(tmp_path, commands):
    finished, fresh = tmp_path / "finished", tmp_path / "fresh"
    write_results(finished)
    # a finished run is not trained, so its (now refused) command line is not checked
    grid.train_all(
        [
            grid.TrainingRun("mnist", ("--lr", "-1"), finished),
            grid.TrainingRun("mnist", ("--seed", "3"), fresh),
        ],
        parallel=1,
    )
    assert [command[command.index("--out") + 1] for command in commands] == [str(fresh)]


def test_mnist_grids_read_a_decay_of_one_as_none(tmp_path, commands):
    argv = ["table", "--runs", str(tmp_path), "--labels", "100", "--seeds", "0", "--epochs", "1"]
    mnist_table1.main([*argv, "--lr-decay", "1.0", "--jobs", "1"])
    (command,) = commands
    assert "--lr-decay" not in command
    assert command[command.index("--out") + 1] == str(tmp_path / "table" / "l100_r0.05_s0")


def test_mnist_restarts_refuse_a_choice_after_the_last_epoch(tmp_path):
    argv = ["restarts", "--runs", str(tmp_path), "--select-epochs", "20", "--epochs", "20", "--summary-only"]
    with pytest.raises(SystemExit, match="--select-epochs 20 must be fewer than --epochs 20"):
        mnist_table1.main(argv)


@pytest.mark.parametrize("option", ["--restarts", "--select-epochs"])
def test_mnist_restarts_refuse_no_restarts_or_no_epochs_before_the_choice(tmp_path, option):
    argv = ["restarts", "--runs", str(tmp_path), option, "0", "--epochs", "20", "--summary-only"]
    with pytest.raises(SystemExit, match="--restarts and --select-epochs must be at least 1"):
        mnist_table1.main(argv)


def test_run_all_calls_every_job_and_raises_the_first_failure():
    called = []

    def fail():
        called.append("fail")
        raise RuntimeError("run failed")

    with pytest.raises(RuntimeError, match="run failed"):
        grid.run_all([lambda: called.append("a"), fail, lambda: called.append("b")], parallel=2)
    assert sorted(called) == ["a", "b", "fail"]


def test_sparsity_summary_of_finished_runs(tmp_path, commands):
    runs_dir = tmp_path / "sparsity"
    write_results(runs_dir / "g0.8_a100_s0", hoyer_sparsity=0.3, test_log_likelihood_bound=-700.0)
    write_results(runs_dir / "g0.8_a100_s1", hoyer_sparsity=0.5, test_log_likelihood_bound=-710.0)
    argv = ["sparsity", "--summary-only", "--runs", str(tmp_path), "--gammas", "0.8", "--alphas", "0", "100"]
    decomposition_grid.main([*argv, "--seeds", "0", "1"])
    rows = (runs_dir / "sparsity.md").read_text().splitlines()
    assert "| 0.8 | 0 | — | — | — |" in rows
    assert "| 0.8 | 100 | 0.400 ± 0.141 (n=2) | -705.0 ± 7.1 (n=2) | 10 |" in rows
    assert commands == []


def test_independence_grid_trains_missing_runs_and_plots(tmp_path, commands):
    runs_dir = tmp_path / "independence"
    write_results(
        runs_dir / "anisotropic_b4_s0", factor_vae_eval_accuracy=0.75, mig=0.1, factor_vae_num_active_dims=5
    )
    argv = [
        "independence",
        "--runs",
        str(tmp_path),
        "--priors",
        "anisotropic",
        "--betas",
        "1",
        "4",
        "--jobs",
        "1",
    ]
    decomposition_grid.main(argv)
    (command,) = commands
    assert command[command.index("--out") + 1] == str(runs_dir / "anisotropic_b1_s0")
    assert command[1:10] == [
        *("-m", "pyro_partial_models.cli", "train", "dsprites"),
        *("--prior", "anisotropic", "--beta", "1", "--seed"),
    ]
    rows = (runs_dir / "independence.md").read_text().splitlines()
    assert "| anisotropic | 4 | 0.750 (n=1) | 0.100 (n=1) | 5.0 (n=1) | 10 |" in rows
    assert (runs_dir / "independence.png").stat().st_size > 0


def test_multi_mnist_summary_scales_accuracies_to_percent(tmp_path):
    scores = dict(
        test_count_accuracy=0.9,
        test_digit_accuracy=0.2,
        test_matched_digit_accuracy=0.25,
        test_canvas_accuracy=0.4,
        test_matched_position_error_px=3.5,
    )
    write_results(tmp_path / "l20_s0", **scores)
    table = multi_mnist_grid.main(
        ["--summary-only", "--runs", str(tmp_path), "--labelled", "20", "--seeds", "0"]
    )
    assert (
        "| l20 | 90.0 (n=1) | 20.0 (n=1) | 25.0 (n=1) | 40.0 (n=1) | 3.5 (n=1) | 10 |" in table.splitlines()
    )


def test_multi_mnist_grid_trains_the_missing_runs_new_nested_and_finetuned(tmp_path, commands):
    write_results(tmp_path / "l20_s0", **{key: 0.5 for _, key, _ in multi_mnist_grid.SCORES})  # finished
    source = tmp_path / "mnist_run"
    multi_mnist_grid.main(
        ["--runs", str(tmp_path), "--labelled", "20", "100", "--seeds", "0", "--nested-mnist", str(source)]
        + ["--nested-labelled", "40", "--jobs", "1"]
    )
    outs = [command[command.index("--out") + 1] for command in commands]
    assert outs == [str(tmp_path / name) for name in ("l100_s0", "nested_l40_s0", "finetuned_l40_s0")]
    train = [sys.executable, "-m", "pyro_partial_models.cli", "train", "multi_mnist"]
    nested = ["--labelled-canvases", "40", "--nested-mnist", str(source)]
    assert [command[: command.index("--out")] for command in commands] == [
        [*train, "--labelled-canvases", "100", "--seed", "0"],
        [*train, *nested, "--seed", "0"],
        [*train, *nested, "--finetune-nested", "--seed", "0"],
    ]
