import math
from itertools import product

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from scipy import integrate, special

from pyro_partial.infer import divergences
from pyro_partial.infer.divergences import MMD_SCALES, imq_kernel, inclusive_kl, mmd_imq


@pytest.fixture(autouse=True)
def double_precision():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def brute_force_kernel(a, b, per_dim):
    """k(a, b) for two vectors, written out as in the paper (C = 2s per dimension, 2Ds on whole vectors)."""
    dim = len(a)
    if per_dim:
        return sum(2 * s / (2 * s + (a[d] - b[d]) ** 2) for s in MMD_SCALES for d in range(dim))
    sq = sum((a[d] - b[d]) ** 2 for d in range(dim))
    return sum(2 * dim * s / (2 * dim * s + sq) for s in MMD_SCALES)


def brute_force_mmd(z_q, z_p, per_dim, w=None, v=None):
    """Weighted U-statistic MMD² by explicit double loops over rows."""
    z_q, z_p = z_q.tolist(), z_p.tolist()
    w = [1.0] * len(z_q) if w is None else w.tolist()
    v = [1.0] * len(z_p) if v is None else v.tolist()

    def within(z, u):
        pairs = [(i, j) for i, j in product(range(len(z)), repeat=2) if i != j]
        total = sum(u[i] * u[j] * brute_force_kernel(z[i], z[j], per_dim) for i, j in pairs)
        return total / sum(u[i] * u[j] for i, j in pairs)

    cross = sum(
        w[i] * v[j] * brute_force_kernel(z_q[i], z_p[j], per_dim)
        for i, j in product(range(len(z_q)), range(len(z_p)))
    )
    return within(z_q, w) + within(z_p, v) - 2 * cross / (sum(w) * sum(v))


def expected_imq(c, variance):
    """E[c / (c + X²)] for X ~ N(0, variance): √(πa) erfcx(√a), a = c / (2 variance)."""
    a = c / (2 * variance)
    return math.sqrt(math.pi * a) * special.erfcx(math.sqrt(a))


def expected_mmd(q_variances, p_variances):
    """MMD² between N(0, diag q) and N(0, diag p) with the per-dimension kernel (population value)."""
    total = 0.0
    for s in MMD_SCALES:
        for vq, vp in zip(q_variances, p_variances, strict=True):
            c = 2 * s
            total += expected_imq(c, 2 * vq) + expected_imq(c, 2 * vp) - 2 * expected_imq(c, vq + vp)
    return total


@pytest.mark.parametrize("c, variance", [(0.2, 0.3), (10.0, 2.0)])
def test_expected_imq_formula_against_quadrature(c, variance):
    def integrand(x):
        return c / (c + x * x) * math.exp(-x * x / (2 * variance)) / math.sqrt(2 * math.pi * variance)

    numeric = integrate.quad(integrand, -np.inf, np.inf)[0]
    assert expected_imq(c, variance) == pytest.approx(numeric, rel=1e-8)


@pytest.mark.parametrize("per_dim", [True, False])
def test_mmd_against_brute_force(per_dim):
    z_q, z_p = torch.randn(5, 3), 2 * torch.randn(4, 3) + 1
    assert mmd_imq(z_q, z_p, per_dim=per_dim).item() == pytest.approx(
        brute_force_mmd(z_q, z_p, per_dim), 1e-12
    )


@pytest.mark.parametrize("per_dim", [True, False])
def test_weighted_mmd_against_brute_force(per_dim):
    z_q, z_p = torch.randn(5, 2), torch.randn(6, 2)
    w, v = torch.rand(5), torch.rand(6)
    expected = brute_force_mmd(z_q, z_p, per_dim, w, v)
    assert mmd_imq(z_q, z_p, per_dim=per_dim, q_weights=w, p_weights=v).item() == pytest.approx(
        expected, 1e-12
    )


def test_zero_one_weights_select_rows():
    z_q, z_p = torch.randn(6, 2), torch.randn(5, 2)
    keep_q = torch.tensor([True, False, True, True, False, True])
    keep_p = torch.tensor([False, True, True, True, True])
    actual = mmd_imq(z_q, z_p, q_weights=keep_q, p_weights=keep_p)
    assert torch.allclose(actual, mmd_imq(z_q[keep_q], z_p[keep_p]), rtol=1e-12)


def test_mmd_of_point_masses_in_closed_form():
    """q = δ_a, p = δ_b: the within terms are k(a, a) = 6 per dim and the cross term Σ_s 2s/(2s + (a−b)²)."""
    a, b = torch.tensor([0.3, -1.0]), torch.tensor([1.0, 2.0])
    expected = sum(
        2 - 2 * (2 * s) / (2 * s + (ad - bd) ** 2) for s in MMD_SCALES for ad, bd in zip(a, b, strict=True)
    )
    assert mmd_imq(a.expand(4, 2), b.expand(3, 2)).item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("q_std", [1.0, 0.5])
