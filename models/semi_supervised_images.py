"""The semi-supervised image experiments of Siddharth et al. (2017, §4.1): MNIST and SVHN.

A class-balanced labelled subset of ``--labels`` training images is drawn once from ``--split-seed`` (by
default ``--seed``); the other training images are unlabelled. With ``--split-seed`` fixed, runs of different
``--seed`` are restarts on one labelled subset (initialisation, batch order and noise differ).
Each epoch visits every unlabelled image once, mixed with labelled images at
the supervision rate ``--rho`` (by default the natural rate M / (N + M)).
:class:`~pyro_partial_models.ss_vae.SSVAE` (or, ``--model adgm``, the auxiliary-variable
:class:`~pyro_partial_models.adgm.ADGM`) is trained with :class:`~pyro_partial.infer.SemiSupervisedELBO`:
exact enumeration of y on unlabelled rows, the paper's importance-sampled supervised term on labelled rows
(eqs. 4-6), α per labelled row (``--alpha``, default 50: Kingma et al.'s α = 0.1·N spread over M = 100
labels of N = 50,000 images). ``--alpha-start A`` schedules α: A at epoch 0, linearly to ``--alpha`` at epoch
``--alpha-epochs``, constant after (:class:`~pyro_partial.training.LinearSchedule`; ``metrics.csv`` then has
each epoch's ``alpha``).

After each epoch the classification error of q(y|x) is measured on the validation, test and labelled training
images (``metrics.csv``); ``results.json`` adds the test error at the epoch of lowest validation error (model
selection on the validation set, as Pyro's SS-VAE example reports). ``pyro-partial plot`` draws
reconstructions, analogies, style variation, the learning curves and the test confusion matrix.
"""

from __future__ import annotations

import abc
import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
from pyro_partial.infer import SemiSupervisedELBO, most_probable_class, supervision_rate
from pyro_partial.metrics import confusion_counts, largest_confusion
from pyro_partial.plots import plot_confusion_matrix, plot_learning_curves, write_figures
from pyro_partial.training import DeviceBatches, Experiment, LinearSchedule, Setup
from pyro_partial_models.adgm import ADGM
from pyro_partial_models.ss_vae import GUIDES, NETWORKS, SSVAE

NUM_CLASSES = 10
MODELS = ("ssvae", "adgm")


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


