"""The runner: trains any :class:`~pyro_partial.training.experiment.Experiment` and plots its runs.

:func:`train` is the same for every experiment:

1. parse the shared options and the experiment's own, and check them all before any data is loaded (a bad
   value ends the command with a usage error, exit status 2);
2. on ``--resume``, compare every recorded option with the saved run's: a change is refused, listing saved
   and new values, unless ``--override`` names the option, in which case it takes effect from the resumed
   epoch and ``config.json`` and ``results.json`` record both values and that epoch;
3. seed Python, NumPy and torch from ``--seed``; load the data; build the experiment's setup; write
   ``config.json``; train on Lightning (``metrics.csv`` one row per epoch, ``checkpoint.ckpt`` after each
   epoch, atomic); write ``results.json`` (the experiment's scores, the command, versions, seed and timing).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import pyro
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from pyro_partial.data.files import remove_stale_temporaries
from pyro_partial.training.arguments import (
    RUN_OPTIONS,
    add_shared_arguments,
    check_shared_arguments,
    trainer_devices,
)
from pyro_partial.training.batches import DeviceBatches
from pyro_partial.training.callbacks import EpochCheckpoint, ExactResume, FlushDenormals
from pyro_partial.training.checkpoint import AtomicCheckpointIO, load_checkpoint_file
from pyro_partial.training.experiment import Experiment
from pyro_partial.training.loggers import RunCSVLogger, optional_loggers
from pyro_partial.training.module import NonFiniteLossError, SVIModule
from pyro_partial.training.records import write_json, write_results

CONFIG, CHECKPOINT, METRICS, RESULTS = "config.json", "checkpoint.ckpt", "metrics.csv", "results.json"
MODULE_PREFIX = "loss_fn."
"""Where :class:`~pyro_partial.training.module.SVIModule` keeps the trained module's parameters: the ELBO
module ``loss_fn`` holds ``model`` and ``guide``, the submodules of the experiment's module of those names."""


class SettingsChanged(ValueError):
    """A resumed run was asked for settings other than the saved ones, without ``--override``."""


