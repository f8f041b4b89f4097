"""Bouchacourt et al.'s Multi-Level VAE on MNIST: what a linear probe reads from the content and from the
style, as a grid of ``pyro-partial train mlvae`` runs. From the repository root:

    python -m benchmarks.mlvae_grid --seeds 0 1 2 --epochs 20 40
    python -m benchmarks.mlvae_grid --seeds 0 1 2 --epochs 20 --no-holdout

Runs: the defaults (digits 8 and 9 held out, 5-D style, lr 3e-3) at each ``--epochs``; with ``--no-holdout``
every digit is trained on (``--holdout-classes`` given without values). Each run lands in
``--runs/<name>_s<seed>`` and is never repeated (an interrupted one is resumed; asking a finished run for
more epochs is a new run, named by its epochs). Prints and writes ``mlvae.md``: mean ± std over seeds of the
probes' accuracies (content and style means; all digits, and the digits trained on), single-image
identification of held-out digits and the final loss. The issue's target: style at or below the stroke
statistics' 0.56 with content at or above 0.95. Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.grid import add_grid_arguments, finished, mean_seconds, mean_std, train_seeds

SCORES = [
    ("content, all digits", ("classification", "content")),
    ("style, all digits", ("classification", "style")),
    ("content, trained digits", ("classification_seen", "content")),
    ("style, trained digits", ("classification_seen", "style")),
    ("held-out digits identified from 1 image", ("identification_unseen", "1")),
]


def configurations(args: argparse.Namespace) -> dict[str, list[str]]:
    """Run name → ``pyro-partial train mlvae`` arguments (without the seed)."""
    runs = {f"e{epochs}": ["--epochs", str(epochs)] for epochs in args.epochs}
    if args.no_holdout:
        every_digit = {f"e{e}_all": ["--epochs", str(e), "--holdout-classes"] for e in args.epochs}
        runs.update(every_digit)
    return runs


def score(record: dict, path: tuple[str, str]) -> float | None:
    """``record[path[0]][path[1]]``, or ``None`` where the run has no such score."""
    return record.get(path[0], {}).get(path[1])


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[20])
    parser.add_argument("--no-holdout", action="store_true", help="also train on every digit")
    add_grid_arguments(parser, "mlvae_grid")
    args = parser.parse_args(argv)
    runs = configurations(args)
    if not args.summary_only:
        train_seeds("mlvae", runs, args.seeds, args.runs, args.data, args.jobs)
    lines = [
        f"ML-VAE on MNIST: linear-probe accuracy, mean ± std over seeds {args.seeds}",
        "",
        "| run | " + " | ".join(title for title, _ in SCORES) + " | final loss | training time (s) |",
        "|---|" + "---|" * (len(SCORES) + 2),
    ]
    for name in runs:
        done = finished(args.runs / f"{name}_s{seed}" for seed in args.seeds)
        cells = [
            mean_std([value for r in done if (value := score(r, path)) is not None], digits=3)
            for _, path in SCORES
        ]
        loss = mean_std([r["final_loss"] for r in done], digits=1)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {loss} | {mean_seconds(done)} |")
    table = "\n".join(lines)
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "mlvae.md").write_text(table + "\n")
    print(table)
    return table


if __name__ == "__main__":
    main()
