import math

import numpy as np
import pyro
import pytest
import torch
from scipy import integrate, stats

from pyro_partial.distributions import (
    anisotropic_gaussian,
    gaussian_mixture,
    isotropic_gaussian,
    sparse_gaussian_mixture,
    student_t,
)

NUM_SAMPLES = 200_000


@pytest.fixture(autouse=True)
def double_precision():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def sparse_pdf(x, gamma=0.8, spike=0.05, slab=1.0):
    return gamma * stats.norm.pdf(x, scale=spike) + (1 - gamma) * stats.norm.pdf(x, scale=slab)


def sparse_cdf(x, gamma=0.8, spike=0.05, slab=1.0):
    return gamma * stats.norm.cdf(x, scale=spike) + (1 - gamma) * stats.norm.cdf(x, scale=slab)


PINWHEEL_MEANS = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])


def mixture_pdf(z, means=PINWHEEL_MEANS, variance=0.03, weights=None):
    weights = np.full(len(means), 1 / len(means)) if weights is None else np.asarray(weights)
    pdfs = [stats.multivariate_normal.pdf(z, mean=m, cov=variance) for m in means]
    return sum(w * pdf for w, pdf in zip(weights, pdfs, strict=True))


ALL_PRIORS = {
    "isotropic": lambda: isotropic_gaussian(3, scale=0.5),
    "anisotropic": lambda: anisotropic_gaussian(torch.tensor([0.5, 1.0, 2.0])),
    "student_t": lambda: student_t(3, df=4.0),
    "sparse": lambda: sparse_gaussian_mixture(3),
    "mixture": lambda: gaussian_mixture(),
}


@pytest.mark.parametrize("name", sorted(ALL_PRIORS))
def test_shapes_and_plate_expansion(name):
    prior = ALL_PRIORS[name]()
    dim = prior.event_shape[0]
    assert prior.batch_shape == () and len(prior.event_shape) == 1
    assert prior.has_rsample == (name not in ("sparse", "mixture"))
    with pyro.plate("data", 5):
        z = pyro.sample("z", prior)
    assert z.shape == (5, dim)
    assert prior.log_prob(prior.sample((4, 5))).shape == (4, 5)
    assert prior.expand([2, 7]).sample().shape == (2, 7, dim)


def test_gaussian_log_prob_against_scipy():
    z = torch.randn(10, 3)
    scales = np.array([0.5, 1.0, 2.0])
    expected = stats.norm.logpdf(z.numpy(), scale=scales).sum(-1)
    np.testing.assert_allclose(anisotropic_gaussian(torch.tensor(scales)).log_prob(z), expected, rtol=1e-12)
    expected = stats.multivariate_normal.logpdf(z.numpy(), cov=0.25 * np.eye(3))
    np.testing.assert_allclose(isotropic_gaussian(3, 0.5).log_prob(z), expected, rtol=1e-12)


def test_student_t_log_prob_against_scipy():
    z = 3 * torch.randn(10, 3)
    df, scale = np.array([1.5, 4.0, 30.0]), np.array([0.5, 1.0, 2.0])
    expected = stats.t.logpdf(z.numpy(), df=df, scale=scale).sum(-1)
    actual = student_t(3, df=torch.tensor(df), scale=torch.tensor(scale)).log_prob(z)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


def test_sparse_log_prob_against_mixture_formula():
    z = torch.cat([0.05 * torch.randn(10, 4), torch.randn(10, 4)])
    expected = np.log(sparse_pdf(z.numpy(), gamma=0.7, spike=0.1, slab=1.5)).sum(-1)
    actual = sparse_gaussian_mixture(4, gamma=0.7, spike_scale=0.1, slab_scale=1.5).log_prob(z)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


def test_mixture_log_prob_against_scipy():
    z = torch.randn(20, 2)
    np.testing.assert_allclose(gaussian_mixture().log_prob(z), np.log(mixture_pdf(z.numpy())), rtol=1e-10)
    means = np.array([[0.0, 0.0, 1.0], [2.0, -1.0, 0.0]])
    z = torch.randn(20, 3)
    actual = gaussian_mixture(torch.tensor(means), variance=0.5, weights=torch.tensor([1.0, 3.0])).log_prob(z)
    expected = np.log(mixture_pdf(z.numpy(), means, variance=0.5, weights=[0.25, 0.75]))
    np.testing.assert_allclose(actual, expected, rtol=1e-10)


@pytest.mark.parametrize(
    "prior",
    [
        lambda: student_t(1, df=2.5, scale=0.7),
        lambda: sparse_gaussian_mixture(1),
        lambda: gaussian_mixture(torch.tensor([[-1.0], [2.0]]), variance=torch.tensor([0.03, 0.5])),
    ],
    ids=["student_t", "sparse", "mixture"],
)
def test_one_dimensional_densities_integrate_to_one(prior):
    prior = prior()

    def density(x):
        return math.exp(prior.log_prob(torch.tensor([x])).item())

    pieces = [(-np.inf, -1.0), (-1.0, 0.0), (0.0, 1.0), (1.0, np.inf)]
    total = sum(integrate.quad(density, a, b, limit=200)[0] for a, b in pieces)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_mixture_density_integrates_to_one_in_2d():
    step = 0.005
    grid = torch.arange(-3.0, 3.0, step) + step / 2
    z = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    assert gaussian_mixture().log_prob(z).exp().sum().item() * step**2 == pytest.approx(1.0, abs=1e-6)


