"""Multi-MNIST: counting and reading the digits of a canvas (Siddharth et al. 2017, §4.3).

Canvases of 50 x 50 pixels hold 0 to 3 MNIST digits (:func:`pyro_partial.data.load_multi_mnist`, drawn
once from ``--data-seed``: ``--train-canvases`` from the first 50,000 MNIST training images,
``--test-canvases`` from the MNIST test images). ``--labelled-canvases`` of the training canvases (a
count-balanced subset drawn from ``--seed``) carry their ground truth: the count, every digit and every
window (the bounding-box supervision); the rest are unlabelled. The model is
:class:`~models.multi_digit.MultiDigitVAE`, a loop of random length whose count is enumerated on
unlabelled canvases and clamped on labelled ones, trained with
:class:`~pyro_partial.infer.SemiSupervisedELBO` (digits relaxed at ``--temperature`` on unlabelled
canvases). ``--nested-mnist RUN_DIR`` nests the SSVAE of a ``python -m models.mnist`` run, frozen, as the
per-digit sub-model (the paper's second experiment); ``--finetune-nested`` starts from its weights and learns
them on the canvases; otherwise a new, smaller one is trained.

Batches mix labelled canvases at the supervision rate ``--rho`` (default 0.1: at the natural rate a few
hundred labelled canvases among 10,000 would hardly be seen); the weight of log q(count, digits, windows
| canvas) on labelled canvases is ``--alpha`` (default 50). Kingma et al.'s 0.1 / ρ per pixel, 0.1 S² / ρ =
2,500 here, is too much: the windows' Gaussian log-density on the labelled canvases then outweighs the
reconstruction of the unlabelled ones, which stop teaching the windows (100 labelled canvases, seed 0, after
6 epochs: centre error 5.7 px and count accuracy 78% at α = 2,500, against 4.7 px and 81% at α = 50 and
4.5 px and 83% at α = 250; at α = 5 the count stays near 50%).
Scores on the test canvases, after every epoch and in ``results.json``:

- ``count_accuracy``: the most probable count under q(n | x) is right (chance: 25%);
- ``digit_accuracy``: the fraction of the true digits, read left to right by the first n steps of the
  guide (n the true count), classified right by the sub-model's q(y | glimpse);
- ``canvas_accuracy``: the count and the multiset of the digits read with the predicted count are right;
- ``position_error_px``: the mean distance in pixels between the true and the inferred digit centres;
- ``matched_digit_accuracy``, ``matched_position_error_px``: the same with each true digit compared with
  the inferred step whose centre is closest (the assignment of the first n steps to the n digits with the
  least summed distance), so a reading in another order than left to right is not counted wrong.

Defaults fit a 2-core CPU in a few minutes: 10,000 training canvases, 6 epochs, batches of 100, a
convolutional canvas encoder (channels 16, 32, 64 over the canvas and its pixel coordinates; 256 features),
a 128-unit recurrent state and a digit model of 200 hidden units.

    python -m models.multi_mnist --labelled-canvases 100 --seed 0
    python -m models.mnist --labels 3000 --epochs 3 --seed 0 --out runs/mnist/nested_source
    python -m models.multi_mnist --labelled-canvases 100 --nested-mnist runs/mnist/nested_source --seed 0
    pyro-partial train multi_mnist --labelled-canvases 100 --seed 0      # the same, console script
    pyro-partial plot multi_mnist --run runs/multi_mnist/labelled100_new_seed0

writes ``config.json``, ``metrics.csv`` (per epoch: loss and the test scores), ``checkpoint.pt`` (atomic,
after every epoch; ``--resume`` continues exactly) and ``results.json`` (the scores, time, command,
versions, seed) under ``--out``. ``plot`` writes ``reconstructions.png`` (test canvases over their
reconstructions) and ``decomposition.png`` (per canvas: the canvas with the inferred windows, its
reconstruction, and each step's digit as written onto the canvas, in the window's colour).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import SVI
from pyro.optim import Adam
from torch import nn

from models import _semi_supervised
from models.multi_digit import MODULE, NUM_CLASSES, MultiDigitVAE, Reading, coords_from_where, digit_sites
from models.ss_vae import SSVAE
from pyro_partial.data.multi_mnist import MultiMNIST, load_multi_mnist
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.plots import parse_run_figures_args, run_figures_parser, save_grid
from pyro_partial.training import (
    add_run_arguments,
    fit,
    load_trained_module,
    parse_recording_command,
    parsed_arguments,
    run_timing,
    write_results,
)

PROG = "python -m models.multi_mnist"
CONFIG, CHECKPOINT, RESULTS = "config.json", "checkpoint.pt", "results.json"
CANVAS_SIZE, MAX_DIGITS = 50, 3
# one colour per step for the decomposition figure: red, green, blue, then cycling
STEP_COLOURS = torch.tensor([[1.0, 0.2, 0.2], [0.2, 0.9, 0.2], [0.3, 0.5, 1.0]])


# ---------------------------------------------------------------------------------------------- data


class Labels:
    """The model's label arguments for a :class:`MultiMNIST` set: counts ``(N,)``, one-hot digits
    ``(N, K, 10)`` and windows as ``(log s, x, y)`` ``(N, K, 3)``, padding slots holding placeholders."""

    def __init__(self, data: MultiMNIST):
        self.counts = data.counts
        self.digits = nn.functional.one_hot(data.digits.clamp(min=0), NUM_CLASSES).to(data.canvases.dtype)
        self.coords = coords_from_where(data.wheres)

    def batch(self, index: torch.Tensor, labelled: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(counts, digits, coords)`` of rows ``index``, the unlabelled rows' replaced by the placeholders
        of padding slots (count 0, digit 0, the prior mean window), so nothing leaks from them."""
        keep = labelled[:, None, None]
        counts = torch.where(labelled, self.counts[index], 0)
        digits = torch.where(keep, self.digits[index], self.digits.new_tensor([1.0] + [0.0] * 9))
        coords = torch.where(keep, self.coords[index], coords_from_where(torch.zeros(3)))
        return counts, digits, coords


