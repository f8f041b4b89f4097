"""Batch samplers whose whole state is a position, so training resumes exactly."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


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


class ShuffledBatchSampler(ResumableBatchSampler):
    """Batches of the rows ``rows``, reshuffled every epoch from ``numpy.random.default_rng([seed, epoch])``.

    Yields index tensors of shape ``(B,)`` (the last batch smaller unless ``drop_last``), or, with
    ``labelled=True``, ``(index, is_labelled)`` pairs whose flags are all true (for a fully labelled training
    set in a semi-supervised pipeline).

    :param rows: int64 row indices ``(M,)``, or the number of rows ``M`` (then ``0 .. M - 1``).
    :param batch_size: rows per batch; a batch size above ``M`` gives one batch of all the rows.
    :param seed: seed of the order.
    :param drop_last: drop each epoch's last batch when it is smaller than ``batch_size``.
    :param labelled: yield ``(index, is_labelled)`` pairs instead of index tensors.
    """

    def __init__(
        self,
        rows: torch.Tensor | int,
        batch_size: int,
        *,
        seed: int = 0,
        drop_last: bool = False,
        labelled: bool = False,
    ):
        rows = torch.arange(rows) if isinstance(rows, int) else rows
        if rows.dim() != 1 or len(rows) == 0:
            raise ValueError(f"rows must be a non-empty index tensor of shape (M,), got {tuple(rows.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.rows, self.seed, self.drop_last, self.labelled = rows, seed, drop_last, labelled
        self.batch_size = min(batch_size, len(rows))
        super().__init__()

    def __len__(self) -> int:
        full, rest = divmod(len(self.rows), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _config(self) -> dict:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "num_rows": len(self.rows),
            "drop_last": self.drop_last,
        }

    def _epoch_batches(self, epoch: int) -> Iterator[Any]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
        for batch in self.rows[torch.from_numpy(order)].split(self.batch_size)[: len(self)]:
            yield (batch, torch.ones(len(batch), dtype=torch.bool)) if self.labelled else batch
