import itertools

import numpy as np
import pytest
import torch

from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups


def _labels(counts=(30, 20, 40, 10)):
    labels = np.concatenate([np.full(n, 10 * k) for k, n in enumerate(counts)])
    return np.random.default_rng(0).permutation(labels)


@pytest.mark.parametrize("min_group_size", [None, 2])
def test_batches_hold_distinct_labels_and_groups_share_one(min_group_size):
    labels = _labels()
    sampler = GroupedBatchSampler(labels, groups_per_batch=3, group_size=5, min_group_size=min_group_size)
    assert len(sampler) == 100 // 15
    sizes = []
    for batch in itertools.islice(iter(sampler), 3 * len(sampler)):
        assert len(batch) == 3
        group_labels = [labels[group[0]] for group in batch]
        assert len(set(group_labels)) == 3
        for group, label in zip(batch, group_labels, strict=True):
            assert len(set(group)) == len(group)
            assert (labels[group] == label).all()
            sizes.append(len(group))
    if min_group_size is None:
        assert set(sizes) == {5}
    else:
        assert set(sizes) == {2, 3, 4, 5}


def test_groups_walk_through_each_label_in_permutations():
    # With sizes dividing every label count, a label's groups within an epoch are consecutive pieces of
    # permutations of its members: every block of `count` consecutive members visits each member once.
    labels = _labels((20, 20, 10))
    sampler = GroupedBatchSampler(labels, groups_per_batch=2, group_size=5, batches_per_epoch=20)
    visited = {label: [] for label in np.unique(labels)}
    for batch in sampler:
        for group in batch:
            visited[labels[group[0]]].extend(group)
    for label, members in visited.items():
        count = (labels == label).sum()
        blocks = [members[i : i + count] for i in range(0, len(members), count)]
        assert sum(len(b) for b in blocks) >= count
        for block in blocks:
            assert len(set(block)) == len(block)
            if len(block) == count:
                assert sorted(block) == sorted(np.flatnonzero(labels == label))


def test_labels_are_drawn_in_proportion_to_their_counts():
    labels = _labels((60, 30, 10))
    sampler = GroupedBatchSampler(labels, groups_per_batch=1, group_size=2, batches_per_epoch=3000)
    drawn = np.array([labels[batch[0][0]] for batch in sampler])
    frequencies = np.array([(drawn == label).mean() for label in (0, 10, 20)])
    # 3000 draws: the standard error of each frequency is at most 0.0092.
    assert np.allclose(frequencies, [0.6, 0.3, 0.1], atol=0.04)


def test_epochs_are_deterministic_given_the_seed():
    labels = _labels()
    first = list(GroupedBatchSampler(labels, 2, 4, seed=1))
    assert first == list(GroupedBatchSampler(labels, 2, 4, seed=1))
    assert first != list(GroupedBatchSampler(labels, 2, 4, seed=2))
    sampler = GroupedBatchSampler(labels, 2, 4, seed=1)
    assert list(sampler) == first and sampler.epoch == 1
    second = list(sampler)
    assert second != first and sampler.epoch == 2
    sampler.set_epoch(1)
    assert list(sampler) == second


@pytest.mark.parametrize("stop", [0, 3, 11, 12, 20])
def test_state_dict_resumes_exactly(stop):
    labels = _labels()
    kwargs = dict(groups_per_batch=2, group_size=4, min_group_size=1, seed=5)
    reference = GroupedBatchSampler(labels, **kwargs)
    expected = [batch for _ in range(3) for batch in reference]
    assert len(reference) == 12
    interrupted = GroupedBatchSampler(labels, **kwargs)
    consumed = []
    while len(consumed) < stop:
        consumed.extend(itertools.islice(iter(interrupted), stop - len(consumed)))
    state = interrupted.state_dict()
    resumed = GroupedBatchSampler(labels, **kwargs)
    resumed.load_state_dict(state)
    while len(consumed) < len(expected):
        consumed.extend(itertools.islice(iter(resumed), len(expected) - len(consumed)))
    assert consumed == expected


def test_load_state_dict_rejects_another_configuration():
    labels = _labels()
    state = GroupedBatchSampler(labels, 2, 4).state_dict()
    with pytest.raises(ValueError, match="state was saved by a sampler configured as"):
        GroupedBatchSampler(labels, 2, 5).load_state_dict(state)


@pytest.mark.parametrize(
    "labels, kwargs, match",
    [
        (np.zeros((2, 5), dtype=int), {}, "labels must be a 1-D integer array"),
        (np.zeros(10), {}, "labels must be a 1-D integer array"),
        (np.arange(20) % 4, {"groups_per_batch": 5}, "groups_per_batch must be between 1 and the number"),
        (
            np.arange(20) % 4,
            {"group_size": 6},
            r"group_size must be between 1 and the smallest label count 5",
        ),
        (np.arange(20) % 4, {"min_group_size": 4}, "min_group_size must be between 1 and group_size=3"),
        (np.arange(20) % 4, {"batches_per_epoch": 0}, "batches_per_epoch must be positive"),
    ],
)
def test_bad_input_raises(labels, kwargs, match):
    kwargs = {"groups_per_batch": 2, "group_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        GroupedBatchSampler(labels, **kwargs)


def test_accepts_tensor_labels():
    labels = torch.arange(20) % 4
    batch = next(iter(GroupedBatchSampler(labels, 2, 3)))
    assert all((labels[group] == labels[group[0]]).all() for group in batch)


def test_pad_groups():
    index, mask = pad_groups([[4, 7, 1], [9], [3, 2]])
    assert torch.equal(index, torch.tensor([[4, 7, 1], [9, 9, 9], [3, 2, 3]]))
    assert torch.equal(mask, torch.tensor([[True, True, True], [True, False, False], [True, True, False]]))
    with pytest.raises(ValueError, match="non-empty groups"):
        pad_groups([[1], []])


def test_padded_batches_are_the_padded_groups_and_resume_alike():
    labels = _labels()
    kwargs = dict(groups_per_batch=3, group_size=5, min_group_size=2, seed=4)
    groups = list(GroupedBatchSampler(labels, **kwargs))
    padded = GroupedBatchSampler(labels, **kwargs, padded=True)
    batches = list(padded)
    assert len(batches) == len(groups)
    for (index, mask), batch in zip(batches, groups, strict=True):
        expected_index, expected_mask = pad_groups(batch)
        assert torch.equal(index, expected_index) and torch.equal(mask, expected_mask)
    # the position is the same whatever the item format: an unpadded sampler's state resumes a padded one
    unpadded = GroupedBatchSampler(labels, **kwargs)
    next(iter(unpadded))
    padded.load_state_dict(unpadded.state_dict())
    assert torch.equal(next(iter(padded))[0], pad_groups(groups[1])[0])
