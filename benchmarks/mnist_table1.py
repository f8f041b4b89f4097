"""Siddharth et al.'s Table 1 (MNIST classification error against the number of labels) and their
supervision-rate experiment, as grids of ``pyro-partial train mnist`` runs and their summaries.

    python -m benchmarks.mnist_table1 table --seeds 0 1 2 --epochs 5 --rho 0.05 --jobs 2
    python -m benchmarks.mnist_table1 rho --labels 100 600 --rhos natural 0.01 0.02 0.05 0.1 0.2 --epochs 3
    python -m benchmarks.mnist_table1 baseline --seeds 0 1 2
    python -m benchmarks.mnist_table1 restarts --labels 100 --seeds 0 1 2 --restarts 3 --select-epochs 8 \
        --epochs 20 --rho 0.2 --z-dim 50 --lr 1e-3

Each run lands in ``--runs/<grid>/l<labels>_r<rho>_s<seed>``; runs whose ``results.json`` exists are not
repeated (an interrupted run is resumed), so a grid can be extended or re-summarised at no cost
(``--summary-only``); asking for more epochs than a finished run had resumes it and trains on.
``--z-dim``, ``--lr``, ``--model`` (``adgm``: the auxiliary deep generative model) and ``--network``
(``conv``: convolutional encoder and decoder) change the model settings of every ``table`` and ``restarts``
run (and name its directory). Every run's command line is checked by ``pyro-partial train mnist`` before the
first run starts, so a bad option (``--lr -1``, ``--lr-decay 1.5``) stops the grid at once.
``table`` prints mean ± std of the test error per label count beside the published numbers and writes
``table1_<settings>.md`` and ``table1_<settings>_curves.png`` (test error against epochs per run), where
``<settings>`` is ``e<epochs>_r<rho>`` with ``_z<dim>``, ``_lr<rate>``, ``_<model>`` and ``_<network>`` as in
the run directories, so summaries of different settings sit side by side; ``rho`` draws the error against ρ
(``supervision_rate.png``) and writes ``supervision_rate.md``. Both report the final test error and the test
error at the epoch of lowest validation error (model selection on the 10,000 validation images, as
Pyro's SS-VAE example does). ``restarts`` is model selection among restarts: for each seed's labelled subset,
``--restarts`` runs (restart 0 is the ``table`` run of that seed; restart r > 0 has ``--seed seed + 1000 r``
and ``--split-seed seed``) train ``--select-epochs`` epochs; the one of lowest validation error then trains on
to ``--epochs``, and so does restart 0 when it was not chosen, so that every seed has its no-restart
reference from the same code and machine. It writes ``restarts_<settings>.md`` (each restart's validation
error at the choice, the chosen restart's and restart 0's final test error, their difference by seed).
``baseline`` trains the SS-VAE's classifier network q(y|x) (784-500-10,
softplus) on the labelled images alone (cross-entropy, Adam 1e-3, batches of 100, 60 passes over the labels,
the same class-balanced labelled subset and the same model selection): what the labels give without the
unlabelled images. With ``--epochs E`` the ``rho`` grid reads the first E epochs of any longer run with the
same labels, ρ and seed from the ``table`` grid (per-epoch errors are in each run's ``metrics.csv``).
Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.grid import (  # noqa: E402
    TrainingRun,
    add_grid_arguments,
    data_arguments,
    finished,
    mean_seconds,
    mean_std,
    train_all,
)
from pyro_partial.data.mnist import load_mnist  # noqa: E402
from pyro_partial.data.semi_supervised import SemiSupervisedSplit  # noqa: E402
from pyro_partial.training import MetricsCSV  # noqa: E402
from pyro_partial_models.ss_vae import SSVAE  # noqa: E402

# classification error (%) reported for 100, 600, 1000, 3000 labels (docs: ../shared/notes/papers.md)
PUBLISHED = {
    "Siddharth et al. 2017": {100: 9.71, 600: 3.84, 1000: 2.88, 3000: 1.57},
    "Kingma et al. 2014, M2": {100: 11.97, 600: 4.94, 1000: 3.60, 3000: 3.92},
    "Pyro SS-VAE tutorial": {100: 6.81, 600: 5.63, 1000: 5.13, 3000: 4.18},
}
UNCONFIRMED = {
    ("Siddharth et al. 2017", 600),
    ("Siddharth et al. 2017", 1000),
    ("Siddharth et al. 2017", 3000),
}


@dataclass(frozen=True)
class Run:
    labels: int
    rho: str  # "natural" or a number as text
    seed: int
    epochs: int
    z_dim: str | None = None  # None: the experiment's default; otherwise as given on the command line
    lr: str | None = None
    model: str = "ssvae"
    split_seed: int | None = None  # None: the labelled subset of ``seed``
    network: str = "mlp"
    warmup: int = 0  # learning-rate warm-up steps
    decay: str | None = None  # the learning rate's per-epoch factor as given on the command line; None: none

    def directory(self, runs: Path, grid: str) -> Path:
        """``l<labels>_r<rho>_s<seed>``, with ``_split<seed>`` where the labelled subset is another seed's
        and :meth:`model_settings`."""
        split = "" if self.split_seed is None else f"_split{self.split_seed}"
        return runs / grid / f"l{self.labels}_r{self.rho}_s{self.seed}{split}{self.model_settings()}"

    def model_settings(self) -> str:
        """``_z<dim>``, ``_lr<rate>``, ``_<model>``, ``_<network>``, ``_w<warm-up steps>`` and
        ``_d<decay factor>`` where they are not defaults (empty when none is)."""
        z_dim = "" if self.z_dim is None else f"_z{self.z_dim}"
        model = "" if self.model == "ssvae" else f"_{self.model}"
        network = "" if self.network == "mlp" else f"_{self.network}"
        warmup = f"_w{self.warmup}" if self.warmup else ""
        decay = "" if self.decay is None else f"_d{self.decay}"
        return z_dim + ("" if self.lr is None else f"_lr{self.lr}") + model + network + warmup + decay

    def settings(self) -> str:
        """What the runs of one table share: ``e<epochs>_r<rho>`` and :meth:`model_settings`."""
        return f"e{self.epochs}_r{self.rho}{self.model_settings()}"

    def arguments(self, data: Path | None) -> list[str]:
        args = ["--labels", str(self.labels), "--epochs", str(self.epochs), "--seed", str(self.seed)]
        args += [] if self.rho == "natural" else ["--rho", self.rho]
        args += [] if self.z_dim is None else ["--z-dim", self.z_dim]
        args += [] if self.lr is None else ["--lr", self.lr]
        args += [] if self.model == "ssvae" else ["--model", self.model]
        args += [] if self.network == "mlp" else ["--network", self.network]
        args += ["--lr-warmup-steps", str(self.warmup)] if self.warmup else []
        args += [] if self.decay is None else ["--lr-decay", self.decay]
        args += [] if self.split_seed is None else ["--split-seed", str(self.split_seed)]
        return args + data_arguments(data)


def read_rows(out: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` (none before its first epoch)."""
    return MetricsCSV(out / "metrics.csv").rows


