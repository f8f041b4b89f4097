"""Semi-supervised MNIST (Siddharth et al. 2017, §4.1) with :class:`~pyro_partial.infer.SemiSupervisedELBO`.

A class-balanced labelled subset of ``--labels`` training images is drawn once from ``--seed``; the rest of
the first 50,000 training images are unlabelled, the last 10,000 are the validation set, and the test
error is measured on the 10,000 test images. Each epoch visits every unlabelled image once, mixed with
labelled images at the supervision rate ``--rho`` (by default the natural rate M / (N + M)). The
classifier weight is α = 0.1 / ρ per labelled row (Kingma et al.'s choice as read by Siddharth et al.).

    python -m models.mnist --labels 100 --epochs 3 --seed 0

writes ``metrics.csv`` (per epoch), ``checkpoint.pt`` (atomic, after every epoch; ``--resume`` continues
exactly) and ``results.json`` (test error, time, command, versions, seed) under ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI
from pyro.optim import Adam

from models.ss_vae import GUIDES, SSVAE
from pyro_partial.data.mnist import load_mnist
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
from pyro_partial.infer import SemiSupervisedELBO, supervision_rate
from pyro_partial.training import fit, write_results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labels", type=int, default=100, help="number of labelled training images (M)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rho", type=float, default=None, help="supervision rate (default: natural M/(N+M))")
    parser.add_argument("--alpha", type=float, default=None, help="classifier weight (default: 0.1 / rho)")
    parser.add_argument("--guide", choices=GUIDES, default="m2", help="guide factorisation")
    parser.add_argument("--z-dim", type=int, default=10, help="style dimension")
    parser.add_argument("--hidden", type=int, nargs="+", default=[500], help="hidden layer sizes")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--importance-samples", type=int, default=1, help="S for the supervised term")
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $PYRO_PARTIAL_DATA)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: runs/mnist/...)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path("runs") / "mnist" / f"labels{args.labels}_{args.guide}_seed{args.seed}"
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    pyro.enable_validation(False)  # checked by the test suite; off here for speed

    train_x, train_y = load_mnist("train", args.data)
    if args.train_size is not None:
        train_x, train_y = train_x[: args.train_size], train_y[: args.train_size]
    val_x, val_y = load_mnist("validation", args.data)
    test_x, test_y = load_mnist("test", args.data)
    split = SemiSupervisedSplit(train_y, args.labels, seed=args.seed)
    sampler = SemiSupervisedBatchSampler(split, args.batch_size, rho=args.rho, seed=args.seed)
    rho = (
        sampler.rho
        if args.rho is not None
        else supervision_rate(1.0, split.num_labelled, split.num_unlabelled)
    )
    alpha = args.alpha if args.alpha is not None else 0.1 / rho
    one_hot = torch.nn.functional.one_hot(train_y, 10).float()

    vae = SSVAE(z_dim=args.z_dim, hidden=args.hidden, guide_type=args.guide)
    elbo = SemiSupervisedELBO(
        alpha=alpha, num_importance_samples=args.importance_samples, max_plate_nesting=1, split_on="mask"
    )
    svi = SVI(vae.model, vae.guide, Adam({"lr": args.lr}), elbo)

    def epoch_batches(epoch: int) -> Batches:
        sampler.set_epoch(epoch)
        return Batches(sampler, train_x, one_hot)

    def evaluate(epoch: int) -> dict:
        labelled = split.labelled
        return {
            "val_error": error(vae, val_x, val_y),
            "labelled_train_error": error(vae, train_x[labelled], train_y[labelled]),
        }

    print(
        f"MNIST: {len(split.labelled)} labelled, {len(split.unlabelled)} unlabelled, rho={rho:.4g}, "
        f"alpha={alpha:.4g}, guide={args.guide}, z={args.z_dim}; run directory {args.out}"
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
    test_error = error(vae, test_x, test_y)
    results = {
        "experiment": "mnist",
        "labels": args.labels,
        "guide": args.guide,
        "rho": rho,
        "alpha": alpha,
        "epochs": args.epochs,
        "test_error": test_error,
        "val_error": history[-1]["val_error"] if history else None,
        "train_seconds": sum(row["seconds"] for row in history),
        "wall_seconds_this_invocation": time.perf_counter() - began,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    write_results(args.out / "results.json", results, seed=args.seed)
    print(
        f"test accuracy {100 * (1 - test_error):.2f}% (error {100 * test_error:.2f}%) "
        f"after {args.epochs} epochs"
    )
    return results


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
def error(vae: SSVAE, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> float:
    """Classification error of q(y|x)'s most probable class."""
    wrong = sum(
        int((vae.classify(x[i : i + batch_size]) != y[i : i + batch_size]).sum())
        for i in range(0, len(y), batch_size)
    )
    return wrong / len(y)


if __name__ == "__main__":
    main()
