"""SemiSupervisedELBO on unusual input: float64 models, bad masks, non-finite data, bad options, empty
batches; its use of random numbers; the parts of Pyro's ELBO contract it does not implement."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch.distributions import Normal

from pyro_partial.infer import Decomposition, DecompositionELBO, SemiSupervisedELBO

MODES = [
    pytest.param({}, id="masking"),
    pytest.param({"split_on": True}, id="split"),
    pytest.param({"num_importance_samples": 3}, id="importance"),
    pytest.param({"split_on": True, "num_importance_samples": 3}, id="split-importance"),
]


def model(x, y=None, mask=None):
    logits = pyro.param("prior_logits", torch.tensor([0.2, -0.1, 0.4], dtype=x.dtype))
    means = pyro.param("means", torch.tensor([[-1.0, 0.5], [0.3, 0.2], [1.2, -0.7]], dtype=x.dtype))
    with pyro.plate("data", x.shape[0]):
        y = pyro.sample("y", dist.Categorical(logits=logits), obs=y, obs_mask=mask)
        pyro.sample("x", dist.Normal(means[y], 0.8).to_event(1), obs=x)


def guide(x, y=None, mask=None):
    weight = pyro.param("weight", torch.tensor([[0.5, -0.3, 0.1], [0.2, 0.4, -0.6]], dtype=x.dtype))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Categorical(logits=x @ weight), obs=y, obs_mask=mask)


def exact_objective(x, y, mask, alpha, gamma):
    log_joint = pyro.param("prior_logits").log_softmax(-1)
    log_joint = log_joint + Normal(pyro.param("means"), 0.8).log_prob(x[:, None, :]).sum(-1)
    log_q = (x @ pyro.param("weight")).log_softmax(-1)
    unsup = (log_q.exp() * (log_joint - log_q)).sum(-1)
    sup = log_joint.gather(-1, y[:, None])[:, 0] + alpha * log_q.gather(-1, y[:, None])[:, 0]
    return torch.where(mask, gamma * sup, unsup).sum()


def batch(dtype=torch.float32, size=6, labelled=(0, 2, 3)):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(size, 2, generator=g).to(dtype)
    y = torch.randint(0, 3, (size,), generator=g)
    mask = torch.zeros(size, dtype=torch.bool)
    mask[list(labelled)] = True
    return x, y, mask


# ---------------------------------------------------------------- float64 under a float32 default


@pytest.mark.parametrize("options", MODES)
def test_float64_model_under_a_float32_default_matches_exact_enumeration(options):
    assert torch.get_default_dtype() == torch.float32
    x, y, mask = batch(torch.float64)
    elbo = SemiSupervisedELBO(alpha=0.9, gamma=3.0, **options)
    loss = elbo.loss_and_grads(model, guide, x, y, mask)
    names = ["prior_logits", "means", "weight"]
    ours = {n: pyro.param(n).grad.clone() for n in names}
    for n in names:
        pyro.param(n).grad = None
    expected = exact_objective(x, y, mask, alpha=0.9, gamma=3.0)
    (-expected).backward()
    assert loss == pytest.approx(-expected.item(), rel=1e-12)
    for n in names:
        assert pyro.param(n).dtype == torch.float64
        assert torch.allclose(ours[n], pyro.param(n).grad, rtol=1e-10, atol=1e-12), n


# ---------------------------------------------------------------- random numbers


@pytest.mark.parametrize("split_on", [None, True])
def test_guessing_max_plate_nesting_consumes_no_random_numbers(split_on):
    """A fresh ELBO that guesses max_plate_nesting draws exactly what one given it explicitly draws, so
    an exactly resumed run does not depend on the option."""

    def style_model(x, y=None, mask=None):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=torch.zeros(3)), obs=y, obs_mask=mask)
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z + y, 1.0), obs=x[:, 0])

    def style_guide(x, y=None, mask=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(logits=x @ torch.ones(2, 3)), obs=y, obs_mask=mask)
            pyro.sample("z", dist.Normal(0.1 * x[:, 0], 1.0))

    x, y, mask = batch()
    states, losses = [], []
    for nesting in ({"max_plate_nesting": 1}, {}):
        pyro.set_rng_seed(5)
        elbo = SemiSupervisedELBO(alpha=0.5, split_on=split_on, **nesting)
        losses.append(elbo.loss(style_model, style_guide, x, y, mask))
        states.append(torch.get_rng_state())
        assert elbo.max_plate_nesting == 1
    assert torch.equal(states[0], states[1])
    assert losses[0] == losses[1]


# ---------------------------------------------------------------- errors naming the site or argument


@pytest.mark.parametrize("split_on", [None, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_mask_of_a_wrong_dtype_names_the_site_dtype_and_shape(split_on, dtype):
    x, y, mask = batch()
    expected = rf"site 'y': obs_mask has dtype {dtype} and shape \(6,\), expected a bool tensor"
    with pytest.raises(ValueError, match=expected):
        SemiSupervisedELBO(split_on=split_on).loss(model, guide, x, y, mask.to(dtype))


@pytest.mark.parametrize("split_on", [None, True])
def test_mask_with_an_extra_dim_names_the_site_and_shapes(split_on):
    x, y, mask = batch()
    expected = r"site 'y': obs_mask has shape \(6, 1\).*expected a bool tensor .*not \(batch, 1\)"
    with pytest.raises(ValueError, match=expected):
        SemiSupervisedELBO(split_on=split_on, max_plate_nesting=1).loss(model, guide, x, y, mask[:, None])


@pytest.mark.parametrize("split_on", [None, True])
def test_mask_of_the_wrong_length_names_the_shape_found_and_expected(split_on):
    x, y, mask = batch()
    short = mask[:5]
    with pytest.raises(ValueError, match=r"site 'y': obs_mask has shape \(5,\).*batch shape \(6,\)"):
        SemiSupervisedELBO(split_on=split_on, max_plate_nesting=1).loss(model, guide, x, y, short)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_data_passed_to_a_module_names_the_argument(bad):
    class Model(PyroModule):
        def forward(self, xs, ys, mask):
            return model(xs, ys, mask)

    class Guide(PyroModule):
        def forward(self, xs, ys, mask):
            return guide(xs, ys, mask)

    x, y, mask = batch()
    x[4, 1] = bad
    kind = "NaN" if math.isnan(bad) else "infinite"
    loss_fn = SemiSupervisedELBO(split_on=True)(Model(), Guide())
    with pytest.raises(
        ValueError, match=rf"argument 'xs' holds 1 {kind} value\(s\) in a tensor of shape \(6, 2\)"
    ):
        loss_fn(x, y, mask)


def test_infinite_observation_names_the_site():
    def inf_model(x, y, mask):
        model(x, y, mask)
        pyro.sample("w", dist.Normal(0.0, 1.0), obs=torch.tensor(math.inf))

    x, y, mask = batch()
    with pytest.raises(ValueError, match=r"observed site 'w' holds 1 infinite value\(s\)"):
        SemiSupervisedELBO(max_plate_nesting=1).loss(inf_model, guide, x, y, mask)


@pytest.mark.parametrize("split_on", [None, True])
def test_empty_batch_is_an_error(split_on):
    x, y, mask = batch(size=0, labelled=())
    with pytest.raises(ValueError, match=r"plate 'data' has size 0.*the mini-batch is empty; expected at"):
        SemiSupervisedELBO(split_on=split_on, max_plate_nesting=1).loss(model, guide, x, y, mask)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"alpha": math.nan}, r"alpha must be non-negative \(a finite number >= 0\), got nan"),
        ({"alpha": -1.0}, r"alpha must be non-negative \(a finite number >= 0\), got -1.0"),
        ({"alpha": math.inf}, r"alpha must be non-negative .*got inf"),
        ({"alpha": {"y": -2.0}}, r"alpha\['y'\] must be non-negative .*got -2.0"),
        ({"gamma": math.nan}, r"gamma must be non-negative .*got nan"),
        ({"gamma": math.inf}, r"gamma must be non-negative .*got inf"),
        ({"relax": {"y": math.inf}}, r"relax\['y'\]: the temperature must be positive .*got inf"),
        ({"relax": {"y": math.nan}}, r"relax\['y'\]: the temperature must be positive .*got nan"),
        ({"num_particles": 0}, r"num_particles must be a positive integer \(>= 1\), got 0"),
        ({"num_particles": 2.5}, r"num_particles must be a positive integer \(>= 1\), got 2.5"),
        ({"num_importance_samples": 0}, r"num_importance_samples must be a positive integer"),
        ({"max_plate_nesting": -1}, r"max_plate_nesting must be an integer >= 0 .*got -1"),
    ],
)
def test_bad_options_name_the_argument_value_and_range(options, match):
    with pytest.raises(ValueError, match=match):
        SemiSupervisedELBO(**options)


@pytest.mark.parametrize("objective", [DecompositionELBO, Decomposition])
@pytest.mark.parametrize(
    "options, match",
    [
        ({"beta": math.nan}, r"beta must be non-negative .*got nan"),
        ({"beta": math.inf}, r"beta must be non-negative .*got inf"),
        ({"beta": -1.0}, r"beta must be non-negative .*got -1.0"),
        ({"alpha": math.nan}, r"alpha must be non-negative .*got nan"),
        ({"alpha": math.inf}, r"alpha must be non-negative .*got inf"),
    ],
)
def test_bad_decomposition_weights_name_the_argument_value_and_range(objective, options, match):
    with pytest.raises(ValueError, match=match):
        objective(**options)


def test_alpha_per_site_must_name_the_model_sites():
    x, y, mask = batch()
    with pytest.raises(ValueError, match=r"alpha= names \['label'\], but the model's partially observed"):
        SemiSupervisedELBO(alpha={"y": 1.0, "label": 2.0}).loss(model, guide, x, y, mask)
    with pytest.raises(
        ValueError, match=r"alpha= gives no value for the partially observed site\(s\) \['y'\]"
    ):
        SemiSupervisedELBO(alpha={}).loss(model, guide, x, y, mask)


# ---------------------------------------------------------------- Pyro's ELBO contract


@pytest.mark.parametrize("method", ["compute_marginals", "sample_posterior"])
def test_posterior_queries_are_not_implemented(method):
    x, y, mask = batch()
    with pytest.raises(NotImplementedError, match=f"SemiSupervisedELBO.{method} is not implemented"):
        getattr(SemiSupervisedELBO(), method)(model, guide, x, y, mask)
