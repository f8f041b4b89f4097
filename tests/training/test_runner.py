"""The runner: run files, exact resume, settings checked on resume, usage errors before any data is loaded,
non-finite losses, and loading a trained run back."""

import csv
import json

import pytest
import torch

from pyro_partial.training import NonFiniteLossError, load_checkpoint_file, load_trained, runner
from tests.training.toy import Toy

QUIET = ["--no-progress", "--accelerator", "cpu"]


def train(out, *argv):
    return runner.train(Toy(), [*QUIET, "--out", str(out), *argv])


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def weights(run_dir):
    return load_checkpoint_file(run_dir / "checkpoint.ckpt")["state_dict"]


def last_lr(run_dir):
    """The learning rate the optimiser of a run's checkpoint last stepped with."""
    [optimiser] = load_checkpoint_file(run_dir / "checkpoint.ckpt")["optimizer_states"]
    return optimiser["param_groups"][0]["lr"]


def assert_resumed_is_straight_and_not_plain(tmp_path, *options):
    """``tmp_path / "resumed"``, trained to 3 epochs with ``options``, equals a run trained straight to 3
    epochs with them, bit for bit, and differs from one trained without them."""
    train(tmp_path / "straight", "--epochs", "3", *options)
    train(tmp_path / "none", "--epochs", "3")
    straight, resumed, none = (weights(tmp_path / name) for name in ("straight", "resumed", "none"))
    assert all(torch.equal(value, resumed[name]) for name, value in straight.items())
    assert not all(torch.equal(value, none[name]) for name, value in straight.items())


def test_a_run_writes_its_files_and_records_how_to_reproduce_it(tmp_path):
    results = train(tmp_path / "run", "--epochs", "2", "--seed", "3")
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.ckpt", "config.json", "metrics.csv", "results.json"
    ]  # fmt: skip
    assert [row["epoch"] for row in rows(run_dir)] == ["0", "1"]
    assert {"loss", "seconds", "decoder_norm"} <= set(rows(run_dir)[0])
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk == results
    assert (
        on_disk["seed"] == 3
        and on_disk["epochs"] == 2
        and on_disk["environment"]["torch"] == torch.__version__
    )
    assert (
        on_disk["command"]
        == f"pyro-partial train toy --no-progress --accelerator cpu --out {run_dir} --epochs 2 --seed 3"
    )
    assert on_disk["decoder_norm"] == pytest.approx(float(rows(run_dir)[-1]["decoder_norm"]))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == {"x_dim": 3, "z_dim": 2} and config["arguments"]["lr"] == 0.05
    assert "out" not in config["arguments"] and "accelerator" not in config["arguments"]


def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    train(tmp_path / "straight", "--epochs", "4")
    train(tmp_path / "resumed", "--epochs", "2")
    torch.manual_seed(123)  # resuming restores the generators itself
    train(tmp_path / "resumed", "--epochs", "4", "--resume")

    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert any("running_mean" in name for name in straight)  # the BatchNorm's buffers are checkpointed
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name

    def scores(run_dir):  # one row per epoch; everything but the timing is reproduced
        return [{key: value for key, value in row.items() if key != "seconds"} for row in rows(run_dir)]

    assert scores(tmp_path / "resumed") == scores(tmp_path / "straight")


def test_resume_refuses_changed_settings_and_lists_them(tmp_path, capsys):
    train(tmp_path / "run", "--epochs", "1")
    with pytest.raises(SystemExit) as exit:
        train(tmp_path / "run", "--epochs", "2", "--resume", "--lr", "0.01", "--z-dim", "3")
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert "lr: saved 0.05, asked 0.01" in error and "z_dim: saved 2, asked 3" in error
    assert "--override lr z-dim" in error
    train(tmp_path / "run", "--epochs", "2", "--resume")
    with pytest.raises(SystemExit):  # fewer epochs than already trained
        train(tmp_path / "run", "--epochs", "1", "--resume")
    assert "has already trained 2 epochs; --epochs 1 is fewer" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "results.json").read_text())["epochs"] == 2


