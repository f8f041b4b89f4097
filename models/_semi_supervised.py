"""The shared driver of the semi-supervised image experiments (``models/mnist.py``, ``models/svhn.py``).

An experiment supplies its data splits and default settings; this module parses the common arguments,
trains :class:`~models.ss_vae.SSVAE` with :class:`~pyro_partial.infer.SemiSupervisedELBO` through
:func:`pyro_partial.training.fit`, and writes the run directory:

- ``config.json``: the experiment and the model's constructor arguments (written before training, so an
  interrupted run can still be plotted or resumed),
- ``metrics.csv`` (one row per epoch: loss, validation, test and labelled-training error) and
  ``checkpoint.pt`` (atomic, after every epoch),
- ``results.json``: the final test error, the test error at the epoch of lowest validation error (model
  selection on the 10,000 validation images, as Pyro's SS-VAE example reports), time, the exact command,
  versions and seed.

It also renders a run's figures (:func:`plot`): reconstructions, analogies, style variation and the
learning curves of ``metrics.csv``.

The classifier weight α is per labelled row and defaults to 50: Kingma et al.'s α = 0.1·N spread over
M = 100 labels of N = 50,000 images (Pyro's SS-VAE tutorial uses 46). The rule α = 0.1/ρ that
Siddharth et al. quote gives the same value at the natural rate with 100 labels but only 1.7 with 3,000,
where it was measured to be far too weak (validation error rose from 39% to 58% over three epochs,
against 11% at α = 50; docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import SVI
from pyro.optim import Adam

from models.ss_vae import GUIDES, NETWORKS, SSVAE
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
from pyro_partial.infer import SemiSupervisedELBO, supervision_rate
from pyro_partial.metrics import confusion_counts, largest_confusion
from pyro_partial.plots import parse_run_figures_args, run_figures_parser, write_figures
from pyro_partial.plots_confusion import plot_confusion_matrix
from pyro_partial.training import (
    add_run_arguments,
    atomic_write,
    fit,
    load_trained_module,
    parse_recording_command,
    parsed_arguments,
    plot_learning_curves,
    run_timing,
    write_results,
)

CONFIG, CHECKPOINT, RESULTS = "config.json", "checkpoint.pt", "results.json"
DEFAULT_ALPHA = 50.0
NUM_CLASSES = 10


@dataclass(frozen=True)
class Splits:
    """Flattened images ``(N, C·H·W)`` in [0, 1] and int64 labels ``(N,)`` of each split."""

    image_shape: tuple[int, int, int]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def experiment_parser(
    name: str,
    prog: str,
    description: str,
    *,
    labels: int,
    z_dim: int,
    network: str,
    hidden: Sequence[int],
    channels: Sequence[int] = (32, 64, 128),
) -> argparse.ArgumentParser:
    """The arguments every semi-supervised image experiment takes, with the experiment's defaults."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(experiment=name)
    parser.add_argument("--labels", type=int, default=labels, help="number of labelled training images (M)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rho", type=float, default=None, help="supervision rate (default: natural M/(N+M))")
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help="classifier weight α per labelled row (default %(default)s, see module docstring)",
    )
    parser.add_argument("--guide", choices=GUIDES, default="m2", help="guide factorisation")
    parser.add_argument("--network", choices=NETWORKS, default=network, help="encoder/decoder networks")
    parser.add_argument("--z-dim", type=int, default=z_dim, help="style dimension")
    parser.add_argument("--hidden", type=int, nargs="+", default=list(hidden), help="hidden layer sizes")
    parser.add_argument(
        "--channels", type=int, nargs="+", default=list(channels), help="conv channels (--network conv)"
    )
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--importance-samples", type=int, default=1, help="S for the supervised term")
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    add_run_arguments(parser, name)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``); record the command and fill in the run directory."""
    args = parse_recording_command(parser, argv)
    if args.out is None:
        run = f"labels{args.labels}_{args.guide}_{args.network}_seed{args.seed}"
        args.out = Path("runs") / args.experiment / run
    if args.train_size is not None and args.train_size < 1:
        parser.error(f"--train-size must be a positive number of images, got {args.train_size}")
    return args


def model_config(args: argparse.Namespace, image_shape: Sequence[int]) -> dict[str, Any]:
    """:class:`SSVAE`'s constructor arguments for the parsed experiment arguments."""
    return {
        "image_shape": list(image_shape),
        "num_classes": NUM_CLASSES,
        "z_dim": args.z_dim,
        "hidden": list(args.hidden),
        "guide_type": args.guide,
        "network": args.network,
        "channels": list(args.channels),
    }


