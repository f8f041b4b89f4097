import itertools

import numpy as np
import pytest
import torch

from pyro_partial.metrics import hoyer_score, hoyer_sparsity
from tests.metrics.toy import FactorVectors, constant


def brute_force(codes):
    """Mathieu et al. (2019): divide by the std (ddof=1) without centring, average Hoyer over rows."""
    d = codes.shape[1]
    std = [
        np.sqrt(sum((v - codes[:, j].mean()) ** 2 for v in codes[:, j]) / (len(codes) - 1)) for j in range(d)
    ]
    total = 0.0
    for row in codes:
        z = [row[j] / std[j] for j in range(d)]
        total += (np.sqrt(d) - sum(abs(v) for v in z) / np.sqrt(sum(v * v for v in z))) / (np.sqrt(d) - 1)
    return total / len(codes)


def test_one_hot_codes_are_perfectly_sparse():
    assert hoyer_sparsity(3.0 * np.eye(6)[np.arange(30) % 6]) == pytest.approx(1.0)


def test_equal_magnitude_codes_are_not_sparse():
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=4)))
    assert hoyer_sparsity(signs) == pytest.approx(0.0, abs=1e-12)


def test_matches_brute_force_and_ignores_per_dimension_scale():
    codes = np.random.default_rng(0).normal(size=(40, 5)) ** 3
    assert hoyer_sparsity(codes) == pytest.approx(brute_force(codes), rel=1e-10)
    assert hoyer_sparsity(codes * np.array([1.0, 10.0, 0.1, 3.0, 7.0])) == pytest.approx(
        hoyer_sparsity(codes)
    )


def test_degenerate_codes():
    assert hoyer_sparsity(np.ones((10, 3))) == 0.0
    codes = np.random.default_rng(0).normal(size=(10, 3))
    with_constant = np.concatenate([codes, np.full((10, 1), 5.0)], axis=1)
    assert hoyer_sparsity(with_constant) == pytest.approx(hoyer_sparsity(codes))
    with pytest.raises(ValueError, match=r"codes must have shape \(N, D\) with N >= 2"):
        hoyer_sparsity(np.ones(3))


def test_score_on_a_data_set():
    def one_hot_of_first_factor(x):
        return torch.nn.functional.one_hot(x[:, 1].long(), 3).float()

    assert hoyer_score(FactorVectors(), one_hot_of_first_factor, num_points=500)["hoyer_sparsity"] == 1.0
    assert hoyer_score(FactorVectors(), constant, num_points=500)["hoyer_sparsity"] == 0.0
