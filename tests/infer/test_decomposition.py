import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch.distributions import constraints

from pyro_partial.distributions import isotropic_gaussian, sparse_gaussian_mixture
from pyro_partial.infer.decomposition import DecompositionELBO, decomposition_penalty
from pyro_partial.infer.divergences import mmd_imq

NOISE = 0.7  # σ_x of the linear-Gaussian likelihood


@pytest.fixture(autouse=True)
def double_precision():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.fixture
def data():
    return torch.randn(6, 3)


WEIGHT = torch.tensor([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.4]], dtype=torch.float64)
BIAS = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)


def make_model(prior=None):
    """p(z) p(x | z) with x = W z + b + σ_x ε, one z per row of the data plate."""

    def model(x, mask=True):
        with pyro.plate("data", x.shape[0]), poutine.mask(mask=mask):
            z = pyro.sample("z", prior or isotropic_gaussian(2))
            pyro.sample("x", dist.Normal(z @ WEIGHT.T + BIAS, NOISE).to_event(1), obs=x)

    return model


def guide(x, mask=True):
    """q(z | x) = N(A x + c, diag s²) with learnable A, c, log s."""
    a = pyro.param("A", 0.3 * torch.ones(2, 3))
    c = pyro.param("c", torch.tensor([0.2, -0.1]))
    scale = pyro.param("s", torch.tensor([0.5, 1.3]), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]), poutine.mask(mask=mask):
        pyro.sample("z", dist.Normal(x @ a.T + c, scale).to_event(1))


def guide_moments(x):
    a, c, scale = pyro.param("A"), pyro.param("c"), pyro.param("s")
    return x @ a.T + c, scale.expand(x.shape[0], 2)


def closed_form_kl(x):
    """Σ_n KL(N(μ_n, diag s²) ‖ N(0, I)) = ½ Σ_n Σ_d (s_d² + μ_nd² − 1 − 2 log s_d)."""
    loc, scale = guide_moments(x)
    return 0.5 * (scale.square() + loc.square() - 1 - 2 * scale.log()).sum()


def closed_form_expected_log_likelihood(x):
    """Σ_n E_q[log N(x_n; W z + b, σ_x² I)]
    = Σ_n Σ_d [log N(x_nd; (Wμ_n + b)_d, σ_x²) − (W S_n Wᵀ)_dd / 2σ_x²], S_n = diag s²."""
    loc, scale = guide_moments(x)
    mean = loc @ WEIGHT.T + BIAS
    spread = (scale.square() @ WEIGHT.T.square()).sum()
    log_density = -0.5 * math.log(2 * math.pi * NOISE**2) - (x - mean).square() / (2 * NOISE**2)
    return log_density.sum() - spread / (2 * NOISE**2)


def likelihood_standard_error(x, num_particles):
    """The standard error of a num_particles average of Σ_n log p(x_n | z_n), z_n ~ q(z | x_n)."""
    loc, scale = guide_moments(x)
    with torch.no_grad():
        z = loc + scale * torch.randn(num_particles, *loc.shape)
        log_likelihood = dist.Normal(z @ WEIGHT.T + BIAS, NOISE).log_prob(x).sum((-2, -1))
    return log_likelihood.std().item() / math.sqrt(num_particles)


def traces(model, x, *args):
    guide_trace = poutine.trace(guide).get_trace(x, *args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, *args)
    return model_trace, guide_trace


def seeded(seed, fn, *args, **kwargs):
    pyro.set_rng_seed(seed)
    return fn(*args, **kwargs)


