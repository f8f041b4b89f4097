"""The options every experiment shares: the run, the optimiser, and Lightning's devices and loggers."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from pyro_partial.training.loggers import OPTIONAL_LOGGERS, missing_logger_packages

ACCELERATORS = ("auto", "cpu", "gpu", "mps")
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "bf16-true", "16-true")
RUN_OPTIONS = frozenset(
    {"data", "download", "out", "resume", "override", "no_progress", "logger", "command", "resumed"}
    | {"accelerator", "devices", "strategy", "num_nodes"}
)
"""Options that do not change what a run computes: they may differ when a run is resumed (a run may resume
on another device). ``epochs`` is the run's target and may grow; every other option must match on resume
unless ``--override`` names it."""


def add_shared_arguments(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """Add ``--seed``, ``--epochs``, ``--batch-size``, ``--lr``, ``--lr-warmup-steps``, ``--lr-decay``, the
    run-directory options, Lightning's ``--accelerator``, ``--devices``, ``--strategy``, ``--num-nodes``,
    ``--precision`` and ``--logger``, and ``--flush-denormal``."""
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seed of every random draw (default %(default)s)")
    run.add_argument(
        "--epochs", type=int, default=defaults.get("epochs", 3), help="epochs (default %(default)s)"
    )
    run.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 200), help="rows per batch")
    run.add_argument("--lr", type=float, default=defaults.get("lr", 1e-3), help="Adam's learning rate")
    run.add_argument(
        "--lr-warmup-steps",
        type=int,
        default=0,
        metavar="STEPS",
        help="grow the learning rate linearly from lr/STEPS to lr over the first STEPS optimiser steps "
        "(default %(default)s: none)",
    )
    run.add_argument(
        "--lr-decay",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply the learning rate by FACTOR at each new epoch: lr * FACTOR**epoch (default "
        "%(default)s: none)",
    )
    run.add_argument("--data", type=Path, default=None, help="data root (default: $PYRO_PARTIAL_DATA)")
    run.add_argument("--download", action="store_true", help="download missing data files")
    run.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<experiment>/...)")
    run.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    run.add_argument(
        "--override",
        nargs="+",
        default=[],
        metavar="OPTION",
        help="with --resume: options allowed to differ from the saved run (e.g. lr); they take effect from "
        "the resumed epoch and are recorded",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    devices = parser.add_argument_group("devices (passed to lightning.Trainer)")
    devices.add_argument("--accelerator", choices=ACCELERATORS, default="auto", help="default %(default)s")
    devices.add_argument("--devices", default="1", help="devices per node: a number, a list or 'auto'")
    devices.add_argument("--strategy", default="auto", help="e.g. ddp, ddp_spawn, deepspeed (default auto)")
    devices.add_argument("--num-nodes", type=int, default=1, help="machines (default %(default)s)")
    devices.add_argument("--precision", choices=PRECISIONS, default="32-true", help="default %(default)s")
    devices.add_argument(
        "--flush-denormal",
        action="store_true",
        help="flush subnormal floats to zero on the CPU while training (torch.set_flush_denormal): faster "
        "where activations or gradients underflow; off by default, so earlier runs repeat bit for bit",
    )
    devices.add_argument(
        "--logger",
        nargs="+",
        default=[],
        choices=sorted(OPTIONAL_LOGGERS),
        help="loggers besides metrics.csv",
    )


def check_shared_arguments(args: argparse.Namespace) -> list[str]:
    """Problems with the shared options, each naming the option, the value and the valid range."""
    problems = []
    if args.epochs < 1:
        problems.append(f"--epochs must be a positive number of epochs, got {args.epochs}")
    if args.batch_size < 1:
        problems.append(f"--batch-size must be a positive number of rows, got {args.batch_size}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        problems.append(f"--lr must be a positive finite number, got {args.lr}")
    if args.lr_warmup_steps < 0:
        problems.append(f"--lr-warmup-steps must be a number of steps, 0 or more, got {args.lr_warmup_steps}")
    if not 0 < args.lr_decay <= 1:
        problems.append(f"--lr-decay must be a factor in (0, 1], got {args.lr_decay}")
    if args.num_nodes < 1:
        problems.append(f"--num-nodes must be at least 1, got {args.num_nodes}")
    if args.override and not args.resume:
        problems.append("--override applies to a resumed run: add --resume")
    return problems + missing_logger_packages(args.logger)


def trainer_devices(devices: str) -> int | str | list[int]:
    """``--devices`` as ``lightning.Trainer`` takes it: ``'auto'``, a count, or a list of indices."""
    if devices == "auto":
        return devices
    if "," in devices:
        return [int(d) for d in devices.split(",") if d]
    return int(devices)
