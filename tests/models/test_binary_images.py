"""Bit-packed binary images: packing agrees with NumPy's packbits, unpacking inverts it exactly, and the
DeviceBatches gather returns the unpacked rows of a batch."""

import numpy as np
import pytest
import torch

from pyro_partial.data.sampling import ShuffledBatchSampler
from pyro_partial.training import DeviceBatches
from pyro_partial_models.binary_images import gather_unpacked, pack_images, unpack_images


def binary_images(n=6, shape=(2, 5, 16)):
    return torch.from_numpy(np.random.default_rng(0).integers(0, 2, (n, *shape))).float()


def test_pack_images_is_numpy_packbits_most_significant_bit_first():
    images = binary_images()
    packed = pack_images(images)
    assert packed.dtype == torch.uint8 and packed.shape == (6, 2, 5, 2)
    assert np.array_equal(packed.numpy(), np.packbits(images.numpy().astype(np.uint8), axis=-1))
    one = torch.zeros(1, 1, 1, 8)
    one[..., 0] = 1  # the first pixel is the byte's most significant bit
    assert pack_images(one).item() == 128


def test_unpack_inverts_pack_in_the_asked_dtype():
    images = binary_images()
    assert torch.equal(unpack_images(pack_images(images)), images)
    restored = unpack_images(pack_images(images), torch.float64)
    assert restored.dtype == torch.float64 and torch.equal(restored, images.double())


def test_gather_unpacks_the_batch_rows():
    images = binary_images(n=10)
    batches = DeviceBatches(
        ShuffledBatchSampler(10, 4, seed=1), {"images": pack_images(images)}, gather_unpacked
    )
    for index in batches.sampler:
        (batch,) = batches.gather(index)
        assert torch.equal(batch, images[index])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"multiple of 8, got \(2, 1, 3, 12\)"):
        pack_images(torch.zeros(2, 1, 3, 12))
    with pytest.raises(ValueError, match="binary"):
        pack_images(torch.full((1, 1, 1, 8), 0.5))
    with pytest.raises(ValueError, match="uint8"):
        unpack_images(torch.zeros(1, 2))
