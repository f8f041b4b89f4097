import pytest
import torch

from pyro_partial.data.grouped_sampler import GroupedBatchSampler
from pyro_partial.grouped import group_batches


def test_batches_index_the_data_by_group_and_follow_the_sampler():
    labels = torch.arange(3).repeat_interleave(6)
    data = torch.arange(18.0).unsqueeze(-1) * torch.ones(2)
    sampler = GroupedBatchSampler(labels, 2, 3, min_group_size=1, seed=0, padded=True)
    batches = group_batches(sampler, data)
    expected = list(GroupedBatchSampler(labels, 2, 3, min_group_size=1, seed=0))
    items = list(batches.sampler)
    assert len(items) == len(expected) == 3
    for item, groups in zip(items, expected, strict=True):
        x, mask, num_groups = batches.gather(item)
        assert num_groups == 2
        assert x.shape == (2, max(map(len, groups)), 2) and mask.shape == x.shape[:2]
        for g, group in enumerate(groups):
            assert x[g, : len(group), 0].tolist() == [float(i) for i in group]
            assert mask[g].tolist() == [True] * len(group) + [False] * (x.shape[1] - len(group))
            assert (labels[x[g, :, 0].long()] == labels[group[0]]).all()


def test_batches_of_several_processes_are_whole_groups():
    # under DDP rank r of 2 takes rows r::2 of each global batch: here groups 0, 2 and groups 1, 3
    labels = torch.arange(4).repeat_interleave(5)
    data = torch.arange(20.0).unsqueeze(-1)
    batches = group_batches(GroupedBatchSampler(labels, 4, 3, seed=1, padded=True), data)
    x, mask, _ = batches.gather(next(iter(batches.sampler)))
    assert x.shape == (4, 3, 1)
    for rank in range(2):
        batches.sampler.set_epoch(0)
        share_x, share_mask, num_groups = batches.gather(next(iter(batches.loader(rank, world_size=2))))
        assert torch.equal(share_x, x[rank::2]) and torch.equal(share_mask, mask[rank::2])
        assert num_groups == 4  # each share's loss is normalised by the whole batch's groups


def test_batches_reject_data_of_another_size_and_unpadded_samplers():
    labels = torch.arange(2).repeat(3)
    with pytest.raises(ValueError, match=r"data must have shape \(N, \*event\) with N = 6 .* got \(5, 2\)"):
        group_batches(GroupedBatchSampler(labels, 1, 2, padded=True), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="sampler must yield padded"):
        group_batches(GroupedBatchSampler(labels, 1, 2), torch.zeros(6, 2))
