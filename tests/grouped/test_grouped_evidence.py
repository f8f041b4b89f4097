import pytest
import torch

from pyro_partial.grouped import accumulate_gaussian_evidence


def _random_evidence(shape, dtype=torch.float64):
    loc = torch.randn(shape, dtype=dtype)
    scale = torch.rand(shape, dtype=dtype) * 2 + 0.05
    return loc, scale


def test_product_matches_gaussian_product_density():
    # prod_i N(z; mu_i, s_i^2) is proportional to N(z; mu_G, s_G^2): their log ratio is constant in z.
    loc, scale = _random_evidence((5, 3))
    group_loc, group_scale = accumulate_gaussian_evidence(loc, scale)
    z = torch.randn(7, 1, 3, dtype=torch.float64) * 3
    members = torch.distributions.Normal(loc, scale).log_prob(z).sum(-2)
    group = torch.distributions.Normal(group_loc, group_scale).log_prob(z[:, 0])
    log_ratio = members - group
    assert torch.allclose(log_ratio, log_ratio[:1].expand_as(log_ratio), atol=1e-10)


@pytest.mark.parametrize("method", ["product", "average"])
def test_masked_members_are_excluded_exactly(method):
    loc, scale = _random_evidence((4, 6, 2))
    mask = torch.tensor(
        [[1, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1] * 6, [0, 0, 0, 0, 1, 1]], dtype=torch.bool
    )
    loc = loc.masked_fill(~mask.unsqueeze(-1), float("nan")).requires_grad_()
    scale = scale.masked_fill(~mask.unsqueeze(-1), 0.0).requires_grad_()
    group_loc, group_scale = accumulate_gaussian_evidence(loc, scale, mask, method)
    for g in range(4):
        present_loc, present_scale = loc[g][mask[g]], scale[g][mask[g]]
        if method == "product":
            precision = present_scale.pow(-2).sum(0)
            expected_loc = (present_loc * present_scale.pow(-2)).sum(0) / precision
            expected_scale = precision.rsqrt()
        else:
            expected_loc = present_loc.mean(0)
            expected_scale = present_scale.pow(2).mean(0).sqrt()
        assert torch.allclose(group_loc[g], expected_loc, rtol=1e-12)
        assert torch.allclose(group_scale[g], expected_scale, rtol=1e-12)
    loc_grad, scale_grad = torch.autograd.grad((group_loc + group_scale).sum(), [loc, scale])
    assert loc_grad.isfinite().all() and scale_grad.isfinite().all()
    assert (loc_grad[~mask] == 0).all() and (scale_grad[~mask] == 0).all()


@pytest.mark.parametrize("method", ["product", "average"])
def test_permutation_invariance(method):
    loc, scale = _random_evidence((3, 5, 4))
    mask = torch.rand(3, 5) < 0.6
    mask[:, 0] = True
    perm = torch.randperm(5)
    expected = accumulate_gaussian_evidence(loc, scale, mask, method)
    actual = accumulate_gaussian_evidence(loc[:, perm], scale[:, perm], mask[:, perm], method)
    for a, e in zip(actual, expected, strict=True):
        assert torch.allclose(a, e, rtol=1e-12)


@pytest.mark.parametrize("method", ["product", "average"])
def test_single_member_is_identity(method):
    loc, scale = _random_evidence((4, 1, 3))
    group_loc, group_scale = accumulate_gaussian_evidence(loc, scale, method=method)
    assert torch.allclose(group_loc, loc[:, 0], rtol=1e-14)
    assert torch.allclose(group_scale, scale[:, 0], rtol=1e-14)


def test_no_mask_equals_full_mask():
    loc, scale = _random_evidence((2, 3, 4))
    full = accumulate_gaussian_evidence(loc, scale, torch.ones(2, 3, dtype=torch.bool))
    for a, e in zip(accumulate_gaussian_evidence(loc, scale), full, strict=True):
        assert torch.equal(a, e)


def test_product_is_stable_for_large_confident_groups():
    # Naive precisions 1e40 overflow float32; the log-precision computation does not.
    num = 5000
    loc = torch.linspace(-1, 1, num).unsqueeze(-1)
    scale = torch.full((num, 1), 1e-20)
    group_loc, group_scale = accumulate_gaussian_evidence(loc, scale)
    assert torch.allclose(group_loc, loc.mean(0), atol=1e-6)
    assert torch.allclose(group_scale, torch.tensor([1e-20 / num**0.5]), rtol=1e-4)


def test_average_width_is_independent_of_group_size():
    loc, scale = _random_evidence((1, 3))
    group_scales = [
        accumulate_gaussian_evidence(loc.expand(k, 3), scale.expand(k, 3), method="average")[1]
        for k in (1, 10)
    ]
    assert torch.allclose(group_scales[0], group_scales[1], rtol=1e-14)
    product_scale = accumulate_gaussian_evidence(loc.expand(10, 3), scale.expand(10, 3))[1]
    assert torch.allclose(product_scale, scale[0] / 10**0.5, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loc": torch.zeros(3), "scale": torch.ones(3)}, "loc must have shape"),
        ({"loc": torch.zeros(2, 3), "scale": torch.ones(2, 4)}, "scale must have the shape"),
        ({"loc": torch.zeros(2, 3), "scale": torch.ones(2, 3), "mask": torch.ones(2)}, "mask must be a bool"),
        (
            {"loc": torch.zeros(2, 3), "scale": torch.ones(2, 3), "mask": torch.ones(3, dtype=torch.bool)},
            "mask",
        ),
        (
            {"loc": torch.zeros(2, 3), "scale": torch.ones(2, 3), "mask": torch.zeros(2, dtype=torch.bool)},
            "group",
        ),
        ({"loc": torch.zeros(2, 3), "scale": -torch.ones(2, 3)}, "scale must be positive"),
        ({"loc": torch.zeros(2, 3), "scale": torch.ones(2, 3), "method": "sum"}, "method must be one of"),
    ],
)
def test_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        accumulate_gaussian_evidence(**kwargs)
