"""The faces model and guide: the objective on exact hand computations (values and gradients), training steps,
the capped identity logits, hidden labels, the baseline's loss, argument errors and the decoder."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyro_partial.distributions.lighting import direction_from_angles
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial_models.faces_vae import FacesClassifier, FacesVAE

SHAPE = (1, 16, 16)
TINY = {"image_shape": SHAPE, "z_dim": 2, "hidden": (8,), "channels": (4, 8)}
RELAXED, ENUMERATED = {"identity": 0.5}, None


def batch(size=6, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(size, *SHAPE, generator=generator, dtype=dtype)
    identity = torch.nn.functional.one_hot(torch.randint(38, (size,), generator=generator), 38).to(dtype)
    light = torch.nn.functional.normalize(torch.randn(size, 3, generator=generator, dtype=dtype), dim=-1)
    mask = torch.arange(size) % 3 == 0
    return x, identity, light, mask


def readout(vae):
    """The encoder's last linear layer: rows 0..37 identity logits, 38..40 the light, then the style."""
    return [m for m in vae.guide.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]


def decoder_input(vae):
    """The decoder's first linear layer: input columns 0..37 the identity, 38..40 the light, then the
    style."""
    return [m for m in vae.model.decoder.modules() if isinstance(m, torch.nn.Linear)][0]


def make_style_posterior_the_prior(vae):
    """q(z|x) = N(0, I) = p(z) and x independent of z, so log p(z) − log q(z|x) = 0 for every draw: the
    objective is then deterministic in z and has the closed forms below."""
    with torch.no_grad():
        layer, style = readout(vae), slice(41, 41 + 2 * vae.z_dim)
        layer.weight[style] = 0
        layer.bias[41 : 41 + vae.z_dim] = 0
        scale = 1 - vae.guide.encoder.min_scale  # softplus(b) + min_scale = 1
        layer.bias[41 + vae.z_dim :] = math.log(math.expm1(scale))
        decoder_input(vae).weight[:, 41:] = 0


def log_likelihood(vae, x, identity, light):
    """log p(x | y, l) ``(..., B)`` for faces ``(B, 1, H, W)`` (batch dimensions broadcast; the decoder
    ignores z here)."""
    z = x.new_zeros(len(x), vae.z_dim)
    logits = vae.model.decoder(identity, light, z)
    return dist.Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(-3).sum(-1)


@pytest.mark.parametrize("split_on", [None, "mask"], ids=["masked", "split"])
@pytest.mark.parametrize("relax", [RELAXED, ENUMERATED], ids=["relaxed", "enumerated"])
def test_labelled_rows_objective_and_gradients_match_the_closed_form(float64, relax, split_on):
    """On labelled rows, −[log p(x | y, l) + log p(y) + log p(l) + α (log q(y|x) + log q(l|x))] summed over
    rows (paper eq. 5; E_q(z|x)[log p(z) − log q(z|x)] = 0 here), and its gradient."""
    vae = FacesVAE(**TINY).double()
    make_style_posterior_the_prior(vae)
    x, identity, light, _ = batch(dtype=torch.float64)
    alpha = 3.0
    elbo = SemiSupervisedELBO(alpha=alpha, relax=relax, max_plate_nesting=1, split_on=split_on)
    loss = elbo(vae.model, vae.guide)(x, identity, light, torch.ones(len(x), dtype=torch.bool))

    posterior = vae.encode(x)
    log_q = dist.OneHotCategorical(logits=posterior.identity_logits).log_prob(identity)
    log_q = log_q + dist.ProjectedNormal(posterior.light_concentration).log_prob(light)
    log_prior = -math.log(38) - math.log(4 * math.pi)
    expected = -(log_likelihood(vae, x, identity, light) + log_prior + alpha * log_q).sum()
    torch.testing.assert_close(loss, expected)
    check_gradients(vae, loss, expected, exact_inputs=41)


