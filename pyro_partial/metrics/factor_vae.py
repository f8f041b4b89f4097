r"""FactorVAE disentanglement score (Kim & Mnih 2018, sec. 4), as in disentanglement_lib.

Codes are normalised by their global standard deviation (estimated on ``num_variance`` points). One
vote: fix one informative factor :math:`k` over a group of ``group_size`` factor vectors (the others drawn
at random) and record

.. math::

    d^* = \operatorname{argmin}_d \frac{\mathrm{Var}_\text{group}(z_d)}{\mathrm{Var}_\text{global}(z_d)}

over the active dimensions. The majority-vote classifier
:math:`d \mapsto \operatorname{argmax}_k \mathrm{votes}[k, d]` is fit on ``num_train`` votes; the score is
its accuracy on ``num_eval`` fresh votes.

Pruning: dimensions whose global standard deviation is below ``prune_threshold`` are left out (0.05
in disentanglement_lib's study configuration, 0 in its function default); dimensions with zero
variance cannot be normalised and are always left out.
"""

from __future__ import annotations

import numpy as np

from pyro_partial.metrics.profiles import resolve
from pyro_partial.metrics.sampling import (
    RepresentationFunction,
    encode_factors,
    informative_factors,
    sample_codes,
)


def factor_vae_score(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    num_train: int | None = None,
    num_eval: int | None = None,
    num_variance: int | None = None,
    group_size: int | None = None,
    prune_threshold: float = 0.05,
    batch_size: int = 256,
) -> dict[str, float]:
    """FactorVAE score of ``representation_function`` on the ground-truth ``dataset``.

    Args:
        dataset: a :class:`~pyro_partial.data.GroundTruthDataset`.
        representation_function: observations ``(N, *observation_shape)`` -> codes ``(N, D)``.
        seed: seeds every draw.
        profile: ``"full"`` (disentanglement_lib) or ``"fast"``; see :mod:`pyro_partial.metrics.profiles`.
        num_train, num_eval: training / evaluation votes (full: 10000 / 5000).
        num_variance: points for the global variances (full: 10000).
        group_size: factor vectors per vote (disentanglement_lib's ``batch_size``; full: 64).
            Mathieu et al. (2019) use 1000 points per vote.
        prune_threshold: minimum global standard deviation of an active dimension (``>= 0``).
        batch_size: rows per call of ``representation_function`` (speed and memory only).

    Returns:
        ``{"factor_vae_train_accuracy", "factor_vae_eval_accuracy", "factor_vae_num_active_dims"}``;
        the score is the eval accuracy, 0 when no dimension is active.
    """
    options = resolve(
        "factor_vae",
        profile,
        num_train=num_train,
        num_eval=num_eval,
        num_variance=num_variance,
        group_size=group_size,
    )
    if not prune_threshold >= 0:
        raise ValueError(f"prune_threshold must be >= 0; got {prune_threshold!r}")
    rng = np.random.default_rng(seed)
    _, codes = sample_codes(dataset, representation_function, options["num_variance"], rng, batch_size)
    global_variance = codes.var(axis=0, ddof=1)
    active = (np.sqrt(global_variance) >= prune_threshold) & (global_variance > 0)
    if not active.any():
        return {
            "factor_vae_train_accuracy": 0.0,
            "factor_vae_eval_accuracy": 0.0,
            "factor_vae_num_active_dims": 0.0,
        }

    def votes(num_votes: int) -> np.ndarray:
        return _votes(
            dataset,
            representation_function,
            num_votes,
            options["group_size"],
            global_variance,
            active,
            rng,
            batch_size,
        )

    train_votes = votes(options["num_train"])
    classifier = train_votes.argmax(axis=0)
    columns = np.arange(train_votes.shape[1])
    eval_votes = votes(options["num_eval"])
    return {
        "factor_vae_train_accuracy": float(train_votes[classifier, columns].sum() / train_votes.sum()),
        "factor_vae_eval_accuracy": float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
        "factor_vae_num_active_dims": float(active.sum()),
    }


def _votes(dataset, representation_function, num_votes, group, global_variance, active, rng, batch_size):
    """Vote counts ``(K, number of active dims)``: row = fixed informative factor, column = argmin."""
    informative = informative_factors(dataset)
    fixed = rng.integers(informative.size, size=num_votes)
    factors = dataset.sample_factors(num_votes * group, rng).reshape(num_votes, group, -1)
    keep = np.zeros((num_votes, 1, factors.shape[-1]), dtype=bool)
    keep[np.arange(num_votes), 0, informative[fixed]] = True
    factors = np.where(keep, factors[:, :1], factors)
    codes = encode_factors(
        dataset, representation_function, factors.reshape(num_votes * group, -1), rng, batch_size
    )
    local_variance = codes.reshape(num_votes, group, -1).var(axis=1, ddof=1)
    argmin = (local_variance[:, active] / global_variance[active]).argmin(axis=1)
    counts = np.zeros((informative.size, int(active.sum())), dtype=np.int64)
    np.add.at(counts, (fixed, argmin), 1)
    return counts
