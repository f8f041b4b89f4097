"""Lightning loggers of a run: ``metrics.csv`` always, TensorBoard, MLflow or Weights & Biases on request.

Lightning's own ``CSVLogger`` deletes the ``metrics.csv`` of an existing directory, which loses the history of
a resumed run; :class:`RunCSVLogger` keeps one row per epoch across resumptions instead, each write atomic.

Importing this module also drops one line of Lightning's start-up log, its advertisement of a cloud logger
(:class:`DropLightningTips`); every other line (devices, precision, warnings) is kept.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from pyro_partial.training.records import MetricsCSV

OPTIONAL_LOGGERS = {
    "tensorboard": ("TensorBoardLogger", "tensorboard"),
    "mlflow": ("MLFlowLogger", "mlflow"),
    "wandb": ("WandbLogger", "wandb"),
}
"""``--logger`` name: (Lightning logger class, the package it needs, installed by ``pip install
pyro-partial[<name>]``)."""


class DropLightningTips(logging.Filter):
    """A logging filter dropping the records of Lightning's rank-zero log that start with its "Tip" marker."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for a record whose message starts with the tip marker."""
        return not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(DropLightningTips())


class RunCSVLogger(Logger):
    """Writes the metrics logged at the end of each epoch as one row of ``<run_dir>/metrics.csv``.

    The row holds ``epoch`` (0-based) and every metric logged for that epoch; metrics logged in several calls
    for the same epoch are merged into its row. When a run resumes at epoch ``k``, rows of epochs ``>= k`` are
    dropped first (:meth:`resume_at`), so the file holds exactly one row per trained epoch.
    """

    def __init__(self, run_dir: str | os.PathLike):
        super().__init__()
        self.run_dir = Path(run_dir)
        self._csv: MetricsCSV | None = None

    @property
    def name(self) -> str:
        """``"metrics"``."""
        return "metrics"

    @property
    def version(self) -> str:
        """``""``: a run directory holds one run, without version subfolders."""
        return ""

    @property
    def save_dir(self) -> str:
        """The run directory."""
        return str(self.run_dir)

    @property
    def log_dir(self) -> str:
        """The run directory."""
        return str(self.run_dir)

    @property
    def metrics(self) -> MetricsCSV:
        """The run's metrics file, read once."""
        if self._csv is None:
            self._csv = MetricsCSV(self.run_dir / "metrics.csv")
        return self._csv

    @rank_zero_only
    def resume_at(self, epoch: int) -> None:
        """Forget the rows of epochs ``>= epoch`` (trained again after a resume)."""
        self.metrics.truncate(epoch)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyperparameters go to the run's ``config.json``, not to the metrics file."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Merge ``metrics`` into the row of their ``epoch`` (a new last row, or the last one if it is of the
        same epoch); metrics logged without an ``epoch`` are ignored."""
        values = {key: float(value) for key, value in metrics.items()}
        if "epoch" not in values:
            return  # only epoch-level metrics are rows of this file
        epoch = int(values.pop("epoch"))
        rows = self.metrics.rows
        if rows and int(rows[-1]["epoch"]) == epoch:
            row = {**rows.pop(), **values}
        else:
            row = {"epoch": epoch, **values}
        self.metrics.append(row)


def missing_logger_packages(names: Sequence[str]) -> list[str]:
    """A message for each logger of ``names`` whose package is not installed, naming the extra to install."""
    return [
        f"--logger {name} needs the package {OPTIONAL_LOGGERS[name][1]!r}: pip install 'pyro-partial[{name}]'"
        for name in names
        if importlib.util.find_spec(OPTIONAL_LOGGERS[name][1]) is None
    ]


def optional_loggers(run_dir: str | os.PathLike, names: Sequence[str] = ()) -> list[Logger]:
    """Lightning's loggers ``names`` (keys of :data:`OPTIONAL_LOGGERS`), each writing under ``run_dir``.

    :raises ValueError: an unknown name, or a logger whose package is not installed.
    """
    from lightning.pytorch import loggers

    unknown = sorted(set(names) - set(OPTIONAL_LOGGERS))
    if unknown:
        raise ValueError(f"--logger {unknown}: expected names among {sorted(OPTIONAL_LOGGERS)}")
    missing = missing_logger_packages(names)
    if missing:
        raise ValueError("; ".join(missing))
    run_dir = Path(run_dir)
    made: list[Logger] = []
    for name in names:
        logger_class = getattr(loggers, OPTIONAL_LOGGERS[name][0])
        if name == "tensorboard":
            made.append(logger_class(save_dir=str(run_dir), name="tensorboard", version=""))
        elif name == "mlflow":
            made.append(logger_class(tracking_uri=(run_dir / "mlruns").resolve().as_uri()))
        else:
            made.append(logger_class(save_dir=str(run_dir)))
    return made
