"""In-memory batches: gathered on the data's device, sharded across ranks, each global batch kept whole."""

import torch

from pyro_partial.data.sampling import ShuffledBatchSampler
from pyro_partial.training.batches import DeviceBatches, SamplerDataset, gather_rows, shard


def test_the_default_gather_indexes_every_tensor_and_passes_the_rest():
    tensors = {"x": torch.arange(10.0), "y": torch.arange(10) * 2}
    index = torch.tensor([3, 1])
    x, y, flag = gather_rows(tensors, (index, torch.tensor([True, False])))
    assert x.tolist() == [3.0, 1.0] and y.tolist() == [6, 2] and flag.tolist() == [True, False]
    (x, y) = gather_rows(tensors, index)
    assert x.tolist() == [3.0, 1.0]


def test_ranks_share_every_global_batch_between_them():
    sampler = ShuffledBatchSampler(10, 4, seed=0, labelled=True)
    global_batches = [index for index, _ in sampler]
    sampler.set_epoch(0)
    shares = [list(SamplerDataset(sampler, rank, 2)) for rank in (0, 1)]
    for rank in (0, 1):
        sampler.set_epoch(0)
        shares[rank] = list(SamplerDataset(sampler, rank, 2))
    assert len(shares[0]) == len(shares[1]) == len(global_batches) == 3
    for whole, part0, part1 in zip(global_batches, *shares, strict=True):
        assert sorted(torch.cat([part0[0], part1[0]]).tolist()) == sorted(whole.tolist())
        assert part0[0].tolist() == whole[0::2].tolist() and part1[1].all()
    assert shard(("not a tensor", torch.arange(4)), 1, 2)[1].tolist() == [1, 3]


def test_data_moves_to_the_device_once_and_batches_follow_it():
    batches = DeviceBatches(ShuffledBatchSampler(6, 3), {"x": torch.arange(6.0)})
    assert batches.to("meta") is batches and batches.tensors["x"].device.type == "meta"
    (x,) = batches.gather(torch.tensor([0, 2]))
    assert x.device.type == "meta" and x.shape == (2,)