def train(args: argparse.Namespace, splits: Splits) -> dict[str, Any]:
    """Train on ``splits`` as ``args`` say; write the run directory; return the results record."""
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    pyro.enable_validation(False)  # checked by the test suite; off here for speed

    train_x, train_y = splits.train_x, splits.train_y
    if args.train_size is not None:
        train_x, train_y = train_x[: args.train_size], train_y[: args.train_size]
    split = SemiSupervisedSplit(train_y, args.labels, seed=args.seed, num_classes=NUM_CLASSES)
    sampler = SemiSupervisedBatchSampler(split, args.batch_size, rho=args.rho, seed=args.seed)
    rho = (
        sampler.rho
        if args.rho is not None
        else supervision_rate(1.0, split.num_labelled, split.num_unlabelled)
    )
    alpha = args.alpha
    one_hot = torch.nn.functional.one_hot(train_y, NUM_CLASSES).to(train_x.dtype)

    config = {"experiment": args.experiment, "model": model_config(args, splits.image_shape)}
    write_config(args.out, config, resume=args.resume)
    vae = SSVAE(**config["model"])
    elbo = SemiSupervisedELBO(
        alpha=alpha, num_importance_samples=args.importance_samples, max_plate_nesting=1, split_on="mask"
    )
    svi = SVI(vae.model, vae.guide, Adam({"lr": args.lr}), elbo)

    def epoch_batches(epoch: int) -> Batches:
        sampler.set_epoch(epoch)
        return Batches(sampler, train_x, one_hot)

    def evaluate(epoch: int) -> dict[str, float]:
        labelled = split.labelled
        return {
            "val_error": error(vae, splits.val_x, splits.val_y),
            "test_error": error(vae, splits.test_x, splits.test_y),
            "labelled_train_error": error(vae, train_x[labelled], train_y[labelled]),
        }

    print(
        f"{args.experiment}: {split.num_labelled} labelled, {split.num_unlabelled} unlabelled, "
        f"rho={rho:.4g}, alpha={alpha:.4g}, guide={args.guide}, network={args.network}, z={args.z_dim}; "
        f"run directory {args.out}"
    )
    began = time.perf_counter()
    history = fit(
        svi,
        epoch_batches,
        epochs=args.epochs,
        modules={"ss_vae": vae},
        run_dir=args.out,
        evaluate=evaluate,
        sampler=sampler,
        resume=args.resume,
        progress=not args.no_progress,
    )
    test_error = error(vae, splits.test_x, splits.test_y)
    best = min(history, key=lambda row: row["val_error"]) if history else None
    results = {
        "command": args.command,
        "experiment": args.experiment,
        "labels": args.labels,
        "guide": args.guide,
        "network": args.network,
        "rho": rho,
        "alpha": alpha,
        "epochs": args.epochs,
        "test_error": test_error,
        "val_error": history[-1]["val_error"] if history else None,
        "best_val_epoch": best["epoch"] if best else None,
        "best_val_error": best["val_error"] if best else None,
        "test_error_at_best_val": best["test_error"] if best else None,
        **run_timing(history, began),
        "arguments": parsed_arguments(args),
    }
    write_results(args.out / RESULTS, results, seed=args.seed)
    print(
        f"test accuracy {100 * (1 - test_error):.2f}% (error {100 * test_error:.2f}%) "
        f"after {args.epochs} epochs"
    )
    return results


