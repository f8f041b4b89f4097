"""The faces experiment's data: the held-out split of real Yale B, the subject-balanced labelled subset, and
batches that hide the labels of unlabelled rows."""

import pytest
import torch

from pyro_partial.data.sampling import ShuffledBatchSampler
from pyro_partial.distributions.lighting import direction_from_angles
from pyro_partial.training import DeviceBatches
from pyro_partial_models.faces_data import hide_unlabelled, labelled_split, load_faces
from pyro_partial_models.faces_vae import placeholders


def tensors(n=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    subject = torch.arange(n) % 38
    return {
        "images": torch.rand(n, 1, 4, 4, generator=generator),
        "identity": torch.nn.functional.one_hot(subject, 38).float(),
        "light": direction_from_angles(torch.rand(n, 2, generator=generator) * 60).float(),
    }


def test_batches_hide_unlabelled_rows_labels():
    data = tensors()
    index, is_labelled = torch.arange(10).flip(0), torch.arange(10) < 4
    xs, identity, light, mask = hide_unlabelled(data, (index, is_labelled))
    assert torch.equal(xs, data["images"][index]) and torch.equal(mask, is_labelled)
    assert torch.equal(identity[:4], data["identity"][index[:4]])
    assert torch.equal(light[:4], data["light"][index[:4]])
    hidden_identity, hidden_light = placeholders(6)
    assert torch.equal(identity[4:], hidden_identity) and torch.equal(light[4:], hidden_light)


def test_labelled_subset_batches_visit_every_labelled_row_and_resume():
    """The baseline's batches: the labelled subset only, reshuffled each epoch, every label visible, and a
    sampler restored from its state continues with the same batches."""
    data, rows = tensors(76), torch.arange(20, 60)

    def sampler():
        return ShuffledBatchSampler(rows, 16, seed=1, labelled=True)

    batches = DeviceBatches(sampler(), data, hide_unlabelled)
    first_epoch = [batches.gather(item) for item in batches.sampler]
    assert len(first_epoch) == 3 and all(bool(mask.all()) for *_, mask in first_epoch)
    images, identity, light = (torch.cat([b[k] for b in first_epoch]) for k in range(3))
    order = torch.cat([index for index, _ in sampler()])
    assert torch.equal(order.sort().values, rows)
    assert torch.equal(images, data["images"][order]) and torch.equal(identity, data["identity"][order])
    assert torch.equal(light, data["light"][order])
    second_epoch = torch.cat([index for index, _ in batches.sampler])
    assert not torch.equal(second_epoch, order)

    interrupted = sampler()
    interrupted.set_epoch(5)
    next(iter(interrupted))
    resumed, fresh = sampler(), sampler()
    resumed.load_state_dict(interrupted.state_dict())
    fresh.set_epoch(5)
    assert torch.equal(next(iter(resumed))[0], list(fresh)[1][0])


def test_labelled_subset_is_subject_balanced():
    subject = torch.arange(38).repeat_interleave(50)
    split = labelled_split(subject, 0.1, seed=0)
    assert split.num_labelled == 190
    assert torch.equal(subject[split.labelled].bincount(), torch.full((38,), 5))
    assert labelled_split(subject, 1.0, seed=0) is None
    assert labelled_split(subject, 0.001, seed=0).num_labelled == 38  # at least one per subject
    assert not torch.equal(labelled_split(subject, 0.1, seed=1).labelled, split.labelled)
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\], got 0"):
        labelled_split(subject, 0.0, seed=0)


@pytest.mark.data
def test_held_out_faces_are_unseen_images_of_seen_subjects(real_data_root):
    data = load_faces(real_data_root, size=8)
    assert data.train_x.shape == (1924, 1, 8, 8) and data.test_x.shape == (490, 1, 8, 8)
    assert data.train_x.dtype == torch.float32 and 0 <= data.train_x.min() and data.train_x.max() <= 1
    assert set(data.test_subject.tolist()) == set(data.train_subject.tolist()) == set(range(38))
    torch.testing.assert_close(data.test_light.norm(dim=-1), torch.ones(490))
    counts = torch.bincount(data.test_subject, minlength=38) + torch.bincount(
        data.train_subject, minlength=38
    )
    assert torch.equal(torch.bincount(data.test_subject, minlength=38), (0.2 * counts).round().long())