class Batches:
    """The sampler's remaining batches as ``(canvases, counts, digits, coords, is_labelled)``."""

    def __init__(self, sampler: SemiSupervisedBatchSampler, data: MultiMNIST, labels: Labels):
        self.sampler, self.data, self.labels = sampler, data, labels

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for index, is_labelled in self.sampler:
            yield (self.data.canvases[index], *self.labels.batch(index, is_labelled), is_labelled)


def load_data(args: argparse.Namespace) -> tuple[MultiMNIST, MultiMNIST]:
    """The training and test canvases of the run."""
    kwargs = {"canvas_size": CANVAS_SIZE, "max_digits": MAX_DIGITS, "seed": args.data_seed}
    train = load_multi_mnist("train", args.data, num_canvases=args.train_canvases, **kwargs)
    test = load_multi_mnist("test", args.data, num_canvases=args.test_canvases, **kwargs)
    return train, test


# ---------------------------------------------------------------------------------------------- scores


def match_steps(inferred: torch.Tensor, true: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Which inferred step reads which true digit: ``(N, K)`` step indices, for each canvas the assignment
    of its first ``counts[n]`` inferred steps to its ``counts[n]`` true digits that minimises the summed
    distance between their centres ``inferred``, ``true`` ``(N, K, 2)`` (ties: the identity first);
    slots ``k >= counts[n]`` map to themselves."""
    steps = inferred.shape[1]
    orders = torch.tensor(list(itertools.permutations(range(steps))), device=counts.device)  # (P, K)
    present = torch.arange(steps, device=counts.device) < counts[:, None]  # (N, K)
    distance = (inferred[:, orders] - true[:, None]).norm(dim=-1)  # (N, P, K)
    cost = (distance * present[:, None]).sum(-1)
    keeps_absent = ((orders[None] == torch.arange(steps, device=counts.device)) | present[:, None]).all(-1)
    return orders[cost.masked_fill(~keeps_absent, float("inf")).argmin(-1)]


@torch.no_grad()
def evaluate(vae: MultiDigitVAE, data: MultiMNIST, batch_size: int = 500) -> dict[str, float]:
    """The test scores of the module docstring for the canvases ``data``."""
    readings = [vae.read_canvases(data.canvases[i : i + batch_size]) for i in range(0, len(data), batch_size)]
    reading = Reading(*(torch.cat(parts) for parts in zip(*readings, strict=True)))
    counts, digits = data.counts, data.digits
    predicted_count = reading.count_probs.argmax(-1)
    predicted = reading.digit_probs.argmax(-1)  # (N, K)
    true_slots = torch.arange(vae.max_digits) < counts[:, None]
    read_slots = torch.arange(vae.max_digits) < predicted_count[:, None]
    # multisets of digits compared as sorted rows, absent slots set to 10 (after every digit)
    true_set = torch.where(true_slots, digits, NUM_CLASSES).sort(-1).values
    read_set = torch.where(read_slots, predicted, NUM_CLASSES).sort(-1).values
    pixels = vae.canvas_size / 2
    centre_error = (reading.wheres[..., 1:] - data.wheres[..., 1:]).norm(dim=-1) * pixels
    match = match_steps(reading.wheres[..., 1:], data.wheres[..., 1:], counts)
    matched_centres = reading.wheres[..., 1:].gather(1, match[..., None].expand(-1, -1, 2))
    matched_error = (matched_centres - data.wheres[..., 1:]).norm(dim=-1) * pixels
    return {
        "count_accuracy": (predicted_count == counts).double().mean().item(),
        "digit_accuracy": (predicted == digits)[true_slots].double().mean().item(),
        "canvas_accuracy": (true_set == read_set).all(-1).double().mean().item(),
        "position_error_px": centre_error[true_slots].double().mean().item(),
        "matched_digit_accuracy": (predicted.gather(1, match) == digits)[true_slots].double().mean().item(),
        "matched_position_error_px": matched_error[true_slots].double().mean().item(),
    }


# ---------------------------------------------------------------------------------------------- training


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--labelled-canvases", type=int, default=100, help="labelled training canvases (a multiple of 4)"
    )
    parser.add_argument("--nested-mnist", type=Path, default=None, help="run directory of models.mnist")
    parser.add_argument(
        "--finetune-nested", action="store_true", help="learn the nested digit model (default: frozen)"
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="seed of the labelled subset, batches, weights")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the canvases (fixed across seeds)")
    parser.add_argument("--train-canvases", type=int, default=10_000)
    parser.add_argument("--test-canvases", type=int, default=2_000)
    parser.add_argument("--rho", type=float, default=0.1, help="supervision rate of the batches")
    parser.add_argument(
        "--alpha", type=float, default=50.0, help="weight of log q(labels|x) on labelled canvases"
    )
    parser.add_argument("--temperature", type=float, default=0.5, help="relaxation temperature of the digits")
    parser.add_argument("--importance-samples", type=int, default=1, help="S for the supervised term")
    parser.add_argument("--z-dim", type=int, default=10, help="style dimension of a new digit model")
    parser.add_argument("--digit-hidden", type=int, nargs="+", default=[200], help="new digit model's hidden")
    parser.add_argument(
        "--canvas-channels", type=int, nargs="+", default=[16, 32, 64], help="canvas encoder's conv channels"
    )
    parser.add_argument("--canvas-features", type=int, default=256, help="canvas encoder's output size")
    parser.add_argument("--state-dim", type=int, default=128, help="size of the guide's recurrent state")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    add_run_arguments(parser, "multi_mnist")
    return parser


def parse(argv: Sequence[str] | None, prog: str = PROG) -> argparse.Namespace:
    """Parse and check ``argv`` (default ``sys.argv[1:]``); record the command, fill in ``--out``."""
    parser = build_parser(prog)
    args = parse_recording_command(parser, argv)
    groups = MAX_DIGITS + 1
    if args.labelled_canvases < groups or args.labelled_canvases % groups:
        parser.error(
            f"--labelled-canvases must be a positive multiple of {groups}, got {args.labelled_canvases}"
        )
    if args.labelled_canvases >= args.train_canvases:
        parser.error("--labelled-canvases must be smaller than --train-canvases (some must be unlabelled)")
    if not 0.0 < args.rho < 1.0:
        parser.error(f"--rho must lie in (0, 1), got {args.rho}")
    if args.temperature <= 0:
        parser.error(f"--temperature must be positive, got {args.temperature}")
    if args.finetune_nested and args.nested_mnist is None:
        parser.error("--finetune-nested needs --nested-mnist")
    if args.out is None:
        kind = "new" if args.nested_mnist is None else "finetuned" if args.finetune_nested else "nested"
        args.out = Path("runs") / "multi_mnist" / f"labelled{args.labelled_canvases}_{kind}_seed{args.seed}"
    return args


def build_model(config: dict[str, Any], digit_model: SSVAE | None = None) -> MultiDigitVAE:
    """The model of a run's ``config.json`` (a nested run's digit model is built from its config, its
    weights coming with the checkpoint, unless ``digit_model`` is given)."""
    settings = dict(config["model"])
    nested = settings.pop("nested_digit_model", None)
    freeze = not settings.pop("finetune_nested", False)
    if nested is None:
        return MultiDigitVAE(**settings)
    digit_model = digit_model if digit_model is not None else SSVAE(**nested).eval()
    return MultiDigitVAE.nest(digit_model, freeze=freeze, **settings)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train as ``args`` say; write the run directory; return the results record."""
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    pyro.enable_validation(False)  # checked by the test suite; off here for speed

    train_data, test_data = load_data(args)
    labels = Labels(train_data)
    split = SemiSupervisedSplit(
        train_data.counts, args.labelled_canvases, seed=args.seed, num_classes=MAX_DIGITS + 1
    )
    sampler = SemiSupervisedBatchSampler(split, args.batch_size, rho=args.rho, seed=args.seed)

    digit_model, nested_config = None, None
    if args.nested_mnist is not None:
        digit_model, mnist_config = _semi_supervised.load_trained(args.nested_mnist)
        nested_config = mnist_config["model"]
    model_config = {
        "canvas_size": CANVAS_SIZE,
        "max_digits": MAX_DIGITS,
        "z_dim": args.z_dim,
        "digit_hidden": list(args.digit_hidden),
        "canvas_channels": list(args.canvas_channels),
        "canvas_features": args.canvas_features,
        "state_dim": args.state_dim,
    }
    if nested_config is not None:
        model_config = {k: v for k, v in model_config.items() if k not in ("z_dim", "digit_hidden")}
        model_config["nested_digit_model"] = nested_config
        model_config["finetune_nested"] = args.finetune_nested
    data_config = {
        "data_seed": args.data_seed,
        "train_canvases": args.train_canvases,
        "test_canvases": args.test_canvases,
    }
    config = {"experiment": "multi_mnist", "data": data_config, "model": model_config}
    _semi_supervised.write_config(args.out, config, resume=args.resume)
    vae = build_model(config, digit_model)
    elbo = SemiSupervisedELBO(
        alpha=args.alpha,
        relax=digit_sites(MAX_DIGITS, args.temperature),
        num_importance_samples=args.importance_samples,
        max_plate_nesting=1,
        split_on="mask",
    )
    svi = SVI(vae.model, vae.guide, Adam({"lr": args.lr}), elbo)

    def epoch_batches(epoch: int) -> Batches:
        sampler.set_epoch(epoch)
        return Batches(sampler, train_data, labels)

    kind = "new digit model"
    if args.nested_mnist is not None:
        state = "fine-tuned" if args.finetune_nested else "frozen"
        kind = f"{state} nested digit model from {args.nested_mnist}"
    print(
        f"multi_mnist: {split.num_labelled} labelled, {split.num_unlabelled} unlabelled training canvases, "
        f"{len(test_data)} test canvases; rho={sampler.rho:.4g}, alpha={args.alpha:.4g}; {kind}; "
        f"run directory {args.out}"
    )
    began = time.perf_counter()
    history = fit(
        svi,
        epoch_batches,
        epochs=args.epochs,
        modules={MODULE: vae},
        run_dir=args.out,
        evaluate=lambda epoch: evaluate(vae, test_data),
        sampler=sampler,
        resume=args.resume,
        progress=not args.no_progress,
    )
    scores = evaluate(vae, test_data)
    results = {
        "command": args.command,
        "experiment": "multi_mnist",
        "labelled_canvases": args.labelled_canvases,
        "nested": args.nested_mnist is not None,
        "finetune_nested": args.finetune_nested,
        "num_train": len(train_data),
        "num_test": len(test_data),
        "rho": sampler.rho,
        "alpha": args.alpha,
        "epochs": args.epochs,
        **{f"test_{name}": value for name, value in scores.items()},
        **run_timing(history, began),
        "arguments": parsed_arguments(args),
    }
    write_results(args.out / RESULTS, results, seed=args.seed)
    print(
        f"test count accuracy {100 * scores['count_accuracy']:.2f}%, digit accuracy "
        f"{100 * scores['digit_accuracy']:.2f}% ({100 * scores['matched_digit_accuracy']:.2f}% matched), "
        f"canvas accuracy {100 * scores['canvas_accuracy']:.2f}%, position error "
        f"{scores['position_error_px']:.2f} px ({scores['matched_position_error_px']:.2f} px matched) "
        f"after {args.epochs} epochs"
    )
    return results


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Train (see the module docstring); ``argv`` defaults to ``sys.argv[1:]``. Returns the results record."""
    return train(parse(argv, prog))


# ---------------------------------------------------------------------------------------------- figures


def window_outlines(canvases: torch.Tensor, wheres: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Grey canvases ``(B, S, S)`` as RGB ``(B, 3, S, S)`` with the outline of each present window
    ``wheres`` ``(B, K, 3)`` = ``(s, x, y)`` (``present`` ``(B, K)`` bool) in its step's colour."""
    size = canvases.shape[-1]
    images = canvases[:, None].expand(-1, 3, -1, -1).clone()
    pixels = torch.arange(size, dtype=canvases.dtype)
    for k in range(wheres.shape[1]):
        colour = STEP_COLOURS[k % len(STEP_COLOURS)].to(canvases.dtype)[:, None, None]
        s, x, y = (wheres[:, k, i, None] for i in range(3))
        # the window's edges in pixel units: left = (x − s + 1) S / 2, and so on
        left, right = ((x - s + 1) * size / 2).round(), ((x + s + 1) * size / 2).round() - 1
        top, bottom = ((y - s + 1) * size / 2).round(), ((y + s + 1) * size / 2).round() - 1
        columns = (pixels >= left) & (pixels <= right)  # (B, S)
        rows = (pixels >= top) & (pixels <= bottom)
        on_column_edge = (pixels == left) | (pixels == right)
        on_row_edge = (pixels == top) | (pixels == bottom)
        outline = (rows[:, :, None] & on_column_edge[:, None, :]) | (
            on_row_edge[:, :, None] & columns[:, None, :]
        )
        outline = outline & present[:, k, None, None]
        images = torch.where(outline[:, None], colour, images)
    return images


