import pytest
import torch

from pyro_partial.data.grouped_sampler import GroupedBatchSampler
from pyro_partial.grouped import GroupBatches


def test_batches_index_the_data_by_group_and_follow_the_sampler():
    labels = torch.arange(3).repeat_interleave(6)
    data = torch.arange(18.0).unsqueeze(-1) * torch.ones(2)
    sampler = GroupedBatchSampler(labels, groups_per_batch=2, group_size=3, min_group_size=1, seed=0)
    batches = GroupBatches(sampler, data)
    expected = list(GroupedBatchSampler(labels, 2, 3, min_group_size=1, seed=0))
    assert len(batches) == len(expected) == 3
    for (x, mask), groups in zip(batches, expected, strict=True):
        assert x.shape == (2, max(map(len, groups)), 2) and mask.shape == x.shape[:2]
        for g, group in enumerate(groups):
            assert x[g, : len(group), 0].tolist() == [float(i) for i in group]
            assert mask[g].tolist() == [True] * len(group) + [False] * (x.shape[1] - len(group))
            assert (labels[x[g, :, 0].long()] == labels[group[0]]).all()


def test_batches_reject_data_of_another_size():
    sampler = GroupedBatchSampler(torch.arange(2).repeat(3), 1, 2)
    with pytest.raises(ValueError, match=r"data must have shape \(N, \*event\) with N = 6"):
        GroupBatches(sampler, torch.zeros(5, 2))
