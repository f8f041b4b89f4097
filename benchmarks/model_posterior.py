"""Rescore trained runs with the model's own posterior: is q(y|x) wrong, or the generative model itself?

For each run directory (``pyro-partial train mnist`` / ``svhn`` of either model, or ``faces`` of the VAE),
the held-out test images are classified twice: by q(y|x)'s most probable class and by the model's posterior
argmax_y p(y|x), each class's evidence estimated with ``--particles`` importance samples of the guide's other
latent variables, drawn at once in a particle plate (``--sequential-particles``: one after another, as the
scores in ``docs/results.md`` before 2026-12-04 were computed; the same estimator, other random numbers)
(:func:`pyro_partial.infer.log_evidence.most_probable_class`). When the model's posterior is
far better, the classifier network is what fails (the unlabelled term could still teach it); when both err
alike, the errors are in the generative model itself, and no change to the classifier will remove them.
From the repository root:

    python -m benchmarks.model_posterior --particles 10 --runs runs/mnist_table1/restarts/l100_*

Each run's scores are kept in ``<run>/model_posterior_k<K>_s<seed>.json`` and recomputed only once the run
has trained on (its checkpoint changed; a run stopped before its last epoch is scored at its checkpoint); the
table (epochs trained, error of each, its largest confusion, seconds) is printed and written to ``--out``.
Data: ``--data`` or ``$PYRO_PARTIAL_DATA``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import pyro
import torch

from benchmarks.scoring import (
    IMAGE_EXPERIMENTS,
    add_scoring_arguments,
    check_checkpoints,
    load_run,
    write_records,
)
from pyro_partial.data.paths import data_root
from pyro_partial.metrics import classification_error, confusion_counts, largest_confusion
from pyro_partial.training import runner
from pyro_partial.training.records import MetricsCSV, write_results
from pyro_partial_models.faces_data import load_faces
from pyro_partial_models.faces_evaluation import generative_identity
from pyro_partial_models.semi_supervised_images import model_posterior_predict, predict


def classify(
    run: Path, data: Path | None, particles: int, vectorize: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The test labels ``(N,)``, q(y|x)'s classes and the model posterior's classes for a run, its
    ``particles`` draws at once when ``vectorize``."""
    image_experiment, module, config = load_run(run, (*IMAGE_EXPERIMENTS, "faces"))
    if image_experiment.name in IMAGE_EXPERIMENTS:
        x, y = image_experiment.load_test(data, download=False)
        return (
            y,
            predict(module, x),
            model_posterior_predict(module, x, particles, vectorize_particles=vectorize),
        )
    arguments = config["arguments"]
    if arguments["baseline"]:
        raise ValueError(f"{run}: a run of the faces baseline, which has no generative model")
    faces = load_faces(data, arguments["size"], arguments["test_fraction"], arguments["split_seed"])
    x, y = faces.test_x, faces.test_subject
    return y, module.predict(x)[0], generative_identity(module, x, particles, vectorize_particles=vectorize)


def score(run: Path, data: Path | None, particles: int, seed: int, vectorize: bool = True) -> dict:
    """The run's cached scores, computed (and cached) when missing, when the run has trained on since (its
    checkpoint changed) or when they were drawn the other way (``vectorize``; records without the key
    were drawn one after another)."""
    path = run / f"model_posterior_k{particles}_s{seed}.json"
    trained = hashlib.sha256((run / runner.CHECKPOINT).read_bytes()).hexdigest()
    if path.is_file():
        record = json.loads(path.read_text())
        same_draws = record.get("vectorize_particles", False) == vectorize
        if record.get("checkpoint_sha256") == trained and same_draws:
            return record
    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    labels, guide_classes, model_classes = classify(run, data, particles, vectorize)
    num_classes = int(labels.max()) + 1
    epochs = len(MetricsCSV(run / runner.METRICS).rows)
    record = {
        "run": str(run),
        "epochs": epochs,
        "particles": particles,
        "vectorize_particles": vectorize,
        "checkpoint_sha256": trained,
    }
    for key, classes in (("guide", guide_classes), ("model", model_classes)):
        counts = confusion_counts(classes, labels, num_classes)
        true, predicted = largest_confusion(counts)
        record[f"{key}_error"] = classification_error(classes, labels)
        record[f"{key}_largest_confusion"] = [true, predicted, int(counts[true, predicted])]
    record["seconds"] = time.perf_counter() - start
    return write_results(path, record, seed)


def table(records: list[dict]) -> str:
    """The Markdown table of the scored runs."""
    lines = [
        "| run | epochs | q(y\\|x): error (%) | model's posterior: error (%) | q's largest confusion "
        "| model's largest confusion | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        confusions = ["{} → {} ({})".format(*r[f"{key}_largest_confusion"]) for key in ("guide", "model")]
        lines.append(
            f"| {Path(r['run']).name} | {r['epochs']} | {100 * r['guide_error']:.2f} | "
            f"{100 * r['model_error']:.2f} | {confusions[0]} | {confusions[1]} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_scoring_arguments(parser, "model_posterior")
    parser.add_argument("--particles", type=int, default=10, help="importance samples per class (K)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the importance samples")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--sequential-particles",
        action="store_true",
        help="draw the particles one after another (slower; the earlier scores' random numbers)",
    )
    args = parser.parse_args(argv)
    for option in ("particles", "threads"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be positive, got {getattr(args, option)}")
    torch.set_num_threads(args.threads)
    check_checkpoints(parser, args.runs)
    data = data_root(args.data)
    vectorize = not args.sequential_particles
    records = [score(run, data, args.particles, args.seed, vectorize) for run in args.runs]
    write_records(args.out, records, table(records), args.seed)


if __name__ == "__main__":
    main()
