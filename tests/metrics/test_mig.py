import itertools

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from pyro_partial.metrics import discrete_mutual_information, histogram_discretize, mig_from_codes, mig_score
from tests.metrics.toy import FactorVectors, constant, duplicated, identity, mixed


def test_mutual_information_matches_scikit_learn():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(500, 3))
    b = np.stack([a[:, 0], (a[:, 1] + rng.integers(0, 2, 500)) % 4, rng.integers(5, 9, 500)], axis=1)
    information = discrete_mutual_information(a, b)
    for i, j in itertools.product(range(3), range(3)):
        assert information[i, j] == pytest.approx(mutual_info_score(a[:, i], b[:, j]), abs=1e-12)


def test_self_information_is_the_entropy():
    values = np.repeat([0, 1, 2], [1, 2, 5])[:, None]
    p = np.array([1, 2, 5]) / 8
    assert discrete_mutual_information(values, values)[0, 0] == pytest.approx(-(p * np.log(p)).sum())


def test_histogram_bins_are_equal_width_from_min_to_max():
    codes = np.stack([np.linspace(-1.0, 1.0, 21), np.full(21, 3.0)], axis=1)
    binned = histogram_discretize(codes, num_bins=4)
    # Edges -1, -0.5, 0, 0.5, 1: a value on an inner edge opens the next bin, the maximum closes the last.
    assert binned[[0, 4, 5, 10, 15, 20], 0].tolist() == [1, 1, 2, 3, 4, 4]
    assert np.unique(binned[:, 1]).size == 1


def balanced_grid():
    """Every combination of two factors (sizes 4 and 6) exactly once: empirically independent factors."""
    return np.array(list(itertools.product(range(4), range(6))))


def test_mig_is_one_for_codes_equal_to_independent_factors():
    factors = balanced_grid()
    assert mig_from_codes(factors.astype(float), factors) == pytest.approx(1.0, abs=1e-12)


def test_mig_is_zero_for_duplicated_codes_and_known_for_one_shared_code():
    factors = balanced_grid()
    assert mig_from_codes(np.repeat(factors[:, :1], 2, axis=1).astype(float), factors[:, :1]) == 0.0
    # One code carries factor 0, the other is independent of both: gap = 1 for factor 0, 0 for factor 1.
    codes = np.stack([factors[:, 0], np.zeros(len(factors))], axis=1)
    assert mig_from_codes(codes, factors) == pytest.approx(0.5, abs=1e-12)


def test_mig_end_to_end():
    dataset = FactorVectors()
    assert mig_score(dataset, identity, num_train=3000)["mig"] >= 0.9
    assert mig_score(dataset, constant, num_train=3000)["mig"] == 0.0
    assert mig_score(dataset, duplicated, num_train=3000)["mig"] == 0.0
    assert mig_score(dataset, mixed, num_train=3000)["mig"] < 0.5


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"codes must have shape \(N, D\) with D >= 2"):
        mig_from_codes(np.zeros((5, 1)), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="factors must have shape"):
        mig_from_codes(np.zeros((5, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="every factor must vary"):
        mig_from_codes(np.random.default_rng(0).normal(size=(5, 2)), np.zeros((5, 1)))
