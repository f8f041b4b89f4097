"""Sample sizes of the metrics: the ``"full"`` profile and a ``"fast"`` one.

``"full"`` equals the defaults of google-research/disentanglement_lib (the gin configs of its
``unsupervised_study_v1``). ``"fast"`` shrinks the sample counts (never the definitions) so that every
metric on a 10-dimensional representation of dSprites runs in about a minute on two CPU cores in
total (see ``benchmarks/metrics_speed.py``); its scores are noisier, so use it for monitoring and
tests, and ``"full"`` for reported numbers.

=============  ====================  ================  ================
metric         option                full              fast
=============  ====================  ================  ================
BetaVAE        num_train / num_eval  10000 / 5000      300 / 150
               group_size            64                64
FactorVAE      num_train / num_eval  10000 / 5000      300 / 150
               num_variance          10000             2000
               group_size            64                64
MIG            num_train             10000             5000
DCI            num_train / num_test  10000 / 5000      500 / 250
SAP            num_train / num_test  10000 / 5000      2000 / 1000
Hoyer          num_points            10000             5000
=============  ====================  ================  ================
"""

from __future__ import annotations

from pyro_partial.metrics.sampling import check_positive

PROFILES: dict[str, dict[str, dict[str, int]]] = {
    "beta_vae": {
        "full": {"num_train": 10000, "num_eval": 5000, "group_size": 64},
        "fast": {"num_train": 300, "num_eval": 150, "group_size": 64},
    },
    "factor_vae": {
        "full": {"num_train": 10000, "num_eval": 5000, "num_variance": 10000, "group_size": 64},
        "fast": {"num_train": 300, "num_eval": 150, "num_variance": 2000, "group_size": 64},
    },
    "mig": {
        "full": {"num_train": 10000},
        "fast": {"num_train": 5000},
    },
    "dci": {
        "full": {"num_train": 10000, "num_test": 5000},
        "fast": {"num_train": 500, "num_test": 250},
    },
    "sap": {
        "full": {"num_train": 10000, "num_test": 5000},
        "fast": {"num_train": 2000, "num_test": 1000},
    },
    "hoyer": {
        "full": {"num_points": 10000},
        "fast": {"num_points": 5000},
    },
}
"""``PROFILES[metric][profile]``: the sample sizes of each metric under ``"full"`` and ``"fast"``."""


def resolve(metric: str, profile: str, **overrides: int | None) -> dict[str, int]:
    """Sample sizes of ``metric`` under ``profile``, with the ``overrides`` that are not ``None``."""
    table = PROFILES[metric]
    if profile not in table:
        raise ValueError(f"profile must be one of {sorted(table)}; got {profile!r}")
    unknown = set(overrides) - set(table[profile])
    if unknown:
        raise TypeError(f"unknown option(s) for {metric}: {sorted(unknown)}")
    options = {**table[profile], **{k: v for k, v in overrides.items() if v is not None}}
    check_positive(**options)
    return options
