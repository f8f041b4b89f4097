"""What the benchmarks that score trained runs from their checkpoints (``classifier_draws``,
``model_posterior``, ``flush_denormal_speed``) share: ``--runs``, ``--data`` and ``--out``, the check that
every run has a checkpoint, loading a run of the experiments a benchmark scores, and the records written as
Markdown and as JSON beside it (with the command, versions and seed)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pyro_partial.training import Experiment, runner
from pyro_partial.training.records import command_line, write_results
from pyro_partial_models.cli import experiment

IMAGE_EXPERIMENTS = ("mnist", "svhn")


def add_scoring_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """``--runs`` (required), ``--data`` and ``--out`` (default ``runs/<out>.md``)."""
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="trained run directories")
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $PYRO_PARTIAL_DATA)")
    parser.add_argument("--out", type=Path, default=Path(f"runs/{out}.md"), help="Markdown table")


def check_checkpoints(parser: argparse.ArgumentParser, runs: Sequence[Path]) -> None:
    """A usage error naming every run without a checkpoint."""
    missing = [str(run) for run in runs if not (run / runner.CHECKPOINT).is_file()]
    if missing:
        parser.error(f"runs without a checkpoint: {', '.join(missing)}")


def load_run(run: Path, experiments: Sequence[str]) -> tuple[Experiment, torch.nn.Module, dict[str, Any]]:
    """The experiment of ``run``, its trained module (:func:`~pyro_partial.training.load_trained`) and its
    ``config.json``.

    :raises ValueError: ``run`` is a run of none of ``experiments``.
    """
    name = runner.read_config(run).get("experiment")
    if name not in experiments:
        raise ValueError(f"{run}: a {name!r} run; expected one of {tuple(experiments)}")
    run_experiment = experiment(name)
    module, config = runner.load_trained(run_experiment, run)
    return run_experiment, module, config


def write_records(out: Path, records: list[dict], text: str, seed: int) -> None:
    """Print the Markdown ``text`` and write it to ``out`` under the command; ``records`` go to ``out`` with
    the suffix ``.json``."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out.with_suffix(".json"), {"records": records}, seed)
    out.write_text(f"`{command_line()}`\n\n{text}\n")
