"""The training engine on PyTorch Lightning and the one experiment contract.

- :mod:`~pyro_partial.training.module`: :class:`SVIModule`, the ``LightningModule`` training an ELBO module;
- :mod:`~pyro_partial.training.callbacks`: the atomic per-epoch checkpoint, the exact-resume state and a
  linear schedule of an objective's weight;
- :mod:`~pyro_partial.training.checkpoint`: atomic checkpoint writes, ``weights_only`` reads, RNG states as
  tensors;
- :mod:`~pyro_partial.training.loggers`: the resumable ``metrics.csv`` and Lightning's optional loggers;
- :mod:`~pyro_partial.training.batches`: in-memory data on the device, mini-batches from resumable samplers;
- :mod:`~pyro_partial.training.experiment` and :mod:`~pyro_partial.training.runner`: the experiment contract
  and the runner that trains, records, resumes and plots every experiment the same way.
"""

from pyro_partial.training.batches import DeviceBatches, SamplerDataset, gather_rows
from pyro_partial.training.callbacks import EpochCheckpoint, ExactResume, FlushDenormals, LinearSchedule
from pyro_partial.training.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    atomic_write,
    load_checkpoint_file,
)
from pyro_partial.training.experiment import Experiment, Setup
from pyro_partial.training.loggers import RunCSVLogger
from pyro_partial.training.module import NonFiniteLossError, SVIModule
from pyro_partial.training.records import MetricsCSV, environment, write_results
from pyro_partial.training.runner import SettingsChanged, load_trained, plot, train

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "DeviceBatches",
    "EpochCheckpoint",
    "ExactResume",
    "Experiment",
    "FlushDenormals",
    "LinearSchedule",
    "MetricsCSV",
    "NonFiniteLossError",
    "RunCSVLogger",
    "SVIModule",
    "SamplerDataset",
    "SettingsChanged",
    "Setup",
    "atomic_write",
    "environment",
    "gather_rows",
    "load_checkpoint_file",
    "load_trained",
    "plot",
    "train",
    "write_results",
]
