"""Training utilities: an SVI epoch loop, atomic checkpoints with exact resumption, run records and their
learning curves."""

from pyro_partial.training.checkpoint import (
    atomic_write,
    load_checkpoint,
    load_trained_module,
    save_checkpoint,
)
from pyro_partial.training.curves import plot_learning_curves
from pyro_partial.training.loop import fit
from pyro_partial.training.records import (
    MetricsCSV,
    add_run_arguments,
    environment,
    parse_recording_command,
    parsed_arguments,
    run_timing,
    write_results,
)

__all__ = [
    "MetricsCSV",
    "atomic_write",
    "add_run_arguments",
    "environment",
    "parse_recording_command",
    "parsed_arguments",
    "plot_learning_curves",
    "run_timing",
    "fit",
    "load_checkpoint",
    "load_trained_module",
    "save_checkpoint",
    "write_results",
]
