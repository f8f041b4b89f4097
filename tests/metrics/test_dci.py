import math

import numpy as np
import pytest
from scipy.stats import entropy

from pyro_partial.metrics import dci_completeness, dci_disentanglement, dci_score
from tests.metrics.toy import FactorVectors, constant, duplicated, identity, mixed

SMALL = {"num_train": 300, "num_test": 200}


def reference(importance):
    """Eastwood & Williams eqs. 2-3 written with scipy's entropy."""
    d = importance.sum(1) / importance.sum() @ (1 - entropy(importance.T, base=importance.shape[1]))
    c = importance.sum(0) / importance.sum() @ (1 - entropy(importance, base=importance.shape[0]))
    return d, c


def test_known_importance_matrices():
    eye = np.eye(5)
    assert (dci_disentanglement(eye), dci_completeness(eye)) == (1.0, 1.0)
    twice = np.concatenate([eye, eye])  # each factor spread over two of ten codes
    assert dci_disentanglement(twice) == pytest.approx(1.0)
    assert dci_completeness(twice) == pytest.approx(1 - math.log(2) / math.log(10))
    shared = np.kron(eye, np.ones((1, 2)))  # each code serves two of ten factors
    assert dci_disentanglement(shared) == pytest.approx(1 - math.log(2) / math.log(10))
    assert dci_completeness(shared) == pytest.approx(1.0)
    uniform = np.ones((4, 3))
    assert dci_disentanglement(uniform) == pytest.approx(0.0, abs=1e-12)
    assert dci_completeness(uniform) == pytest.approx(0.0, abs=1e-12)
    assert (dci_disentanglement(np.zeros((3, 3))), dci_completeness(np.zeros((3, 3)))) == (0.0, 0.0)


def test_random_importance_matches_the_formula():
    importance = np.random.default_rng(0).exponential(size=(7, 4))
    importance[2] = 0.0  # an unused code
    d, c = reference(np.where(importance > 0, importance, 1e-300))
    assert dci_disentanglement(importance) == pytest.approx(d, rel=1e-12)
    assert dci_completeness(importance) == pytest.approx(c, rel=1e-12)


def test_bad_importance_raises():
    with pytest.raises(ValueError, match="K \\(factors\\) >= 2"):
        dci_disentanglement(np.ones((3, 1)))
    with pytest.raises(ValueError, match="D \\(codes\\) >= 2"):
        dci_completeness(np.ones((1, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        dci_completeness(-np.ones((2, 2)))


def test_identity_scores_one_and_constant_zero():
    identity_scores = dci_score(FactorVectors(), identity, **SMALL)
    assert min(identity_scores.values()) >= 0.9
    constant_scores = dci_score(FactorVectors(), constant, **SMALL)
    assert constant_scores["dci_disentanglement"] == 0.0 and constant_scores["dci_completeness"] == 0.0
    assert constant_scores["dci_informativeness_test"] <= 0.4  # majority class of each factor


def test_duplicated_codes_halve_completeness():
    # The trees split each factor's importance about evenly between the two copies of its code;
    # the entropy of (p, 1 - p) is flat near p = 1/2, so completeness stays near 1 - ln 2 / ln 10.
    scores = dci_score(FactorVectors(), duplicated, **SMALL)
    assert scores["dci_disentanglement"] == pytest.approx(1.0, abs=1e-6)
    assert scores["dci_completeness"] == pytest.approx(1 - math.log(2) / math.log(10), abs=0.02)


def test_mixed_codes_are_informative_but_not_disentangled():
    scores = dci_score(FactorVectors(), mixed, **SMALL)
    assert scores["dci_informativeness_train"] >= 0.9
    assert scores["dci_disentanglement"] < 0.7 and scores["dci_completeness"] < 0.7