def build_parser(experiment: Experiment, prog: str | None = None) -> argparse.ArgumentParser:
    """The experiment's command line: the shared options, then the experiment's own."""
    parser = argparse.ArgumentParser(
        prog=prog or f"pyro-partial train {experiment.name}",
        description=experiment.description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_shared_arguments(parser, experiment.defaults)
    experiment.add_arguments(parser.add_argument_group(f"{experiment.name}"))
    return parser


def check_arguments(
    experiment: Experiment, parser: argparse.ArgumentParser, argv: Sequence[str]
) -> argparse.Namespace:
    """``argv`` parsed by ``parser`` (:func:`build_parser`'s) and checked by
    :func:`~pyro_partial.training.arguments.check_shared_arguments` and ``experiment.check_arguments``; a
    problem exits with a usage error (status 2). Nothing is read from the run directory: a grid checks each
    run's command line with this before it starts any."""
    args = parser.parse_args(argv)
    problems = check_shared_arguments(args) + experiment.check_arguments(args)
    if problems:
        parser.error("; ".join(problems))
    return args


def parse(experiment: Experiment, argv: Sequence[str] | None, prog: str | None = None) -> argparse.Namespace:
    """Parse and check ``argv`` (default ``sys.argv[1:]``) with :func:`check_arguments`, then check a resumed
    run against its saved settings; ``args.command`` is the command that reproduces the run and ``args.out``
    the run directory. A problem exits with a usage error (status 2)."""
    parser = build_parser(experiment, prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = check_arguments(experiment, parser, argv)
    args.command = " ".join([parser.prog, shlex.join(argv)]).strip()
    if args.out is None:
        args.out = Path("runs") / experiment.name / experiment.run_name(args)
    try:
        defaults = argparse.Namespace(**{name: parser.get_default(name) for name in vars(args)})
        args.resumed = resumed_run(experiment, args, recorded_arguments(defaults))
    except (FileNotFoundError, ValueError) as error:  # SettingsChanged and CheckpointError among them
        parser.error(str(error))
    return args


@dataclass(frozen=True)
class Resumed:
    """Where a run starts: ``start`` epochs already trained, and the option changes applied so far."""

    start: int = 0
    overrides: tuple[dict[str, Any], ...] = ()


def resumed_run(
    experiment: Experiment, args: argparse.Namespace, defaults: dict[str, Any] | None = None
) -> Resumed:
    """A new run starts at epoch 0; a resumed one at its checkpoint's epoch, with its settings checked by
    :func:`compare_settings` (raising :class:`SettingsChanged`).

    :param defaults: the command line's default of each recorded option: an option the saved run did not
        record (one added since it was trained) is taken to have trained at its default.
    """
    if not args.resume:
        return Resumed()
    run_dir = Path(args.out)
    saved = read_config(run_dir)
    if saved.get("experiment") != experiment.name:
        raise ValueError(f"--resume: {run_dir} is a {saved.get('experiment')!r} run, not {experiment.name!r}")
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"--resume: no checkpoint at {checkpoint}; train without --resume to start anew"
        )
    start = epochs_done(checkpoint)
    if args.epochs < start:
        raise SettingsChanged(
            f"--resume: {run_dir} has already trained {start} epochs; --epochs {args.epochs} is fewer"
        )
    saved_arguments = {**(defaults or {}), **saved["arguments"]}
    changes = compare_settings(saved_arguments, recorded_arguments(args), args.override, start)
    return Resumed(start, (*saved.get("overrides", []), *changes))


def recorded_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The options that determine what a run computes, as JSON values (see
    :data:`~pyro_partial.training.arguments.RUN_OPTIONS` for those left out)."""
    return {
        name: str(value) if isinstance(value, Path) else value
        for name, value in sorted(vars(args).items())
        if name not in RUN_OPTIONS
    }


def compare_settings(
    saved: dict[str, Any], asked: dict[str, Any], allowed: Sequence[str], epoch: int
) -> list[dict[str, Any]]:
    """The changes from ``saved`` to ``asked`` (epochs excepted), as ``{"option", "saved", "new", "epoch"}``
    records; :class:`SettingsChanged` lists those not in ``allowed``.

    :param allowed: option names as written on the command line or as attribute names (``batch-size`` or
        ``batch_size``).
    :param epoch: the first epoch trained with the new values.
    """
    allowed = {name.lstrip("-").replace("-", "_") for name in allowed}
    unknown = sorted(allowed - set(saved) - set(asked))
    if unknown:
        raise SettingsChanged(f"--override names no recorded option: {unknown}; recorded: {sorted(saved)}")
    changes = [
        {"option": name, "saved": saved.get(name), "new": asked.get(name), "epoch": epoch}
        for name in sorted(set(saved) | set(asked))
        if name != "epochs" and saved.get(name) != asked.get(name)
    ]
    refused = [change for change in changes if change["option"] not in allowed]
    if refused:
        listing = "; ".join(f"{c['option']}: saved {c['saved']!r}, asked {c['new']!r}" for c in refused)
        names = " ".join(c["option"].replace("_", "-") for c in refused)
        raise SettingsChanged(
            f"--resume with settings other than the saved run's ({listing}); resume with the saved values, "
            f"or apply the new ones from epoch {epoch} with --override {names}"
        )
    return changes


def read_config(run_dir: Path) -> dict[str, Any]:
    """The settings a training run recorded in ``<run_dir>/config.json``.

    :raises FileNotFoundError: ``run_dir`` has no ``config.json``.
    :raises ValueError: the file is not valid JSON.
    """
    path = run_dir / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run directory written by training")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); it should be the config written by training"
        ) from error


def epochs_done(checkpoint: Path) -> int:
    """The number of epochs a run's checkpoint has completed."""
    return int(load_checkpoint_file(checkpoint)["epoch"]) + 1


def make_trainer(
    args: argparse.Namespace,
    batches: DeviceBatches,
    loggers: Sequence[Logger],
    callbacks: Sequence[lightning.Callback] = (),
) -> lightning.Trainer:
    """The Trainer of a run: the shared options' devices, precision and subnormal flushing, the engine's
    plug-ins, and the experiment's ``callbacks`` before the engine's own (so an epoch's schedule is set before
    it is trained and checkpointed)."""
    run_dir = Path(args.out)
    return lightning.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=trainer_devices(args.devices),
        strategy=args.strategy,
        num_nodes=args.num_nodes,
        precision=args.precision,
        logger=loggers,
        callbacks=[
            *callbacks,
            *([FlushDenormals()] if args.flush_denormal else []),
            ExactResume(batches),
            EpochCheckpoint(run_dir / CHECKPOINT),
        ],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=not args.no_progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        use_distributed_sampler=False,
        default_root_dir=run_dir,
    )


