"""The callbacks the training engine adds to Lightning: an atomic checkpoint after each epoch, the state
Lightning's checkpoints lack for an exact resume, a linear schedule of an objective's weight, and flushing
subnormal floats to zero on the CPU."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning
import torch
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


class LinearSchedule(lightning.Callback):
    r"""Sets ``target.<attribute>`` at the start of every training epoch: ``start`` at epoch 0, moving
    linearly to ``end`` at epoch ``epochs`` and ``end`` from then on, e.g. the classifier weight
    :math:`\alpha` of a :class:`~pyro_partial.infer.SemiSupervisedELBO`
    (``LinearSchedule(elbo, "alpha", start=500.0, end=50.0, epochs=10)``).

    The value depends on the epoch alone, so a resumed run (which starts at an epoch's beginning) sets the
    same weights as an uninterrupted one.

    :param target: the object whose attribute is set, e.g. the ELBO.
    :param attribute: the name of a float attribute of ``target``.
    :param start: the value at epoch 0 (finite).
    :param end: the value at epoch ``epochs`` and after (finite).
    :param epochs: the length of the ramp, at least 1 epoch.
    """

    def __init__(self, target: object, attribute: str, *, start: float, end: float, epochs: int):
        if not hasattr(target, attribute):
            raise AttributeError(f"LinearSchedule: {type(target).__name__} has no attribute {attribute!r}")
        for name, value in (("start", start), ("end", end)):
            if not math.isfinite(value):
                raise ValueError(f"LinearSchedule of {attribute!r}: {name} must be finite, got {value}")
        if epochs < 1:
            raise ValueError(f"LinearSchedule of {attribute!r}: epochs must be at least 1, got {epochs}")
        self.target = target
        self.attribute = attribute
        self.start = float(start)
        self.end = float(end)
        self.epochs = int(epochs)

    def value(self, epoch: int) -> float:
        """The value during (0-based) ``epoch``."""
        fraction = min(epoch / self.epochs, 1.0)
        return self.start + fraction * (self.end - self.start)

    def on_train_epoch_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Set the attribute to :meth:`value` of the epoch about to be trained."""
        setattr(self.target, self.attribute, self.value(trainer.current_epoch))


class FlushDenormals(lightning.Callback):
    """Flushes subnormal floats to zero on the CPU (``torch.set_flush_denormal(True)``) while the trainer
    runs, and stops at its teardown.

    Subnormals (magnitudes below ``torch.finfo(dtype).tiny``) take the CPU's slow path in every arithmetic
    operation; activations and gradients that underflow into them slow a training step down without moving
    the loss. Flushing changes the computed values only below ``tiny``. The setting is the process's (torch
    has no getter to restore a previous value), so teardown returns it to torch's default, off; CUDA
    devices are unaffected.

    :raises RuntimeError: at setup, on a CPU that cannot flush (torch supports x86 with SSE3 and AArch64).
    """

    def setup(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, stage: str) -> None:
        """Turn flushing on, or raise where this CPU cannot."""
        if not torch.set_flush_denormal(True):
            raise RuntimeError(
                "--flush-denormal: this CPU cannot flush subnormal floats to zero "
                "(torch.set_flush_denormal supports x86 with SSE3 and AArch64)"
            )

    def teardown(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, stage: str) -> None:
        """Turn flushing off again (torch's default)."""
        torch.set_flush_denormal(False)
