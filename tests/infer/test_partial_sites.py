"""Helpers of SemiSupervisedELBO: the labelled rows of partially observed sites inside data-dependent masks,
and the relaxation of confident one-hot sites."""

import math

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.infer.partial_sites import find_partial_sites, row_groups
from pyro_partial.infer.site_messengers import PositiveRelaxedOneHotCategorical


def test_labelled_row_groups_of_sites_absent_from_some_rows():
    """A per-step site present only where k < n is labelled where present; the rows are the count's."""
    counts = torch.tensor([2, 0, 1, 2])
    mask = torch.tensor([True, True, False, False])

    def model():
        with pyro.plate("rows", 4):
            n = pyro.sample("count", dist.Categorical(logits=torch.zeros(3)), obs=counts, obs_mask=mask)
            for k in range(2):
                with poutine.mask(mask=n > k):
                    pyro.sample(f"u_{k}", dist.Normal(0.0, 1.0), obs=torch.zeros(4), obs_mask=mask)

    partials = find_partial_sites(poutine.trace(model).get_trace())
    assert torch.equal(partials["u_1"].mask, torch.tensor([True, False, False, False]))
    assert torch.equal(partials["u_1"].present, counts > 1)
    groups = row_groups(partials)
    assert torch.equal(groups.any_labelled, mask) and groups.row_frames == frozenset({("rows", -1)})


def test_labelled_row_groups_reduce_enumeration_dims():
    """Masks carrying an enumeration dim on the left (constant along it on labelled rows) reduce to rows."""
    n = torch.tensor([[0], [1], [2]]).expand(3, 4).clone()  # an enumerated count, (values, rows)
    mask = torch.tensor([True, False, True, False])
    n[:, mask] = 1  # labelled rows: the label in every branch

    def model():
        with pyro.plate("rows", 4):
            pyro.sample("count", dist.Categorical(logits=torch.zeros(3)), obs=n[0], obs_mask=mask)
            with poutine.mask(mask=n > 0):
                pyro.sample("u_0", dist.Normal(0.0, 1.0), obs=torch.zeros(4), obs_mask=mask)

    partials = find_partial_sites(poutine.trace(model).get_trace())
    assert partials["u_0"].mask.shape == (3, 4)
    assert torch.equal(row_groups(partials).any_labelled, mask)
    assert row_groups({}) is None


def test_relaxed_draws_of_a_confident_site_stay_positive_and_differentiable():
    """Logits 400 apart at temperature 0.5: exp of the scores underflows to 0 in float32."""
    logits = torch.tensor([0.0, -400.0, -200.0], requires_grad=True)
    relaxed = PositiveRelaxedOneHotCategorical(torch.tensor(0.5), logits=logits).expand([5])
    value = relaxed.rsample()
    assert isinstance(relaxed, PositiveRelaxedOneHotCategorical) and value.shape == (5, 3)
    assert (value > 0).all() and torch.allclose(value.sum(-1), torch.ones(5))
    relaxed.log_prob(value).sum().backward()
    assert torch.isfinite(logits.grad).all()

    x = torch.randn(6, 2)
    mask = torch.tensor([True, False, False, True, False, False])
    y = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 2, 0, 0]), 3).float()

    def model(x, y, mask):
        with pyro.plate("data", 6):
            y = pyro.sample("y", dist.OneHotCategorical(logits=torch.zeros(3)), obs=y, obs_mask=mask)
            pyro.sample("x", dist.Normal(y[..., :2], 1.0).to_event(1), obs=x)

    def guide(x, y, mask):
        scale = pyro.param("scale", torch.tensor(400.0))
        with pyro.plate("data", 6):
            logits = scale * torch.tensor([0.0, -1.0, -0.5]).expand(6, 3)
            pyro.sample("y", dist.OneHotCategorical(logits=logits), obs=y, obs_mask=mask)

    elbo = SemiSupervisedELBO(relax={"y": 0.5}, max_plate_nesting=1)
    assert math.isfinite(elbo.loss_and_grads(model, guide, x, y, mask))
    assert torch.isfinite(pyro.param("scale").grad)
