import pytest
import torch

from pyro_partial.metrics import factor_vae_score
from tests.metrics.toy import INFORMATIVE, FactorVectors, constant, duplicated, identity, mixed

SMALL = {"num_train": 200, "num_eval": 200, "num_variance": 500, "group_size": 16}


@pytest.mark.parametrize("representation, active", [(identity, 5), (duplicated, 10)])
def test_codes_that_name_each_factor_score_one(representation, active):
    scores = factor_vae_score(FactorVectors(), representation, **SMALL)
    assert scores["factor_vae_eval_accuracy"] == 1.0
    assert scores["factor_vae_num_active_dims"] == active


def test_constant_codes_have_no_active_dimension_and_score_zero():
    scores = factor_vae_score(FactorVectors(), constant, prune_threshold=0.0, **SMALL)
    assert scores == {
        "factor_vae_train_accuracy": 0.0,
        "factor_vae_eval_accuracy": 0.0,
        "factor_vae_num_active_dims": 0.0,
    }


def shrunk(x):
    """Identity with the last factor's code scaled to a standard deviation of about 0.002."""
    return identity(x) * torch.tensor([1.0, 1.0, 1.0, 1.0, 1e-3])


def test_pruning_drops_a_collapsed_code():
    kept = factor_vae_score(FactorVectors(), shrunk, prune_threshold=0.0, **SMALL)
    assert kept["factor_vae_num_active_dims"] == 5 and kept["factor_vae_eval_accuracy"] == 1.0
    pruned = factor_vae_score(FactorVectors(), shrunk, **SMALL)
    assert pruned["factor_vae_num_active_dims"] == 4
    # Votes for the unrepresented factor (1 in K) land on codes owned by other factors.
    k = len(INFORMATIVE)
    assert abs(pruned["factor_vae_eval_accuracy"] - (k - 1) / k) < 0.1


def test_mixed_codes_score_below_identity():
    assert factor_vae_score(FactorVectors(), mixed, **SMALL)["factor_vae_eval_accuracy"] < 0.9


def test_negative_threshold_raises():
    with pytest.raises(ValueError, match="prune_threshold must be >= 0"):
        factor_vae_score(FactorVectors(), identity, prune_threshold=-1.0, **SMALL)