def write_config(run_dir: Path, config: dict[str, Any], *, resume: bool) -> None:
    path = run_dir / CONFIG
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        if saved != config:
            raise ValueError(
                f"--resume: {path} was written for {saved}, but these arguments give {config}; "
                "resume with the run's original arguments"
            )
    atomic_write(path, lambda f: f.write((json.dumps(config, indent=2) + "\n").encode()))


class Batches:
    """The remaining batches of the sampler's epoch as ``(images, one-hot labels, is_labelled)`` tuples."""

    def __init__(self, sampler: SemiSupervisedBatchSampler, images: torch.Tensor, one_hot: torch.Tensor):
        self.sampler, self.images, self.one_hot = sampler, images, one_hot

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for index, is_labelled in self.sampler:
            yield self.images[index], self.one_hot[index], is_labelled


@torch.no_grad()
def predict(vae: SSVAE, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """q(y|x)'s most probable class ``(N,)`` for flattened images ``x`` ``(N, C·H·W)``, in batches."""
    return torch.cat([vae.classify(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def error(vae: SSVAE, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> float:
    """Classification error of q(y|x)'s most probable class."""
    return (predict(vae, x, batch_size) != y).double().mean().item()


def load_trained(run_dir: str | Path) -> tuple[SSVAE, dict[str, Any]]:
    """The model of a run directory at its last checkpoint, and the run's ``config.json``."""
    return load_trained_module(run_dir, "ss_vae", lambda config: SSVAE(**config["model"]))


def plot(
    argv: Sequence[str] | None,
    name: str,
    prog: str,
    load_test: Callable[[Path | None], tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, Path]:
    """``prog --run DIR [--out DIR] ...``: write a trained run's figures; return ``{name: path}``.

    :param load_test: ``data root -> (flattened test images, labels)`` of the experiment.
    """
    parser = run_figures_parser(
        prog,
        "Write PNG figures of a trained run: reconstructions.png (test images over their "
        "reconstructions), analogies.png (rows: test images; columns: the image, then its inferred "
        "style with digit 0..9) and style_variation_<digit>.png (digit fixed; row d varies style "
        "dimension d over --values), learning_curves.png (labelled-training, validation and test error per "
        "epoch) and confusion.png (test images counted by true and predicted class).",
        num_images=8,
        images="test images",
    )
    parser.add_argument("--digits", type=int, nargs="+", default=None, help="digits of style variation")
    parser.add_argument(
        "--values", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0, 2.0], help="style values"
    )
    args = parse_run_figures_args(parser, argv)
    vae, config = load_trained(args.run)
    if config["experiment"] != name:
        parser.error(f"--run {args.run} is a {config['experiment']!r} run, not {name!r}")
    test_x, test_y = load_test(args.data)
    generator = torch.Generator().manual_seed(args.seed)
    rows = torch.randperm(len(test_x), generator=generator)[: args.num_images]
    pyro.set_rng_seed(args.seed)  # the "paper" guide's classifier samples styles
    paths = write_figures(vae, test_x[rows], args.out, labels=args.digits, values=args.values)
    counts = confusion_counts(predict(vae, test_x), test_y, vae.num_classes)
    true, predicted = largest_confusion(counts)
    paths["confusion"] = plot_confusion_matrix(
        counts,
        args.out / "confusion.png",
        title=f"{name}: test images by true class (rows) and q(y | x)'s class (columns)",
    )
    print(
        f"test error {1 - counts.trace() / counts.sum():.2%}; largest confusion: {counts[true, predicted]} "
        f"of {counts[true].sum()} test images of class {true} classified as {predicted}"
    )
    paths["learning_curves"] = plot_learning_curves(
        args.run / "metrics.csv",
        ["labelled_train_error", "val_error", "test_error"],
        args.out / "learning_curves.png",
        ylabel="error (%)",
        scale=100,
        title=f"{name}: classification error of q(y | x) per epoch",
    )
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    return paths
