"""Mini-batches of in-memory data sets, gathered on the data's device from a resumable batch sampler.

A data set that fits in memory is moved to the training device once (:meth:`DeviceBatches.to`); each step
then receives only the sampler's small index tensors, and :meth:`DeviceBatches.gather` indexes the device
tensors with them, so no batch is collated on the CPU. With several processes (DDP) each rank takes its share
of every global batch (:class:`SamplerDataset`), so a global batch is the same whatever the number of ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from pyro_partial.data.sampling import ResumableBatchSampler

Gather = Callable[[Mapping[str, torch.Tensor], Any], tuple]


def gather_rows(tensors: Mapping[str, torch.Tensor], item: Any) -> tuple:
    """The default gather: ``item`` is ``index`` or ``(index, *extra)``; returns each tensor's rows ``index``
    (in the mapping's order) followed by ``extra`` unchanged."""
    index, *extra = item if isinstance(item, tuple | list) else (item,)
    return (*(tensor[index] for tensor in tensors.values()), *extra)


def shard(item: Any, rank: int, world_size: int) -> Any:
    """Rank ``rank``'s share of one global batch: rows ``rank::world_size`` of every tensor in ``item``."""
    if world_size == 1:
        return item
    if isinstance(item, tuple | list):
        return type(item)(shard(part, rank, world_size) for part in item)
    if torch.is_tensor(item) and item.dim() >= 1:
        return item[rank::world_size]
    return item


class SamplerDataset(IterableDataset):
    """The remaining batches of a :class:`~pyro_partial.data.sampling.ResumableBatchSampler`'s epoch, as an
    iterable data set for a ``DataLoader(batch_size=None)``; rank ``rank`` of ``world_size`` processes gets
    rows ``rank::world_size`` of each global batch."""

    def __init__(self, sampler: ResumableBatchSampler, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        self.sampler, self.rank, self.world_size = sampler, rank, world_size

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        for item in self.sampler:
            yield shard(item, self.rank, self.world_size)


class DeviceBatches:
    """A data set's tensors with the sampler that draws its mini-batches.

    :param sampler: yields one item per mini-batch (e.g. ``(index, is_labelled)``), deterministically from its
        seed and epoch, so that training resumes exactly.
    :param tensors: the whole data set, e.g. ``{"images": (N, D), "labels": (N, C)}``; moved to the training
        device once.
    :param gather: ``(tensors, item) -> arguments of the loss`` (default :func:`gather_rows`).
    """

    def __init__(
        self,
        sampler: ResumableBatchSampler,
        tensors: Mapping[str, torch.Tensor],
        gather: Gather = gather_rows,
    ):
        for name, tensor in tensors.items():
            if not torch.is_tensor(tensor):
                raise TypeError(f"tensors[{name!r}] must be a tensor, got {type(tensor).__name__}")
        self.sampler, self.tensors, self._gather = sampler, dict(tensors), gather

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> DeviceBatches:
        """Move the tensors to ``device`` and their floating-point ones to ``dtype`` (in place); return
        ``self``."""
        self.tensors = {
            name: tensor.to(device, dtype=dtype if dtype is not None and tensor.is_floating_point() else None)
            for name, tensor in self.tensors.items()
        }
        return self

    def gather(self, item: Any) -> tuple:
        """The loss function's arguments for one sampler item, on the tensors' device."""
        if self.tensors:
            item = _to(item, next(iter(self.tensors.values())).device)
        return self._gather(self.tensors, item)

    def loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        """A ``DataLoader`` over the sampler's remaining batches for rank ``rank`` of ``world_size``.

        It has a generator of its own: a ``DataLoader`` draws a worker seed from its generator each time it is
        iterated, which would otherwise advance the global generator at each epoch's start and break exact
        resumption."""
        dataset = SamplerDataset(self.sampler, rank, world_size)
        return DataLoader(dataset, batch_size=None, generator=torch.Generator())


def _to(item: Any, device: torch.device) -> Any:
    if isinstance(item, tuple | list):
        return type(item)(_to(part, device) for part in item)
    return item.to(device) if torch.is_tensor(item) else item
