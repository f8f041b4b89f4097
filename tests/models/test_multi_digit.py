"""The multi-digit model: its log joint against a hand computation over the present steps, a training step
on a mixed batch for both digit-guide factorisations, and nesting a frozen digit model."""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI
from pyro.optim import Adam
from torch.distributions import Normal

from models.multi_digit import (
    MultiDigitVAE,
    coords_from_where,
    digit_sites,
    where_from_coords,
)
from models.ss_vae import SSVAE
from pyro_partial.data.multi_mnist import make_multi_mnist
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.nn import write_patch

K, Z, S = 3, 4, 50
SMALL = {"digit_hidden": (8,), "z_dim": Z, "canvas_channels": (4, 4), "canvas_features": 16, "state_dim": 6}


def canvases(num=8, seed=0):
    """Multi-MNIST canvases of random 'digit' images and their label arguments."""
    g = torch.Generator().manual_seed(seed)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, num, seed=seed)
    digits = torch.nn.functional.one_hot(data.digits.clamp(min=0), 10).float()
    return data, (data.canvases, data.counts, digits, coords_from_where(data.wheres))


def test_coords_round_trip_and_padding_placeholder():
    where = torch.tensor([[0.4, -0.3, 0.2], [0.0, 0.0, 0.0]])
    coords = coords_from_where(where)
    assert torch.allclose(where_from_coords(coords)[0], where[0])
    assert torch.allclose(coords[1], torch.tensor([math.log(0.48), 0.0, 0.0]))


def test_log_joint_sums_the_present_steps_only():
    """log p(x, n, y, z, w) = log p(n) + Σ_{k<n} [log p(y_k) + log p(z_k) + log p(w_k)]
    + Σ_pixels log Bernoulli(x | clamp(Σ_{k<n} write(patch(y_k, z_k), w_k))); slots k ≥ n hold garbage."""
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    data, (x, counts, digits, coords) = canvases()
    absent = torch.arange(K) >= counts[:, None]
    digits = torch.where(absent[..., None], torch.eye(10)[7], digits)
    coords = torch.where(absent[..., None], torch.tensor([-0.2, 0.5, -0.5]), coords)
    z = torch.randn(len(x), K, Z)
    conditioned = poutine.condition(vae.model, data={f"z_{k}": z[:, k] for k in range(K)})
    trace = poutine.trace(conditioned).get_trace(
        x, counts, digits, coords, torch.ones(len(x), dtype=torch.bool)
    )

    expected = 0.0
    where_prior = Normal(torch.tensor([math.log(0.48), 0.0, 0.0]), torch.tensor([0.1, 0.3, 0.3]))
    for b in range(len(x)):
        n = int(counts[b])
        canvas = torch.zeros(S, S)
        expected += math.log(1 / (K + 1))
        for k in range(n):
            expected += math.log(0.1) + Normal(0.0, 1.0).log_prob(z[b, k]).sum()
            expected += where_prior.log_prob(coords[b, k]).sum()
            patch = torch.sigmoid(vae.digit_model._logits(z[b, k], digits[b, k])).reshape(28, 28)
            canvas = canvas + write_patch(patch, where_from_coords(coords[b, k]), S)
        p = canvas.clamp(1e-3, 1 - 1e-3)
        expected += (x[b] * p.log() + (1 - x[b]) * (1 - p).log()).sum()
    assert trace.log_prob_sum().item() == pytest.approx(expected.item(), rel=1e-5)
    steps = {name for name in trace.nodes if name.startswith("z_")}
    assert steps == {f"z_{k}" for k in range(int(counts.max()))}  # the loop ran to the largest count


