"""Convolutional encoder and decoder: shapes, broadcasting of extra inputs, and argument checks."""

import pytest
import torch

from pyro_partial.nn import ConvDecoder, ConvEncoder

SHAPES = [(1, 28, 28), (3, 32, 32), (2, 13, 9)]


@pytest.mark.parametrize("image_shape", SHAPES)
def test_decoder_restores_the_image_shape(image_shape):
    decoder = ConvDecoder(12, image_shape, (16,), channels=(8, 4))
    assert decoder(torch.randn(5, 12)).shape == (5, *image_shape)


@pytest.mark.parametrize("image_shape", SHAPES)
def test_encoder_and_decoder_broadcast_an_enumerated_label(image_shape):
    """An enumerated one-hot label (K, 1, K) with images (B, C, H, W) gives (K, B, ...) outputs, each
    slice equal to the network applied to the label repeated over the batch."""
    torch.manual_seed(0)
    encoder = ConvEncoder(image_shape, 6, (16,), extra_features=3, channels=(4, 8))
    decoder = ConvDecoder(5 + 3, image_shape, channels=(8, 4))
    images, style = torch.rand(2, *image_shape), torch.randn(2, 5)
    labels = torch.eye(3)[:, None, :]  # (3, 1, 3)

    features, logits = encoder(images, labels), decoder(style, labels)

    assert features.shape == (3, 2, 6) and logits.shape == (3, 2, *image_shape)
    for k in range(3):
        label = torch.eye(3)[k].expand(2, 3)
        assert torch.allclose(features[k], encoder(images, label), atol=1e-6)
        assert torch.allclose(logits[k], decoder(torch.cat([style, label], -1)), atol=1e-6)
    assert not torch.allclose(features[0], features[1])


def test_encoder_treats_each_image_independently():
    """Leading batch dimensions are flattened for the convolutions and restored: no mixing across rows."""
    torch.manual_seed(0)
    encoder = ConvEncoder((3, 32, 32), 4, channels=(4, 4, 4))
    images = torch.rand(2, 3, 3, 32, 32)
    out = encoder(images)
    assert out.shape == (2, 3, 4)
    assert torch.allclose(out[1, 2], encoder(images[1, 2]), atol=1e-6)


def test_decoder_gradients_reach_every_parameter():
    decoder = ConvDecoder(4, (1, 28, 28), (8,), channels=(4, 2))
    decoder(torch.randn(3, 4)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder.parameters())


def test_encoder_rejects_images_of_the_wrong_shape():
    encoder = ConvEncoder((1, 28, 28), 4, channels=(4,))
    with pytest.raises(ValueError, match=r"images must have shape \(\.\.\., 1, 28, 28\), got \(2, 784\)"):
        encoder(torch.rand(2, 784))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (28, 28)}, "image_shape must be"),
        ({"channels": ()}, "channels must be a non-empty"),
        ({"channels": (2, 2, 2, 2, 2)}, "use at most 4 entries in channels"),
        ({"activation": "sigmoid"}, "activation must be one of"),
    ],
)
def test_clear_errors(kwargs, message):
    args = {"image_shape": (1, 28, 28), "channels": (4,), **kwargs}
    image_shape = args.pop("image_shape")
    with pytest.raises(ValueError, match=message):
        ConvEncoder(image_shape, 4, **args)
    with pytest.raises(ValueError, match=message):
        ConvDecoder(4, image_shape, **args)
