"""SemiSupervisedELBO under mixed precision: the enumerated pass contracts log densities of mixed dtypes."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_partial.infer import SemiSupervisedELBO

NET = torch.nn.Linear(2, 3)
MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])


def model(x, y, mask):
    with pyro.plate("data", len(x)):
        y = pyro.sample("y", dist.Categorical(logits=x.new_zeros(3)), obs=y, obs_mask=mask)
        pyro.sample("x", dist.Normal(MEANS[y], 1.0).to_event(1), obs=x)  # a float32 density


def guide(x, y, mask):
    with pyro.plate("data", len(x)):  # under autocast the classifier's logits are bfloat16
        pyro.sample("y", dist.Categorical(logits=NET(x)), obs=y, obs_mask=mask)


@pytest.mark.parametrize("split_on", [None, True])
def test_bfloat16_autocast_gives_the_float32_loss_and_gradient_to_bfloat16_precision(split_on):
    pyro.set_rng_seed(0)
    x = MEANS[torch.arange(12) % 3] + torch.randn(12, 2)
    y, mask = torch.arange(12) % 3, torch.arange(12) < 4
    elbo = SemiSupervisedELBO(alpha=2.0, max_plate_nesting=1, split_on=split_on)

    def loss_and_grad():
        NET.zero_grad()
        loss = elbo.differentiable_loss(model, guide, x, torch.where(mask, y, 0), mask)
        loss.backward()
        return loss.detach().float(), NET.weight.grad.clone()

    exact_loss, exact_grad = loss_and_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed_loss, mixed_grad = loss_and_grad()
    assert torch.isfinite(mixed_loss) and torch.isfinite(mixed_grad).all()
    assert mixed_loss == pytest.approx(exact_loss.item(), rel=2e-2)
    assert torch.allclose(mixed_grad, exact_grad, rtol=5e-2, atol=5e-2 * exact_grad.abs().max().item())