def test_mmd_is_unbiased_for_gaussians(q_std):
    """Average of the estimator over 4000 independent batches vs the population MMD² in closed form."""
    replicates, n, m = 4000, 8, 10
    p_std = torch.tensor([1.0, 2.0])
    z_q = q_std * torch.randn(replicates, n, 2)
    z_p = p_std * torch.randn(replicates, m, 2)
    estimates = mmd_imq(z_q, z_p)
    assert estimates.shape == (replicates,)
    expected = expected_mmd([q_std**2] * 2, p_std.square().tolist())
    standard_error = estimates.std().item() / math.sqrt(replicates)
    assert abs(estimates.mean().item() - expected) < 4 * standard_error
    if q_std == 1.0:  # same distribution in dim 0 only: the estimate detects dim 1
        assert expected > 10 * standard_error


def test_mmd_gradients_are_correct():
    z_q = torch.randn(4, 2, requires_grad=True)
    z_p = torch.randn(3, 2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: mmd_imq(a, b), (z_q, z_p))
    assert torch.autograd.gradcheck(lambda a, b: mmd_imq(a, b, per_dim=False), (z_q, z_p))


def test_kernel_shape_and_value_at_zero_distance():
    a = torch.randn(2, 5, 3)
    kernel = imq_kernel(a, a[:, :4])
    assert kernel.shape == (2, 5, 4)
    assert torch.allclose(torch.diagonal(kernel[:, :4], dim1=-2, dim2=-1), torch.tensor(6.0 * 3))


def broadcast_kernel(a, b):
    """The per-dimension kernel by plain broadcasting over (..., N, M, D), differentiated by autograd."""
    sq = (a.unsqueeze(-2) - b.unsqueeze(-3)).square()
    return sum(2 * s / (2 * s + sq) for s in MMD_SCALES).sum(-1)


@pytest.mark.parametrize("block_elements", [7, 2**16])
def test_per_dim_kernel_value_and_gradients_against_reference(monkeypatch, block_elements):
    """Blocked kernel (one block, or many blocks over rows and dimensions) vs the loop formula for its
    values and vs the broadcast formula for the gradients w.r.t. both inputs, with broadcast batch dims."""
    monkeypatch.setattr(divergences, "_BLOCK_ELEMENTS", block_elements)
    a = torch.randn(2, 1, 5, 3, requires_grad=True)
    b = (2 * torch.randn(3, 4, 3)).requires_grad_()
    kernel = imq_kernel(a, b)
    assert kernel.shape == (2, 3, 5, 4)
    for r, t, i, j in product(range(2), range(3), range(5), range(4)):
        expected = brute_force_kernel(a[r, 0, i].tolist(), b[t, j].tolist(), per_dim=True)
        assert kernel[r, t, i, j].item() == pytest.approx(expected, rel=1e-12)
    outer = torch.randn(2, 3, 5, 4)
    grads = torch.autograd.grad((outer * kernel).sum(), (a, b))
    expected_grads = torch.autograd.grad((outer * broadcast_kernel(a, b)).sum(), (a, b))
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert grad.shape == expected.shape
        assert torch.allclose(grad, expected, rtol=1e-12, atol=1e-14)


def test_per_dim_kernel_gradcheck_over_blocks(monkeypatch):
    monkeypatch.setattr(divergences, "_BLOCK_ELEMENTS", 5)
    a = torch.randn(2, 4, 3, requires_grad=True)
    b = torch.randn(3, 3, requires_grad=True)
    assert torch.autograd.gradcheck(imq_kernel, (a, b))
    assert torch.autograd.gradcheck(lambda x: imq_kernel(x, x), (a,))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mmd_imq(torch.randn(1, 2), torch.randn(3, 2)), "z_q"),
        (lambda: mmd_imq(torch.randn(3), torch.randn(3, 2)), "z_q"),
        (lambda: mmd_imq(torch.randn(3, 2), torch.randn(3, 3)), "latent dimension"),
        (lambda: mmd_imq(torch.randn(3, 2), torch.randn(3, 2), scales=(1.0, 0.0)), "scales"),
        (lambda: mmd_imq(torch.randn(3, 2), torch.randn(3, 2), q_weights=-torch.ones(3)), "q_weights"),
        (lambda: mmd_imq(torch.randn(3, 2), torch.randn(3, 2), p_weights=torch.ones(4)), "p_weights"),
        (
            lambda: mmd_imq(torch.randn(3, 2), torch.randn(3, 2), q_weights=torch.tensor([1.0, 0, 0])),
            "q_weights",
        ),
    ],
)
def test_mmd_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_inclusive_kl_of_identical_encoders_is_the_closed_form_kl():
    """All encoders N(μ, σ²): q(z) = N(μ, σ²), so the estimate converges to KL(N(0, I) ‖ N(μ, σ²))."""
    loc, scale = torch.tensor([0.5, -0.3]), torch.tensor([0.7, 1.4])
    replicates, n = 200, 16
    posterior = dist.Normal(loc, scale).to_event(1).expand([replicates, n])
    prior = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
    estimates = inclusive_kl(prior, posterior, num_samples=8)
    assert estimates.shape == (replicates,)
    expected = torch.distributions.kl_divergence(dist.Normal(0.0, 1.0), dist.Normal(loc, scale)).sum().item()
    standard_error = estimates.std().item() / math.sqrt(replicates)
    assert abs(estimates.mean().item() - expected) < 4 * standard_error
    assert standard_error < 0.01