class SemiSupervisedImages(Experiment):
    """The shared experiment; a subclass sets ``name``, ``description``, the defaults and the data."""

    labels = 100
    z_dim = 10
    network = "mlp"
    hidden = (500,)
    defaults = {"epochs": 3, "batch_size": 200, "lr": 1e-3}
    plot_description = (
        "Write PNG figures of a trained run: reconstructions.png (test images over their reconstructions), "
        "analogies.png (rows: test images; columns: the image, then its inferred style with digit 0..9), "
        "style_variation_<digit>.png (digit fixed; row d varies style dimension d over --values), "
        "learning_curves.png (labelled-training, validation and test error per epoch) and confusion.png "
        "(test images counted by true and predicted class)."
    )

    @abc.abstractmethod
    def load_splits(self, args: argparse.Namespace) -> Splits:
        """The training, validation and test images."""

    @abc.abstractmethod
    def load_test(self, root: Path | None, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The flattened test images and their labels."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--labels", type=int, default=self.labels, help="labelled training images (M)")
        parser.add_argument("--rho", type=float, default=None, help="supervision rate (default: M/(N+M))")
        parser.add_argument("--alpha", type=float, default=50.0, help="classifier weight α per labelled row")
        parser.add_argument(
            "--alpha-start",
            type=float,
            default=None,
            help="α at epoch 0, moving linearly to --alpha over --alpha-epochs (default: α constant)",
        )
        parser.add_argument("--alpha-epochs", type=int, default=10, help="length of the α schedule (epochs)")
        parser.add_argument(
            "--model", choices=MODELS, default="ssvae", help="ssvae (M2) or adgm (auxiliary variable, MLPs)"
        )
        parser.add_argument("--guide", choices=GUIDES, default="m2", help="ssvae: guide factorisation")
        parser.add_argument("--network", choices=NETWORKS, default=self.network, help="encoder/decoder")
        parser.add_argument("--z-dim", type=int, default=self.z_dim, help="style dimension")
        parser.add_argument("--hidden", type=int, nargs="+", default=list(self.hidden), help="hidden sizes")
        parser.add_argument(
            "--channels", type=int, nargs="+", default=[32, 64, 128], help="conv channels (--network conv)"
        )
        parser.add_argument("--aux-dim", type=int, default=100, help="adgm: auxiliary dimension")
        parser.add_argument("--importance-samples", type=int, default=1, help="S for the supervised term")
        parser.add_argument("--train-size", type=int, default=None, help="use the first N training images")
        parser.add_argument(
            "--split-seed", type=int, default=None, help="seed of the labelled subset (default: --seed)"
        )

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        problems = []
        if args.labels < NUM_CLASSES or args.labels % NUM_CLASSES:
            problems.append(f"--labels must be a positive multiple of {NUM_CLASSES}, got {args.labels}")
        if args.rho is not None and not 0 < args.rho < 1:
            problems.append(f"--rho must lie in (0, 1), got {args.rho}")
        if not args.alpha >= 0:  # also refuses NaN
            problems.append(f"--alpha must be a non-negative number, got {args.alpha}")
        if args.alpha_start is not None and not 0 <= args.alpha_start < float("inf"):
            problems.append(f"--alpha-start must be a non-negative number, got {args.alpha_start}")
        if args.alpha_epochs < 1:
            problems.append(f"--alpha-epochs must be at least 1, got {args.alpha_epochs}")
        if args.z_dim < 1:
            problems.append(f"--z-dim must be a positive dimension, got {args.z_dim}")
        if any(size < 1 for size in args.hidden + args.channels):
            problems.append(f"--hidden and --channels must be positive, got {args.hidden}, {args.channels}")
        if args.model == "adgm" and args.network != "mlp":
            problems.append(f"--model adgm has MLP networks only, got --network {args.network}")
        if args.aux_dim < 1:
            problems.append(f"--aux-dim must be a positive dimension, got {args.aux_dim}")
        if args.importance_samples < 1:
            problems.append(f"--importance-samples must be at least 1, got {args.importance_samples}")
        if args.split_seed is not None and args.split_seed < 0:
            problems.append(f"--split-seed must be a non-negative integer, got {args.split_seed}")
        if args.train_size is not None and args.train_size < 1:
            problems.append(f"--train-size must be a positive number of images, got {args.train_size}")
        return problems

    def run_name(self, args: argparse.Namespace) -> str:
        model = "adgm" if args.model == "adgm" else f"{args.guide}_{args.network}"
        split = "" if args.split_seed is None else f"_split{args.split_seed}"
        return f"labels{args.labels}_{model}{split}_seed{args.seed}"

    def load_data(self, args: argparse.Namespace) -> Splits:
        splits = self.load_splits(args)
        if args.train_size is not None:
            splits = Splits(
                splits.image_shape, splits.train_x[: args.train_size], splits.train_y[: args.train_size],
                splits.val_x, splits.val_y, splits.test_x, splits.test_y,
            )  # fmt: skip
        return splits

    def build_module(self, model_config: dict[str, Any]) -> SSVAE | ADGM:
        config = dict(model_config)
        return ADGM(**config) if config.pop("model", "ssvae") == "adgm" else SSVAE(**config)

    def build(self, args: argparse.Namespace, data: Splits) -> Setup:
        split_seed = args.seed if args.split_seed is None else args.split_seed
        split = SemiSupervisedSplit(data.train_y, args.labels, seed=split_seed, num_classes=NUM_CLASSES)
        sampler = SemiSupervisedBatchSampler(split, args.batch_size, rho=args.rho, seed=args.seed)
        natural = supervision_rate(1.0, split.num_labelled, split.num_unlabelled)
        rho = sampler.rho if args.rho is not None else natural
        model_config = {
            "image_shape": list(data.image_shape),
            "num_classes": NUM_CLASSES,
            "z_dim": args.z_dim,
            "hidden": list(args.hidden),
        }
        if args.model == "adgm":
            model_config.update(model="adgm", aux_dim=args.aux_dim)
        else:
            model_config.update(guide_type=args.guide, network=args.network, channels=list(args.channels))
        vae = self.build_module(model_config)
        one_hot = torch.nn.functional.one_hot(data.train_y, NUM_CLASSES).to(data.train_x.dtype)
        batches = DeviceBatches(sampler, {"images": data.train_x, "labels": one_hot})
        labelled = split.labelled

        elbo = semi_supervised_objective(
            args.alpha if args.alpha_start is None else args.alpha_start, args.importance_samples
        )
        callbacks = (
            []
            if args.alpha_start is None
            else [
                LinearSchedule(
                    elbo, "alpha", start=args.alpha_start, end=args.alpha, epochs=args.alpha_epochs
                )
            ]
        )

        def evaluate(epoch: int) -> dict[str, float]:
            scores = {
                "val_error": error(vae, data.val_x, data.val_y),
                "test_error": error(vae, data.test_x, data.test_y),
                "labelled_train_error": error(vae, data.train_x[labelled], data.train_y[labelled]),
            }
            return scores if args.alpha_start is None else {**scores, "alpha": elbo.alpha}

        summary = (
            f"{split.num_labelled} labelled, {split.num_unlabelled} unlabelled, rho={rho:.4g}, "
            + (
                f"alpha={args.alpha:.4g}, "
                if args.alpha_start is None
                else f"alpha={args.alpha_start:.4g} -> {args.alpha:.4g} over {args.alpha_epochs} epochs, "
            )
            + (
                f"ADGM, a={args.aux_dim}"
                if args.model == "adgm"
                else f"guide={args.guide}, network={args.network}"
            )
            + f", z={args.z_dim}"
        )
        return Setup(
            vae,
            elbo,
            batches,
            model_config,
            evaluate,
            summary,
            extra={"rho": rho, "split_seed": split_seed},
            callbacks=callbacks,
        )

    def results(
        self, args: argparse.Namespace, data: Splits, setup: Setup, history: list[dict[str, float]]
    ) -> dict[str, Any]:
        test_error = history[-1]["test_error"]  # measured after the last epoch; not measured again
        best = min(history, key=lambda row: row["val_error"])
        print(f"test accuracy {100 * (1 - test_error):.2f}% (error {100 * test_error:.2f}%)")
        return {
            "labels": args.labels,
            "split_seed": setup.extra["split_seed"],
            "model": args.model,
            "guide": args.guide,
            "network": args.network,
            "rho": setup.extra["rho"],
            "alpha": args.alpha,
            "alpha_start": args.alpha_start,
            "alpha_epochs": None if args.alpha_start is None else args.alpha_epochs,
            "test_error": test_error,
            "val_error": history[-1]["val_error"],
            "best_val_epoch": int(best["epoch"]),
            "best_val_error": best["val_error"],
            "test_error_at_best_val": best["test_error"],
        }

    def add_plot_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--digits", type=int, nargs="+", default=None, help="digits of style variation")
        parser.add_argument(
            "--values", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0, 2.0], help="style values"
        )

    def plot(self, args: argparse.Namespace, module: SSVAE, config: dict[str, Any]) -> dict[str, Path]:
        test_x, test_y = self.load_test(args.data, args.download)
        generator = torch.Generator().manual_seed(args.seed)
        rows = torch.randperm(len(test_x), generator=generator)[: args.num_images]
        paths = write_figures(module, test_x[rows], args.out, labels=args.digits, values=args.values)
        counts = confusion_counts(predict(module, test_x), test_y, module.num_classes)
        true, predicted = largest_confusion(counts)
        paths["confusion"] = plot_confusion_matrix(
            counts,
            args.out / "confusion.png",
            title=f"{self.name}: test images by true class (rows) and q(y | x)'s class (columns)",
        )
        print(
            f"test error {1 - counts.trace() / counts.sum():.2%}; largest confusion: "
            f"{counts[true, predicted]} of {counts[true].sum()} test images of class {true} classified as "
            f"{predicted}"
        )
        paths["learning_curves"] = plot_learning_curves(
            args.run / "metrics.csv",
            ["labelled_train_error", "val_error", "test_error"],
            args.out / "learning_curves.png",
            ylabel="error (%)",
            scale=100,
            title=f"{self.name}: classification error of q(y | x) per epoch",
        )
        return paths


