"""In-memory batches: gathered on the data's device, sharded across ranks, each global batch kept whole."""

import torch

from pyro_partial.data.sampling import ShuffledBatchSampler
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
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
    shares = []
    for rank in (0, 1):
        sampler.set_epoch(0)
        shares.append(list(SamplerDataset(sampler, rank, 2)))
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


def test_semi_supervised_batches_sharded_over_ranks_keep_the_epoch_and_the_supervision_rate():
    labels = torch.arange(300) % 10
    split = SemiSupervisedSplit(labels, 30, seed=0, num_classes=10)
    sampler = SemiSupervisedBatchSampler(split, 40, rho=0.2, seed=0)
    global_batches = list(sampler)
    shares = []
    for rank in (0, 1):
        sampler.set_epoch(0)
        shares.append(list(SamplerDataset(sampler, rank, 2)))
    seen = torch.cat([index[~flag] for share in shares for index, flag in share])
    assert sorted(seen.tolist()) == split.unlabelled.tolist()  # every unlabelled row once per epoch
    labelled = torch.cat([index[flag] for share in shares for index, flag in share])
    assert set(labelled.tolist()) <= set(split.labelled.tolist())  # the one labelled subset, on every rank
    for (_, flag), part0, part1 in zip(global_batches, *shares, strict=True):
        assert int(part0[1].sum() + part1[1].sum()) == int(flag.sum())  # ρ holds per global batch
    assert abs(sum(int(f.sum()) for _, f in global_batches) / 340 - 0.2) < 0.01


def test_a_sharded_sampler_resumes_where_it_stopped():
    split = SemiSupervisedSplit(torch.arange(200) % 10, 20, seed=0, num_classes=10)
    sampler = SemiSupervisedBatchSampler(split, 30, seed=1)
    shard_of_rank1 = SamplerDataset(sampler, 1, 2)
    iterator = iter(shard_of_rank1)
    first = [next(iterator) for _ in range(3)]
    state = sampler.state_dict()
    rest = list(iterator)
    resumed = SemiSupervisedBatchSampler(split, 30, seed=1)
    resumed.load_state_dict(state)
    again = list(SamplerDataset(resumed, 1, 2))
    assert len(first) + len(rest) == len(sampler)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(rest, again, strict=True))
