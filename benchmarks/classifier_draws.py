"""How much does a Monte Carlo q(y|x) move a run's test error? The spread over evaluation seeds.

For the ADGM, q(y|x) = E_q(a|x)[q(y|a, x)], and for the ``"paper"`` guide q(y|x) = E_q(z|x)[q(y|x, z)], are
averages over ``--draws`` draws of the other latent, so one checkpoint scores differently from one evaluation
to the next unless the draws are seeded (:func:`pyro_partial_models.semi_supervised_images.predict`). Each
run (``pyro-partial train mnist`` / ``svhn``) is scored on its test images under the evaluation seeds
``0 .. --eval-seeds - 1``; the table gives the mean, standard deviation and range of the error. From the
repository root:

    python -m benchmarks.classifier_draws --eval-seeds 20 --runs runs/mnist_table1/table/l100_*_adgm

The records are written to ``--out`` (Markdown, and JSON beside it with the command, versions and seed).
Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from benchmarks.scoring import (
    IMAGE_EXPERIMENTS,
    add_scoring_arguments,
    check_checkpoints,
    load_run,
    write_records,
)
from pyro_partial.data.paths import data_root
from pyro_partial.metrics import classification_error
from pyro_partial.training import runner
from pyro_partial.training.records import MetricsCSV
from pyro_partial_models.semi_supervised_images import predict


def spread(run: Path, data: Path | None, eval_seeds: int, draws: int) -> dict:
    """The run's test error under each evaluation seed, with ``draws`` draws per image, and its summary."""
    image_experiment, module, _ = load_run(run, IMAGE_EXPERIMENTS)
    x, y = image_experiment.load_test(data, download=False)
    errors = [
        classification_error(predict(module, x, seed=seed, num_samples=draws), y)
        for seed in range(eval_seeds)
    ]
    return {
        "run": str(run),
        "epochs": len(MetricsCSV(run / runner.METRICS).rows),
        "draws": draws,
        "errors": errors,
        "mean": statistics.fmean(errors),
        "std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
    }


def table(records: list[dict]) -> str:
    """The Markdown table of the scored runs (errors in %)."""
    lines = [
        "| run | epochs | draws | evaluation seeds | mean error | std | min | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        low, high = min(r["errors"]), max(r["errors"])
        lines.append(
            f"| {Path(r['run']).name} | {r['epochs']} | {r['draws']} | {len(r['errors'])} | "
            f"{100 * r['mean']:.2f} | {100 * r['std']:.3f} | {100 * low:.2f} | {100 * high:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_scoring_arguments(parser, "classifier_draws")
    parser.add_argument("--eval-seeds", type=int, default=20, help="evaluation seeds 0 .. N-1")
    parser.add_argument("--draws", type=int, default=10, help="draws of a (or z) per image, as in training")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    for option in ("eval_seeds", "draws", "threads"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be positive, got {getattr(args, option)}")
    torch.set_num_threads(args.threads)
    check_checkpoints(parser, args.runs)
    data = data_root(args.data)
    records = [spread(run, data, args.eval_seeds, args.draws) for run in args.runs]
    write_records(args.out, records, table(records), seed=0)


if __name__ == "__main__":
    main()