@pytest.mark.parametrize("split_on", [None, "mask"], ids=["masked", "split"])
def test_mixed_batch_with_enumerated_identity_matches_the_exact_sum(float64, split_on):
    """With q(l|x) uniform (= p(l)) and x independent of l and z, an unlabelled row's ELBO is exactly
    Σ_y q(y|x) [log p(x | y) + log p(y) − log q(y|x)], and a labelled row's term the closed form above."""
    vae = FacesVAE(**TINY).double()
    make_style_posterior_the_prior(vae)
    with torch.no_grad():
        readout(vae).weight[38:41] = 0
        readout(vae).bias[38:41] = 0  # ProjectedNormal(0) is uniform on the sphere
        decoder_input(vae).weight[:, 38:41] = 0
    x, identity, light, mask = batch(dtype=torch.float64)
    alpha = 2.0
    elbo = SemiSupervisedELBO(alpha=alpha, relax=ENUMERATED, max_plate_nesting=1, split_on=split_on)
    loss = elbo(vae.model, vae.guide)(x, identity, light, mask)

    posterior = vae.encode(x)
    log_q = posterior.identity_logits.log_softmax(-1)  # (B, 38)
    log_q_light = dist.ProjectedNormal(posterior.light_concentration).log_prob(light)  # = -log(4 pi)
    every_identity = torch.eye(38, dtype=x.dtype)
    log_p_x = log_likelihood(vae, x, every_identity.unsqueeze(1), light).T  # (B, 38): log p(x | y = k)
    unlabelled = (log_q.exp() * (log_p_x - math.log(38) - log_q)).sum(-1)
    labelled = (
        (identity * log_p_x).sum(-1)
        - math.log(38)
        - math.log(4 * math.pi)
        + alpha * ((identity * log_q).sum(-1) + log_q_light)
    )
    expected = -torch.where(mask, labelled, unlabelled).sum()
    torch.testing.assert_close(loss, expected)
    check_gradients(vae, loss, expected, exact_inputs=38)


def check_gradients(vae, loss, expected, exact_inputs):
    """Both gradients agree on every parameter except those that touch the sampled latents: the read-out rows
    and the decoder's input columns from ``exact_inputs`` on (their reparameterised gradients depend on the
    draws; the closed form is their expectation)."""
    params = dict(vae.named_parameters())
    got = torch.autograd.grad(loss, list(params.values()), allow_unused=True, retain_graph=True)
    want = torch.autograd.grad(expected, list(params.values()), allow_unused=True)
    out_rows, in_columns = readout(vae), decoder_input(vae)
    for (name, p), g, w in zip(params.items(), got, want, strict=True):
        g = torch.zeros_like(p) if g is None else g
        w = torch.zeros_like(p) if w is None else w
        if p is out_rows.weight or p is out_rows.bias:
            g, w = g[:exact_inputs], w[:exact_inputs]
        elif p is in_columns.weight:
            g, w = g[:, :exact_inputs], w[:, :exact_inputs]
        torch.testing.assert_close(g, w, msg=name)
        assert g.abs().sum() > 0, f"{name} gets no gradient"


@pytest.mark.parametrize("relax", [RELAXED, ENUMERATED], ids=["relaxed", "enumerated"])
def test_one_training_step_with_mixed_labels(single_thread, relax):
    vae = FacesVAE(**TINY)
    elbo = SemiSupervisedELBO(alpha=1.0, relax=relax, max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    before = [p.detach().clone() for p in vae.parameters()]
    loss = svi.step(*batch())
    assert torch.isfinite(torch.tensor(loss))
    changed = [not torch.equal(b, p) for b, p in zip(before, vae.parameters(), strict=True)]
    assert all(changed), "every parameter (encoder heads and decoder) gets a gradient on a mixed batch"


def test_the_runners_objective_module_trains_every_parameter(single_thread):
    """The runner trains ``elbo(module.model, module.guide)`` with ``torch.optim.Adam`` under
    ``module_local_params=True`` (and validation off, as the runner runs: Pyro's check of local parameters
    rejects the ``pyro.module`` call that keeps the global-store route of the test above working)."""
    pyro.enable_validation(False)
    with pyro.settings.context(module_local_params=True):
        vae = FacesVAE(**TINY)
        loss_fn = SemiSupervisedELBO(alpha=1.0, relax=RELAXED, max_plate_nesting=1, split_on="mask")(
            vae.model, vae.guide
        )
        assert {id(p) for p in loss_fn.parameters()} == {id(p) for p in vae.parameters()}
        assert {name.split(".")[0] for name, _ in vae.named_parameters()} == {"model", "guide"}
        optimiser = torch.optim.Adam(loss_fn.parameters(), lr=1e-2)
        before = [p.detach().clone() for p in vae.parameters()]
        loss_fn(*batch()).backward()
        optimiser.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, vae.parameters(), strict=True))


