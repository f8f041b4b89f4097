"""Mini-batches of groups for :class:`~pyro_partial.grouped.GroupedVAE`, gathered on the data's device."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch

from pyro_partial.data.grouped_sampler import GroupedBatchSampler
from pyro_partial.training.batches import DeviceBatches


def gather_groups(
    tensors: Mapping[str, torch.Tensor], item: tuple[torch.Tensor, torch.Tensor], num_groups: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The loss arguments ``(x, mask, num_groups)`` of one batch ``item = (index, mask)``, each ``(G, K)``:
    ``x = tensors["data"][index]`` of shape ``(G, K, *event)``."""
    index, mask = item
    return tensors["data"][index], mask, num_groups


def group_batches(sampler: GroupedBatchSampler, data: torch.Tensor) -> DeviceBatches:
    """The batches of ``sampler`` over ``data``, as the loss arguments ``(x, mask, num_groups)`` of a
    :class:`~pyro_partial.grouped.GroupedVAE`.

    The sampler yields only the padded group indices ``(index, mask)``, each ``(G, K)``
    (:func:`~pyro_partial.data.grouped_sampler.pad_groups`); ``data`` stays on its device (moved there once,
    :meth:`~pyro_partial.training.DeviceBatches.to`) and each batch is gathered there as
    ``x = data[index]`` of shape ``(G, K, *event)``, with ``mask`` ``(G, K)`` true at present members.
    ``num_groups`` is the sampler's ``G``: a process holding a share of the batch's groups (DDP) normalises
    its loss by the whole batch's groups, so the shares' losses add up to the batch's.

    :param sampler: a :class:`~pyro_partial.data.grouped_sampler.GroupedBatchSampler` with ``padded=True``
        over the labels of ``data``'s items.
    :param data: all items, shape ``(N, *event)``.
    """
    if not sampler.padded:
        raise ValueError("sampler must yield padded (index, mask) batches: build it with padded=True")
    num_items = sum(len(members) for members in sampler.members)
    if data.dim() < 1 or len(data) != num_items:
        raise ValueError(
            f"data must have shape (N, *event) with N = {num_items} items as the sampler's labels, "
            f"got {tuple(data.shape)}"
        )
    return DeviceBatches(sampler, {"data": data}, partial(gather_groups, num_groups=sampler.groups_per_batch))
