"""Clustering scores of a mixture prior: assignments against brute-force responsibilities, the adjusted Rand
index against its contingency-table formula, purity by hand."""

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from pyro_partial.distributions import priors
from pyro_partial.metrics import adjusted_rand_index, cluster_scores, mixture_assignments, purity


def ari_by_formula(labels, clusters):
    """Hubert & Arabie's adjusted Rand index from the contingency table, with binomial coefficients."""
    table = np.zeros((labels.max() + 1, clusters.max() + 1), dtype=np.int64)
    np.add.at(table, (labels, clusters), 1)
    pairs = sum(math.comb(int(n), 2) for n in table.flat)
    rows = sum(math.comb(int(n), 2) for n in table.sum(1))
    columns = sum(math.comb(int(n), 2) for n in table.sum(0))
    expected = rows * columns / math.comb(len(labels), 2)
    return (pairs - expected) / (0.5 * (rows + columns) - expected)


def test_assignments_are_the_most_responsible_components():
    weights = torch.tensor([0.1, 0.5, 0.4], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-1.0, 2.0]], dtype=torch.float64)
    variances = torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64)
    prior = priors.gaussian_mixture(means, variances, weights)
    z = torch.randn(200, 2, dtype=torch.float64) * 1.5
    brute = torch.stack(
        [weights[k].log() + dist.Normal(means[k], variances[k].sqrt()).log_prob(z).sum(-1) for k in range(3)],
        -1,
    ).argmax(-1)
    assigned = mixture_assignments(prior, z)
    assert assigned.dtype == torch.int64 and torch.equal(assigned, brute)
    assert len(assigned.unique()) == 3  # every component wins somewhere: the check is not vacuous


def test_adjusted_rand_index_and_purity_against_formulas():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels, clusters = rng.integers(0, 4, 60), rng.integers(0, 3, 60)
        assert adjusted_rand_index(torch.from_numpy(labels), torch.from_numpy(clusters)) == pytest.approx(
            ari_by_formula(labels, clusters), abs=1e-12
        )
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    clusters = torch.tensor([5, 5, 1, 1, 1, 0, 0, 5])
    # cluster 5 holds labels {0, 0, 2}: 2; cluster 1 {0, 1, 1}: 2; cluster 0 {2, 2}: 2
    assert purity(labels, clusters) == 6 / 8
    assert adjusted_rand_index(labels, (labels + 1) % 3) == 1.0 and purity(labels, (labels + 1) % 3) == 1.0


def test_cluster_scores_of_perfect_and_uninformative_codes():
    prior = priors.gaussian_mixture()
    labels = torch.arange(40) % 4
    # codes at the component means, arms mapped to components by any permutation: a perfect clustering
    codes = prior.component_distribution.base_dist.loc[(labels + 1) % 4] + 0.01 * torch.randn(40, 2)
    assert cluster_scores(prior, codes, labels) == {"adjusted_rand_index": 1.0, "purity": 1.0}
    # all codes in one component: no information about the arms
    scores = cluster_scores(prior, torch.zeros(40, 2) + torch.tensor([1.0, 0.0]), labels)
    assert scores["adjusted_rand_index"] == 0.0 and scores["purity"] == 0.25


def test_errors_name_the_argument():
    prior = priors.gaussian_mixture()
    with pytest.raises(TypeError, match="mixture prior"):
        cluster_scores(priors.isotropic_gaussian(2), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"z must have shape.*got z of shape \(3, 5\)"):
        mixture_assignments(prior, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="labels and assigned must have the same shape"):
        purity(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be a non-empty vector"):
        adjusted_rand_index(torch.zeros(3), torch.zeros(3, dtype=torch.long))
