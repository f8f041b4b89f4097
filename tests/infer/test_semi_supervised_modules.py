"""SemiSupervisedELBO with ``PyroModule`` model and guide, as the Lightning engine uses it:
``loss_fn = SemiSupervisedELBO(...)(model, guide)`` under ``module_local_params=True``, called as
``loss_fn(xs, ys, mask)``. Checked against exact enumeration by hand, in every mode."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule, PyroParam
from torch.distributions import Normal

from pyro_partial.infer import SemiSupervisedELBO


@pytest.fixture(autouse=True)
def float64_and_local_params(float64):
    with pyro.settings.context(module_local_params=True):
        yield


class Model(PyroModule):
    """p(y) = Cat(softmax(logits)), p(x|y) = N(means_y, 0.8² I)."""

    def __init__(self):
        super().__init__()
        self.logits = PyroParam(torch.tensor([0.2, -0.1, 0.4]))
        self.means = PyroParam(torch.tensor([[-1.0, 0.5], [0.3, 0.2], [1.2, -0.7]]))

    def forward(self, xs, ys, mask):
        with pyro.plate("data", xs.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=self.logits), obs=ys, obs_mask=mask)
            pyro.sample("x", dist.Normal(self.means[y], 0.8).to_event(1), obs=xs)


class Guide(PyroModule):
    """q(y|x) = Cat(softmax(classifier(x)))."""

    def __init__(self):
        super().__init__()
        self.classifier = PyroModule[torch.nn.Linear](2, 3)

    def forward(self, xs, ys, mask):
        with pyro.plate("data", xs.shape[0]):
            pyro.sample("y", dist.Categorical(logits=self.classifier(xs)), obs=ys, obs_mask=mask)


def exact_objective(model, guide, xs, ys, mask, alpha, gamma):
    """Σ_unl Σ_k q(k|x)[log p(x, k) − log q(k|x)] + γ Σ_lab [log p(x, y) + α log q(y|x)]."""
    log_joint = model.logits.log_softmax(-1) + Normal(model.means, 0.8).log_prob(xs[:, None]).sum(-1)
    log_q = guide.classifier(xs).log_softmax(-1)
    unsup = (log_q.exp() * (log_joint - log_q)).sum(-1)
    sup = log_joint.gather(-1, ys[:, None])[:, 0] + alpha * log_q.gather(-1, ys[:, None])[:, 0]
    return torch.where(mask, gamma * sup, unsup).sum()


def data(labelled=(0, 3, 4)):
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(7, 2, generator=g)
    ys = torch.randint(0, 3, (7,), generator=g)
    mask = torch.zeros(7, dtype=torch.bool)
    mask[list(labelled)] = True
    return xs, ys, mask


@pytest.mark.parametrize("split_on", [None, True, "mask"])
@pytest.mark.parametrize("labelled", [(), (0, 3, 4), tuple(range(7))], ids=["none", "mixed", "all"])
def test_module_loss_equals_exact_enumeration_in_every_mode(split_on, labelled):
    torch.manual_seed(0)
    model, guide = Model(), Guide()
    xs, ys, mask = data(labelled)
    loss_fn = SemiSupervisedELBO(alpha=0.7, gamma=2.5, split_on=split_on)(model, guide)
    loss = loss_fn(xs, ys, mask)
    expected = -exact_objective(model, guide, xs, ys, mask, alpha=0.7, gamma=2.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    loss.backward()
    ours = {name: p.grad.clone() for name, p in loss_fn.named_parameters()}
    loss_fn.zero_grad()
    expected.backward()
    for name, p in loss_fn.named_parameters():
        assert torch.allclose(ours[name], p.grad, rtol=1e-10, atol=1e-12), name
    assert len(pyro.get_param_store()) == 0, "module_local_params: nothing in the global param store"


@pytest.mark.parametrize("split_on", [None, True])
def test_module_training_steps_change_every_parameter(split_on):
    torch.manual_seed(0)
    model, guide = Model(), Guide()
    xs, ys, mask = data()
    loss_fn = SemiSupervisedELBO(alpha=1.0, split_on=split_on)(model, guide)
    loss_fn(xs, ys, mask)  # creates lazily initialised parameters, as before Lightning's fit
    before = {name: p.detach().clone() for name, p in loss_fn.named_parameters()}
    assert sorted(before) == [
        "guide.classifier.bias",
        "guide.classifier.weight",
        "model.logits_unconstrained",
        "model.means_unconstrained",
    ]
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        loss_fn(xs, ys, mask).backward()
        optimizer.step()
    for name, p in loss_fn.named_parameters():
        assert not torch.equal(p.detach(), before[name]), name


def test_a_bound_forward_instead_of_the_module_is_refused():
    """Its parameters would not be the ELBOModule's, and training would silently change nothing."""
    model, guide = Model(), Guide()
    with pytest.raises(ValueError, match=r"model: got the bound method 'forward' of a Model; pass"):
        SemiSupervisedELBO()(model.forward, guide)
    with pytest.raises(ValueError, match=r"guide: got the bound method 'forward' of a Guide"):
        SemiSupervisedELBO()(model, guide.forward)
