"""metrics.csv through Lightning's logger interface: one row per epoch, kept across resumptions."""

import csv

import pytest

from pyro_partial.training.loggers import RunCSVLogger, optional_loggers


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_of_one_epoch_make_one_row_and_a_resume_drops_the_retrained_epochs(tmp_path):
    logger = RunCSVLogger(tmp_path)
    for epoch in range(3):
        logger.log_metrics({"epoch": epoch, "val_error": 0.5 - 0.1 * epoch}, step=4 * epoch + 3)
        logger.log_metrics({"epoch": epoch, "loss": 10.0 - epoch}, step=4 * epoch + 3)
    logger.log_metrics({"loss_step": 1.0}, step=1)  # step-level metrics are not rows of this file
    assert [(r["epoch"], r["loss"]) for r in read(tmp_path / "metrics.csv")] == [
        ("0", "10.0"), ("1", "9.0"), ("2", "8.0")
    ]  # fmt: skip

    resumed = RunCSVLogger(tmp_path)
    resumed.resume_at(1)
    resumed.log_metrics({"epoch": 1, "loss": 7.5}, step=7)
    assert [(r["epoch"], r["loss"], r["val_error"]) for r in read(tmp_path / "metrics.csv")] == [
        ("0", "10.0", "0.5"), ("1", "7.5", "")
    ]  # fmt: skip


def test_optional_loggers_name_the_extra_to_install(tmp_path):
    with pytest.raises(ValueError, match="expected names among"):
        optional_loggers(tmp_path, ["neptune"])
    missing = [name for name in ("tensorboard", "mlflow", "wandb") if not _installed(name)]
    for name in missing:
        with pytest.raises(ValueError, match=rf"pip install 'pyro-partial\[{name}\]'"):
            optional_loggers(tmp_path, [name])


def _installed(package):
    import importlib.util

    return importlib.util.find_spec(package) is not None


def test_lightning_start_up_log_keeps_its_device_lines_and_drops_only_the_cloud_logger_tip(caplog):
    import lightning

    with caplog.at_level("INFO", logger="lightning.pytorch.utilities.rank_zero"):
        lightning.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("GPU available") for message in messages), messages
    assert not any("Tip:" in message for message in messages), messages