def test_flush_denormal_runs_with_flushing_on_is_recorded_and_must_match_on_resume(
    tmp_path, capsys, monkeypatch
):
    calls = []
    set_flush_denormal = torch.set_flush_denormal
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls.append(on) or set_flush_denormal(on))
    train(tmp_path / "run", "--epochs", "1", "--flush-denormal")
    assert calls == [True, False]  # on for the trainer's run, off at its teardown
    subnormal = torch.tensor(1e-310, dtype=torch.float64)
    assert (subnormal * 1.0).item() == 1e-310  # off again after training
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["arguments"]["flush_denormal"] is True
    with pytest.raises(SystemExit):
        train(tmp_path / "run", "--epochs", "2", "--resume")
    assert "flush_denormal: saved True, asked False" in capsys.readouterr().err
    train(tmp_path / "run", "--epochs", "2", "--resume", "--flush-denormal")
    assert calls == [True, False, True, False]


def test_an_option_a_saved_run_did_not_record_resumes_at_its_default(tmp_path, capsys):
    train(tmp_path / "run", "--epochs", "1")
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    del config["arguments"]["flush_denormal"]  # a run trained before the option existed
    path.write_text(json.dumps(config))
    assert train(tmp_path / "run", "--epochs", "2", "--resume")["epochs"] == 2
    path.write_text(json.dumps(config))
    with pytest.raises(SystemExit):  # asking for the option's other value is a change
        train(tmp_path / "run", "--epochs", "3", "--resume", "--flush-denormal")
    assert "flush_denormal: saved False, asked True" in capsys.readouterr().err
    results = train(
        tmp_path / "run", "--epochs", "3", "--resume", "--flush-denormal", "--override", "flush-denormal"
    )
    assert results["overrides"] == [{"option": "flush_denormal", "saved": False, "new": True, "epoch": 2}]


def test_an_override_takes_effect_and_is_recorded(tmp_path):
    train(tmp_path / "run", "--epochs", "1")
    results = train(tmp_path / "run", "--epochs", "2", "--resume", "--lr", "0.01", "--override", "lr")
    assert results["overrides"] == [{"option": "lr", "saved": 0.05, "new": 0.01, "epoch": 1}]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["arguments"]["lr"] == 0.01 and config["overrides"] == results["overrides"]
    assert last_lr(tmp_path / "run") == 0.01  # applied to the optimiser


def test_a_warm_up_grows_the_learning_rate_by_step_and_resumes_where_it_stopped(tmp_path):
    # four batches an epoch: the 4th step (t = 3) of a 6-step warm-up runs at 0.05 * 4 / 6
    train(tmp_path / "resumed", "--epochs", "1", "--lr-warmup-steps", "6")
    assert last_lr(tmp_path / "resumed") == pytest.approx(0.05 * 4 / 6, rel=1e-12)
    train(tmp_path / "resumed", "--epochs", "3", "--resume", "--lr-warmup-steps", "6")
    assert last_lr(tmp_path / "resumed") == 0.05
    assert_resumed_is_straight_and_not_plain(tmp_path, "--lr-warmup-steps", "6")


def test_a_decay_lowers_the_learning_rate_each_epoch_and_a_run_resumed_with_more_epochs_continues_it(
    tmp_path,
):
    train(tmp_path / "resumed", "--epochs", "1", "--lr-decay", "0.5")
    assert last_lr(tmp_path / "resumed") == 0.05  # the first epoch runs at lr
    train(tmp_path / "resumed", "--epochs", "3", "--resume", "--lr-decay", "0.5")
    assert last_lr(tmp_path / "resumed") == pytest.approx(0.05 * 0.25, rel=1e-12)
    assert_resumed_is_straight_and_not_plain(tmp_path, "--lr-decay", "0.5")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be a positive number of epochs, got 0"),
        (["--lr", "nan"], "--lr must be a positive finite number, got nan"),
        (["--batch-size", "-1"], "--batch-size must be a positive number of rows, got -1"),
        (["--lr-warmup-steps", "-1"], "--lr-warmup-steps must be a number of steps, 0 or more, got -1"),
        (["--lr-decay", "0"], "--lr-decay must be a factor in (0, 1], got 0.0"),
        (["--z-dim", "0"], "--z-dim must be at least 1, got 0"),
        (["--override", "lr"], "--override applies to a resumed run"),
        (["--resume"], "config.json not found"),
    ],
)
def test_bad_arguments_are_usage_errors_before_any_data_is_loaded(tmp_path, capsys, argv, message):
    experiment = Toy()
    with pytest.raises(SystemExit) as exit:
        runner.train(experiment, [*QUIET, "--out", str(tmp_path / "run"), *argv])
    assert exit.value.code == 2 and message in capsys.readouterr().err
    assert not hasattr(experiment, "loaded") and not (tmp_path / "run" / "config.json").exists()


