"""The one experiment contract: what an experiment supplies, and what the runner does with it.

An experiment is a subclass of :class:`Experiment`. It supplies its own arguments, its data, a module whose
submodules ``model`` and ``guide`` are the Pyro model and guide, the objective, the mini-batches and what to
measure; :func:`pyro_partial.training.runner.train` does everything else, the same way for every
experiment: parsing (the shared options of :mod:`pyro_partial.training.arguments` first), checks before any
data is loaded, seeding, the run directory (``config.json``, ``metrics.csv``, ``checkpoint.ckpt``,
``results.json``), exact resume, and training on Lightning. :func:`~pyro_partial.training.runner.plot` loads
a trained run back through :meth:`Experiment.build_module` and calls :meth:`Experiment.plot`.
"""

from __future__ import annotations

import abc
import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning
import pyro.infer
import torch

from pyro_partial.training.batches import DeviceBatches
from pyro_partial.training.module import Evaluate


@dataclass
class Setup:
    """What an experiment builds for one training run.

    :ivar module: holds every trained parameter; its submodules ``model`` and ``guide`` (``PyroModule``
        objects) are what ``elbo`` is computed on, and its state dict is what a run directory saves.
    :ivar elbo: the objective, e.g. :class:`~pyro_partial.infer.SemiSupervisedELBO`.
    :ivar batches: the training data and its mini-batch sampler.
    :ivar model_config: the keyword arguments that rebuild ``module`` (:meth:`Experiment.build_module`).
    :ivar evaluate: ``epoch -> {metric: value}`` after each epoch (a ``metrics.csv`` column per metric).
    :ivar summary: a line printed before training (the split, the weights, ...).
    :ivar extra: whatever :meth:`Experiment.results` needs from the build (the split seed, ...).
    :ivar callbacks: Lightning callbacks the Trainer adds to the engine's own, e.g. a
        :class:`~pyro_partial.training.callbacks.LinearSchedule` of a weight of ``elbo``.
    """

    module: torch.nn.Module
    elbo: pyro.infer.ELBO
    batches: DeviceBatches
    model_config: dict[str, Any]
    evaluate: Evaluate | None = None
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    callbacks: list[lightning.Callback] = field(default_factory=list)


class Experiment(abc.ABC):
    """An experiment of the ``pyro-partial`` command (see the module docstring).

    Class attributes: ``name`` (the command's experiment name and ``runs/<name>/`` directory),
    ``description`` (the usage text), ``defaults`` (defaults of the shared options, e.g.
    ``{"epochs": 40, "batch_size": 64, "lr": 1e-3}``) and ``plot_description`` (empty when the experiment
    draws no figures).
    """

    name: str
    description: str = ""
    defaults: dict[str, Any] = {}
    plot_description: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 (optional hook)
        """Add the experiment's own options."""

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        """Problems with the parsed options, each a message naming the option, the value and the valid
        range; called before any data is loaded (a problem ends the command with a usage error)."""
        return []

    def run_name(self, args: argparse.Namespace) -> str:
        """The run directory's name under ``runs/<name>/`` when ``--out`` is not given."""
        return f"seed{args.seed}"

    @abc.abstractmethod
    def load_data(self, args: argparse.Namespace) -> Any:
        """The data the run needs (loaded once; passed to :meth:`build` and :meth:`results`)."""

    @abc.abstractmethod
    def build(self, args: argparse.Namespace, data: Any) -> Setup:
        """The module, objective and batches of a run (called after seeding)."""

    @abc.abstractmethod
    def build_module(self, model_config: dict[str, Any]) -> torch.nn.Module:
        """An untrained module from :attr:`Setup.model_config` (to load a trained run back)."""

    def results(
        self, args: argparse.Namespace, data: Any, setup: Setup, history: list[dict[str, float]]
    ) -> dict[str, Any]:
        """The final scores recorded in ``results.json``; ``history`` holds ``metrics.csv``'s rows."""
        return dict(history[-1]) if history else {}

    def add_plot_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 (optional hook)
        """Add the options of the experiment's figures."""

    def plot(
        self, args: argparse.Namespace, module: torch.nn.Module, config: dict[str, Any]
    ) -> dict[str, Path]:
        """Write the figures of a trained ``module`` into ``args.out``; return ``{figure: path}``."""
        raise NotImplementedError(f"experiment {self.name!r} draws no figures")