@torch.no_grad()
def semi_supervised_objective(alpha: float, importance_samples: int) -> SemiSupervisedELBO:
    """The experiment's objective: the semi-supervised ELBO with the classifier weight ``alpha`` per
    labelled row and ``importance_samples`` samples in the supervised term, the batch's rows split into
    labelled and unlabelled by the labels' mask."""
    return SemiSupervisedELBO(
        alpha=alpha, num_importance_samples=importance_samples, max_plate_nesting=1, split_on="mask"
    )


def predict(
    vae: SSVAE | ADGM, x: torch.Tensor, batch_size: int = 2000, seed: int = 0, num_samples: int = 10
) -> torch.Tensor:
    """q(y|x)'s most probable class ``(N,)`` for flattened images ``x`` ``(N, C·H·W)``, computed in batches on
    the module's device and in its dtype, returned on ``x``'s device. Where q(y|x) is a Monte Carlo mixture
    (the ADGM, the ``"paper"`` guide) of ``num_samples`` draws, they come from a generator seeded with
    ``seed`` on that device, so one checkpoint always scores the same and the global random state, and
    with it training, is untouched."""
    weight = next(vae.parameters())
    generator = torch.Generator(device=weight.device).manual_seed(seed)
    chunks = (x[i : i + batch_size].to(weight.device, weight.dtype) for i in range(0, len(x), batch_size))
    return torch.cat([vae.classify(chunk, num_samples, generator).to(x.device) for chunk in chunks])


