"""Siddharth et al.'s Yale B evaluation (section 4.2) as grids of ``pyro-partial train faces`` runs, each
semi-supervised VAE paired by seed with the supervised CNN baseline trained on exactly its labelled faces.
From the repository root:

    python -m benchmarks.faces_grid alpha --alphas 518.5 1555.5 5185 --seeds 0 1 2
    python -m benchmarks.faces_grid full --epochs 150 --seeds 0 1 2

``alpha``: 20% of the labels (``--labels-fraction``), the VAE at each ``--alphas`` (5,185 is the default
H·W / ρ at 32x32 and the natural ρ = 380 / 1,924) for ``--epochs`` (40), the baseline for five times as
many epochs (about as many steps); with ``--enumerate`` each α also trains with the identity summed out
exactly (``vae_a<α>_enum``: 38 decoder passes per unlabelled face instead of one relaxed sample). ``full``:
every label, the VAE and the baseline both for ``--epochs``. ``--size`` resizes the faces (default 32x32;
other sizes end every run name in ``_size<N>``).
Each run lands in ``--runs/<grid>/<name>_s<seed>`` and is never repeated (an interrupted one is resumed).
Prints and writes ``<grid>.md``: mean ± std over seeds of the held-out identity error and light error, the
identity error of the VAE model's own posterior (``test_generative_identity_error``: what the unlabelled faces
teach q(y|x)), and the VAE's identity error minus the baseline's of the same seed (negative: the VAE is
better).
Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from benchmarks.grid import add_grid_arguments, finished, mean_seconds, mean_std, score_cells, train_seeds

DEFAULT_SIZE = 32
SCORES = [
    ("identity error (%)", "test_identity_error", 100),
    ("light error, mean (°)", "test_light_error_deg", 1),
    ("light error, median (°)", "test_light_error_median_deg", 1),
    ("model's posterior: identity error (%)", "test_generative_identity_error", 100),
]


def configurations(args: argparse.Namespace) -> dict[str, list[str]]:
    """Run name → ``pyro-partial train faces`` arguments (without the seed); the baseline is named
    ``baseline`` (each name ends in ``_size<N>`` when ``--size`` is not the default 32)."""
    if args.grid == "alpha":
        common = ["--labels-fraction", str(args.labels_fraction)]
        epochs = ["--epochs", str(args.epochs)]
        runs = {}
        for alpha in args.alphas:
            runs[f"vae_a{alpha:g}"] = [*common, "--alpha", str(alpha), *epochs]
            if args.enumerate:
                runs[f"vae_a{alpha:g}_enum"] = [*common, "--alpha", str(alpha), "--enumerate", *epochs]
        runs["baseline"] = [*common, "--baseline", "--epochs", str(5 * args.epochs)]
    else:
        common = ["--labels-fraction", "1.0", "--epochs", str(args.epochs)]
        runs = {f"vae_e{args.epochs}": common, "baseline": [*common, "--baseline"]}
    if args.size == DEFAULT_SIZE:
        return runs
    return {
        f"{name}_size{args.size}": [*arguments, "--size", str(args.size)] for name, arguments in runs.items()
    }


def baseline_name(args: argparse.Namespace) -> str:
    """The name of the grid's baseline run (without the seed)."""
    return "baseline" if args.size == DEFAULT_SIZE else f"baseline_size{args.size}"


def paired_difference(vae: Sequence[dict], baseline: Sequence[dict]) -> str:
    """Mean ± std over seeds of the VAE's identity error minus the baseline's, in points."""
    by_seed = {r["seed"]: r["test_identity_error"] for r in baseline}
    differences = [100 * (r["test_identity_error"] - by_seed[r["seed"]]) for r in vae if r["seed"] in by_seed]
    if len(differences) < 2:
        return mean_std(differences, digits=1)
    mean, std = statistics.fmean(differences), statistics.stdev(differences)
    return f"{mean:+.1f} ± {std:.1f} (n={len(differences)})"


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("grid", choices=("alpha", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alphas", type=float, nargs="+", default=[518.5, 1555.5, 5185.0])
    parser.add_argument("--labels-fraction", type=float, default=0.2, help="alpha: labelled faces")
    parser.add_argument("--epochs", type=int, default=40, help="VAE epochs (alpha: the baseline gets 5x)")
    parser.add_argument(
        "--enumerate", action="store_true", help="alpha: each α also with the identity summed out exactly"
    )
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="faces resized to SIZE x SIZE")
    add_grid_arguments(parser, "faces_grid")
    args = parser.parse_args(argv)
    runs = configurations(args)
    grid = args.runs / args.grid
    if not args.summary_only:
        train_seeds("faces", runs, args.seeds, grid, args.data, args.jobs)
    baseline = finished(grid / f"{baseline_name(args)}_s{seed}" for seed in args.seeds)
    lines = [
        f"Yale B held-out scores ({args.grid} grid), mean ± std over seeds {args.seeds}",
        "",
        "| run | "
        + " | ".join(title for title, _, _ in SCORES)
        + " | identity error − baseline's, same seed (points) | training time per run (s) |",
        "|---|" + "---|" * (len(SCORES) + 2),
    ]
    for name in runs:
        done = finished(grid / f"{name}_s{seed}" for seed in args.seeds)
        paired = "" if name == baseline_name(args) else paired_difference(done, baseline)
        cells = " | ".join(score_cells(done, SCORES))
        lines.append(f"| {name} | {cells} | {paired} | {mean_seconds(done)} |")
    table = "\n".join(lines)
    grid.mkdir(parents=True, exist_ok=True)
    (grid / f"{args.grid}.md").write_text(table + "\n")
    print(table)
    return table


if __name__ == "__main__":
    main()