@torch.no_grad()
def decomposition_grid(vae: MultiDigitVAE, canvases: torch.Tensor) -> torch.Tensor:
    """Rows: canvases ``(B, S, S)``; columns: the canvas with the inferred windows (predicted count), its
    reconstruction, then each step's contribution in its window's colour. Shape ``(B, 2 + K, 3, S, S)``."""
    reading = vae.read_canvases(canvases)
    counts = reading.count_probs.argmax(-1)
    reconstruction, steps = vae.render(reading, counts)
    present = torch.arange(vae.max_digits) < counts[:, None]
    colours = STEP_COLOURS[torch.arange(vae.max_digits) % len(STEP_COLOURS)].to(canvases.dtype)  # (K, 3)
    tinted = steps[:, :, None] * colours[None, :, :, None, None]  # (B, K, 3, S, S)
    columns = [
        window_outlines(canvases, reading.wheres, present),
        reconstruction[:, None].expand(-1, 3, -1, -1),
    ]
    return torch.cat([torch.stack(columns, 1), tinted], 1)


@torch.no_grad()
def reconstruction_grid(vae: MultiDigitVAE, canvases: torch.Tensor) -> torch.Tensor:
    """Row 0: canvases ``(B, S, S)``; row 1: their reconstructions with the predicted counts.
    Shape ``(2, B, 1, S, S)``."""
    reading = vae.read_canvases(canvases)
    reconstruction, _ = vae.render(reading, reading.count_probs.argmax(-1))
    return torch.stack([canvases, reconstruction])[:, :, None]