def test_sparse_sampler_matches_cdf_and_moments():
    samples = sparse_gaussian_mixture(3, gamma=0.8).sample((NUM_SAMPLES,))
    for d in range(3):
        assert stats.kstest(samples[:, d].numpy(), sparse_cdf).pvalue > 1e-3
    variance = 0.8 * 0.05**2 + 0.2 * 1.0
    standard_error = math.sqrt((3 * 0.8 * 0.05**4 + 3 * 0.2 - variance**2) / NUM_SAMPLES)
    assert torch.allclose(samples.var(0), torch.tensor(variance), atol=5 * standard_error)
    # the dimensions are independent: the number of coordinates of a row with |z_d| < 0.25 is Binomial(3, π)
    inside = 0.8 * (2 * stats.norm.cdf(0.25 / 0.05) - 1) + 0.2 * (2 * stats.norm.cdf(0.25) - 1)
    spikes = (samples.abs() < 0.25).sum(-1)
    expected = stats.binom.pmf(np.arange(4), 3, inside)
    frequencies = torch.bincount(spikes, minlength=4).numpy() / NUM_SAMPLES
    np.testing.assert_allclose(frequencies, expected, atol=5e-3)


def test_mixture_sampler_component_frequencies_and_spread():
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4])
    samples = gaussian_mixture(weights=weights).sample((NUM_SAMPLES,))
    nearest = torch.cdist(samples, torch.tensor(PINWHEEL_MEANS)).argmin(-1)
    frequencies = torch.bincount(nearest, minlength=4) / NUM_SAMPLES
    # P(nearest mean != own mean) is below 1e-4 for variance 0.03 and means sqrt(2) apart
    assert torch.allclose(frequencies, weights, atol=5e-3)
    residual = samples - torch.tensor(PINWHEEL_MEANS)[nearest]
    assert torch.allclose(residual.var(0), torch.tensor(0.03), rtol=0.02)


def test_student_t_sampler_matches_cdf():
    samples = student_t(2, df=3.0, scale=torch.tensor([0.5, 2.0])).sample((50_000,))
    for d, scale in enumerate([0.5, 2.0]):
        assert stats.kstest(samples[:, d].numpy(), stats.t(df=3.0, scale=scale).cdf).pvalue > 1e-3


@pytest.mark.parametrize("factory", [anisotropic_gaussian, lambda s: student_t(3, df=5.0, scale=s)])
def test_rsample_gradient_is_the_standardised_draw(factory):
    """z = σ ε is reparameterised: ∂(Σ z)/∂σ_d = ε_d = z_d / σ_d."""
    scales = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    z = factory(scales).rsample((7,))
    (grad,) = torch.autograd.grad(z.sum(), scales)
    assert torch.allclose(grad, (z / scales).sum(0).detach(), rtol=1e-10)


def test_learnable_variances_log_prob_gradient():
    """∂ log N(z; 0, σ²)/∂σ = −1/σ + z²/σ³ per dimension, through a constrained pyro.param."""
    from torch.distributions import constraints

    scales = pyro.param("prior_scales", torch.tensor([0.5, 1.0, 2.0]), constraint=constraints.positive)
    z = torch.randn(6, 3)
    (grad,) = torch.autograd.grad(anisotropic_gaussian(scales).log_prob(z).sum(), scales)
    expected = (-1 / scales + z.square() / scales**3).sum(0)
    assert torch.allclose(grad, expected.detach(), rtol=1e-10)


def test_mixture_score_against_closed_form():
    """∇_z log p(z) = Σ_k r_k(z) (μ_k − z)/v for an isotropic mixture (r_k the responsibilities)."""
    z = torch.randn(5, 2, requires_grad=True)
    prior = gaussian_mixture()
    (score,) = torch.autograd.grad(prior.log_prob(z).sum(), z)
    means = torch.tensor(PINWHEEL_MEANS)
    log_r = -((z.detach().unsqueeze(-2) - means) ** 2).sum(-1) / (2 * 0.03)
    responsibilities = torch.softmax(log_r, -1)
    expected = (responsibilities.unsqueeze(-1) * (means - z.detach().unsqueeze(-2))).sum(-2) / 0.03
    assert torch.isfinite(score).all()
    assert torch.allclose(score, expected, rtol=1e-8)


def test_sparse_score_against_closed_form():
    z = torch.tensor([[0.0, 0.01, -0.3, 2.0]], requires_grad=True)
    (score,) = torch.autograd.grad(sparse_gaussian_mixture(4).log_prob(z).sum(), z)
    x = z.detach().numpy()
    spike, slab = 0.8 * stats.norm.pdf(x, scale=0.05), 0.2 * stats.norm.pdf(x)
    expected = (spike * -x / 0.05**2 + slab * -x) / (spike + slab)
    np.testing.assert_allclose(score.numpy(), expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: isotropic_gaussian(0), "dim"),
        (lambda: isotropic_gaussian(3, scale=-1.0), "scale"),
        (lambda: isotropic_gaussian(3, scale=torch.ones(3)), "scalar"),
        (lambda: anisotropic_gaussian(torch.tensor([1.0, 0.0])), "scales"),
        (lambda: anisotropic_gaussian(torch.ones(2, 2)), r"shape \(D,\)"),
        (lambda: student_t(3, df=0.0), "df"),
        (lambda: student_t(3, df=torch.ones(2)), "df"),
        (lambda: sparse_gaussian_mixture(3, gamma=1.0), "gamma"),
        (lambda: sparse_gaussian_mixture(3, spike_scale=0.0), "spike_scale"),
        (lambda: gaussian_mixture(torch.zeros(4)), "means"),
        (lambda: gaussian_mixture(variance=torch.ones(3)), "variance"),
        (lambda: gaussian_mixture(weights=torch.tensor([1.0, -1.0, 1.0, 1.0])), "weights"),
    ],
)
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_validation_rejects_wrong_event_shape():
    with pytest.raises(ValueError):
        sparse_gaussian_mixture(3).log_prob(torch.zeros(4))
