"""The callbacks the training engine adds to Lightning: an atomic checkpoint after each epoch, and the state
Lightning's checkpoints lack for an exact resume."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning
from lightning.pytorch.callbacks import Checkpoint

from pyro_partial.training.batches import DeviceBatches
from pyro_partial.training.checkpoint import rng_state, set_rng_state


class EpochCheckpoint(Checkpoint):
    """Writes ``path`` at the end of every training epoch, after the epoch's evaluation (Lightning runs
    checkpoint callbacks after the module's ``on_train_epoch_end``), through the trainer's checkpoint I/O
    (:class:`~pyro_partial.training.checkpoint.AtomicCheckpointIO`: atomic)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Save the full checkpoint (modules, optimiser, loops and callbacks' state) to ``path``."""
        trainer.save_checkpoint(self.path, weights_only=False)  # with the optimiser and callbacks' state


class ExactResume(lightning.Callback):
    """Checkpoints the random number generators (Python, NumPy, torch CPU and CUDA) and the sampler's
    position, and restores them when training resumes, so that the resumed run draws the same batches and the
    same noise as an uninterrupted one. Lightning restores the modules, optimiser and loop counters itself."""

    def __init__(self, batches: DeviceBatches):
        self.batches = batches
        self._restored: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The generators' states (``"rng"``) and the sampler's position (``"sampler"``) to checkpoint."""
        return {"rng": rng_state(), "sampler": self.batches.sampler.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the sampler's position now, and keep the generators' states for :meth:`on_train_start`."""
        self.batches.sampler.load_state_dict(state_dict["sampler"])
        self._restored = state_dict

    def on_train_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Restore the generators' states of a resumed checkpoint, once, just before training starts."""
        if self._restored is not None:
            set_rng_state(self._restored["rng"])
            self._restored = None
