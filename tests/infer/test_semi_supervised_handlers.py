"""SemiSupervisedELBO with subsampling plates and Pyro's handlers, in every mode, against exact enumeration.

The discrete model p(y) p(x|y) with guide q(y|x) has the exact objective (per row, weighted by the row's
scale s_n and zero where a mask removes it)

    Σ_unl s_n Σ_k q(k|x)[log p(x, k) − log q(k|x)] + γ Σ_lab s_n [log p(x, y) + α log q(y|x)].
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta, AutoDiscreteParallel, AutoGuideList, AutoNormal
from torch.distributions import Normal

from pyro_partial.infer import SemiSupervisedELBO

ALPHA, GAMMA = 0.6, 2.0
MODES = [pytest.param(None, id="masking"), pytest.param(True, id="split")]


pytestmark = pytest.mark.usefixtures("float64")  # objectives are checked in float64


def params():
    return (
        pyro.param("prior_logits", torch.tensor([0.2, -0.1, 0.4])),
        pyro.param("means", torch.tensor([[-1.0, 0.5], [0.3, 0.2], [1.2, -0.7]])),
        pyro.param("weight", torch.tensor([[0.5, -0.3, 0.1], [0.2, 0.4, -0.6]])),
    )


def model(x, y, mask):
    logits, means, _ = params()
    with pyro.plate("data", x.shape[0]):
        y = pyro.sample("y", dist.Categorical(logits=logits), obs=y, obs_mask=mask)
        pyro.sample("x", dist.Normal(means[y], 0.8).to_event(1), obs=x)


def guide(x, y, mask):
    *_, weight = params()
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Categorical(logits=x @ weight), obs=y, obs_mask=mask)


def row_objectives(x, y, mask):
    logits, means, weight = params()
    log_joint = logits.log_softmax(-1) + Normal(means, 0.8).log_prob(x[:, None, :]).sum(-1)
    log_q = (x @ weight).log_softmax(-1)
    unsup = (log_q.exp() * (log_joint - log_q)).sum(-1)
    sup = log_joint.gather(-1, y[:, None])[:, 0] + ALPHA * log_q.gather(-1, y[:, None])[:, 0]
    return torch.where(mask, GAMMA * sup, unsup)


def data(size=8):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(size, 2, generator=g)
    y = torch.randint(0, 3, (size,), generator=g)
    mask = torch.rand(size, generator=g) < 0.5
    mask[:2] = torch.tensor([True, False])
    return x, y, mask


def check(model, guide, expected_fn, split_on, *args):
    elbo = SemiSupervisedELBO(alpha=ALPHA, gamma=GAMMA, split_on=split_on, max_plate_nesting=1)
    loss = elbo.loss_and_grads(model, guide, *args)
    ours = {name: pyro.param(name).grad.clone() for name in ("prior_logits", "means", "weight")}
    for name in ours:
        pyro.param(name).grad = None
    expected = expected_fn()
    (-expected).backward()
    assert loss == pytest.approx(-expected.item(), rel=1e-12)
    for name, value in ours.items():
        assert torch.allclose(value, pyro.param(name).grad, rtol=1e-10, atol=1e-12), name


@pytest.mark.parametrize("split_on", MODES)
def test_subsampling_plate_shares_one_subsample_between_the_passes(split_on):
    x, y, mask = data(size=10)
    seen = []

    def sub_model(x, y, mask):
        logits, means, _ = params()
        with pyro.plate("data", x.shape[0], subsample_size=4) as ind:
            seen.append(ind)
            labels = pyro.sample("y", dist.Categorical(logits=logits), obs=y[ind], obs_mask=mask[ind])
            pyro.sample("x", dist.Normal(means[labels], 0.8).to_event(1), obs=x[ind])

    def sub_guide(x, y, mask):
        *_, weight = params()
        with pyro.plate("data", x.shape[0], subsample_size=4) as ind:
            seen.append(ind)
            pyro.sample("y", dist.Categorical(logits=x[ind] @ weight), obs=y[ind], obs_mask=mask[ind])

    def expected():
        ind = seen[0]
        return 10 / 4 * row_objectives(x[ind], y[ind], mask[ind]).sum()

    check(sub_model, sub_guide, expected, split_on, x, y, mask)
    assert len(seen) >= 4 and all(torch.equal(ind, seen[0]) for ind in seen)
    assert mask[seen[0]].any() and (~mask[seen[0]]).any(), "the subsample mixes both kinds of rows"


@pytest.mark.parametrize("split_on", MODES)
def test_mask_handler_around_model_and_guide(split_on):
    x, y, mask = data()
    keep = torch.tensor([True, True, False, True, False, True, True, False])
    masked_model, masked_guide = poutine.mask(model, mask=keep), poutine.mask(guide, mask=keep)
    check(masked_model, masked_guide, lambda: row_objectives(x, y, mask)[keep].sum(), split_on, x, y, mask)


@pytest.mark.parametrize("split_on", MODES)
@pytest.mark.parametrize("per_row", [False, True], ids=["scalar", "per-row"])
def test_scale_handler_around_model_and_guide(split_on, per_row):
    x, y, mask = data()
    scale = torch.linspace(0.5, 2.0, 8) if per_row else torch.tensor(3.0)
    scaled_model, scaled_guide = poutine.scale(model, scale=scale), poutine.scale(guide, scale=scale)
    check(
        scaled_model, scaled_guide, lambda: (scale * row_objectives(x, y, mask)).sum(), split_on, x, y, mask
    )


@pytest.mark.parametrize("split_on", MODES)
def test_block_and_config_enumerate_handlers(split_on):
    """A blocked auxiliary draw is invisible to the objective; config_enumerate on the guide changes
    nothing (the partially observed site is enumerated anyway)."""
    x, y, mask = data()

    def model_with_aux(x, y, mask):
        pyro.sample("aux", dist.Normal(0.0, 1.0))  # e.g. a draw for plotting, not part of the model
        model(x, y, mask)

    blocked = poutine.block(model_with_aux, hide=["aux"])
    check(blocked, config_enumerate(guide), lambda: row_objectives(x, y, mask).sum(), split_on, x, y, mask)


# ---------------------------------------------------------------- autoguides


def global_model(x, y, mask):
    """As ``model``, with a global latent θ scaling the class means: p(θ) = N(1, 0.5²)."""
    logits, means, _ = params()
    theta = pyro.sample("theta", dist.Normal(1.0, 0.5))
    with pyro.plate("data", x.shape[0]):
        y = pyro.sample("y", dist.Categorical(logits=logits), obs=y, obs_mask=mask)
        pyro.sample("x", dist.Normal(theta.unsqueeze(-1) * means[y], 0.8).to_event(1), obs=x)


@pytest.mark.parametrize("split_on", MODES)
@pytest.mark.parametrize("samples", [1, 3])
def test_autoguide_for_global_latents_with_an_amortised_classifier(split_on, samples):
    """AutoDelta for θ plus a hand-written q(y|x): the objective is the exact one at θ, plus log p(θ)
    once (the unsupervised pass counts the global latent; the supervised passes do not)."""
    x, y, mask = data()
    auto = AutoDelta(poutine.block(global_model, expose=["theta"]))

    def guide_with_auto(x, y, mask):
        auto(x, y, mask)
        guide(x, y, mask)

    elbo = SemiSupervisedELBO(
        alpha=ALPHA, gamma=GAMMA, split_on=split_on, num_importance_samples=samples, max_plate_nesting=1
    )
    loss = elbo.loss(global_model, guide_with_auto, x, y, mask)
    theta = auto.median(x, y, mask)["theta"]
    logits, means, weight = params()
    log_joint = logits.log_softmax(-1) + Normal(theta * means, 0.8).log_prob(x[:, None, :]).sum(-1)
    log_q = (x @ weight).log_softmax(-1)
    unsup = (log_q.exp() * (log_joint - log_q)).sum(-1)
    sup = log_joint.gather(-1, y[:, None])[:, 0] + ALPHA * log_q.gather(-1, y[:, None])[:, 0]
    expected = torch.where(mask, GAMMA * sup, unsup).sum() + Normal(1.0, 0.5).log_prob(theta)
    assert loss == pytest.approx(-expected.item(), rel=1e-12)


def test_autoguides_for_the_labels_work_by_masking_and_are_refused_with_split_on():
    """AutoDiscreteParallel samples ``y_unobserved`` without labels and AutoNormal's per-row parameters
    tie it to the whole batch: fine by masking, to which split_on falls back; a hand-written guide
    without labels is refused with split_on, saying what to do instead."""
    x, y, mask = data()

    def local_model(x, y, mask):
        logits, means, _ = params()
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=logits), obs=y, obs_mask=mask)
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(means[y] + z.unsqueeze(-1), 0.8).to_event(1), obs=x)

    guide = AutoGuideList(local_model)
    guide.append(AutoDiscreteParallel(poutine.block(local_model, expose=["y_unobserved"])))
    guide.append(AutoNormal(poutine.block(local_model, expose=["z"])))
    loss = SemiSupervisedELBO(alpha=ALPHA, max_plate_nesting=1).loss_and_grads(local_model, guide, x, y, mask)
    assert torch.isfinite(torch.tensor(loss))
    assert all(torch.isfinite(p.grad).all() for p in guide.parameters() if p.grad is not None)
    pyro.set_rng_seed(1)
    masked = SemiSupervisedELBO(max_plate_nesting=1).loss(local_model, guide, x, y, mask)
    pyro.set_rng_seed(1)
    split = SemiSupervisedELBO(split_on=True, max_plate_nesting=1).loss(local_model, guide, x, y, mask)
    assert split == masked, "split_on falls back to masking for an autoguide with parameters per row"

    def raw_guide(x, y, mask):  # y_unobserved without obs=: no labels for a split supervised pass
        with pyro.plate("data", x.shape[0]), poutine.mask(mask=~mask):
            pyro.sample(
                "y_unobserved", dist.Categorical(logits=torch.zeros(3)), infer={"enumerate": "parallel"}
            )

    with pytest.raises(ValueError, match=r"site 'y'.*without them \(an autoguide.*or use split_on=None"):
        SemiSupervisedELBO(split_on=True, max_plate_nesting=1).loss(model, raw_guide, x, y, mask)
