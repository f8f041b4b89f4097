"""An epoch's batches of groups as ``svi.step`` arguments for :class:`~pyro_partial.grouped.GroupedVAE`."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups


class GroupBatches:
    """The remaining batches of ``sampler``'s current epoch as ``(x, mask)`` tuples.

    ``x = data[index]`` has shape ``(G, K, *event)`` and ``mask`` ``(G, K)``, with ``(index, mask)`` from
    :func:`~pyro_partial.data.grouped_sampler.pad_groups`. Use as the ``epoch_batches`` of
    :func:`pyro_partial.training.fit`::

        def epoch_batches(epoch):
            sampler.set_epoch(epoch)
            return GroupBatches(sampler, data)

    :param sampler: yields batches of groups of indices into ``data``.
    :param data: all items, shape ``(N, *event)``.
    """

    def __init__(self, sampler: GroupedBatchSampler, data: torch.Tensor):
        if data.dim() < 1 or len(data) != sum(len(members) for members in sampler.members):
            raise ValueError(
                f"data must have shape (N, *event) with N = {sum(len(m) for m in sampler.members)} items "
                f"as the sampler's labels, got {tuple(data.shape)}"
            )
        self.sampler, self.data = sampler, data

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for groups in self.sampler:
            index, mask = pad_groups(groups)
            yield self.data[index], mask
