"""SSVAE with MLP and convolutional networks, both guide factorisations, MNIST- and SVHN-shaped images."""

import pyro
import pytest
import torch
from pyro.infer import SVI
from pyro.optim import Adam

from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial_models.ss_vae import SSVAE

CONFIGS = [
    pytest.param({"network": network, "guide_type": guide}, id=f"{network}-{guide}")
    for network in ("mlp", "conv")
    for guide in ("m2", "paper")
]


def tiny(image_shape=(1, 28, 28), **kwargs):
    return SSVAE(image_shape, z_dim=3, hidden=(8,), channels=(2, 4), **kwargs)


def batch(image_shape, size=6):
    xs = torch.rand(size, torch.Size(image_shape).numel())
    ys = torch.nn.functional.one_hot(torch.arange(size) % 10, 10).float()
    mask = torch.arange(size) % 2 == 0
    return xs, ys, mask


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("config", CONFIGS)
def test_a_semi_supervised_step_trains_every_network(config, image_shape):
    """One SVI step with validation on (site shapes, model/guide match) on a mixed batch, enumerated and
    with S = 2 importance samples: a finite loss, and every parameter moves."""
    vae = tiny(image_shape, **config)
    elbo = SemiSupervisedELBO(alpha=1.0, num_importance_samples=2, max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    before = {name: p.detach().clone() for name, p in vae.named_parameters()}

    loss = svi.step(*batch(image_shape))

    assert torch.isfinite(torch.tensor(loss))
    unchanged = [name for name, p in vae.named_parameters() if torch.equal(p, before[name])]
    assert unchanged == []


@pytest.mark.parametrize("config", CONFIGS)
def test_figure_helpers_have_the_documented_shapes(config):
    vae = tiny(**config)
    xs, ys, _ = batch((1, 28, 28))
    z = vae.style(xs)
    assert z.shape == (6, 3)
    assert vae.classify(xs).shape == (6,)
    images = vae.decode(z[:, None], torch.eye(10)[None])  # every style with every digit
    assert images.shape == (6, 10, 784) and 0 <= images.min() and images.max() <= 1
    assert not torch.allclose(images[:, 0], images[:, 1])  # the digit changes the image
    assert vae.reconstruct(xs).shape == (6, 784)
    if config["guide_type"] == "paper":  # q(z|x) ignores the label
        assert torch.equal(vae.style(xs, ys), vae.style(xs, ys.roll(1, 0)))
    else:  # q(z|x, y) depends on it
        assert not torch.allclose(vae.style(xs, ys), vae.style(xs, ys.roll(1, 0)))


def test_model_samples_images_of_the_configured_shape():
    vae = tiny((3, 32, 32), network="conv")
    xs, _, _ = batch((3, 32, 32))
    trace = pyro.poutine.trace(pyro.poutine.uncondition(vae.model)).get_trace(xs)
    assert trace.nodes["x"]["value"].shape == (6, 3 * 32 * 32)
    assert trace.nodes["z"]["value"].shape == (6, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"network": "resnet"}, r"network must be one of \('mlp', 'conv'\), got 'resnet'"),
        ({"guide_type": "m1"}, r"guide_type must be one of \('m2', 'paper'\), got 'm1'"),
        ({"image_shape": (28, 28)}, r"image_shape must be \(channels, height, width\)"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SSVAE(**kwargs)


def test_images_must_be_flattened():
    vae = tiny(network="conv")
    with pytest.raises(ValueError, match=r"xs must be flattened images of shape \(batch, 784\)"):
        vae.model(torch.rand(2, 1, 28, 28))


def test_the_paper_guides_q_y_given_x_averages_over_draws_of_z_from_the_given_generator():
    """For q(z|x) q(y|x, z), q(y|x) = E_q(z|x)[q(y|x, z)] by hand from the same normal draws."""
    vae = tiny(guide_type="paper").double()
    xs = batch((1, 28, 28))[0].double()
    loc, scale = vae.guide.encoder_z(xs)
    noise = torch.randn((5,) + loc.shape, dtype=xs.dtype, generator=torch.Generator().manual_seed(2))
    expected = vae.guide.encoder_y(xs, loc + scale * noise).softmax(-1).mean(0)
    state = torch.get_rng_state()
    probs = vae.guide.class_probs(xs, num_samples=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.allclose(probs, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(vae.guide.class_probs(xs, 5, torch.Generator().manual_seed(3)), probs)
