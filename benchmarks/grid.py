"""Grids of experiment runs for the benchmark scripts: check every run's command line, then train each
configuration once (resuming an interrupted run, skipping a finished one), several at a time, and summarise
seeds as mean ± std.

The benchmark scripts run from the repository root as modules: ``python -m benchmarks.<name> ...``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pyro_partial.training import runner
from pyro_partial_models import cli

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TrainingRun:
    """One run of a grid: ``pyro-partial train <experiment> <arguments> --out <out>``, finished when
    ``out/results.json`` exists and, if ``epochs`` is given, records at least that many epochs (a shorter
    finished run is resumed and trained on: ``arguments`` must then ask for ``epochs``). With
    ``flush_denormal`` the run trains with ``--flush-denormal``; a resumed run also gets ``--override
    flush-denormal``, so one trained without flushing switches at its next epoch (recorded in its
    ``config.json``)."""

    experiment: str
    arguments: tuple[str, ...]
    out: Path
    epochs: int | None = None
    flush_denormal: bool = False

    def finished(self) -> bool:
        results = self.out / "results.json"
        return results.is_file() and (
            self.epochs is None or json.loads(results.read_text())["epochs"] >= self.epochs
        )

    def command_line(self) -> list[str]:
        """The arguments after ``pyro-partial train <experiment>`` (a negative number attached to its option,
        see :func:`attach_negative_numbers`): ``--resume`` when ``out`` holds a checkpoint."""
        resume = ["--resume"] if (self.out / "checkpoint.ckpt").is_file() else []
        flush = []
        if self.flush_denormal:  # a resumed run switches to flushing through an override
            flush = ["--flush-denormal", "--override", "flush-denormal"] if resume else ["--flush-denormal"]
        arguments = attach_negative_numbers(self.arguments)
        return [*arguments, *flush, "--out", str(self.out), "--no-progress", *resume]

    def check(self) -> None:
        """Exit (status 2) with the training command's error if it would refuse :meth:`command_line` (its
        usage, which names every option of the experiment, is left out)."""
        prog = f"{cli.PROG} train {self.experiment}"
        chosen = cli.experiment(self.experiment)
        printed = io.StringIO()
        try:
            with contextlib.redirect_stderr(printed):
                runner.check_arguments(chosen, runner.build_parser(chosen, prog), self.command_line())
        except SystemExit:
            text = printed.getvalue()
            error = text[max(text.find(f"{prog}: error:"), 0) :]  # all of it when there is no such line
            refusal = f"{prog} refuses the run {self.out} (above): no run of the grid was started"
            print(f"{error}{refusal}", file=sys.stderr)
            raise
        sys.stderr.write(printed.getvalue())  # an accepted command's warnings are not swallowed


def train_once(run: TrainingRun) -> None:
    """Train ``run`` unless it is finished, in a new process (one thread unless ``$OMP_NUM_THREADS`` says
    otherwise); the output goes to ``out/log.txt``."""
    if run.finished():
        return
    run.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "pyro_partial_models.cli", "train", run.experiment, *run.command_line()]
    with open(run.out / "log.txt", "a") as log:
        print(" ".join(command), flush=True)
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)


def train_all(runs: Sequence[TrainingRun], parallel: int) -> None:
    """Check the command line of every unfinished run (:meth:`TrainingRun.check`), then train them,
    ``parallel`` at a time: a grid refuses a bad option before it starts its first run."""
    pending = [run for run in runs if not run.finished()]
    for run in pending:
        run.check()
    run_all([functools.partial(train_once, run) for run in pending], parallel)


def run_all(jobs: Sequence[Callable[[], None]], parallel: int) -> None:
    """Call every job, ``parallel`` at a time; the first failure is raised once all have ended."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def add_grid_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The options every grid shares: ``--jobs``, ``--runs`` (default ``runs/<name>``), ``--data`` and
    ``--summary-only``."""
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (each on one thread)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / name, help="where the runs land")
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $PYRO_PARTIAL_DATA)")
    parser.add_argument("--summary-only", action="store_true", help="summarise existing runs, train nothing")


def attach_negative_numbers(words: Sequence[str]) -> list[str]:
    """``words`` with each negative number that follows a long option attached to it (``--lr -1e-3`` →
    ``--lr=-1e-3``): argparse reads ``-1e-3``, not one of its negative-number forms, as an option, and would
    refuse the command with only "expected one argument"."""
    attached: list[str] = []
    for word in words:
        after_option = bool(attached) and attached[-1].startswith("--") and "=" not in attached[-1]
        if after_option and word.startswith("-") and is_number(word):
            attached[-1] = f"{attached[-1]}={word}"
        else:
            attached.append(word)
    return attached


def is_number(word: str) -> bool:
    """Whether ``float(word)`` reads ``word``."""
    try:
        float(word)
    except ValueError:
        return False
    return True


def data_arguments(data: Path | None) -> list[str]:
    """``["--data", data]``, or nothing when the experiment should read ``$PYRO_PARTIAL_DATA``."""
    return [] if data is None else ["--data", str(data)]


def train_seeds(
    experiment: str,
    configurations: dict[str, list[str]],
    seeds: Sequence[int],
    runs: Path,
    data: Path | None,
    parallel: int,
) -> None:
    """Train each configuration (run name → ``pyro-partial train <experiment>`` arguments, without the seed)
    at each seed in ``runs/<name>_s<seed>`` with :func:`train_all`, ``parallel`` at a time, seed by seed."""
    training = [
        TrainingRun(
            experiment, (*arguments, "--seed", str(seed), *data_arguments(data)), runs / f"{name}_s{seed}"
        )
        for seed in seeds
        for name, arguments in configurations.items()
    ]
    train_all(training, parallel)


def mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """``"mean ± std (n=N)"`` of ``scale * values`` (``"—"`` for none, no std for one)."""
    if not values:
        return "—"
    mean = scale * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f} (n={len(values)})"


def score_cells(done: Sequence[dict], columns: Sequence[tuple[str, str, float]]) -> list[str]:
    """Mean ± std (one decimal) of each column ``(title, results key, scale)`` over the finished runs ``done``
    that record it."""
    return [mean_std([r[key] for r in done if key in r], scale=scale, digits=1) for _, key, scale in columns]


def finished(outs: Iterable[Path]) -> list[dict]:
    """The ``results.json`` of each run directory in ``outs`` that has one (unfinished runs left out)."""
    paths = [out / "results.json" for out in outs]
    return [json.loads(path.read_text()) for path in paths if path.is_file()]


def mean_seconds(done: Sequence[dict]) -> str:
    """The mean training time of finished runs in whole seconds (``"—"`` for none)."""
    return f"{statistics.fmean(r['train_seconds'] for r in done):.0f}" if done else "—"