def test_capped_identity_logits_keep_the_relaxed_loss_finite(single_thread):
    vae = FacesVAE(**TINY)
    with torch.no_grad():  # a q(y|x) far more confident than float32's Gumbel-softmax can sample
        readout(vae).bias[:38] = torch.linspace(-500.0, 500.0, 38)
    x = batch()[0]
    logits = vae.encode(x).identity_logits
    assert logits.abs().max() <= 12.0 and (logits[:, -1] > logits[:, 0] + 23.0).all()
    elbo = SemiSupervisedELBO(alpha=1.0, relax=RELAXED, max_plate_nesting=1, split_on="mask")
    losses = torch.tensor([elbo.loss(vae.model, vae.guide, x) for _ in range(20)])
    assert torch.isfinite(losses).all()
    uncapped = dist.RelaxedOneHotCategorical(torch.tensor(0.5), logits=torch.linspace(-500.0, 500.0, 38))
    assert not torch.isfinite(uncapped.log_prob(uncapped.rsample((20,)))).all(), "the guard is needed"


def test_unlabelled_rows_ignore_their_label_values(single_thread):
    vae = FacesVAE(**TINY)
    elbo = SemiSupervisedELBO(alpha=1.0, relax=RELAXED, max_plate_nesting=1, split_on="mask")
    x, identity, light, mask = batch()
    other_identity = torch.where(mask.unsqueeze(-1), identity, identity.roll(1, dims=-1))
    other_light = torch.where(mask.unsqueeze(-1), light, -light)
    losses = []
    for labels in ((identity, light), (other_identity, other_light)):
        pyro.set_rng_seed(3)
        losses.append(elbo.loss(vae.model, vae.guide, x, *labels, mask))
    assert losses[0] == losses[1]
    pyro.set_rng_seed(3)  # whereas changing a labelled row's light changes the loss
    assert elbo.loss(vae.model, vae.guide, x, identity, -light, mask) != losses[0]


def test_baseline_loss_is_the_supervised_cnn_loss():
    classifier = FacesClassifier(**TINY)
    x, identity, light, mask = batch()
    loss = Trace_ELBO().loss(classifier.model, classifier.guide, x, identity, light, mask)
    posterior = classifier.model.encoder(x)
    log_q = dist.OneHotCategorical(logits=posterior.identity_logits).log_prob(identity)
    log_q = log_q + dist.ProjectedNormal(posterior.light_concentration).log_prob(light)
    assert loss == pytest.approx(-log_q[mask].sum().item(), rel=1e-5)


def test_baseline_starts_from_the_vae_encoder():
    pyro.set_rng_seed(1)
    vae = FacesVAE(**TINY)
    pyro.set_rng_seed(1)
    classifier = FacesClassifier(**TINY)
    for (name, v), (_, c) in zip(
        vae.guide.encoder.state_dict().items(), classifier.model.encoder.state_dict().items(), strict=True
    ):
        assert torch.equal(v, c), name


def test_argument_errors_name_the_argument():
    vae = FacesVAE(**TINY)
    x, identity, light, mask = batch()
    with pytest.raises(ValueError, match=r"identity must be one-hot of shape \(6, 38\), got \(6, 10\)"):
        vae.model(x, identity[:, :10], light, mask)
    with pytest.raises(ValueError, match=r"light must be unit vectors of shape \(6, 3\), got \(6, 2\)"):
        vae.model(x, identity, light[:, :2], mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        vae.model(x, identity, light, mask.float())
    with pytest.raises(ValueError, match=r"xs must be images of shape \(batch, 1, 16, 16\), got \(6, 256\)"):
        vae.guide(x.flatten(1))
    with pytest.raises(ValueError, match="both identity and light"):
        vae.model(x, identity)
    with pytest.raises(ValueError, match="image_shape must be"):
        FacesVAE(image_shape=(16, 16))
    with pytest.raises(ValueError, match="max_logit must be positive, got 0"):
        FacesVAE(**TINY, max_logit=0)


def test_predictions_and_decoding():
    vae = FacesVAE(**TINY).eval()
    x = batch(3)[0]
    identity, light = vae.predict(x)
    assert identity.shape == (3,) and identity.dtype == torch.int64
    torch.testing.assert_close(light.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(
        light, torch.nn.functional.normalize(vae.encode(x).light_concentration, dim=-1)
    )
    lights = direction_from_angles(torch.tensor([[-90.0, 0.0], [90.0, 0.0]]))
    one_hot = torch.nn.functional.one_hot(identity, 38).float()
    faces = vae.decode(one_hot.unsqueeze(1), lights, vae.encode(x).z_loc.unsqueeze(1))
    assert faces.shape == (3, 2, *SHAPE) and ((faces > 0) & (faces < 1)).all()
    assert not torch.allclose(faces[:, 0], faces[:, 1]), "the light must reach the decoder"
    identity_b, light_b = FacesClassifier(**TINY).predict(x)
    assert identity_b.shape == (3,) and light_b.shape == (3, 3)