def test_beta_one_alpha_zero_replaces_the_sampled_kl_by_the_analytic_kl(data):
    model = make_model()
    trace_loss = seeded(1, Trace_ELBO().loss, model, guide, data)
    decomposition_loss = seeded(1, DecompositionELBO(beta=1.0, alpha=0.0).loss, model, guide, data)
    model_trace, guide_trace = seeded(1, traces, model, data)
    sampled_log_ratio = (
        model_trace.nodes["z"]["fn"].log_prob(model_trace.nodes["z"]["value"]).sum()
        - guide_trace.nodes["z"]["fn"].log_prob(guide_trace.nodes["z"]["value"]).sum()
    )
    expected = trace_loss + sampled_log_ratio.item() + closed_form_kl(data).item()
    assert decomposition_loss == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_expectation_matches_the_closed_form_objective(data, beta):
    """E_q[log p(x|z)] − β KL on a linear-Gaussian model, 20000 vectorised particles."""
    elbo = DecompositionELBO(beta=beta, num_particles=20_000, vectorize_particles=True, max_plate_nesting=1)
    loss = elbo.loss(make_model(), guide, data)
    expected = closed_form_expected_log_likelihood(data) - beta * closed_form_kl(data)
    tolerance = 4 * likelihood_standard_error(data, 20_000)
    assert abs(-loss - expected.item()) < tolerance
    if beta == 1.0:
        trace_elbo = Trace_ELBO(num_particles=20_000, vectorize_particles=True, max_plate_nesting=1)
        assert abs(-trace_elbo.loss(make_model(), guide, data) - expected.item()) < tolerance


