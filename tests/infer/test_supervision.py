import pytest

from pyro_partial.infer import supervision_rate, supervision_weights


@pytest.mark.parametrize("rho", [0.01, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("labelled, unlabelled", [(100, 49_900), (3000, 47_000), (10, 10)])
def test_weights_reproduce_the_requested_rate(rho, labelled, unlabelled):
    gamma, alpha = supervision_weights(rho, labelled, unlabelled)
    # ρ = γM / (N + γM), computed independently of the module's inverse
    assert gamma * labelled / (unlabelled + gamma * labelled) == pytest.approx(rho, rel=1e-12)
    assert supervision_rate(gamma, labelled, unlabelled) == pytest.approx(rho, rel=1e-12)
    assert alpha == pytest.approx(0.1 / rho)


def test_natural_rate_means_gamma_one():
    gamma, alpha = supervision_weights(None, 100, 900)
    assert gamma == pytest.approx(1.0)
    assert alpha == pytest.approx(0.1 / 0.1)
    assert supervision_weights(0.5, 100, 900, alpha_scale=2.0)[1] == pytest.approx(4.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: supervision_weights(0.0, 10, 10), r"rho must lie in \(0, 1\)"),
        (lambda: supervision_weights(1.0, 10, 10), r"rho must lie in \(0, 1\)"),
        (lambda: supervision_weights(0.5, 0, 10), "num_labelled must be positive"),
        (lambda: supervision_rate(1.0, 10, -1), "num_unlabelled must be non-negative"),
        (lambda: supervision_rate(0.0, 10, 10), "gamma must be positive"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
