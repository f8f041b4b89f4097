"""Multi-Level VAE (Bouchacourt et al. 2018) on MNIST grouped by digit and on Yale B faces grouped by subject.

Each group holds images of one label (a digit, a person): the content ``C_G`` (``--content-dim``, 10) is
shared by the group, the style ``S_i`` (``--style-dim``, 5) is per image, and
``x_i ~ Bernoulli(decoder(C_G, S_i))`` over the pixels (grey levels in ``[0, 1]`` used as Bernoulli targets,
as usual for MNIST)::

    C_G ~ N(0, I),   S_i ~ N(0, I),   x_i ~ p(x_i | C_G, S_i)              for the members i of group G
    q(C_G | X_G) = normalised prod_i q(C | x_i)   (product of Gaussians; ``--evidence average``: GVAE's mean)
    loss = -(1/G) sum_G [ sum_i E_q log p(x_i | C_G, S_i) - sum_i KL(q(S_i | x_i) || p(S_i))
                          - KL(q(C_G | X_G) || p(C_G)) ]

(:class:`pyro_partial.grouped.GroupedVAE`, trained with ``Trace_ELBO``). Networks are ``x_dim``-500 tanh MLPs
as in the paper's MNIST reimplementations (:func:`pyro_partial.grouped.mlp_grouped_vae`). A batch is
``--batch-size`` groups of distinct labels (at most the number of training labels) of ``--group-size``
images each (sizes drawn from ``[--min-group-size, --group-size]`` when given), from
:class:`pyro_partial.data.grouped_sampler.GroupedBatchSampler` over the training labels; an epoch is
``--batches-per-epoch`` batches (default: about one pass over the training images).

Data (``--dataset``, :mod:`pyro_partial_models.mlvae_data`): MNIST's training images for training and its
test images for evaluation, or the Yale B faces resized to ``--yaleb-size`` (48x42) with 40% of every
subject's images held out for evaluation. Training leaves out the labels ``--holdout-classes`` (digits 8 and
9, or subjects 33-37, by default; given without values: none). After training, ``results.json`` records
the evaluation on the evaluation images of all labels (:mod:`pyro_partial_models.mlvae_evaluation`): the
group label predicted from the content vs the style means, among all, the seen and the unseen labels, and
the identification of a label from the accumulated content of ``k = 1, 2, 5, 10`` images. ``plot`` writes
the swap grid ``swap_grid.png``: rows take the style of an evaluation image, columns the content of a group
of five evaluation images of one label (held-out labels included).

A run directory holds ``config.json``, ``metrics.csv`` (the loss per group of each epoch),
``checkpoint.ckpt`` (``--resume`` continues exactly) and ``results.json``. Defaults are MNIST's: batches of
10 groups (8 with two digits held out) of 25 images, Adam at ``3e-3``, 20 epochs; Yale B is trained at
``1e-3`` for 40 epochs of 50 batches:

    pyro-partial train mlvae --seed 0
    pyro-partial train mlvae --dataset yaleb --lr 1e-3 --epochs 40 --batches-per-epoch 50 --seed 0
    pyro-partial plot mlvae --run runs/mlvae/mnist_holdout8-9_product_seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from pyro.infer import Trace_ELBO

from pyro_partial.data.grouped_sampler import GroupedBatchSampler
from pyro_partial.grouped import GroupedVAE, group_batches, mlp_grouped_vae
from pyro_partial.grouped.evidence import METHODS
from pyro_partial.training import Experiment, Setup
from pyro_partial_models.mlvae_data import DATASETS, NUM_LABELS, GroupedImages, load_grouped_images
from pyro_partial_models.mlvae_evaluation import evaluate, write_swap_grid

DEFAULT_HOLDOUT = {"mnist": [8, 9], "yaleb": [33, 34, 35, 36, 37]}


def held_out_labels(dataset: str, holdout_classes: list[int] | None) -> list[int]:
    """The labels left out of training: ``--holdout-classes`` sorted, or the data set's default."""
    return DEFAULT_HOLDOUT[dataset] if holdout_classes is None else sorted(set(holdout_classes))