def test_beta_scales_the_analytic_kl_and_its_gradient(data):
    """Same draws, two βs: the losses differ by (β1 − β2) KL and the gradients by (β1 − β2) ∇KL, exactly."""
    model = make_model()
    losses, grads = [], []
    for beta in (0.5, 4.0):
        pyro.clear_param_store()
        loss = seeded(3, DecompositionELBO(beta=beta).differentiable_loss, model, guide, data)
        params = [pyro.param(name).unconstrained() for name in ("A", "c", "s")]
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, params))
    kl = closed_form_kl(data)
    params = [pyro.param(name).unconstrained() for name in ("A", "c", "s")]
    kl_grads = torch.autograd.grad(kl, params)
    assert (losses[1] - losses[0]).item() == pytest.approx(3.5 * kl.item(), rel=1e-10)
    for g1, g0, g_kl in zip(grads[1], grads[0], kl_grads, strict=True):
        assert torch.isfinite(g1).all()
        assert torch.allclose(g1 - g0, 3.5 * g_kl, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("divergence", ["mmd", "inclusive_kl"])
@pytest.mark.parametrize("prior", ["gaussian", "sparse"])
def test_loss_differentiable_loss_and_loss_and_grads_agree(data, divergence, prior):
    model = make_model(sparse_gaussian_mixture(2) if prior == "sparse" else None)
    elbo = DecompositionELBO(beta=2.0, alpha=5.0, divergence=divergence, num_prior_samples=2)
    loss = seeded(4, elbo.loss, model, guide, data)
    differentiable = seeded(4, elbo.differentiable_loss, model, guide, data)
    params = [pyro.param(name).unconstrained() for name in ("A", "c", "s")]
    expected_grads = torch.autograd.grad(differentiable, params)
    loss_and_grads = seeded(4, elbo.loss_and_grads, model, guide, data)
    assert loss == pytest.approx(differentiable.item(), rel=1e-12)
    assert loss_and_grads == pytest.approx(loss, rel=1e-12)
    for param, expected in zip(params, expected_grads, strict=True):
        assert torch.isfinite(param.grad).all()
        assert torch.allclose(param.grad, expected, rtol=1e-10)


def test_mmd_term_is_alpha_times_rows_times_the_batch_mmd(data):
    """−α · N · MMD²(z_q, ζ), with ζ the prior draw the penalty makes (first use of the RNG after seeding)."""
    model_trace, guide_trace = seeded(5, traces, make_model(), data)
    without = decomposition_penalty(model_trace, guide_trace, ["z"], beta=0.0, alpha=0.0)
    with_mmd = seeded(6, decomposition_penalty, model_trace, guide_trace, ["z"], beta=0.0, alpha=3.0)
    zeta = seeded(6, model_trace.nodes["z"]["fn"].rsample, (1,))[0]
    expected = -3.0 * data.shape[0] * mmd_imq(guide_trace.nodes["z"]["value"], zeta)
    assert torch.allclose(with_mmd - without, expected, rtol=1e-12)


def test_inclusive_kl_term_converges_to_the_closed_form(data):
    """Encoders that ignore x, all N(m, v): q(z) = N(m, v) and D → KL(N(0, I) ‖ N(m, v)) in closed form."""
    pyro.param("A", torch.zeros(2, 3))
    pyro.param("c", torch.tensor([0.4, -0.8]))
    pyro.param("s", torch.tensor([0.6, 1.5]), constraint=constraints.positive)
    model_trace, guide_trace = traces(make_model(), data)
    args = (model_trace, guide_trace, ["z"])
    without = decomposition_penalty(*args, beta=0.0, alpha=0.0)
    penalty = decomposition_penalty(
        *args, beta=0.0, alpha=2.0, divergence="inclusive_kl", num_prior_samples=5000
    )
    estimate = (without - penalty).item() / (2.0 * data.shape[0])
    expected = torch.distributions.kl_divergence(
        dist.Normal(0.0, 1.0), dist.Normal(pyro.param("c"), pyro.param("s"))
    ).sum()
    # 30000 prior draws: standard error below 0.01
    assert estimate == pytest.approx(expected.item(), abs=0.03)


def test_inclusive_kl_term_is_zero_when_the_encoders_are_the_prior(data):
    pyro.param("A", torch.zeros(2, 3))
    pyro.param("c", torch.zeros(2))
    pyro.param("s", torch.ones(2), constraint=constraints.positive)
    model_trace, guide_trace = traces(make_model(), data)
    args = (model_trace, guide_trace, ["z"])
    without = decomposition_penalty(*args, beta=1.0, alpha=0.0)
    penalty = decomposition_penalty(*args, beta=1.0, alpha=7.0, divergence="inclusive_kl")
    assert (penalty - without).abs().item() < 1e-12


def test_monte_carlo_kl_for_priors_without_an_analytic_kl(data):
    """Sparse prior: the KL is the one-sample log q(z|x) − log p(z), so β = 1 leaves the ELBO unchanged and
    β = 3 adds −2 (log q − log p)."""
    model_trace, guide_trace = traces(make_model(sparse_gaussian_mixture(2)), data)
    z = guide_trace.nodes["z"]["value"]
    log_ratio = (
        guide_trace.nodes["z"]["fn"].log_prob(z).sum() - model_trace.nodes["z"]["fn"].log_prob(z).sum()
    )
    assert decomposition_penalty(model_trace, guide_trace, ["z"], beta=1.0).abs().item() < 1e-10
    penalty = decomposition_penalty(model_trace, guide_trace, ["z"], beta=3.0)
    assert torch.allclose(penalty, -2.0 * log_ratio, rtol=1e-12)


@pytest.mark.parametrize("divergence", ["mmd", "inclusive_kl"])
def test_masked_rows_are_left_out(data, divergence):
    """Masked rows contribute to neither the KL nor D: changing their encoders and draws changes nothing,
    and D counts the unmasked rows only (the scaled penalty is exactly proportional to the scale)."""
    mask = torch.tensor([True, True, False, True, False, True])
    model = make_model()
    model_trace, guide_trace = traces(model, data, mask)
    kwargs = {"beta": 2.0, "alpha": 3.0, "divergence": divergence}
    penalty = seeded(7, decomposition_penalty, model_trace, guide_trace, ["z"], **kwargs)
    value = guide_trace.nodes["z"]["value"].clone()
    value[~mask] = 100.0
    encoder = guide_trace.nodes["z"]["fn"].base_dist
    loc = encoder.loc.clone()
    loc[~mask] = 100.0
    guide_trace.nodes["z"]["fn"] = dist.Normal(loc, encoder.scale).to_event(1)
    for trace in (model_trace, guide_trace):
        trace.nodes["z"]["value"] = value
    changed = seeded(7, decomposition_penalty, model_trace, guide_trace, ["z"], **kwargs)
    assert torch.allclose(changed, penalty, rtol=1e-12)

    def scaled(fn):
        return poutine.scale(fn, scale=3.0)

    model_trace3, guide_trace3 = seeded(8, traces, scaled(model), data, mask)
    model_trace1, guide_trace1 = seeded(8, traces, model, data, mask)
    d3 = seeded(
        9,
        decomposition_penalty,
        model_trace3,
        guide_trace3,
        ["z"],
        beta=0.0,
        alpha=1.0,
        divergence=divergence,
    )
    d1 = seeded(
        9,
        decomposition_penalty,
        model_trace1,
        guide_trace1,
        ["z"],
        beta=0.0,
        alpha=1.0,
        divergence=divergence,
    )
    base1 = decomposition_penalty(model_trace1, guide_trace1, ["z"], beta=0.0)
    base3 = decomposition_penalty(model_trace3, guide_trace3, ["z"], beta=0.0)
    assert torch.allclose(d3 - base3, 3.0 * (d1 - base1), rtol=1e-10)


@pytest.mark.parametrize("divergence", ["mmd", "inclusive_kl"])
def test_svi_steps_with_vectorised_particles(data, divergence):
    elbo = DecompositionELBO(
        beta=4.0, alpha=10.0, divergence=divergence, num_particles=3, vectorize_particles=True
    )
    svi = SVI(make_model(), guide, Adam({"lr": 0.01}), loss=elbo)
    losses = [svi.step(data) for _ in range(3)]
    assert all(math.isfinite(loss) for loss in losses)
    for name in ("A", "c", "s"):
        assert torch.isfinite(pyro.param(name)).all()


def test_errors_name_the_site(data):
    model = make_model()
    with pytest.raises(ValueError, match="'w' not found in the model"):
        DecompositionELBO(latent_sites=("w",)).loss(model, guide, data)
    with pytest.raises(ValueError, match="'x' is observed"):
        DecompositionELBO(latent_sites=("x",)).loss(model, guide, data)

    def global_model(x):
        z = pyro.sample("z", isotropic_gaussian(2))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(z @ WEIGHT.T + BIAS, NOISE).to_event(1), obs=x)

    def global_guide(x):
        pyro.sample("z", dist.Normal(pyro.param("c", torch.zeros(2)), 1.0).to_event(1))

    with pytest.raises(ValueError, match="'z' is outside a batch plate"):
        DecompositionELBO(alpha=1.0).loss(global_model, global_guide, data)
    DecompositionELBO(beta=2.0).loss(global_model, global_guide, data)  # β alone needs no plate

    def score_function_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", sparse_gaussian_mixture(2))

    with pytest.raises(ValueError, match="'z': the guide's Independent has no reparameterised sampler"):
        DecompositionELBO().loss(model, score_function_guide, data)

    def model_with_w(x):
        pyro.sample("w", dist.Bernoulli(0.5))
        model(x)

    def guide_with_w(x):
        pyro.sample("w", dist.Bernoulli(0.5))
        guide(x)

    with pytest.raises(NotImplementedError, match="'w'"):
        DecompositionELBO().loss(model_with_w, guide_with_w, data)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beta": -1.0}, "beta"),
        ({"alpha": -1.0}, "alpha"),
        ({"divergence": "kl"}, "divergence"),
        ({"num_prior_samples": 0}, "num_prior_samples"),
        ({"latent_sites": "z"}, "latent_sites"),
    ],
)
def test_bad_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecompositionELBO(**kwargs)


def test_site_depending_on_an_enumerated_site_raises(data):
    """The β and α terms would need weighting by q(y | x) over enumerated values: refused clearly."""

    def enumerated_model(x):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Bernoulli(0.5))
            z = pyro.sample("z", isotropic_gaussian(2))
            pyro.sample("x", dist.Normal(z @ WEIGHT.T + BIAS + y.unsqueeze(-1), NOISE).to_event(1), obs=x)

    def enumerated_guide(x):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
            pyro.sample("z", dist.Normal(y.unsqueeze(-1).expand(y.shape + (2,)), 1.0).to_event(1))

    guide_trace = poutine.trace(poutine.enum(enumerated_guide, first_available_dim=-2)).get_trace(data)
    model_trace = poutine.trace(poutine.replay(enumerated_model, trace=guide_trace)).get_trace(data)
    with pytest.raises(NotImplementedError, match="'z' has batch shape \\(2, 6\\)"):
        decomposition_penalty(model_trace, guide_trace, ["z"], beta=2.0)