@pytest.mark.parametrize("guide_type", ["m2", "paper"])
@pytest.mark.parametrize("split_on", [None, "mask"])
def test_training_step_on_a_mixed_batch(guide_type, split_on):
    torch.manual_seed(0)
    digit_model = SSVAE(z_dim=Z, hidden=(8,), guide_type=guide_type)
    vae = MultiDigitVAE(digit_model, **{k: v for k, v in SMALL.items() if k not in ("digit_hidden", "z_dim")})
    _, batch = canvases()
    mask = torch.tensor([True, False, False, True, False, False, True, False])
    elbo = SemiSupervisedELBO(alpha=2.0, relax=digit_sites(K, 0.5), max_plate_nesting=1, split_on=split_on)
    loss = elbo.loss_and_grads(vae.model, vae.guide, *batch, mask)
    assert math.isfinite(loss)
    for name in ["encoder", "count_head", "step", "where_head", "digit_model"]:
        grads = [p.grad for p in getattr(vae, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name


def test_unlabelled_batch_without_labels():
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    data, _ = canvases(4)
    elbo = SemiSupervisedELBO(relax=digit_sites(K, 0.5), max_plate_nesting=1)
    assert math.isfinite(elbo.loss(vae.model, vae.guide, data.canvases))


def test_nested_digit_model_is_frozen_and_reads_the_digits():
    torch.manual_seed(0)
    digit_model = SSVAE(z_dim=Z, hidden=(8,)).eval()
    frozen = {name: value.clone() for name, value in digit_model.state_dict().items()}
    vae = MultiDigitVAE.nest(
        digit_model, **{k: v for k, v in SMALL.items() if k not in ("digit_hidden", "z_dim")}
    )
    assert vae.digit_model is digit_model
    _, batch = canvases()
    mask = torch.arange(8) % 2 == 0
    elbo = SemiSupervisedELBO(alpha=2.0, relax=digit_sites(K, 0.5), max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    count_head = vae.count_head.weight.clone()
    for _ in range(2):
        svi.step(*batch, mask)
    assert not torch.equal(vae.count_head.weight, count_head)
    for name, value in digit_model.state_dict().items():
        assert torch.equal(value, frozen[name]), name
    assert all(p.grad is None for p in digit_model.parameters())
    assert not any(name.startswith("multi_digit$$$digit_model") for name in pyro.get_param_store())

    reading = vae.read_canvases(batch[0])
    expected = digit_model.encoder_y(reading.glimpses.flatten(-2)).softmax(-1)
    assert torch.allclose(reading.digit_probs, expected)


def test_nested_digit_model_fine_tuned_learns_its_weights():
    torch.manual_seed(0)
    pyro.clear_param_store()
    digit_model = SSVAE(z_dim=Z, hidden=(8,)).eval()
    digit_model.requires_grad_(False)  # as a frozen model would leave it: fine-tuning turns learning back on
    trained = {name: value.clone() for name, value in digit_model.state_dict().items()}
    vae = MultiDigitVAE.nest(
        digit_model, freeze=False, **{k: v for k, v in SMALL.items() if k not in ("digit_hidden", "z_dim")}
    )
    _, batch = canvases()
    mask = torch.arange(8) % 2 == 0
    elbo = SemiSupervisedELBO(alpha=2.0, relax=digit_sites(K, 0.5), max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    for _ in range(2):
        svi.step(*batch, mask)
    learned = digit_model.state_dict()
    changed = [name for name, value in trained.items() if not torch.equal(learned[name], value)]
    assert {name.split(".")[0] for name in changed} >= {"encoder_y", "encoder_z", "decoder"}
    assert any(name.startswith("multi_digit$$$digit_model") for name in pyro.get_param_store())


def test_render_writes_the_present_steps():
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    data, _ = canvases(4)
    reading = vae.read_canvases(data.canvases)
    counts = torch.tensor([0, 1, 2, 3])
    reconstruction, steps = vae.render(reading, counts)
    assert steps.shape == (4, K, S, S) and reconstruction.shape == (4, S, S)
    for b, n in enumerate(counts):
        assert (steps[b, n:] == 0).all() and (steps[b, :n].flatten(1).amax(-1) > 0).all()
    assert torch.allclose(reconstruction, steps.sum(1).clamp(0, 1))


def test_bad_arguments_are_clear_errors():
    vae = MultiDigitVAE(**SMALL)
    _, (x, counts, digits, coords) = canvases(4)
    with pytest.raises(ValueError, match=r"canvases must have shape \(batch, 50, 50\), got \(4, 2500\)"):
        vae.model(x.flatten(1))
    with pytest.raises(ValueError, match="pass counts, digits and wheres"):
        vae.guide(x, counts)
    with pytest.raises(ValueError, match=r"digits must have shape \(4, 3, 10\)"):
        vae.model(x, counts, digits[:, :2], coords)
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        vae.model(x, counts, digits, coords, torch.ones(4))
    with pytest.raises(ValueError, match=r"digit model must model \(1, 28, 28\) images of 10 classes"):
        MultiDigitVAE(SSVAE(image_shape=(3, 32, 32), hidden=(8,)))
    with pytest.raises(ValueError, match=r"count must be non-negative and at most max_steps=3"):
        vae.model(x, counts + 1, digits, coords)