class MLVAE(Experiment):
    """The Multi-Level VAE experiment (see the module docstring)."""

    name = "mlvae"
    description = __doc__
    defaults = {"epochs": 20, "batch_size": 10, "lr": 3e-3}
    plot_description = (
        "Write swap_grid.png of a trained mlvae run: rows take the style of --num-images evaluation images "
        "(chosen with --seed), columns the content of a group of --content-group-size evaluation images of "
        "one label each, for --columns labels (up to half of them held out in training)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dataset", choices=DATASETS, default="mnist", help="default %(default)s")
        parser.add_argument("--group-size", type=int, default=25, help="images per group (the largest size)")
        parser.add_argument(
            "--min-group-size", type=int, default=None, help="draw group sizes in [this, size]"
        )
        parser.add_argument(
            "--batches-per-epoch", type=int, default=None, help="default: about one pass over the images"
        )
        parser.add_argument("--evidence", choices=METHODS, default="product", help="content accumulation")
        parser.add_argument("--content-dim", type=int, default=10, help="content latent size")
        parser.add_argument("--style-dim", type=int, default=5, help="style latent size")
        parser.add_argument("--hidden", type=int, nargs="+", default=[500], help="hidden layer sizes")
        parser.add_argument(
            "--holdout-classes",
            type=int,
            nargs="*",
            default=None,
            help="labels left out of training, for unseen-group evaluation (default: digits 8 9, subjects "
            "33-37; given without values: none)",
        )
        parser.add_argument("--yaleb-size", type=int, nargs=2, default=[48, 42], metavar=("H", "W"))
        parser.add_argument(
            "--train-size", type=int, default=None, help="use only the first N training images"
        )
        parser.add_argument("--eval-size", type=int, default=None, help="evaluate on the first N test images")

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        problems = []
        num_labels = NUM_LABELS[args.dataset]
        holdout = held_out_labels(args.dataset, args.holdout_classes)
        if not set(holdout) <= set(range(num_labels)) or len(holdout) > num_labels - 2:
            problems.append(
                f"--holdout-classes must be at most {num_labels - 2} distinct labels in 0..{num_labels - 1} "
                f"(two must remain for training), got {holdout}"
            )
        positive = {
            "group_size": args.group_size,
            "content_dim": args.content_dim,
            "style_dim": args.style_dim,
            **{name: getattr(args, name) for name in ("batches_per_epoch", "train_size", "eval_size")},
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                problems.append(f"--{name.replace('_', '-')} must be positive, got {value}")
        if args.min_group_size is not None and not 1 <= args.min_group_size <= args.group_size:
            problems.append(
                f"--min-group-size must lie in [1, --group-size={args.group_size}], got {args.min_group_size}"
            )
        if any(size < 1 for size in args.hidden):
            problems.append(f"--hidden sizes must be positive, got {args.hidden}")
        return problems

    def run_name(self, args: argparse.Namespace) -> str:
        holdout = "-".join(map(str, held_out_labels(args.dataset, args.holdout_classes))) or "none"
        return f"{args.dataset}_holdout{holdout}_{args.evidence}_seed{args.seed}"

    def load_data(self, args: argparse.Namespace) -> GroupedImages:
        return run_data(vars(args), args.data, args.download)

    def build_module(self, model_config: dict[str, Any]) -> GroupedVAE:
        return mlp_grouped_vae(
            model_config["x_dim"],
            model_config["content_dim"],
            model_config["style_dim"],
            tuple(model_config["hidden"]),
            model_config["evidence"],
        )

    def build(self, args: argparse.Namespace, data: GroupedImages) -> Setup:
        num_train_labels = len(data.train_y.unique())
        sampler = GroupedBatchSampler(
            data.train_y,
            min(args.batch_size, num_train_labels),
            args.group_size,
            min_group_size=args.min_group_size,
            batches_per_epoch=args.batches_per_epoch,
            seed=args.seed,
            padded=True,
        )
        model_config = {
            "x_dim": data.train_x.shape[1],
            "content_dim": args.content_dim,
            "style_dim": args.style_dim,
            "hidden": list(args.hidden),
            "evidence": args.evidence,
        }
        summary = (
            f"ML-VAE on {args.dataset}: {len(data.train_y)} training images of {num_train_labels} labels, "
            f"held out {held_out_labels(args.dataset, args.holdout_classes)}, {sampler.groups_per_batch} "
            f"groups of {args.group_size} per batch, {len(sampler)} batches per epoch, "
            f"evidence={args.evidence}"
        )
        return Setup(
            self.build_module(model_config),
            Trace_ELBO(max_plate_nesting=2),
            group_batches(sampler, data.train_x),
            model_config,
            summary=summary,
            extra={"groups_per_batch": sampler.groups_per_batch, "batches_per_epoch": len(sampler)},
        )

    def results(
        self, args: argparse.Namespace, data: GroupedImages, setup: Setup, history: list[dict[str, float]]
    ) -> dict[str, Any]:
        holdout = held_out_labels(args.dataset, args.holdout_classes)
        evaluation = evaluate(setup.module, data.test_x, data.test_y, holdout, args.seed)
        classification = evaluation["classification"]
        print(
            f"group label from content {classification['content']:.3f}, from style "
            f"{classification['style']:.3f} (chance {classification['chance']:.3f}); unseen-group "
            f"identification from k images: {evaluation.get('identification_unseen')}"
        )
        return {
            "dataset": args.dataset,
            "evidence": args.evidence,
            "holdout_classes": holdout,
            **setup.extra,
            "final_loss": history[-1]["loss"] if history else None,
            **evaluation,
        }

    def add_plot_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--columns", type=int, default=10, help="content labels (default %(default)s)")
        parser.add_argument(
            "--content-group-size", type=int, default=5, help="images per content group (default %(default)s)"
        )

    def plot(self, args: argparse.Namespace, module: GroupedVAE, config: dict[str, Any]) -> dict[str, Path]:
        if args.columns < 1 or args.content_group_size < 1:
            raise ValueError(
                f"--columns and --content-group-size must be positive, got {args.columns} and "
                f"{args.content_group_size}"
            )
        arguments = config["arguments"]
        holdout = held_out_labels(arguments["dataset"], arguments["holdout_classes"])
        data = run_data(arguments, args.data, args.download)
        order = torch.randperm(len(data.test_y), generator=torch.Generator().manual_seed(args.seed))
        path, columns = write_swap_grid(
            module,
            data.test_x[order],
            data.test_y[order],
            holdout,
            data.image_shape,
            Path(args.out) / "swap_grid.png",
            rows=args.num_images,
            columns=args.columns,
            group_size=args.content_group_size,
        )
        print(f"swap grid columns (content labels): {columns}")
        return {"swap_grid": path}


def run_data(arguments: dict[str, Any], root: Path | None, download: bool) -> GroupedImages:
    """A run's data from its recorded ``arguments``: the training images of the labels not held out (of the
    first ``--train-size`` images) and the first ``--eval-size`` evaluation images."""
    data = load_grouped_images(
        arguments["dataset"], root, arguments["yaleb_size"], arguments["seed"], download=download
    )
    train_x, train_y = data.train_x[: arguments["train_size"]], data.train_y[: arguments["train_size"]]
    holdout = held_out_labels(arguments["dataset"], arguments["holdout_classes"])
    seen = ~torch.isin(train_y, torch.tensor(holdout, dtype=train_y.dtype))
    return GroupedImages(
        train_x[seen],
        train_y[seen],
        data.test_x[: arguments["eval_size"]],
        data.test_y[: arguments["eval_size"]],
        data.image_shape,
        data.num_labels,
    )
