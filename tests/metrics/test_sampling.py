import numpy as np
import pytest
import torch

from pyro_partial.metrics.sampling import encode, informative_factors, sample_codes
from tests.metrics.toy import INFORMATIVE, SIZES, FactorVectors, identity


def test_informative_factors_drop_single_valued_factors():
    assert informative_factors(FactorVectors()).tolist() == INFORMATIVE


def test_informative_factors_rejects_other_objects_and_constant_data_sets():
    with pytest.raises(TypeError, match="dataset must implement"):
        informative_factors(np.zeros(3))
    with pytest.raises(ValueError, match="no factor with more than one value"):
        informative_factors(FactorVectors((1, 1)))


def test_encode_does_not_depend_on_batch_size():
    x = torch.randn(37, 4)
    expected = (2 * x).double().numpy()
    for batch_size in (1, 5, 37, 100):
        np.testing.assert_array_equal(encode(lambda b: 2 * b, x, batch_size), expected)


def test_encode_accepts_numpy_codes_and_returns_float64():
    codes = encode(lambda b: b.numpy()[:, :2], torch.ones(3, 4), batch_size=2)
    assert codes.dtype == np.float64 and codes.shape == (3, 2)


@pytest.mark.parametrize(
    "representation, message",
    [
        (lambda b: b[:, 0], r"codes of shape \(N, D\)"),
        (lambda b: b[:1], r"codes of shape \(N, D\)"),
        (lambda b: b / 0, "non-finite"),
    ],
)
def test_encode_rejects_bad_codes(representation, message):
    with pytest.raises(ValueError, match=message):
        encode(representation, torch.ones(4, 3), batch_size=4)


def test_encode_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        encode(identity, torch.ones(4, 6), batch_size=0)


def test_sample_codes_returns_informative_factors_and_their_codes():
    factors, codes = sample_codes(FactorVectors(), identity, 50, np.random.default_rng(0), batch_size=7)
    assert factors.shape == (50, len(INFORMATIVE)) and factors.dtype == np.int64
    np.testing.assert_array_equal(codes, factors)
    assert (factors < np.array([SIZES[i] for i in INFORMATIVE])).all()