def load_trained(run_dir: str | Path) -> tuple[MultiDigitVAE, dict[str, Any]]:
    """The model of a run directory at its last checkpoint, and the run's ``config.json``."""
    return load_trained_module(run_dir, MODULE, build_model, experiments=("multi_mnist",))


def plot(argv: Sequence[str] | None = None, prog: str = "pyro-partial plot multi_mnist") -> dict[str, Path]:
    """``--run DIR``: write ``reconstructions.png`` and ``decomposition.png``; return their paths."""
    parser = run_figures_parser(
        prog,
        "Write the figures of a trained multi_mnist run: reconstructions.png (test canvases over their "
        "reconstructions) and decomposition.png (rows: test canvases; columns: the canvas with the inferred "
        "windows, its reconstruction, then each step's digit in its window's colour: red, green, blue).",
        num_images=8,
        images="test canvases",
    )
    args = parse_run_figures_args(parser, argv)
    vae, config = load_trained(args.run)
    data = config["data"]
    test = load_multi_mnist(
        "test",
        args.data,
        num_canvases=data["test_canvases"],
        canvas_size=vae.canvas_size,
        max_digits=vae.max_digits,
        seed=data["data_seed"],
    )
    generator = torch.Generator().manual_seed(args.seed)
    canvases = test.canvases[torch.randperm(len(test), generator=generator)[: args.num_images]]
    pyro.set_rng_seed(args.seed)  # the "paper" guide's classifier samples styles
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {
        "reconstructions": save_grid(reconstruction_grid(vae, canvases), args.out / "reconstructions.png"),
        "decomposition": save_grid(decomposition_grid(vae, canvases), args.out / "decomposition.png"),
    }
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    return paths


if __name__ == "__main__":
    main()
