import numpy as np
import pytest

from pyro_partial.metrics import sap_from_matrix, sap_score, sap_score_matrix
from tests.metrics.toy import FactorVectors, constant, duplicated, identity, mixed

SMALL = {"num_train": 1000, "num_test": 1000}


def test_continuous_matrix_is_squared_correlation():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 5, size=(200, 3))
    codes = np.stack([factors[:, 0] + rng.normal(size=200), rng.normal(size=200), np.zeros(200)], axis=1)
    matrix = sap_score_matrix(codes, factors, continuous_factors=True)
    expected = np.corrcoef(codes[:, :2].T, factors.T)[:2, 2:] ** 2
    np.testing.assert_allclose(matrix[:2], expected, rtol=1e-12)
    np.testing.assert_array_equal(matrix[2], 0.0)  # a constant code scores 0


def test_gap_of_top_two():
    assert sap_from_matrix(np.array([[0.9, 0.1], [0.3, 0.5], [0.2, 0.2]])) == pytest.approx((0.6 + 0.3) / 2)


def test_identity_with_continuous_factors_scores_one():
    assert sap_score(FactorVectors(), identity, continuous_factors=True, **SMALL)["sap"] >= 0.95


def test_identity_on_binary_factors_scores_one_minus_chance():
    # A perfect code is classified exactly; an independent one scores chance (1/2 in expectation).
    dataset = FactorVectors((2, 2, 2))
    score = sap_score(dataset, lambda x: x, **SMALL)["sap"]
    assert score == pytest.approx(0.5, abs=0.06)


@pytest.mark.parametrize("representation", [constant, duplicated])
def test_constant_and_duplicated_codes_score_zero(representation):
    assert sap_score(FactorVectors(), representation, **SMALL)["sap"] == 0.0


def test_mixed_codes_score_low():
    assert sap_score(FactorVectors(), mixed, continuous_factors=True, **SMALL)["sap"] < 0.5


def test_bad_input_raises():
    with pytest.raises(ValueError, match="codes_test and factors_test are required"):
        sap_score_matrix(np.zeros((4, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="codes_train must be"):
        sap_score_matrix(np.zeros((4, 2)), np.zeros((3, 1)), continuous_factors=True)
    with pytest.raises(ValueError, match="D >= 2"):
        sap_from_matrix(np.ones((1, 3)))
