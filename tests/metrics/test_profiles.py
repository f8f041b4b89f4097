import pytest

from pyro_partial.metrics.profiles import PROFILES, resolve

# disentanglement_lib's unsupervised_study_v1 metric configs (sample sizes).
DISENTANGLEMENT_LIB = {
    "beta_vae": {"num_train": 10000, "num_eval": 5000, "group_size": 64},
    "factor_vae": {"num_train": 10000, "num_eval": 5000, "num_variance": 10000, "group_size": 64},
    "mig": {"num_train": 10000},
    "dci": {"num_train": 10000, "num_test": 5000},
    "sap": {"num_train": 10000, "num_test": 5000},
}


@pytest.mark.parametrize("metric", sorted(DISENTANGLEMENT_LIB))
def test_full_profile_is_disentanglement_lib(metric):
    assert resolve(metric, "full") == DISENTANGLEMENT_LIB[metric]


@pytest.mark.parametrize("metric", sorted(PROFILES))
def test_fast_profile_never_uses_more_points(metric):
    fast, full = PROFILES[metric]["fast"], PROFILES[metric]["full"]
    assert fast.keys() == full.keys()
    assert all(fast[key] <= full[key] for key in full)


def test_overrides_replace_profile_values():
    assert resolve("dci", "fast", num_train=7, num_test=None) == {"num_train": 7, "num_test": 250}


def test_bad_profile_and_options_raise():
    with pytest.raises(ValueError, match="profile must be one of"):
        resolve("mig", "quick")
    with pytest.raises(ValueError, match="num_train must be a positive integer"):
        resolve("mig", "full", num_train=0)
    with pytest.raises(TypeError, match="unknown option"):
        resolve("mig", "full", num_eval=3)
