"""Multi-MNIST: counting and reading the digits of a canvas (Siddharth et al. 2017, §4.3) on the experiment
contract.

Canvases of 50 x 50 pixels hold 0 to 3 MNIST digits (:func:`pyro_partial.data.load_multi_mnist`, drawn
once from ``--data-seed``: ``--train-canvases`` from the first 50,000 MNIST training images,
``--test-canvases`` from the MNIST test images). ``--labelled-canvases`` of the training canvases (a
count-balanced subset drawn from ``--seed``) carry their ground truth: the count, every digit and every
window (the bounding-box supervision); the rest are unlabelled. The model is
:class:`~pyro_partial_models.multi_digit.MultiDigitVAE`, a loop of random length whose count is enumerated
on unlabelled canvases and clamped on labelled ones, trained with
:class:`~pyro_partial.infer.SemiSupervisedELBO` (digits relaxed at ``--temperature`` on unlabelled
canvases). ``--nested-mnist RUN_DIR`` nests the SSVAE of a ``pyro-partial train mnist`` run, frozen, as the
per-digit sub-model (the paper's second experiment); ``--finetune-nested`` starts from its weights and learns
them on the canvases; otherwise a new, smaller one is trained.

Batches mix labelled canvases at the supervision rate ``--rho`` (default 0.1: at the natural rate a few
hundred labelled canvases among 10,000 would hardly be seen); the weight of log q(count, digits, windows
| canvas) on labelled canvases is ``--alpha`` (default 50; Kingma et al.'s 0.1 / ρ per pixel, 0.1 S² / ρ =
2,500 here, lets the windows' Gaussian log-density on the labelled canvases outweigh the reconstruction of
the unlabelled ones: docs/results.md). ``--alpha-count``, ``--alpha-digits`` and ``--alpha-where`` weight
the three parts of that term separately (each defaults to ``--alpha``; :func:`site_alphas`).
``--glimpse-jitter J`` has the digit classifier read the labelled canvases in training through their windows
shifted by up to J pixels (:class:`~pyro_partial_models.multi_digit.MultiDigitGuide`). After every
epoch ``metrics.csv`` records the test scores of :mod:`pyro_partial_models.multi_mnist_scores` (count,
digit and canvas accuracy, centre error, in reading order and matched, and the digit accuracy through the
true windows); ``results.json`` records the last epoch's as ``test_<score>``. With ``--refine-steps N``
the trained model's test windows are then refined by N Adam steps of rate ``--refine-lr`` on the canvas's
log-joint (:mod:`pyro_partial_models.multi_mnist_refine`, the count fixed at q's mode), and
``results.json`` also records the window-dependent scores after refinement as ``test_refined_<score>``
and the time it took as ``test_refine_seconds``. With ``--search-radius R`` the windows (refined, if
``--refine-steps`` is also given) are then moved to the whole-pixel shift within R pixels at which the digit
reader is most confident (the glimpse search of :mod:`pyro_partial_models.multi_mnist_refine`), recorded as
``test_searched_<score>`` and ``test_search_seconds``.

Defaults: 10,000 training canvases, 6 epochs, batches of 100, a convolutional canvas encoder (channels 16,
32, 64 over the canvas and its pixel coordinates; 256 features), a 128-unit recurrent state and a digit
model of 200 hidden units.

    pyro-partial train multi_mnist --labelled-canvases 100 --seed 0
    pyro-partial train multi_mnist --labelled-canvases 1000 --refine-steps 50 --alpha-where 250 --seed 0
    pyro-partial train multi_mnist --labelled-canvases 1000 --epochs 24 --refine-steps 50 --search-radius 2
    pyro-partial train mnist --labels 3000 --epochs 3 --seed 0 --out runs/mnist/nested_source
    pyro-partial train multi_mnist --labelled-canvases 100 --nested-mnist runs/mnist/nested_source --seed 0
    pyro-partial plot multi_mnist --run runs/multi_mnist/labelled100_new_seed0

``plot`` writes ``reconstructions.png`` (test canvases over their reconstructions) and ``decomposition.png``
(per canvas: the canvas with the inferred windows, its reconstruction, and each step's digit as written onto
the canvas, in the window's colour).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pyro_partial.data.multi_mnist import MultiMNIST, load_multi_mnist
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.plots import save_grid
from pyro_partial.training import DeviceBatches, Experiment, Setup, load_trained
from pyro_partial_models.mnist import MNIST
from pyro_partial_models.multi_digit import (
    NUM_CLASSES,
    MultiDigitVAE,
    Reading,
    coords_from_where,
    digit_sites,
)
from pyro_partial_models.multi_mnist_figures import canvas_reconstruction_grid, decomposition_grid
from pyro_partial_models.multi_mnist_refine import refine_reading, search_reading
from pyro_partial_models.multi_mnist_scores import (
    SCORES,
    evaluate,
    evaluation_generator,
    read_all,
    reading_scores,
)
from pyro_partial_models.ss_vae import SSVAE

CANVAS_SIZE, MAX_DIGITS = 50, 3


@dataclass(frozen=True)
class Canvases:
    """The training and test canvases of a run."""

    train: MultiMNIST
    test: MultiMNIST


def model_arguments(data: MultiMNIST) -> dict[str, torch.Tensor]:
    """The model's arguments for every canvas of ``data``: ``canvases`` ``(N, S, S)``, ``counts`` ``(N,)``,
    one-hot ``digits`` ``(N, K, 10)`` and windows ``coords`` as ``(log s, x, y)`` ``(N, K, 3)``, padding slots
    holding valid placeholders (digit 0, the prior mean window)."""
    digits = torch.nn.functional.one_hot(data.digits.clamp(min=0), NUM_CLASSES).to(data.canvases.dtype)
    return {
        "canvases": data.canvases,
        "counts": data.counts,
        "digits": digits,
        "coords": coords_from_where(data.wheres),
    }


def gather_labelled(tensors: Mapping[str, torch.Tensor], item: tuple[torch.Tensor, torch.Tensor]) -> tuple:
    """The loss arguments ``(canvases, counts, digits, coords, mask)`` of a sampler item ``(index,
    is_labelled)``; the unlabelled rows' labels are replaced by the placeholders of padding slots (count 0,
    digit 0, the prior mean window), so nothing leaks from them."""
    index, labelled = item
    canvases, counts, digits, coords = (
        tensors[name][index] for name in ("canvases", "counts", "digits", "coords")
    )
    keep = labelled[:, None, None]
    digit_placeholder = digits.new_zeros(NUM_CLASSES)
    digit_placeholder[0] = 1
    counts = torch.where(labelled, counts, 0)
    digits = torch.where(keep, digits, digit_placeholder)
    coords = torch.where(keep, coords, coords_from_where(coords.new_zeros(3)))
    return canvases, counts, digits, coords, labelled


def term_alphas(args: argparse.Namespace) -> dict[str, float]:
    """The supervised weights of the three terms, ``{"count", "digits", "where"}``: ``--alpha-<term>``, or
    ``--alpha`` where it is not given."""
    return {
        term: args.alpha if getattr(args, f"alpha_{term}") is None else getattr(args, f"alpha_{term}")
        for term in ("count", "digits", "where")
    }


def site_alphas(args: argparse.Namespace) -> dict[str, float]:
    """:class:`~pyro_partial.infer.SemiSupervisedELBO`'s per-site ``alpha=``: α_count for ``count``,
    α_digits for every ``digit_k`` and α_where for every ``where_k``, so that a labelled canvas's term is
    α_count log q(n | x) + Σ_{k<n} [α_digits log q(y_k | g_k) + α_where log q(w_k | x, w_{<k})]."""
    alphas = term_alphas(args)
    steps = range(MAX_DIGITS)
    return {
        "count": alphas["count"],
        **{f"digit_{k}": alphas["digits"] for k in steps},
        **{f"where_{k}": alphas["where"] for k in steps},
    }


def window_scores(prefix: str, reading: Reading, data: MultiMNIST) -> dict[str, float]:
    """The window-dependent scores (:func:`~pyro_partial_models.multi_mnist_scores.reading_scores`) of a
    reading of ``data``'s canvases whose windows were moved, as ``<prefix>_<score>``."""
    return {f"{prefix}_{name}": value for name, value in reading_scores(reading, data).items()}