def brute_force_log_mixture(value, locs, scales, weights):
    """log Σ_n w_n N(value; μ_n, diag σ_n²) / Σ_n w_n by an explicit loop over the encoders."""
    total = 0.0
    for loc, scale, w in zip(locs.tolist(), scales.tolist(), weights.tolist(), strict=True):
        density = 1.0
        for x, m, s in zip(value, loc, scale, strict=True):
            density *= math.exp(-((x - m) ** 2) / (2 * s * s)) / math.sqrt(2 * math.pi * s * s)
        total += w * density
    return math.log(total / sum(weights.tolist()))


@pytest.mark.parametrize("layout", ["rows_last", "rows_first"])
def test_inclusive_kl_against_brute_force_with_point_mass_priors(layout):
    """A conditional prior δ(z − b_n) per row makes the draws deterministic (ζ_j = b_j) and
    KL = Σ_j w_j [log(w_j / W) − log q(b_j)] / W with q(z) = Σ_n w_n q(z | x_n) / W."""
    n = 5
    locs, scales, points = torch.randn(2, n, 3), torch.rand(2, n, 3) + 0.5, torch.randn(2, n, 3)
    weights = torch.tensor([[1.0, 0.0, 2.0, 0.5, 1.0], [1.0, 1.0, 1.0, 0.0, 0.0]])
    expected = []
    for r in range(2):
        w = weights[r]
        terms = [
            w[j]
            * (
                math.log(w[j] / w.sum())
                - brute_force_log_mixture(points[r, j].tolist(), locs[r], scales[r], w)
            )
            for j in range(n)
            if w[j] > 0
        ]
        expected.append(sum(terms).item() / w.sum().item())
    posterior, prior = dist.Normal(locs, scales).to_event(1), dist.Delta(points, event_dim=1)
    if layout == "rows_last":
        actual = inclusive_kl(prior, posterior, num_samples=1, weights=weights)
    else:
        posterior = dist.Normal(locs.transpose(0, 1), scales.transpose(0, 1)).to_event(1)
        prior = dist.Delta(points.transpose(0, 1), event_dim=1)
        actual = inclusive_kl(prior, posterior, num_samples=2, weights=weights.T, dim=-2)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-10)


def test_inclusive_kl_is_zero_when_the_encoders_are_the_prior():
    prior = dist.Normal(torch.zeros(3), 2 * torch.ones(3)).to_event(1)
    assert inclusive_kl(prior, prior.expand([7]), num_samples=3).abs().item() < 1e-12


def test_inclusive_kl_gradient_against_closed_form():
    """d/dμ of KL(N(0,1) ‖ N(μ, σ²)) = μ/σ²: the gradient of the many-sample estimate matches it."""
    loc = torch.tensor([0.4], requires_grad=True)
    scale = torch.tensor([0.8])
    posterior = dist.Normal(loc.expand(4, 1), scale.expand(4, 1)).to_event(1)
    prior = dist.Normal(torch.zeros(1), torch.ones(1)).to_event(1)
    (grad,) = torch.autograd.grad(inclusive_kl(prior, posterior, num_samples=20_000), loc)
    assert torch.isfinite(grad).all()
    # the estimate's gradient is (1/J) Σ_j (μ − ζ_j)/σ² with ζ_j ~ N(0, 1): standard error 1/(σ² √J)
    assert abs(grad.item() - 0.4 / 0.64) < 4 / (0.64 * math.sqrt(4 * 20_000))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p, q: inclusive_kl(p, q, num_samples=0), "num_samples"),
        (lambda p, q: inclusive_kl(p, q, dim=-2), "dim"),
        (lambda p, q: inclusive_kl(dist.Normal(torch.zeros(3), 1.0).to_event(1), q), "event shape"),
        (lambda p, q: inclusive_kl(p, q, weights=torch.ones(4)), "weights"),
    ],
)
def test_inclusive_kl_bad_input_raises(call, message):
    prior = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
    posterior = prior.expand([5])
    with pytest.raises(ValueError, match=message):
        call(prior, posterior)
