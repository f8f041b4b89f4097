"""How much does flushing subnormal floats to zero (``--flush-denormal``) speed up a training step?

Each trained run (``pyro-partial train mnist`` / ``svhn``) is loaded from its checkpoint and one training step
of its objective (the semi-supervised ELBO's loss at the run's final α and its gradient, on the first
``--batch-size`` test images with every fifth one labelled) is timed ``--repeats`` times with flushing off,
on, and off again, one thread;
the table gives the fastest step of each and the ratio on / off (the slower "off" counts, so drift of a noisy
machine shows as a gap between the two). The loss is computed both ways, so the table also shows what
flushing changes in it. From the repository root:

    python -m benchmarks.flush_denormal_speed --runs runs/mnist_table1/restarts/l100_*_conv

The records are written to ``--out`` (Markdown, and JSON beside it with the command, versions and seed).
Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
import time
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
from pyro_partial_models.semi_supervised_images import semi_supervised_objective

SCHEDULE = (("off", False), ("on", True), ("off again", False))


def time_steps(run: Path, data: Path | None, batch_size: int, repeats: int, seed: int) -> dict:
    """The fastest of ``repeats`` training steps of ``run`` under each setting of :data:`SCHEDULE`, and the
    loss of each."""
    image_experiment, module, config = load_run(run, IMAGE_EXPERIMENTS)
    module.train()
    x, y = image_experiment.load_test(data, download=False)
    if len(x) < batch_size:
        raise ValueError(f"--batch-size {batch_size} exceeds the {len(x)} test images of {run}")
    xs = x[:batch_size]
    ys = torch.nn.functional.one_hot(y[:batch_size], config["model"]["num_classes"]).to(xs.dtype)
    mask = torch.arange(batch_size) % 5 == 0
    arguments = config["arguments"]
    elbo = semi_supervised_objective(arguments["alpha"], arguments["importance_samples"])
    record = {"run": str(run)}
    for name, flush in SCHEDULE:
        torch.set_flush_denormal(flush)
        seconds = []
        for _ in range(repeats):
            torch.manual_seed(seed)  # the same noise in every step, so the losses compare
            module.zero_grad()
            start = time.perf_counter()
            loss = elbo.differentiable_loss(module.model, module.guide, xs, ys, mask)
            loss.backward()
            seconds.append(time.perf_counter() - start)
        record[name] = {"seconds": min(seconds), "loss": loss.item()}
    torch.set_flush_denormal(False)
    record["ratio"] = record["on"]["seconds"] / max(record["off"]["seconds"], record["off again"]["seconds"])
    return record


def table(records: list[dict]) -> str:
    """One row per run: the fastest step off, on and off again, the ratio, and the loss change."""
    lines = [
        "| run | step, off (s) | step, on (s) | step, off again (s) | on / off | loss, off | loss, on − off "
        "|",
        "|---|---|---|---|---|---|---|",
    ]
    for record in records:
        steps = " | ".join(f"{record[name]['seconds']:.3f}" for name, _ in SCHEDULE)
        change = record["on"]["loss"] - record["off"]["loss"]
        lines.append(
            f"| {Path(record['run']).name} | {steps} | {record['ratio']:.2f} | {record['off']['loss']:.6g} | "
            f"{change:+.3g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_scoring_arguments(parser, "flush_denormal_speed")
    parser.add_argument("--batch-size", type=int, default=200, help="images per step (default 200)")
    parser.add_argument("--repeats", type=int, default=4, help="steps timed per setting (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of each step's draws (default 0)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1:
        parser.error(
            f"--batch-size and --repeats must be at least 1, got {args.batch_size} and {args.repeats}"
        )
    check_checkpoints(parser, args.runs)
    torch.set_num_threads(1)
    data = data_root(args.data)
    records = [time_steps(run, data, args.batch_size, args.repeats, args.seed) for run in args.runs]
    write_records(args.out, records, table(records), args.seed)


if __name__ == "__main__":
    main()