@torch.no_grad()
def model_posterior_predict(
    vae: SSVAE | ADGM,
    x: torch.Tensor,
    num_particles: int = 10,
    batch_size: int = 500,
    vectorize_particles: bool = True,
) -> torch.Tensor:
    """The model's own most probable class ``(N,)`` for flattened images ``x`` ``(N, C·H·W)``: argmax_y of
    p(y|x) ∝ p(y) ∫ p(x, z | y) dz (and the auxiliary variable, for the ADGM), each class's evidence
    estimated with ``num_particles`` draws of the guide's other latent variables given that class, drawn
    at once unless ``vectorize_particles`` is false
    (:func:`pyro_partial.infer.log_evidence.most_probable_class`). Where it is no better than q(y|x), the
    errors lie in the generative model itself, not in the classifier network. Computed in chunks of
    ``batch_size`` on the module's device and dtype, returned on ``x``'s device."""
    weight = next(vae.parameters())
    classes = torch.eye(vae.num_classes, dtype=weight.dtype, device=weight.device)
    index = most_probable_class(
        vae.model,
        vae.guide,
        "y",
        classes,
        x.to(weight),
        num_particles,
        batch_size,
        vectorize_particles=vectorize_particles,
    )
    return index.to(x.device)


def error(
    vae: SSVAE | ADGM, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000, seed: int = 0
) -> float:
    """Classification error of q(y|x)'s most probable class (:func:`predict`)."""
    return (predict(vae, x, batch_size, seed) != y).double().mean().item()