def read_errors(out: Path, epochs: int) -> tuple[float, float] | None:
    """(final test error, test error at the best validation epoch) over the first ``epochs`` epochs."""
    return first_errors(read_rows(out), epochs)


def first_errors(rows: list[dict[str, str]], epochs: int) -> tuple[float, float] | None:
    """:func:`read_errors` of a run's ``metrics.csv`` rows; ``None`` with fewer than ``epochs`` rows."""
    rows = rows[:epochs]
    if len(rows) < epochs:
        return None
    best = min(rows, key=lambda row: float(row["val_error"]))
    return float(rows[-1]["test_error"]), float(best["test_error"])


def percent(values: list[float]) -> str:
    return mean_std(values, scale=100)


def decay_factor(text: str) -> str | None:
    """``--lr-decay`` as it names the run directories: the factor as given, or ``None`` for 1 (no decay).
    The training command checks the factor before any run starts (``TrainingRun.check``)."""
    try:
        return None if float(text) == 1 else text
    except ValueError:
        return text


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Run` fields the ``table`` and ``restarts`` grids take from their options alone."""
    return {"network": args.network, "warmup": args.lr_warmup_steps, "decay": args.lr_decay}


def table(args: argparse.Namespace) -> str:
    jobs = [
        Run(labels, args.rho, seed, args.epochs, args.z_dim, args.lr, args.model, **run_settings(args))
        for labels in args.labels
        for seed in args.seeds
    ]
    grid = args.runs / "table"
    if not args.summary_only:
        execute(jobs, args, "table")
    rows = {job: read_rows(job.directory(args.runs, "table")) for job in jobs}
    lines = [
        f"Test error (%), mean ± std over seeds {args.seeds}, {args.epochs} epochs, ρ = {args.rho}"
        + "".join(f", {name} = {value}" for name, value in (("z", args.z_dim), ("lr", args.lr)) if value)
        + ("" if args.model == "ssvae" else f", model = {args.model}")
        + ("" if args.network == "mlp" else f", network = {args.network}")
        + (f", lr warm-up = {args.lr_warmup_steps} steps" if args.lr_warmup_steps else "")
        + ("" if args.lr_decay is None else f", lr decay = {args.lr_decay} per epoch")
        + ":",
        "",
        "| labels | final epoch | best validation epoch | training time per run (s) | "
        + " | ".join(PUBLISHED)
        + " |",
        "|---|---|---|---|" + "---|" * len(PUBLISHED),
    ]
    for labels in args.labels:
        found = [first_errors(rows[job], args.epochs) for job in jobs if job.labels == labels]
        errors = [e for e in found if e is not None]
        done = finished(job.directory(args.runs, "table") for job in jobs if job.labels == labels)
        time_text = mean_seconds([run for run in done if run["epochs"] == args.epochs])
        published = [
            f"{numbers[labels]:.2f}{' (unconfirmed)' if (name, labels) in UNCONFIRMED else ''}"
            for name, numbers in PUBLISHED.items()
        ]
        lines.append(
            f"| {labels} | {percent([e[0] for e in errors])} | {percent([e[1] for e in errors])} | "
            f"{time_text} | " + " | ".join(published) + " |"
        )
    text = "\n".join(lines) + "\n"
    grid.mkdir(parents=True, exist_ok=True)
    stem = f"table1_{jobs[0].settings()}"
    (grid / f"{stem}.md").write_text(text)
    plot_table_curves(rows, grid / f"{stem}_curves.png")
    return text


def plot_table_curves(rows: dict[Run, list[dict[str, str]]], path: Path) -> None:
    """Test error against epochs from each run's ``metrics.csv`` ``rows``: one panel per label count and
    one line per seed (runs started so far), beside the published errors."""
    jobs = list(rows)
    labels = sorted({job.labels for job in jobs})
    figure, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3.2), squeeze=False)
    for axis, count in zip(axes[0], labels, strict=True):
        for job in (job for job in jobs if job.labels == count):
            scored = rows[job][: job.epochs]
            epochs = [int(row["epoch"]) + 1 for row in scored]
            axis.plot(epochs, [100 * float(row["test_error"]) for row in scored], label=f"seed {job.seed}")
        for (name, numbers), style in zip(PUBLISHED.items(), (":", "--", "-."), strict=True):
            axis.axhline(numbers[count], color="gray", linestyle=style, linewidth=1, label=name)
        axis.set_title(f"{count} labels")
        axis.set_xlabel("epochs completed")
        axis.set_xlim(0, max(job.epochs for job in jobs))
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test error (%)")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


RESTART_SEED_STEP = 1000


def restart_run(args: argparse.Namespace, labels: int, seed: int, restart: int, epochs: int) -> Run:
    """Restart ``restart`` on the labelled subset of ``seed``: restart 0 is that seed's plain run."""
    settings = dict(z_dim=args.z_dim, lr=args.lr, model=args.model, **run_settings(args))
    if restart == 0:
        return Run(labels, args.rho, seed, epochs, **settings)
    restart_seed = seed + RESTART_SEED_STEP * restart
    return Run(labels, args.rho, restart_seed, epochs, **settings, split_seed=seed)


def chosen_restart(errors: list[float]) -> int:
    """The restart of lowest validation error (the first of equals)."""
    return errors.index(min(errors))


def restarts(args: argparse.Namespace) -> str:
    """Choose among ``args.restarts`` restarts per seed by validation error after ``args.select_epochs``
    epochs, train the chosen one and restart 0 on to ``args.epochs``; returns the markdown table."""
    if args.restarts < 1 or args.select_epochs < 1:
        raise SystemExit(
            f"--restarts and --select-epochs must be at least 1, got {args.restarts} and {args.select_epochs}"
        )
    if not args.select_epochs < args.epochs:
        raise SystemExit(f"--select-epochs {args.select_epochs} must be fewer than --epochs {args.epochs}")
    lines = []
    for labels in args.labels:
        candidates = [
            restart_run(args, labels, seed, r, args.select_epochs)
            for seed in args.seeds
            for r in range(args.restarts)
        ]
        if not args.summary_only:
            execute(candidates, args, "restarts")
        choices = {}  # seed -> validation error of each restart at the choice
        for seed in args.seeds:
            rows = [
                read_rows(restart_run(args, labels, seed, r, args.epochs).directory(args.runs, "restarts"))
                for r in range(args.restarts)
            ]
            if all(len(run_rows) >= args.select_epochs for run_rows in rows):
                choices[seed] = [float(run_rows[args.select_epochs - 1]["val_error"]) for run_rows in rows]
        finals = [
            restart_run(args, labels, seed, r, args.epochs)
            for seed, errors in choices.items()
            for r in sorted({0, chosen_restart(errors)})
        ]
        if not args.summary_only:
            execute(finals, args, "restarts")
        lines += restart_table(args, labels, choices)
    text = "\n".join(lines) + "\n"
    out = args.runs / "restarts"
    out.mkdir(parents=True, exist_ok=True)
    settings = restart_run(args, args.labels[0], args.seeds[0], 0, args.epochs).settings()
    (out / f"restarts_{settings}_k{args.restarts}_sel{args.select_epochs}.md").write_text(text)
    return text


def restart_table(args: argparse.Namespace, labels: int, choices: dict[int, list[float]]) -> list[str]:
    """The ``restarts`` table of one label count from the validation errors at the choice (``choices``: seed
    -> one per restart): a row per seed, then the means."""
    lines = [
        f"{labels} labels: {args.restarts} restarts per seed, chosen by validation error after "
        f"{args.select_epochs} epochs, trained to {args.epochs}; errors in %",
        "",
        f"| seed | validation error at epoch {args.select_epochs}, restart 0 / 1 / ... | chosen | "
        f"chosen: test error, epoch {args.epochs} | restart 0: test error, epoch {args.epochs} | "
        "chosen − restart 0 (points) |",
        "|---|---|---|---|---|---|",
    ]
    chosen_errors, plain_errors, differences = [], [], []
    for seed, errors in choices.items():
        chosen = chosen_restart(errors)
        final = [
            first_errors(
                read_rows(restart_run(args, labels, seed, r, args.epochs).directory(args.runs, "restarts")),
                args.epochs,
            )
            for r in (chosen, 0)
        ]
        cells = [f"{100 * e[0]:.2f}" if e else "—" for e in final]
        difference = "—"
        if all(final):
            chosen_errors.append(final[0][0])
            plain_errors.append(final[1][0])
            differences.append(final[0][0] - final[1][0])
            difference = f"{100 * differences[-1]:+.2f}"
        validation = " / ".join(f"{100 * error:.2f}" for error in errors)
        lines.append(f"| {seed} | {validation} | {chosen} | {cells[0]} | {cells[1]} | {difference} |")
    lines.append(
        f"| mean ± std | | | {percent(chosen_errors)} | {percent(plain_errors)} | {percent(differences)} |"
    )
    return lines + [""]


def supervision_rate(args: argparse.Namespace) -> str:
    jobs = [
        Run(labels, rho, seed, args.epochs)
        for seed in args.seeds
        for labels in args.labels
        for rho in args.rhos
    ]
    if not args.summary_only:
        execute([job for job in jobs if not reusable(job, args)], args, "rho")
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    lines = [
        f"Test error (%) against the supervision rate ρ, {args.epochs} epochs, seeds {args.seeds}:",
        "",
        "| labels | ρ | final epoch | best validation epoch |",
        "|---|---|---|---|",
    ]
    for labels in args.labels:
        points = []
        for rho in args.rhos:
            errors = [
                read_errors(directory(job, args), args.epochs)
                for job in jobs
                if job.labels == labels and job.rho == rho
            ]
            errors = [e for e in errors if e is not None]
            lines.append(
                f"| {labels} | {rho} | {percent([e[0] for e in errors])} | "
                f"{percent([e[1] for e in errors])} |"
            )
            if errors:
                value = labels / 50_000 if rho == "natural" else float(rho)
                points.append((value, [100 * e[0] for e in errors], [100 * e[1] for e in errors]))
        points.sort()
        for axis, index, title in ((axes[0], 1, "final epoch"), (axes[1], 2, "best validation epoch")):
            axis.plot(
                [p[0] for p in points],
                [statistics.fmean(p[index]) for p in points],
                "o-",
                label=f"{labels} labels",
            )
            axis.set_xscale("log")
            axis.set_xlabel("supervision rate ρ")
            axis.set_title(title)
    axes[0].set_ylabel("test error (%)")
    axes[1].legend()
    figure.tight_layout()
    out = args.runs / "rho"
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / "supervision_rate.png", dpi=120)
    text = "\n".join(lines) + "\n"
    (out / "supervision_rate.md").write_text(text)
    return text


def baseline(args: argparse.Namespace) -> str:
    """Labels-only classifiers, one per label count and seed; returns the markdown table."""
    torch.set_num_threads(1)
    train_x, train_y = load_mnist("train", args.data)
    (val_x, val_y), (test_x, test_y) = load_mnist("validation", args.data), load_mnist("test", args.data)
    lines = [
        f"Labels only (q(y|x)'s network, cross-entropy), test error (%), seeds {args.seeds}:",
        "",
        "| labels | final | best validation epoch |",
        "|---|---|---|",
    ]
    for labels in args.labels:
        errors = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            rows = SemiSupervisedSplit(train_y, labels, seed=seed, num_classes=10).labelled
            classifier = SSVAE().guide.encoder_y
            optimiser = torch.optim.Adam(classifier.parameters(), lr=1e-3)
            history = []
            for _ in range(60):
                for batch in rows[torch.randperm(labels)].split(100):
                    loss = torch.nn.functional.cross_entropy(classifier(train_x[batch]), train_y[batch])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                with torch.no_grad():
                    history.append(
                        tuple(
                            float((classifier(x).argmax(-1) != y).double().mean())
                            for x, y in ((val_x, val_y), (test_x, test_y))
                        )
                    )
            errors.append((history[-1][1], min(history)[1]))
        lines.append(f"| {labels} | {percent([e[0] for e in errors])} | {percent([e[1] for e in errors])} |")
    text = "\n".join(lines) + "\n"
    out = args.runs / "baseline"
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline.md").write_text(text)
    return text


def reusable(job: Run, args: argparse.Namespace) -> bool:
    """Whether a longer ``table`` run with the same labels, ρ and seed already covers this job."""
    longer = Run(job.labels, job.rho, job.seed, args.table_epochs).directory(args.runs, "table")
    return args.table_epochs >= job.epochs and read_errors(longer, job.epochs) is not None


def directory(job: Run, args: argparse.Namespace) -> Path:
    return (
        Run(job.labels, job.rho, job.seed, args.table_epochs).directory(args.runs, "table")
        if reusable(job, args)
        else job.directory(args.runs, "rho")
    )


def execute(jobs: list[Run], args: argparse.Namespace, grid: str) -> None:
    """Train every job unless done, ``args.jobs`` at a time, in ``args.runs / grid`` (``train_all``)."""
    training = [
        TrainingRun(
            "mnist",
            tuple(job.arguments(args.data)),
            job.directory(args.runs, grid),
            epochs=job.epochs,
            flush_denormal=args.flush_denormal,
        )
        for job in jobs
    ]
    train_all(training, args.jobs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("grid", choices=("table", "rho", "baseline", "restarts"))
    parser.add_argument("--labels", type=int, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="table: 0 1 2; rho: 0")
    parser.add_argument("--epochs", type=int, default=None, help="table: 5; rho: 3")
    parser.add_argument("--rho", default="0.05", help="table: the supervision rate of every run ('natural')")
    parser.add_argument("--z-dim", default=None, help="table: style dimension (default: mnist's)")
    parser.add_argument("--lr", default=None, help="table: learning rate (default: mnist's)")
    parser.add_argument("--model", choices=("ssvae", "adgm"), default="ssvae", help="table: the model")
    parser.add_argument(
        "--network",
        choices=("mlp", "conv"),
        default="mlp",
        help="table, restarts: the encoder and decoder networks",
    )
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="train with subnormal floats flushed to zero (a run resumed from one trained without switches "
        "from its next epoch, recorded as an override)",
    )
    parser.add_argument(
        "--lr-warmup-steps",
        type=int,
        default=0,
        help="table, restarts: learning-rate warm-up steps of every run (names its directory _w<steps>)",
    )
    parser.add_argument(
        "--lr-decay",
        type=decay_factor,
        default=None,
        help="table, restarts: the learning rate's factor per epoch of every run, in (0, 1] (names its "
        "directory _d<factor>; default and 1: none)",
    )
    parser.add_argument("--restarts", type=int, default=3, help="restarts: runs per seed to choose from")
    parser.add_argument("--select-epochs", type=int, default=8, help="restarts: epochs before the choice")
    parser.add_argument("--rhos", nargs="+", default=["natural", "0.01", "0.02", "0.05", "0.1", "0.2"])
    parser.add_argument("--table-epochs", type=int, default=5, help="rho: epochs of the table grid's runs")
    add_grid_arguments(parser, "mnist_table1")
    args = parser.parse_args(argv)
    if args.grid == "baseline":
        args.labels, args.seeds = args.labels or [100, 600, 1000, 3000], args.seeds or [0, 1, 2]
        print(baseline(args))
    elif args.grid == "restarts":
        args.labels, args.seeds, args.epochs = (
            args.labels or [100],
            args.seeds or [0, 1, 2],
            args.epochs or 20,
        )
        print(restarts(args))
    elif args.grid == "table":
        args.labels, args.seeds = args.labels or [100, 600, 1000, 3000], args.seeds or [0, 1, 2]
        args.epochs = args.epochs or 5
        print(table(args))
    else:
        args.labels, args.seeds, args.epochs = args.labels or [100, 600], args.seeds or [0], args.epochs or 3
        print(supervision_rate(args))


if __name__ == "__main__":
    main()
