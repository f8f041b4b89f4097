"""Siddharth et al.'s Multi-MNIST evaluation (section 4.3): count accuracy against the number of labelled
canvases, and the digits read by a nested MNIST model, as a grid of ``pyro-partial train multi_mnist`` runs.
From the repository root:

    python -m benchmarks.multi_mnist_grid --labelled 20 100 1000 --seeds 0 1 2 \\
        --nested-mnist runs/mnist_table1/table/l3000_r0.05_s0

    python -m benchmarks.multi_mnist_grid --labelled 1000 --seeds 0 1 2 --refine-steps 50 \\
        --alpha-where 250 --long-epochs 12

    python -m benchmarks.multi_mnist_grid --labelled 1000 --seeds 0 1 2 --long-epochs 24 \\
        --refine-steps 50 --search-radius 2 --jobs 3

    python -m benchmarks.multi_mnist_grid --labelled 1000 --seeds 0 1 2 --long-epochs 24 \\
        --glimpse-jitter 2 --refine-steps 50 --search-radius 2 --jobs 3

Runs (every seed): a new digit model at each ``--labelled`` count (``l<m>``); with ``--nested-mnist``, also
the SSVAE of that ``pyro-partial train mnist`` run nested at ``--nested-labelled`` canvases, frozen and
fine-tuned (``--finetune-nested``); for each ``--alpha-where`` weight, a new digit model at each count with
that weight on the windows' term (``l<m>_where<A>``); for each ``--long-epochs`` E, one trained for E
epochs (``l<m>_e<E>``). With ``--glimpse-jitter J`` every run trains its digit classifier on labelled
glimpses jittered by up to J pixels (names gain ``_jitter<J>``). With ``--refine-steps N`` every run also
refines its test windows by N steps of rate ``--refine-lr`` after training (names gain ``_refine<N>``), and
with ``--search-radius R`` moves them by the glimpse search within R pixels (names end in ``_search<R>``).
Each run lands in
``--runs/<name>_s<seed>`` and is never repeated (an interrupted one is resumed). Prints and writes
``multi_mnist.md``: mean ± std over seeds of the test scores of the ``multi_mnist`` experiment (matched =
each true digit against the inferred step whose centre is closest; true windows = the digits read through
the true windows; refined = after the window refinement; searched = after the glimpse search).
Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.grid import add_grid_arguments, finished, mean_seconds, score_cells, train_seeds

SCORES = [
    ("count accuracy (%)", "test_count_accuracy", 100),
    ("digit accuracy, left to right (%)", "test_digit_accuracy", 100),
    ("digit accuracy, matched (%)", "test_matched_digit_accuracy", 100),
    ("canvas accuracy (%)", "test_canvas_accuracy", 100),
    ("centre error, matched (px)", "test_matched_position_error_px", 1),
]
WINDOWS = [
    ("digit accuracy, matched (%)", "test_matched_digit_accuracy", 100),
    ("digit accuracy, matched, refined (%)", "test_refined_matched_digit_accuracy", 100),
    ("digit accuracy, true windows (%)", "test_true_window_digit_accuracy", 100),
    ("centre error, matched (px)", "test_matched_position_error_px", 1),
    ("centre error, matched, refined (px)", "test_refined_matched_position_error_px", 1),
    ("refinement time per run (s)", "test_refine_seconds", 1),
    ("digit accuracy, matched, searched (%)", "test_searched_matched_digit_accuracy", 100),
    ("centre error, matched, searched (px)", "test_searched_matched_position_error_px", 1),
    ("search time per run (s)", "test_search_seconds", 1),
]
"""The second table's columns: the windows' share of the digit accuracy (runs without the scores show
"—")."""


def configurations(args: argparse.Namespace) -> dict[str, list[str]]:
    """Run name → ``pyro-partial train multi_mnist`` arguments (without the seed)."""
    runs = {f"l{m}": ["--labelled-canvases", str(m)] for m in args.labelled}
    if args.nested_mnist is not None:
        nested = ["--labelled-canvases", str(args.nested_labelled), "--nested-mnist", str(args.nested_mnist)]
        runs[f"nested_l{args.nested_labelled}"] = nested
        runs[f"finetuned_l{args.nested_labelled}"] = [*nested, "--finetune-nested"]
    for m in args.labelled:
        for weight in args.alpha_where:
            runs[f"l{m}_where{weight:g}"] = ["--labelled-canvases", str(m), "--alpha-where", f"{weight:g}"]
        for epochs in args.long_epochs:
            runs[f"l{m}_e{epochs}"] = ["--labelled-canvases", str(m), "--epochs", str(epochs)]
    if args.glimpse_jitter > 0:
        runs = extended(
            runs, f"_jitter{args.glimpse_jitter:g}", ["--glimpse-jitter", f"{args.glimpse_jitter:g}"]
        )
    if args.refine_steps > 0:
        refine = ["--refine-steps", str(args.refine_steps), "--refine-lr", f"{args.refine_lr:g}"]
        runs = extended(runs, f"_refine{args.refine_steps}", refine)
    if args.search_radius > 0:
        runs = extended(runs, f"_search{args.search_radius}", ["--search-radius", str(args.search_radius)])
    return runs


def extended(runs: dict[str, list[str]], suffix: str, arguments: list[str]) -> dict[str, list[str]]:
    """Every run of ``runs`` (name → arguments) with ``suffix`` added to its name and ``arguments`` to its
    arguments."""
    return {f"{name}{suffix}": [*options, *arguments] for name, options in runs.items()}


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labelled", type=int, nargs="+", default=[20, 100, 1000], help="labelled canvases")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--nested-mnist", type=Path, default=None, help="run directory of an mnist run")
    parser.add_argument(
        "--nested-labelled", type=int, default=100, help="labelled canvases of the nested runs"
    )
    parser.add_argument(
        "--alpha-where",
        type=float,
        nargs="*",
        default=[],
        help="window weights of extra runs (--alpha-where)",
    )
    parser.add_argument("--long-epochs", type=int, nargs="*", default=[], help="epochs of extra, longer runs")
    parser.add_argument(
        "--refine-steps", type=int, default=0, help="test-time window refinement steps of every run (0: off)"
    )
    parser.add_argument("--refine-lr", type=float, default=0.05, help="learning rate of the refinement")
    parser.add_argument(
        "--glimpse-jitter", type=float, default=0.0, help="jitter of the classifier's glimpses (0: off)"
    )
    parser.add_argument(
        "--search-radius", type=int, default=0, help="test-time glimpse search radius of every run (0: off)"
    )
    add_grid_arguments(parser, "multi_mnist_grid")
    args = parser.parse_args(argv)
    runs = configurations(args)
    if not args.summary_only:
        train_seeds("multi_mnist", runs, args.seeds, args.runs, args.data, args.jobs)
    lines = [
        f"Multi-MNIST test scores, mean ± std over seeds {args.seeds}",
        "",
        "| run | " + " | ".join(title for title, _, _ in SCORES) + " | training time per run (s) |",
        "|---|" + "---|" * (len(SCORES) + 1),
    ]
    done = {name: finished(args.runs / f"{name}_s{seed}" for seed in args.seeds) for name in runs}
    for name in runs:
        lines.append(
            f"| {name} | " + " | ".join(score_cells(done[name], SCORES)) + f" | {mean_seconds(done[name])} |"
        )
    lines += [
        "",
        "Windows: digits read through the inferred windows, the refined ones, the true ones and the searched "
        "ones",
        "",
        "| run | " + " | ".join(title for title, _, _ in WINDOWS) + " |",
        "|---|" + "---|" * len(WINDOWS),
        *(f"| {name} | " + " | ".join(score_cells(done[name], WINDOWS)) + " |" for name in runs),
    ]
    table = "\n".join(lines)
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "multi_mnist.md").write_text(table + "\n")
    print(table)
    return table


if __name__ == "__main__":
    main()
