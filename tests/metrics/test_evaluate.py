import pytest
import torch

from pyro_partial.metrics import METRICS, evaluate_disentanglement, factor_vae_score
from pyro_partial.metrics.evaluate import metric_options
from tests.metrics.toy import FactorVectors, identity


def test_runs_the_named_metrics_and_merges_their_scores():
    scores = evaluate_disentanglement(FactorVectors(), identity, profile="fast", metrics=["mig", "hoyer"])
    assert set(scores) == {"mig", "hoyer_sparsity"}
    assert all(isinstance(value, float) for value in scores.values())


def test_unknown_metric_raises():
    with pytest.raises(ValueError, match="metrics must be names from"):
        evaluate_disentanglement(FactorVectors(), identity, metrics=["beta"])


def test_per_metric_options_reach_the_metric(monkeypatch):
    calls = {}

    def recording(name):
        def metric(dataset, representation_function, *, seed, profile, batch_size, group_size=None):
            calls[name] = group_size
            return {name: 0.0}

        return metric

    monkeypatch.setitem(METRICS, "factor_vae", recording("factor_vae"))
    monkeypatch.setitem(METRICS, "mig", recording("mig"))
    evaluate_disentanglement(
        FactorVectors(), identity, metrics=["factor_vae", "mig"], options={"factor_vae": {"group_size": 1000}}
    )
    assert calls == {"factor_vae": 1000, "mig": None}


def test_factor_vae_points_per_vote_change_the_score_as_in_a_direct_call():
    """A representation that is informative only in aggregate: the vote's variance ratio is noisy for small
    groups and reliable for large ones, so the points per vote change the score."""

    def noisy(x):
        g = torch.Generator().manual_seed(int(x.sum().item() * 1000) % 2**31)
        return identity(x) + 3.0 * torch.randn(x.shape[0], 5, generator=g)

    fast = {"num_train": 60, "num_eval": 60, "num_variance": 500}
    scores = {}
    for group_size in (4, 200):
        options = {**fast, "group_size": group_size}
        scores[group_size] = evaluate_disentanglement(
            FactorVectors(), noisy, profile="fast", metrics=["factor_vae"], options={"factor_vae": options}
        )
        assert scores[group_size] == factor_vae_score(FactorVectors(), noisy, profile="fast", **options)
    assert scores[200]["factor_vae_eval_accuracy"] > scores[4]["factor_vae_eval_accuracy"] + 0.2


def test_bad_options_raise():
    with pytest.raises(ValueError, match="metric 'factor_vae', which is not among the metrics"):
        evaluate_disentanglement(FactorVectors(), identity, metrics=["mig"], options={"factor_vae": {}})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['points'\] for metric 'factor_vae'"):
        evaluate_disentanglement(
            FactorVectors(), identity, metrics=["factor_vae"], options={"factor_vae": {"points": 3}}
        )
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['seed'\]"):
        evaluate_disentanglement(FactorVectors(), identity, metrics=["mig"], options={"mig": {"seed": 3}})
    assert "group_size" in metric_options("factor_vae") and "seed" not in metric_options("factor_vae")