def train(
    experiment: Experiment, argv: Sequence[str] | None = None, prog: str | None = None
) -> dict[str, Any]:
    """Train ``experiment`` as the command line ``argv`` says (see the module docstring); return the results
    record written to ``results.json``."""
    began = time.perf_counter()
    args = parse(experiment, argv, prog)
    run_dir = Path(args.out)
    arguments = recorded_arguments(args)
    checkpoint = run_dir / CHECKPOINT
    resumed: Resumed = args.resumed
    overrides = list(resumed.overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:  # one process cleans; no write is under way before training
        remove_stale_temporaries(run_dir)

    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    pyro.enable_validation(False)  # the test suite runs with validation; off here for speed
    with pyro.settings.context(module_local_params=True):
        data = experiment.load_data(args)
        setup = experiment.build(args, data)
        module = SVIModule(
            setup.elbo(setup.module.model, setup.module.guide),
            setup.batches,
            lr=args.lr,
            warmup_steps=args.lr_warmup_steps,
            lr_decay=args.lr_decay,
            evaluate=setup.evaluate,
        )
        csv_logger = RunCSVLogger(run_dir)
        csv_logger.resume_at(resumed.start)
        loggers = [csv_logger, *optional_loggers(run_dir, args.logger)]
        trainer = make_trainer(args, setup.batches, loggers, setup.callbacks)
        config = {
            "experiment": experiment.name,
            "model": setup.model_config,
            "arguments": arguments,
            "overrides": overrides,
        }
        if trainer.is_global_zero:
            write_json(run_dir / CONFIG, config)
        if setup.summary and trainer.is_global_zero:
            print(f"{experiment.name}: {setup.summary}; run directory {run_dir}")
        with warnings.catch_warnings():
            # the batches are index tensors of in-memory data on the device: worker processes would not help
            warnings.filterwarnings("ignore", ".*does not have many workers", PossibleUserWarning)
            warnings.filterwarnings("ignore", "Your `IterableDataset` has `__len__` defined", UserWarning)
            # lightning 2.6 still uses a torch pytree class that torch deprecates
            warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)`", FutureWarning)
            try:
                trainer.fit(module, ckpt_path=checkpoint if args.resume else None)
            except NonFiniteLossError as error:
                last = f"{checkpoint} (epoch {epochs_done(checkpoint)})" if checkpoint.is_file() else "none"
                raise NonFiniteLossError(
                    f"{error}; training stopped; last good checkpoint: {last}"
                ) from error
    history = [
        {key: float(value) for key, value in row.items() if value != ""} for row in csv_logger.metrics.rows
    ]
    # every rank computes the results (they may gather across ranks); only rank 0 prints their summary
    with contextlib.nullcontext() if trainer.is_global_zero else contextlib.redirect_stdout(io.StringIO()):
        experiment_results = experiment.results(args, data, setup, history)
    results = {
        "experiment": experiment.name,
        "command": args.command,
        **experiment_results,
        "epochs": len(history),
        "train_seconds": sum(row.get("seconds", 0.0) for row in history),
        "wall_seconds_this_invocation": time.perf_counter() - began,
        "device": str(module.device),
        "precision": args.precision,
        "world_size": trainer.world_size,
        "arguments": arguments,
        "overrides": overrides,
    }
    if trainer.is_global_zero:
        results = write_results(run_dir / RESULTS, results, seed=args.seed)
    return results


def load_trained(experiment: Experiment, run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A run directory's module at its last checkpoint, in eval mode, and the run's ``config.json``."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.get("experiment") != experiment.name:
        raise ValueError(f"{run_dir} is a {config.get('experiment')!r} run, not a {experiment.name!r} run")
    state = load_checkpoint_file(run_dir / CHECKPOINT)
    module = experiment.build_module(config["model"])
    weights = {
        name[len(MODULE_PREFIX) :]: value
        for name, value in state["state_dict"].items()
        if name.startswith(MODULE_PREFIX)
    }
    module.load_state_dict(weights)
    return module.eval(), config


def build_plot_parser(experiment: Experiment, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``pyro-partial plot EXPERIMENT``: ``--run``, ``--out``, ``--data``, ``--download``,
    ``--seed``, ``--num-images`` and the experiment's own
    :meth:`~pyro_partial.training.experiment.Experiment.add_plot_arguments`."""
    parser = argparse.ArgumentParser(
        prog=prog or f"pyro-partial plot {experiment.name}", description=experiment.plot_description
    )
    parser.add_argument("--run", type=Path, required=True, help="run directory written by training")
    parser.add_argument("--out", type=Path, default=None, help="figure directory (default: RUN/figures)")
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $PYRO_PARTIAL_DATA)")
    parser.add_argument("--download", action="store_true", help="download missing data files")
    parser.add_argument("--seed", type=int, default=0, help="seed choosing the examples shown")
    parser.add_argument("--num-images", type=int, default=8, help="examples in the figures")
    experiment.add_plot_arguments(parser)
    return parser


def plot(
    experiment: Experiment, argv: Sequence[str] | None = None, prog: str | None = None
) -> dict[str, Path]:
    """``--run DIR [--out DIR] ...``: write a trained run's figures; return ``{figure: path}``."""
    parser = build_plot_parser(experiment, prog)
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f"--num-images must be positive, got {args.num_images}")
    if args.out is None:
        args.out = args.run / "figures"
    module, config = load_trained(experiment, args.run)
    pyro.set_rng_seed(args.seed)
    paths = experiment.plot(args, module, config)
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    return paths
