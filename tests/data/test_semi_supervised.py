import itertools
import pickle

import numpy as np
import pytest
import torch

from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit, validation_rows
from pyro_partial.infer.supervision import supervision_weights


def _labels(counts=(120, 80, 200, 100)):
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(counts)])
    return np.random.default_rng(0).permutation(labels)


def _batches(sampler, num):
    """The next ``num`` batches, running on into the following epochs as needed."""
    batches = []
    while len(batches) < num:
        batches.extend((i.clone(), m.clone()) for i, m in itertools.islice(iter(sampler), num - len(batches)))
    return batches


def test_split_is_class_balanced_disjoint_and_covers_every_row():
    labels = _labels()
    split = SemiSupervisedSplit(torch.as_tensor(labels), num_labelled=40, seed=3)
    assert split.num_labelled == 40 and split.num_unlabelled == 460
    assert np.bincount(labels[split.labelled.numpy()]).tolist() == [10, 10, 10, 10]
    both = torch.cat([split.labelled, split.unlabelled])
    assert torch.equal(both.sort().values, torch.arange(500))
    assert torch.equal(split.label_mask.nonzero().squeeze(1), split.labelled)
    assert split.labelled.dtype == split.unlabelled.dtype == torch.int64


def test_split_is_fixed_by_the_seed():
    labels = _labels()
    first = SemiSupervisedSplit(labels, 40, seed=3)
    again = SemiSupervisedSplit(labels.tolist(), 40, seed=3)
    other = SemiSupervisedSplit(labels, 40, seed=4)
    assert torch.equal(first.labelled, again.labelled) and torch.equal(first.unlabelled, again.unlabelled)
    assert not torch.equal(first.labelled, other.labelled)


def test_split_draws_uniformly_within_each_class():
    # Two of each class's five rows are labelled: every row is labelled with probability 2/5.
    labels = np.repeat([0, 1], 5)
    hits = sum(SemiSupervisedSplit(labels, 4, seed=s).label_mask.double() for s in range(2000))
    assert torch.allclose(hits / 2000, torch.full((10,), 0.4, dtype=torch.float64), atol=0.04)


def test_split_rejects_bad_input():
    labels = _labels((5, 9, 7))
    with pytest.raises(ValueError, match="multiple of the number of classes 3"):
        SemiSupervisedSplit(labels, 10)
    with pytest.raises(ValueError, match="class 0 has 5 rows, fewer than the 6"):
        SemiSupervisedSplit(labels, 18)
    with pytest.raises(ValueError, match="class 3 has 0 rows"):
        SemiSupervisedSplit(labels, 4, num_classes=4)
    with pytest.raises(ValueError, match="labels must lie in"):
        SemiSupervisedSplit(labels, 2, num_classes=2)
    with pytest.raises(ValueError, match="1-D integer"):
        SemiSupervisedSplit(labels.astype(float), 3)


def test_validation_rows():
    assert validation_rows(60000, 10000, validation=False) == slice(0, 50000)
    assert validation_rows(60000, 10000, validation=True) == slice(50000, 60000)
    assert validation_rows(10, 0, validation=False) == slice(0, 10)
    with pytest.raises(ValueError, match="validation_size=0"):
        validation_rows(10, 0, validation=True)
    with pytest.raises(ValueError, match=r"validation_size must be in \[0, 10\)"):
        validation_rows(10, 10, validation=False)


@pytest.mark.parametrize("rho", [0.05, 0.3, 0.5])
def test_labelled_fraction_matches_rho(rho):
    split = SemiSupervisedSplit(_labels(), 40, seed=0)
    sampler = SemiSupervisedBatchSampler(split, batch_size=32, rho=rho, seed=1)
    # Per epoch: K = round(rho N / (1 - rho)) labelled rows beside the N = 460 unlabelled ones.
    expected_slots = round(rho * 460 / (1 - rho))
    assert sampler.labelled_per_epoch == expected_slots
    assert sampler.rho == pytest.approx(rho, abs=1 / 460)
    batches = _batches(sampler, 20 * len(sampler))
    masks = torch.cat([mask for _, mask in batches])
    assert masks.double().mean().item() == pytest.approx(rho, abs=1 / 460)
    # Per batch the fraction is ρ in expectation: average it over full batches only.
    full = [mask.double().mean() for _, mask in batches if len(mask) == 32]
    assert torch.stack(full).mean().item() == pytest.approx(rho, abs=0.02)


