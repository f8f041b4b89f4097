"""Mathieu et al.'s (2019) claims, as grids of ``pyro-partial train dsprites`` / ``sparsity`` runs and their
summaries. From the repository root:

    python -m benchmarks.decomposition_grid independence --priors isotropic anisotropic student-t --betas 1 4
    python -m benchmarks.decomposition_grid sparsity --gammas 0 0.8 --alphas 0 100 --epochs 10

``independence`` (section 5): dSprites with the isotropic, anisotropic and Student-t priors at each β;
FactorVAE score (Kim & Mnih; 2,000 training and 1,000 evaluation votes of 64 images) and MIG of the encoder
means. Writes ``independence.md`` and ``independence.png`` (score against β, one line per prior, a point per
seed). Does the anisotropic prior raise the score at equal β?

``sparsity`` (section 6): MNIST with the sparse prior γ N(0, 0.05²) + (1 − γ) N(0, 1) at each α (γ = 0 is
N(0, I)); Hoyer sparsity of the encoder means and the importance-weighted log-likelihood bound on the test
images. Writes ``sparsity.md``. Does α > 0 raise sparsity?

Each run lands in ``--runs/<grid>/<name>_s<seed>``; a finished run is never repeated and an interrupted one
is resumed, so a grid can be extended or re-summarised at no cost (``--summary-only``). The budgets are
options (defaults: dSprites 32,000 images × 4 epochs = 2,000 steps of 64; MNIST all 60,000 images × 10
epochs). Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from benchmarks.grid import (
    TrainingRun,
    add_grid_arguments,
    data_arguments,
    finished,
    mean_seconds,
    mean_std,
    train_all,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FACTOR_VAE_VOTES = [
    "--metric-option",
    "factor_vae.num_train=2000",
    "--metric-option",
    "factor_vae.num_eval=1000",
]


def train_grid(
    experiment: str, runs: dict[tuple, Path], arguments: dict[tuple, list[str]], args: argparse.Namespace
) -> None:
    """Train every run of the grid with its ``pyro-partial train <experiment>`` arguments, unless
    ``--summary-only``."""
    if not args.summary_only:
        training = [
            TrainingRun(experiment, (*arguments[key], *args.data_arguments), out) for key, out in runs.items()
        ]
        train_all(training, args.jobs)


def independence(args: argparse.Namespace) -> str:
    """Train the dSprites grid; the table of scores per prior and β."""
    grid = args.runs / "independence"
    keys = [(prior, beta, seed) for prior in args.priors for beta in args.betas for seed in args.seeds]
    runs = {(prior, beta, seed): grid / f"{prior}_b{beta:g}_s{seed}" for prior, beta, seed in keys}
    budget = [
        "--train-size",
        str(args.train_size),
        "--epochs",
        str(args.epochs),
        "--metrics",
        "factor_vae",
        "mig",
    ]
    arguments = {
        (prior, beta, seed): ["--prior", prior, "--beta", f"{beta:g}", "--seed", str(seed)]
        + budget
        + FACTOR_VAE_VOTES
        for prior, beta, seed in keys
    }
    train_grid("dsprites", runs, arguments, args)
    lines = [
        f"dSprites, {args.train_size} images × {args.epochs} epochs, seeds {args.seeds}: mean ± std",
        "",
        "| prior | β | FactorVAE score | MIG | active dimensions | training time per run (s) |",
        "|---|---|---|---|---|---|",
    ]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for prior in args.priors:
        per_beta = {}
        for beta in args.betas:
            done = finished(runs[prior, beta, seed] for seed in args.seeds)
            per_beta[beta] = scores = [r["factor_vae_eval_accuracy"] for r in done]
            mig = mean_std([r["mig"] for r in done], digits=3)
            active = mean_std([r["factor_vae_num_active_dims"] for r in done], digits=1)
            score = mean_std(scores, digits=3)
            lines.append(f"| {prior} | {beta:g} | {score} | {mig} | {active} | {mean_seconds(done)} |")
        betas = [beta for beta, scores in per_beta.items() if scores]
        (line,) = ax.plot(betas, [sum(per_beta[b]) / len(per_beta[b]) for b in betas], "-", label=prior)
        points = [(beta, score) for beta in betas for score in per_beta[beta]]
        ax.plot(
            [b for b, _ in points], [score for _, score in points], "o", color=line.get_color(), alpha=0.7
        )
    ax.set(xlabel="β", ylabel="FactorVAE score", title="dSprites: disentanglement against β")
    ax.legend()
    fig.tight_layout()
    grid.mkdir(parents=True, exist_ok=True)
    fig.savefig(grid / "independence.png", dpi=120)
    plt.close(fig)
    table = "\n".join(lines)
    (grid / "independence.md").write_text(table + "\n")
    return table


def sparsity(args: argparse.Namespace) -> str:
    """Train the MNIST sparsity grid; the table per γ and α."""
    grid = args.runs / "sparsity"
    keys = [(gamma, alpha, seed) for gamma in args.gammas for alpha in args.alphas for seed in args.seeds]
    runs = {(gamma, alpha, seed): grid / f"g{gamma:g}_a{alpha:g}_s{seed}" for gamma, alpha, seed in keys}
    budget = ["--epochs", str(args.epochs), "--eval-size", str(args.eval_size), "--iwae-samples", "10"]
    arguments = {
        (gamma, alpha, seed): [
            "--gamma",
            f"{gamma:g}",
            "--alpha",
            f"{alpha:g}",
            "--seed",
            str(seed),
        ]
        + budget
        for gamma, alpha, seed in keys
    }
    train_grid("sparsity", runs, arguments, args)
    lines = [
        f"MNIST, all training images × {args.epochs} epochs, {args.eval_size} test images, "
        f"seeds {args.seeds}: mean ± std",
        "",
        "| γ | α | Hoyer sparsity | log-likelihood bound (nats, K = 10) | training time per run (s) |",
        "|---|---|---|---|---|",
    ]
    for gamma in args.gammas:
        for alpha in args.alphas:
            done = finished(runs[gamma, alpha, seed] for seed in args.seeds)
            lines.append(
                f"| {gamma:g} | {alpha:g} | {mean_std([r['hoyer_sparsity'] for r in done], digits=3)} | "
                f"{mean_std([r['test_log_likelihood_bound'] for r in done], digits=1)} | "
                f"{mean_seconds(done)} |"
            )
    table = "\n".join(lines)
    grid.mkdir(parents=True, exist_ok=True)
    (grid / "sparsity.md").write_text(table + "\n")
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("grid", choices=("independence", "sparsity"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--priors", nargs="+", default=["isotropic", "anisotropic", "student-t"])
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--train-size", type=int, default=32_000, help="independence: dSprites images")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.8])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 100.0])
    parser.add_argument("--eval-size", type=int, default=5_000, help="sparsity: test images scored")
    parser.add_argument("--epochs", type=int, default=None, help="independence: 4; sparsity: 10")
    add_grid_arguments(parser, "decomposition_grid")
    args = parser.parse_args(argv)
    args.data_arguments = data_arguments(args.data)
    if args.grid == "independence":
        args.epochs = args.epochs or 4
        print(independence(args))
    else:
        args.epochs = args.epochs or 10
        print(sparsity(args))


if __name__ == "__main__":
    main()
