import pytest

from pyro_partial.metrics import evaluate_disentanglement
from tests.metrics.toy import FactorVectors, identity


def test_runs_the_named_metrics_and_merges_their_scores():
    scores = evaluate_disentanglement(FactorVectors(), identity, profile="fast", metrics=["mig", "hoyer"])
    assert set(scores) == {"mig", "hoyer_sparsity"}
    assert all(isinstance(value, float) for value in scores.values())


def test_unknown_metric_raises():
    with pytest.raises(ValueError, match="metrics must be names from"):
        evaluate_disentanglement(FactorVectors(), identity, metrics=["beta"])