def test_epoch_visits_each_unlabelled_row_once_and_cycles_labelled_rows():
    split = SemiSupervisedSplit(_labels(), 40, seed=0)
    sampler = SemiSupervisedBatchSampler(split, batch_size=50, rho=0.5, seed=2)
    batches = _batches(sampler, len(sampler))
    assert sampler.epoch == 1
    index = torch.cat([i for i, _ in batches])
    mask = torch.cat([m for _, m in batches])
    assert [len(i) for i, _ in batches] == [50] * 18 + [20]  # 460 unlabelled + 460 labelled rows
    assert torch.equal(mask, split.label_mask[index])
    assert torch.equal(index[~mask].sort().values, split.unlabelled)
    # 460 labelled slots filled from whole permutations of the 40 labelled rows: each used 11 or 12 times.
    uses = torch.bincount(index[mask], minlength=500)[split.labelled]
    assert uses.sum() == 460 and set(uses.tolist()) == {11, 12}


def test_natural_rate_is_one_shuffled_pass_over_all_rows():
    split = SemiSupervisedSplit(_labels(), 40, seed=0)
    sampler = SemiSupervisedBatchSampler(split, batch_size=64, seed=0)
    assert sampler.rho == pytest.approx(40 / 500)
    for _ in range(2):
        index = torch.cat([i for i, _ in _batches(sampler, len(sampler))])
        assert torch.equal(index.sort().values, torch.arange(500))
        assert not torch.equal(index, torch.arange(500))


def test_drop_last_and_epochs_differ():
    split = SemiSupervisedSplit(_labels(), 40, seed=0)
    sampler = SemiSupervisedBatchSampler(split, batch_size=64, seed=0, drop_last=True)
    assert len(sampler) == 500 // 64
    first = _batches(sampler, len(sampler))
    second = _batches(sampler, len(sampler))
    assert all(len(i) == 64 for i, _ in first + second)
    assert not torch.equal(first[0][0], second[0][0])
    sampler.set_epoch(0)
    assert torch.equal(_batches(sampler, 1)[0][0], first[0][0])


def test_state_dict_resumes_with_the_identical_continuation():
    split = SemiSupervisedSplit(_labels(), 40, seed=0)

    def make():
        return SemiSupervisedBatchSampler(split, batch_size=48, rho=0.2, seed=7)

    reference = _batches(make(), 3 * len(make()))
    for stop in (0, 5, len(make()) - 1, len(make()) + 2):
        sampler = make()
        _batches(sampler, stop)
        state = pickle.loads(pickle.dumps(sampler.state_dict()))
        resumed = make()
        resumed.load_state_dict(state)
        continuation = _batches(resumed, len(reference) - stop)
        assert all(
            torch.equal(a, c) and torch.equal(b, d)
            for (a, b), (c, d) in zip(reference[stop:], continuation, strict=True)
        )


def test_load_state_dict_rejects_another_configuration():
    split = SemiSupervisedSplit(_labels(), 40, seed=0)
    state = SemiSupervisedBatchSampler(split, batch_size=48, rho=0.2).state_dict()
    with pytest.raises(ValueError, match="configured as"):
        SemiSupervisedBatchSampler(split, batch_size=48, rho=0.3).load_state_dict(state)


def test_sampler_rejects_bad_input():
    split = SemiSupervisedSplit(_labels(), 40, seed=0)
    for rho in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"rho must lie in \(0, 1\)"):
            SemiSupervisedBatchSampler(split, 10, rho=rho)
    with pytest.raises(ValueError, match="gives no labelled row"):
        SemiSupervisedBatchSampler(split, 10, rho=1e-4)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        SemiSupervisedBatchSampler(split, 0)
    with pytest.raises(ValueError, match="exceeds the 500 rows"):
        SemiSupervisedBatchSampler(split, 501, drop_last=True)
    with pytest.raises(ValueError, match="no unlabelled rows"):
        SemiSupervisedBatchSampler(SemiSupervisedSplit(np.repeat([0, 1], 3), 6), 2)


@pytest.mark.parametrize("rho", [0.01, 0.1, 0.5])
def test_labelled_rows_per_epoch_realise_the_supervision_weight_gamma(rho):
    # Summed over an epoch the supervised terms get weight K / M: the γ of ρ = γM / (N + γM).
    split = SemiSupervisedSplit(np.arange(5000) % 10, 100, seed=0)
    sampler = SemiSupervisedBatchSampler(split, batch_size=100, rho=rho)
    gamma, _ = supervision_weights(rho, split.num_labelled, split.num_unlabelled)
    assert sampler.labelled_per_epoch / split.num_labelled == pytest.approx(gamma, abs=0.5 / 100)
