"""Batches of groups formed from integer labels (digit class, face identity), for group-structured VAEs.

A batch is a list of ``groups_per_batch`` groups with distinct labels; a group is a list of dataset indices
sharing one label. :func:`pad_groups` turns a batch into the padded ``(G, K)`` index and mask tensors that
:class:`pyro_partial.grouped.GroupedVAE` consumes (``x = data[index]``); with ``padded=True`` the sampler
yields those tensors itself, as :class:`pyro_partial.training.DeviceBatches` takes them (the groups are then
the batch's rows, so each of several processes takes whole groups).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from pyro_partial.data.sampling import ResumableBatchSampler


class GroupedBatchSampler(ResumableBatchSampler):
    """Yield batches of groups, each group holding members that share a label.

    Epochs: epoch ``e`` is a fixed sequence of ``len(self)`` batches, a deterministic function of
    ``(seed, e)`` alone. Within an epoch each label's members are visited in a random order (a stream);
    a group takes the next members of its label's stream, and when fewer remain than the group needs,
    the rest of the stream is skipped and a fresh permutation started, so members within a group are
    always distinct. Each batch draws its ``groups_per_batch`` distinct labels without replacement with
    probabilities proportional to the label counts, so that an epoch visits every item about once.

    Iterating resumes where the last iteration stopped; after an epoch's last batch the sampler moves on
    to the next epoch. :meth:`state_dict` / :meth:`load_state_dict` save and restore that position
    exactly; :meth:`set_epoch` jumps to the start of an epoch.

    :param labels: integer labels, shape ``(N,)``.
    :param groups_per_batch: number ``G`` of groups (distinct labels) per batch.
    :param group_size: members per group; the largest size when ``min_group_size`` is given.
    :param min_group_size: if given, each group's size is drawn uniformly from
        ``[min_group_size, group_size]`` (variable-size groups, padded by :func:`pad_groups`).
    :param batches_per_epoch: batches per epoch; defaults to ``N // (groups_per_batch * group_size)``
        (at least 1).
    :param seed: seed of the sampler's randomness.
    :param padded: yield each batch as ``pad_groups(batch)``, a long index tensor and a bool mask of shape
        ``(G, K)``, instead of lists of groups; the batches drawn are the same.
    """

    def __init__(
        self,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        groups_per_batch: int,
        group_size: int,
        *,
        min_group_size: int | None = None,
        batches_per_epoch: int | None = None,
        seed: int = 0,
        padded: bool = False,
    ):
        labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be a 1-D integer array of shape (N,), got {labels.dtype} {labels.shape}"
            )
        values, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if not 1 <= groups_per_batch <= len(values):
            raise ValueError(
                f"groups_per_batch must be between 1 and the number of distinct labels {len(values)}, "
                f"got {groups_per_batch}"
            )
        if min_group_size is not None and not 1 <= min_group_size <= group_size:
            raise ValueError(
                f"min_group_size must be between 1 and group_size={group_size}, got {min_group_size}"
            )
        if group_size < 1 or counts.min() < group_size:
            raise ValueError(
                f"group_size must be between 1 and the smallest label count {counts.min()} "
                f"(label {values[counts.argmin()]}), got {group_size}"
            )
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be positive, got {batches_per_epoch}")
        self.labels = values
        self.members = [np.flatnonzero(inverse == k) for k in range(len(values))]
        self.groups_per_batch = groups_per_batch
        self.group_size = group_size
        self.min_group_size = min_group_size
        self.batches_per_epoch = batches_per_epoch or max(1, len(labels) // (groups_per_batch * group_size))
        self.seed = seed
        self.padded = padded
        self._weights = counts / counts.sum()
        super().__init__()

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _config(self) -> dict:
        return {
            "seed": self.seed,
            "groups_per_batch": self.groups_per_batch,
            "group_size": self.group_size,
            "min_group_size": self.min_group_size,
            "batches_per_epoch": self.batches_per_epoch,
            "label_counts": [len(m) for m in self.members],
        }

    def _epoch_batches(self, epoch: int) -> Iterator[Any]:
        rng = np.random.default_rng([self.seed, epoch])
        streams: list[np.ndarray] = [np.empty(0, dtype=np.int64) for _ in self.members]
        for _ in range(self.batches_per_epoch):
            batch = []
            for k in rng.choice(
                len(self.members), size=self.groups_per_batch, replace=False, p=self._weights
            ):
                size = (
                    self.group_size
                    if self.min_group_size is None
                    else int(rng.integers(self.min_group_size, self.group_size + 1))
                )
                if len(streams[k]) < size:
                    streams[k] = rng.permutation(self.members[k])
                batch.append(streams[k][:size].tolist())
                streams[k] = streams[k][size:]
            yield pad_groups(batch) if self.padded else batch


def pad_groups(groups: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of groups to a rectangle.

    :param groups: ``G`` non-empty lists of dataset indices.
    :returns: ``(index, mask)``, a long tensor and a bool tensor of shape ``(G, K)`` with ``K`` the largest
        group's size. Padding repeats the group's first index (so padded data stay in any likelihood's
        support) and is false in ``mask``.
    """
    if len(groups) == 0 or any(len(group) == 0 for group in groups):
        raise ValueError("groups must be a non-empty list of non-empty groups of indices")
    width = max(len(group) for group in groups)
    index = torch.tensor(
        [list(group) + [group[0]] * (width - len(group)) for group in groups], dtype=torch.long
    )
    mask = torch.tensor([[True] * len(group) + [False] * (width - len(group)) for group in groups])
    return index, mask