def window_summary(scores: Mapping[str, float], prefix: str) -> str:
    """One line of the ``<prefix>_`` scores: digit accuracy (matched) and matched centre error."""
    return (
        f"digit accuracy {100 * scores[f'{prefix}_digit_accuracy']:.2f}% "
        f"({100 * scores[f'{prefix}_matched_digit_accuracy']:.2f}% matched), position error "
        f"{scores[f'{prefix}_matched_position_error_px']:.2f} px matched"
    )


class MultiMNISTExperiment(Experiment):
    """The ``multi_mnist`` experiment of the module docstring."""

    name = "multi_mnist"
    description = __doc__
    defaults = {"epochs": 6, "batch_size": 100, "lr": 1e-3}
    plot_description = (
        "Write the figures of a trained multi_mnist run: reconstructions.png (test canvases over their "
        "reconstructions) and decomposition.png (rows: test canvases; columns: the canvas with the inferred "
        "windows, its reconstruction, then each step's digit in its window's colour: red, green, blue)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--labelled-canvases", type=int, default=100, help="labelled training canvases (a multiple of 4)"
        )
        parser.add_argument("--nested-mnist", type=Path, default=None, help="run directory of an mnist run")
        parser.add_argument(
            "--finetune-nested", action="store_true", help="learn the nested digit model (default: frozen)"
        )
        parser.add_argument(
            "--data-seed", type=int, default=0, help="seed of the canvases (fixed across seeds)"
        )
        parser.add_argument("--train-canvases", type=int, default=10_000, help="training canvases")
        parser.add_argument("--test-canvases", type=int, default=2_000, help="test canvases")
        parser.add_argument("--rho", type=float, default=0.1, help="supervision rate of the batches")
        parser.add_argument(
            "--alpha", type=float, default=50.0, help="weight of log q(labels|x) on labelled canvases"
        )
        for term, what in (
            ("count", "q(count|x)"),
            ("digits", "q(digit_k|glimpse)"),
            ("where", "q(where_k|x)"),
        ):
            parser.add_argument(
                f"--alpha-{term}", type=float, default=None, help=f"weight of log {what} (default: --alpha)"
            )
        parser.add_argument(
            "--refine-steps",
            type=int,
            default=0,
            help="Adam steps refining the test windows after training (0: off; multi_mnist_refine)",
        )
        parser.add_argument("--refine-lr", type=float, default=0.05, help="learning rate of the refinement")
        parser.add_argument(
            "--search-radius",
            type=int,
            default=0,
            help="radius in pixels of the glimpse search of the test windows (0: off; multi_mnist_refine)",
        )
        parser.add_argument(
            "--glimpse-jitter",
            type=float,
            default=0.0,
            help="largest shift in pixels of the labelled windows the digit classifier reads in training",
        )
        parser.add_argument(
            "--temperature", type=float, default=0.5, help="relaxation temperature of the digits"
        )
        parser.add_argument("--importance-samples", type=int, default=1, help="S for the supervised term")
        parser.add_argument("--z-dim", type=int, default=10, help="style dimension of a new digit model")
        parser.add_argument(
            "--digit-hidden", type=int, nargs="+", default=[200], help="new digit model's hidden"
        )
        parser.add_argument(
            "--canvas-channels",
            type=int,
            nargs="+",
            default=[16, 32, 64],
            help="canvas encoder's conv channels",
        )
        parser.add_argument("--canvas-features", type=int, default=256, help="canvas encoder's output size")
        parser.add_argument("--state-dim", type=int, default=128, help="size of the guide's recurrent state")

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        problems = []
        groups = MAX_DIGITS + 1
        if args.labelled_canvases < groups or args.labelled_canvases % groups:
            problems.append(
                f"--labelled-canvases must be a positive multiple of {groups}, got {args.labelled_canvases}"
            )
        if args.labelled_canvases >= args.train_canvases:
            problems.append(
                f"--labelled-canvases must be smaller than --train-canvases (some must be unlabelled), got "
                f"{args.labelled_canvases} and {args.train_canvases}"
            )
        if args.test_canvases < 1:
            problems.append(f"--test-canvases must be positive, got {args.test_canvases}")
        if not 0.0 < args.rho < 1.0:
            problems.append(f"--rho must lie in (0, 1), got {args.rho}")
        if not args.alpha >= 0:  # also refuses NaN
            problems.append(f"--alpha must be a non-negative number, got {args.alpha}")
        for term in ("count", "digits", "where"):
            value = getattr(args, f"alpha_{term}")
            if value is not None and not value >= 0:
                problems.append(f"--alpha-{term} must be a non-negative number, got {value}")
        if args.refine_steps < 0:
            problems.append(f"--refine-steps must be non-negative, got {args.refine_steps}")
        if not args.refine_lr > 0:
            problems.append(f"--refine-lr must be positive, got {args.refine_lr}")
        if args.search_radius < 0:
            problems.append(f"--search-radius must be non-negative, got {args.search_radius}")
        if args.glimpse_jitter < 0:
            problems.append(f"--glimpse-jitter must be non-negative, got {args.glimpse_jitter}")
        if not args.temperature > 0:
            problems.append(f"--temperature must be positive, got {args.temperature}")
        if args.importance_samples < 1:
            problems.append(f"--importance-samples must be at least 1, got {args.importance_samples}")
        if args.z_dim < 1:
            problems.append(f"--z-dim must be a positive dimension, got {args.z_dim}")
        sizes = [*args.digit_hidden, *args.canvas_channels, args.canvas_features, args.state_dim]
        if any(size < 1 for size in sizes):
            problems.append(
                "--digit-hidden, --canvas-channels, --canvas-features and --state-dim must be positive, got "
                f"{args.digit_hidden}, {args.canvas_channels}, {args.canvas_features} and {args.state_dim}"
            )
        if args.finetune_nested and args.nested_mnist is None:
            problems.append("--finetune-nested needs --nested-mnist (a digit model to fine-tune)")
        return problems

    def run_name(self, args: argparse.Namespace) -> str:
        kind = "new" if args.nested_mnist is None else "finetuned" if args.finetune_nested else "nested"
        return f"labelled{args.labelled_canvases}_{kind}_seed{args.seed}"

    def load_data(self, args: argparse.Namespace) -> Canvases:
        kwargs = {"canvas_size": CANVAS_SIZE, "max_digits": MAX_DIGITS, "seed": args.data_seed}
        return Canvases(
            load_multi_mnist(
                "train", args.data, num_canvases=args.train_canvases, download=args.download, **kwargs
            ),
            load_multi_mnist(
                "test", args.data, num_canvases=args.test_canvases, download=args.download, **kwargs
            ),
        )

    def build_module(self, model_config: dict[str, Any], digit_model: SSVAE | None = None) -> MultiDigitVAE:
        """The model of ``model_config``. A nested run's digit model is built from its config (the weights
        come with the checkpoint) unless ``digit_model`` (trained) is given."""
        settings = dict(model_config)
        nested = settings.pop("nested_digit_model", None)
        freeze = not settings.pop("finetune_nested", False)
        if nested is None:
            return MultiDigitVAE(**settings)
        digit_model = digit_model if digit_model is not None else SSVAE(**nested)
        return MultiDigitVAE.nest(digit_model, freeze=freeze, **settings)

    def build(self, args: argparse.Namespace, data: Canvases) -> Setup:
        split = SemiSupervisedSplit(
            data.train.counts, args.labelled_canvases, seed=args.seed, num_classes=MAX_DIGITS + 1
        )
        sampler = SemiSupervisedBatchSampler(split, args.batch_size, rho=args.rho, seed=args.seed)
        model_config: dict[str, Any] = {
            "canvas_size": CANVAS_SIZE,
            "max_digits": MAX_DIGITS,
            "canvas_channels": list(args.canvas_channels),
            "canvas_features": args.canvas_features,
            "state_dim": args.state_dim,
            "glimpse_jitter": args.glimpse_jitter,
        }
        digit_model = None
        if args.nested_mnist is None:
            model_config.update(z_dim=args.z_dim, digit_hidden=list(args.digit_hidden))
            kind = "new digit model"
        else:
            digit_model, mnist_config = load_trained(MNIST(), args.nested_mnist)
            model_config.update(
                nested_digit_model=mnist_config["model"], finetune_nested=args.finetune_nested
            )
            state = "fine-tuned" if args.finetune_nested else "frozen"
            kind = f"{state} nested digit model from {args.nested_mnist}"
        vae = self.build_module(model_config, digit_model)
        batches = DeviceBatches(sampler, model_arguments(data.train), gather_labelled)
        elbo = SemiSupervisedELBO(
            alpha=site_alphas(args),
            relax=digit_sites(MAX_DIGITS, args.temperature),
            num_importance_samples=args.importance_samples,
            max_plate_nesting=1,
            split_on="mask",
        )
        alphas = term_alphas(args)
        summary = (
            f"{split.num_labelled} labelled, {split.num_unlabelled} unlabelled training canvases, "
            f"{len(data.test)} test canvases; rho={sampler.rho:.4g}, alpha={args.alpha:.4g} "
            f"(count {alphas['count']:.4g}, digits {alphas['digits']:.4g}, windows {alphas['where']:.4g}); "
            f"{kind}"
        )
        return Setup(
            vae,
            elbo,
            batches,
            model_config,
            evaluate=lambda epoch: evaluate(vae, data.test),
            summary=summary,
            extra={"rho": sampler.rho},
        )

    def results(
        self, args: argparse.Namespace, data: Canvases, setup: Setup, history: list[dict[str, float]]
    ) -> dict[str, Any]:
        scores = {name: history[-1][name] for name in SCORES}
        moved = {}
        generator = evaluation_generator(setup.module)  # seeded draws of the "paper" guide
        if args.refine_steps > 0 or args.search_radius > 0:
            reading = read_all(setup.module, data.test.canvases, generator=generator)
        if args.refine_steps > 0:
            began = time.perf_counter()
            reading = refine_reading(
                setup.module,
                data.test.canvases,
                reading,
                args.refine_steps,
                args.refine_lr,
                generator=generator,
            )
            moved |= window_scores("refined", reading, data.test)
            moved["refine_seconds"] = time.perf_counter() - began
            print(f"after {args.refine_steps} refinement steps: " + window_summary(moved, "refined"))
        if args.search_radius > 0:
            began = time.perf_counter()
            reading = search_reading(
                setup.module, data.test.canvases, reading, args.search_radius, generator=generator
            )
            moved |= window_scores("searched", reading, data.test)
            moved["search_seconds"] = time.perf_counter() - began
            print(f"after a glimpse search of {args.search_radius} px: " + window_summary(moved, "searched"))
        print(
            f"test count accuracy {100 * scores['count_accuracy']:.2f}%, digit accuracy "
            f"{100 * scores['digit_accuracy']:.2f}% ({100 * scores['matched_digit_accuracy']:.2f}% matched), "
            f"canvas accuracy {100 * scores['canvas_accuracy']:.2f}%, position error "
            f"{scores['position_error_px']:.2f} px ({scores['matched_position_error_px']:.2f} px matched) "
            f"after {len(history)} epochs; {100 * scores['true_window_digit_accuracy']:.2f}% of the digits "
            "read through the true windows"
        )
        return {
            "labelled_canvases": args.labelled_canvases,
            "nested": args.nested_mnist is not None,
            "finetune_nested": args.finetune_nested,
            "num_train": len(data.train),
            "num_test": len(data.test),
            "rho": setup.extra["rho"],
            "alpha": args.alpha,
            **{f"alpha_{term}": value for term, value in term_alphas(args).items()},
            "refine_steps": args.refine_steps,
            "refine_lr": args.refine_lr,
            "search_radius": args.search_radius,
            **{f"test_{name}": value for name, value in {**scores, **moved}.items()},
        }

    def plot(
        self, args: argparse.Namespace, module: MultiDigitVAE, config: dict[str, Any]
    ) -> dict[str, Path]:
        arguments = config["arguments"]
        test = load_multi_mnist(
            "test",
            args.data,
            num_canvases=arguments["test_canvases"],
            canvas_size=module.canvas_size,
            max_digits=module.max_digits,
            seed=arguments["data_seed"],
            download=args.download,
        )
        generator = torch.Generator().manual_seed(args.seed)
        canvases = test.canvases[torch.randperm(len(test), generator=generator)[: args.num_images]]
        return {
            "reconstructions": save_grid(
                canvas_reconstruction_grid(module, canvases), args.out / "reconstructions.png"
            ),
            "decomposition": save_grid(decomposition_grid(module, canvases), args.out / "decomposition.png"),
        }
