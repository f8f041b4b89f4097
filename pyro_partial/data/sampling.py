"""Batch samplers whose whole state is a position, so training resumes exactly."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any


class ResumableBatchSampler(abc.ABC):
    """Base class of samplers whose batches for an epoch depend only on their configuration and the epoch.

    Subclasses implement ``__len__`` (batches per epoch), ``_epoch_batches(epoch)`` (all batches of an
    epoch, deterministically, e.g. from ``numpy.random.default_rng([seed, epoch])``) and ``_config()``
    (everything the batches depend on). Iterating yields the remaining batches of the current epoch;
    ``state_dict`` holds the position of the next batch, so a restored sampler continues with exactly the
    batches it would have given.
    """

    def __init__(self) -> None:
        self._epoch = 0
        self._batches_done = 0

    @abc.abstractmethod
    def __len__(self) -> int:
        """Batches per epoch."""

    @abc.abstractmethod
    def _epoch_batches(self, epoch: int) -> Iterator[Any]:
        """All batches of ``epoch``, in order."""

    @abc.abstractmethod
    def _config(self) -> dict:
        """The configuration the batches depend on (checked when a state is loaded)."""

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next batch the first one of ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self._epoch, self._batches_done = epoch, 0

    def state_dict(self) -> dict:
        """The position of the next batch together with the configuration it is valid for."""
        return {"epoch": self._epoch, "batches_done": self._batches_done, "config": self._config()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a position saved by :meth:`state_dict` of an identically configured sampler."""
        if state["config"] != self._config():
            raise ValueError(
                f"state was saved by a sampler configured as {state['config']}, not {self._config()}"
            )
        self._epoch, self._batches_done = state["epoch"], state["batches_done"]

    def __iter__(self) -> Iterator[Any]:
        """Yield the remaining batches of the current epoch, advancing the position as they are taken."""
        epoch, start = self._epoch, self._batches_done
        for b, batch in enumerate(self._epoch_batches(epoch)):
            if b < start:
                continue
            if b + 1 == len(self):
                self._epoch, self._batches_done = epoch + 1, 0
            else:
                self._batches_done = b + 1
            yield batch
