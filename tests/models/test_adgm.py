"""ADGM: the semi-supervised objective against a hand-written many-particle estimate (value and gradient),
and the methods the image experiments use."""

import pyro
import pytest
import torch
from pyro.infer import SVI
from pyro.optim import Adam

from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial_models.adgm import ADGM

IMAGE_SHAPE = (1, 2, 3)
NUM_CLASSES = 3
ALPHA = 2.5


def tiny(**kwargs):
    return ADGM(IMAGE_SHAPE, num_classes=NUM_CLASSES, z_dim=2, aux_dim=2, hidden=(5,), **kwargs).double()


def batch():
    xs = torch.rand(4, 6, dtype=torch.float64)
    ys = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 1]), NUM_CLASSES).double()
    mask = torch.tensor([True, False, True, False])
    return xs, ys, mask


def normal(loc_scale):
    return torch.distributions.Normal(*loc_scale)


def hand_written_objective(vae: ADGM, xs, ys, mask, num_particles: int) -> torch.Tensor:
    """Maaløe et al.'s bounds (eqs. 9, 10) plus α log q(y|a, x) on labelled rows, summed over rows, by
    reparameterised sampling of a and z and an exact sum over y on unlabelled rows; mean of the particles."""
    model, guide = vae.model, vae.guide
    x = xs.expand(num_particles, *xs.shape)
    q_a = normal(guide.encoder_a(x))
    a = q_a.rsample()
    log_q_a = q_a.log_prob(a).sum(-1)
    logits_y = guide.encoder_y(a, x).log_softmax(-1)  # (P, B, C)

    def joint_minus_guide(y):  # log p(x, y, z, a) − log q(z | a, x, y) − log q(a | x) for one-hot y
        q_z = normal(guide.encoder_z(a, x, y))
        z = q_z.rsample()
        log_p = (
            torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
            - torch.log(torch.tensor(float(NUM_CLASSES), dtype=xs.dtype))
            + torch.distributions.Bernoulli(logits=model.decoder(z, y), validate_args=False)
            .log_prob(x)
            .sum(-1)
            + normal(model.auxiliary(x, y, z)).log_prob(a).sum(-1)
        )
        return log_p - q_z.log_prob(z).sum(-1) - log_q_a

    supervised = joint_minus_guide(ys.expand_as(logits_y)) + ALPHA * (logits_y * ys).sum(-1)
    unsupervised = 0.0
    for c in range(NUM_CLASSES):
        y = torch.nn.functional.one_hot(torch.tensor(c), NUM_CLASSES).to(xs.dtype).expand_as(logits_y)
        log_q_y = logits_y[..., c]
        unsupervised = unsupervised + log_q_y.exp() * (joint_minus_guide(y) - log_q_y)
    return torch.where(mask, supervised, unsupervised).sum(-1).mean(0)


def test_objective_and_gradient_match_a_hand_written_estimate():
    pyro.set_rng_seed(0)
    vae = tiny()
    xs, ys, mask = batch()
    particles = 40_000
    elbo = SemiSupervisedELBO(
        alpha=ALPHA, num_particles=particles, vectorize_particles=True, max_plate_nesting=1, split_on="mask"
    )
    ours = elbo.differentiable_loss(vae.model, vae.guide, xs, ys, mask)
    ours_grad = torch.autograd.grad(ours, list(vae.parameters()))
    reference = -hand_written_objective(vae, xs, ys, mask, particles)
    reference_grad = torch.autograd.grad(reference, list(vae.parameters()))

    # both are Monte Carlo means of 40,000 particles: agreement to a few standard errors
    assert ours.item() == pytest.approx(reference.item(), abs=0.05)
    ours_flat, reference_flat = (
        torch.cat([g.flatten() for g in ours_grad]),
        torch.cat([g.flatten() for g in reference_grad]),
    )
    assert torch.allclose(ours_flat, reference_flat, atol=0.06)
    # the check can fail: a different α moves the objective far outside the tolerance
    other = SemiSupervisedELBO(
        alpha=ALPHA + 1,
        num_particles=particles,
        vectorize_particles=True,
        max_plate_nesting=1,
        split_on="mask",
    )
    assert abs(other.loss(vae.model, vae.guide, xs, ys, mask) - reference.item()) > 0.5


def test_a_semi_supervised_step_trains_every_network():
    vae = tiny()
    elbo = SemiSupervisedELBO(alpha=1.0, num_importance_samples=2, max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    before = {name: p.detach().clone() for name, p in vae.named_parameters()}
    assert torch.isfinite(torch.tensor(svi.step(*batch())))
    assert [name for name, p in vae.named_parameters() if torch.equal(p, before[name])] == []


def test_figure_helpers_have_the_documented_shapes():
    vae = tiny()
    xs, ys, _ = batch()
    assert vae.classify(xs).shape == (4,)
    probs = vae.guide.class_probs(xs, num_samples=7)
    assert probs.shape == (4, NUM_CLASSES) and torch.allclose(probs.sum(-1), torch.ones(4, dtype=xs.dtype))
    z = vae.style(xs)
    assert z.shape == (4, 2)
    assert not torch.allclose(vae.style(xs, ys), vae.style(xs, ys.roll(1, 0)))  # q(z | a, x, y) reads y
    images = vae.decode(z[:, None], torch.eye(NUM_CLASSES, dtype=xs.dtype)[None])
    assert images.shape == (4, NUM_CLASSES, 6) and 0 <= images.min() and images.max() <= 1
    assert vae.reconstruct(xs).shape == (4, 6)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="aux_dim must be a positive dimension, got 0"):
        ADGM(IMAGE_SHAPE, aux_dim=0)
    with pytest.raises(ValueError, match=r"xs must be flattened images of shape \(batch, 6\)"):
        tiny().model(torch.rand(4, 7, dtype=torch.float64))


def test_q_y_given_x_averages_the_classifier_over_draws_of_a_from_the_given_generator():
    """q(y|x) = E_q(a|x)[q(y|a, x)] by hand from the same normal draws; a generator fixes the draws whatever
    the global random state, which it leaves alone."""
    vae = tiny()
    xs, _, _ = batch()
    loc, scale = vae.guide.encoder_a(xs)
    noise = torch.randn((7,) + loc.shape, dtype=xs.dtype, generator=torch.Generator().manual_seed(3))
    expected = vae.guide.encoder_y(loc + scale * noise, xs).softmax(-1).mean(0)
    state = torch.get_rng_state()
    probs = vae.guide.class_probs(xs, num_samples=7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.allclose(probs, expected, rtol=0, atol=1e-12)
    torch.manual_seed(1)
    again = vae.guide.class_probs(xs, num_samples=7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, probs)
    assert not torch.allclose(vae.guide.class_probs(xs, 7, torch.Generator().manual_seed(4)), probs)
