"""The Pyro internals pyro_partial relies on (pyro_partial.infer.pyro_internals) still behave as assumed.

A failure here means the installed pyro-ppl is outside the supported range (setup.cfg, PYRO_VERSIONS):
the objectives would be wrong or broken, so they fail loudly here first."""

import random

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate

from pyro_partial.infer import pyro_internals as internals


def version(text):
    return tuple(int(part) for part in text.split(".")[:3])


def test_installed_pyro_is_in_the_supported_range():
    lower, upper = (spec.lstrip("<>=") for spec in internals.PYRO_VERSIONS)
    assert version(lower) <= version(pyro.__version__) < version(upper), (
        f"pyro-ppl {pyro.__version__} is outside {internals.PYRO_VERSIONS}: check pyro_internals.py"
    )


def test_obs_mask_splits_a_site_into_observed_unobserved_and_a_deterministic_merge():
    def model():
        with pyro.plate("data", 3):
            pyro.sample(
                "y",
                dist.Categorical(logits=torch.zeros(2)),
                obs=torch.tensor([1, 0, 1]),
                obs_mask=torch.tensor([True, False, True]),
            )

    trace = poutine.trace(model).get_trace()
    sites = {name: site for name, site in trace.nodes.items() if site["type"] == "sample"}
    assert sorted(sites) == sorted(
        ["data", "y" + internals.OBSERVED_SUFFIX, "y" + internals.UNOBSERVED_SUFFIX, "y"]
    )
    assert internals.is_deterministic(sites["y"]) and sites["y"]["is_observed"]
    assert not internals.is_deterministic(sites["y_observed"]) and sites["y_observed"]["is_observed"]
    assert torch.equal(sites["y_observed"]["mask"], torch.tensor([True, False, True]))
    assert torch.equal(sites["y_unobserved"]["mask"], torch.tensor([False, True, False]))


def test_particle_plate_name_and_dim():
    elbo = Trace_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=1)

    def fn():
        with pyro.plate("data", 2):
            return pyro.sample("z", dist.Normal(0.0, 1.0))

    trace = poutine.trace(internals.vectorized_num_particles(elbo, fn)).get_trace()
    frames = {f.name: f.dim for f in trace.nodes["z"]["cond_indep_stack"]}
    assert frames == {internals.PARTICLE_PLATE: -2, "data": -1}


def test_module_namespace_divider_separates_module_and_parameter_names():
    pyro.module("net", torch.nn.Linear(2, 1))
    assert sorted(pyro.get_param_store()) == [
        f"net{internals.MODULE_NAMESPACE_DIVIDER}bias",
        f"net{internals.MODULE_NAMESPACE_DIVIDER}weight",
    ]


def test_dice_elbo_of_packed_traces_is_trace_enum_elbo():
    data = torch.tensor([0.3, -1.2])

    def model():
        with pyro.plate("data", 2):
            y = pyro.sample("y", dist.Bernoulli(0.3))
            pyro.sample("x", dist.Normal(2.0 * y, 1.0), obs=data)

    @config_enumerate
    def guide():
        p = pyro.param("p", torch.tensor(0.6), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", 2):
            pyro.sample("y", dist.Bernoulli(p))

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    expected = elbo.differentiable_loss(model, guide)
    enum_guide = poutine.enum(guide, first_available_dim=-2)
    guide_trace = poutine.trace(enum_guide).get_trace()
    model_trace = poutine.trace(poutine.replay(poutine.enum(model), trace=guide_trace)).get_trace()
    model_trace.compute_log_prob()
    guide_trace.compute_score_parts()
    internals.check_tmc_elbo_constraint(model_trace, guide_trace)
    internals.pack_traces(model_trace, guide_trace)
    assert (-internals.compute_dice_elbo(model_trace, guide_trace)).item() == pytest.approx(expected.item())


def test_empty_plate_names_the_plate():
    with pytest.raises(ZeroDivisionError) as info:
        pyro.plate("rows", 0)
    assert internals.empty_plate(info.value) == "rows"
    assert internals.empty_plate(ZeroDivisionError("elsewhere")) is None


def test_guess_max_plate_nesting_consumes_no_random_numbers():
    def model():
        with pyro.plate("outer", 2, dim=-2), pyro.plate("inner", 3):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        with pyro.plate("outer", 2, dim=-2), pyro.plate("inner", 3):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    torch.manual_seed(1)
    random.seed(1)
    before, python_before = torch.get_rng_state(), random.getstate()
    elbo = Trace_ELBO()
    internals.guess_max_plate_nesting(elbo, model, guide, (), {})
    assert elbo.max_plate_nesting == 2
    assert torch.equal(torch.get_rng_state(), before) and random.getstate() == python_before


def test_masked_observe_call_names_the_site_of_a_mask_of_the_wrong_dtype():
    def model():
        with pyro.plate("data", 2):
            pyro.sample("label", dist.Normal(0.0, 1.0), obs=torch.zeros(2), obs_mask=torch.ones(2))

    with pytest.raises(ValueError, match="BoolTensor") as info:
        model()
    name, mask, fn = internals.masked_observe_call(info.value)
    assert name == "label" and mask.dtype == torch.float32 and isinstance(fn, dist.Normal)
    assert internals.masked_observe_call(ValueError("elsewhere")) is None
