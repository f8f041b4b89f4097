"""Does a learning-rate warm-up keep the semi-supervised classifier q(y|x) alive in its first steps?

Trains the first ``--steps`` optimiser steps of ``pyro-partial train mnist <options>`` (the experiment's own
build, objective and Lightning engine, into a temporary run directory) once for each ``--warmups`` value of
``--lr-warmup-steps``. After every ``--every``-th step it records, on that step's batch: the learning rate,
the loss, q(y|x)'s accuracy on the batch's labelled rows, and the spread of the features q(y|x)'s output layer
reads (their standard deviation across the batch's images, averaged over the units). A spread near 0 means
the classifier reads every image alike: it is dead, whatever its labelled accuracy of the moment. From the
repository root:

    python -m benchmarks.warmup_probe --steps 300 --warmups 0 500 -- --labels 600 --seed 0 --rho 0.2 \\
        --z-dim 50 --lr 1e-3 --network conv

The records are written to ``--out`` (Markdown, and JSON beside it with the command, versions and seed).
Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import lightning
import torch

from benchmarks.scoring import write_records
from pyro_partial.training import Setup, runner
from pyro_partial_models.mnist import MNIST


class ClassifierProbe(lightning.Callback):
    """Records q(y|x)'s state on the batch of every ``every``-th step and stops training after ``steps``.

    :param module: the experiment's SS-VAE or ADGM (its guide's classifier network is ``encoder_y``).
    """

    def __init__(self, module: torch.nn.Module, every: int, steps: int):
        self.module, self.every, self.steps = module, every, steps
        self.rows: list[dict[str, float]] = []
        self.features = torch.empty(0)
        output_layer = [m for m in module.guide.encoder_y.modules() if isinstance(m, torch.nn.Linear)][-1]
        output_layer.register_forward_pre_hook(self.keep_features)

    def keep_features(self, layer: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        """Keep the output layer's input ``(..., B, F)`` of the last call."""
        self.features = inputs[0].detach()

    def on_train_batch_end(
        self, trainer: lightning.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step - 1  # the step just taken, counted from 0
        if step % self.every == 0 or step == self.steps - 1:
            xs, ys, mask = pl_module.batches.gather(batch)
            with torch.no_grad():
                guesses = self.module.guide.class_probs(xs).argmax(-1)
            self.rows.append(
                {
                    "step": step,
                    "lr": trainer.optimizers[0].param_groups[0]["lr"],
                    "loss": float(outputs["loss"]),
                    "labelled_accuracy": (guesses[mask] == ys[mask].argmax(-1)).double().mean().item(),
                    "feature_spread": self.features.std(-2).mean().item(),
                }
            )
        if step == self.steps - 1:
            trainer.should_stop = True


class ProbedMNIST(MNIST):
    """The ``mnist`` experiment with a :class:`ClassifierProbe` among its callbacks."""

    def __init__(self, every: int, steps: int):
        self.every, self.steps = every, steps
        self.probe: ClassifierProbe | None = None

    def build(self, args: argparse.Namespace, data: Any) -> Setup:
        setup = super().build(args, data)
        self.probe = ClassifierProbe(setup.module, self.every, self.steps)
        setup.callbacks.append(self.probe)
        return setup


def probe(options: list[str], warmup: int, steps: int, every: int) -> dict:
    """The probe's rows for ``pyro-partial train mnist <options> --lr-warmup-steps <warmup>``."""
    experiment = ProbedMNIST(every, steps)
    with tempfile.TemporaryDirectory() as run:
        argv = [*options, "--lr-warmup-steps", str(warmup), "--epochs", "1000", "--out", run, "--no-progress"]
        runner.train(experiment, argv)
    return {"warmup": warmup, "rows": experiment.probe.rows}


def table(records: list[dict]) -> str:
    """One row per recorded step and warm-up."""
    lines = [
        "| warm-up steps | step | learning rate | loss | labelled accuracy (batch) | feature spread |",
        "|---|---|---|---|---|---|",
    ]
    for record in records:
        for row in record["rows"]:
            lines.append(
                f"| {record['warmup']} | {row['step']} | {row['lr']:.3g} | {row['loss']:.6g} | "
                f"{row['labelled_accuracy']:.2f} | {row['feature_spread']:.3g} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per run (default 300)")
    parser.add_argument("--every", type=int, default=20, help="record every N-th step (default 20)")
    parser.add_argument(
        "--warmups", type=int, nargs="+", default=[0, 500], help="--lr-warmup-steps values (default 0 500)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the runs' --seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/warmup_probe.md"), help="Markdown table")
    parser.add_argument("options", nargs="*", help="after --: options of pyro-partial train mnist")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.every < 1:
        parser.error(f"--steps and --every must be at least 1, got {args.steps} and {args.every}")
    if "--seed" in args.options:
        parser.error("give the seed as the probe's own --seed, before --")
    torch.set_num_threads(1)
    options = [*args.options, "--seed", str(args.seed)]
    records = [probe(options, warmup, args.steps, args.every) for warmup in args.warmups]
    write_records(args.out, records, table(records), args.seed)


if __name__ == "__main__":
    main()