def test_check_arguments_refuses_the_same_options_as_train_and_reads_nothing_from_disk(tmp_path, capsys):
    experiment = Toy()
    parser = runner.build_parser(experiment)
    with pytest.raises(SystemExit) as exit:
        runner.check_arguments(experiment, parser, [*QUIET, "--z-dim", "0", "--lr-decay", "2"])
    error = capsys.readouterr().err
    assert exit.value.code == 2
    assert "--lr-decay must be a factor in (0, 1], got 2.0; --z-dim must be at least 1, got 0" in error
    # --resume of a directory with no run in it: train refuses it, the argument check alone does not look
    argv = [*QUIET, "--out", str(tmp_path / "none"), "--resume", "--lr", "0.5"]
    assert runner.check_arguments(experiment, parser, argv).lr == 0.5
    assert not (tmp_path / "none").exists()


def test_a_nan_loss_stops_the_run_naming_the_epoch_and_the_last_good_checkpoint(tmp_path):
    train(tmp_path / "run", "--epochs", "1")
    good = weights(tmp_path / "run")
    with (
        pytest.warns(UserWarning, match="Encountered NaN"),
        pytest.raises(
            NonFiniteLossError,
            match=r"nan at epoch 1, step 0 .* last good checkpoint: .*checkpoint.ckpt \(epoch 1\)",
        ),
    ):
        train(
            tmp_path / "run", "--epochs", "2", "--resume", "--poison-step", "0", "--override", "poison-step"
        )
    for name, value in weights(tmp_path / "run").items():  # never overwritten by a NaN state
        assert torch.equal(value, good[name]) and torch.isfinite(value.float()).all()


def test_a_trained_run_loads_back_in_eval_mode(tmp_path):
    train(tmp_path / "run", "--epochs", "1")
    vae, config = load_trained(Toy(), tmp_path / "run")
    assert not vae.training and config["experiment"] == "toy"
    saved = weights(tmp_path / "run")
    assert torch.equal(vae.model.decoder.weight, saved["loss_fn.model.decoder.weight"])
    assert torch.equal(vae.guide.norm.running_mean, saved["loss_fn.guide.norm.running_mean"])


def test_a_tensorboard_logger_writes_beside_metrics_csv(tmp_path):
    train(tmp_path / "run", "--epochs", "1", "--logger", "tensorboard")
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert [row["epoch"] for row in rows(tmp_path / "run")] == ["0"]


class PlottedToy(Toy):
    plot_description = "no figure, the arguments it was given"

    def plot(self, args, module, config):
        self.plotted = args
        return {}


def test_plot_arguments_default_to_the_run_directory_and_check_the_image_count(tmp_path, capsys):
    train(tmp_path / "run", "--epochs", "1")
    experiment = PlottedToy()
    runner.plot(experiment, ["--run", str(tmp_path / "run"), "--num-images", "5"])
    args = experiment.plotted
    assert args.out == tmp_path / "run" / "figures" and args.num_images == 5 and args.seed == 0
    runner.plot(experiment, ["--run", str(tmp_path / "run"), "--out", str(tmp_path / "elsewhere")])
    assert experiment.plotted.out == tmp_path / "elsewhere"
    with pytest.raises(SystemExit):
        runner.plot(experiment, ["--run", str(tmp_path / "run"), "--num-images", "0"])
    assert "--num-images must be positive, got 0" in capsys.readouterr().err


def test_a_float64_run_trains_in_float64(tmp_path):
    train(tmp_path / "run", "--epochs", "1", "--precision", "64-true")
    weights_on_disk = weights(tmp_path / "run")
    assert weights_on_disk["loss_fn.model.decoder.weight"].dtype == torch.float64
