import math

import pytest

from pyro_partial.metrics import beta_vae_score
from tests.metrics.toy import INFORMATIVE, FactorVectors, constant, duplicated, identity, mixed

SMALL = {"num_train": 300, "num_eval": 300, "group_size": 16}


@pytest.mark.parametrize("representation", [identity, duplicated])
def test_codes_that_name_each_factor_are_classified_perfectly(representation):
    scores = beta_vae_score(FactorVectors(), representation, **SMALL)
    assert scores["beta_vae_train_accuracy"] == 1.0 and scores["beta_vae_eval_accuracy"] == 1.0


def test_constant_codes_score_chance():
    # Every feature is zero, so the classifier predicts one class: accuracy ~ 1 / K with K = 5.
    chance = 1 / len(INFORMATIVE)
    score = beta_vae_score(FactorVectors(), constant, **SMALL)["beta_vae_eval_accuracy"]
    assert abs(score - chance) < 4 * math.sqrt(chance * (1 - chance) / SMALL["num_eval"])


def test_mixed_codes_score_below_identity():
    assert beta_vae_score(FactorVectors(), mixed, **SMALL)["beta_vae_eval_accuracy"] < 0.9


def test_seed_makes_the_score_reproducible():
    first = beta_vae_score(FactorVectors(), mixed, seed=3, **SMALL)
    assert beta_vae_score(FactorVectors(), mixed, seed=3, batch_size=50, **SMALL) == first
    assert beta_vae_score(FactorVectors(), mixed, seed=4, **SMALL) != first
