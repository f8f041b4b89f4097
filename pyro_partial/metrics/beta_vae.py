r"""BetaVAE disentanglement score (Higgins et al. 2017, sec. 3; disentanglement_lib's sklearn variant).

One training point: pick a factor :math:`k` uniformly among the informative factors, draw :math:`L` =
``group_size`` pairs of factor vectors that agree on factor :math:`k` only by construction (all other
factors are drawn independently), and take the feature
:math:`\frac{1}{L} \sum_l |z(x^1_l) - z(x^2_l)|` (shape ``(D,)``). A logistic regression predicts
:math:`k` from the feature; the score is its accuracy on ``num_eval`` fresh points.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from pyro_partial.metrics.profiles import resolve
from pyro_partial.metrics.sampling import RepresentationFunction, encode_factors, informative_factors


def beta_vae_score(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    num_train: int | None = None,
    num_eval: int | None = None,
    group_size: int | None = None,
    max_iter: int = 1000,
    batch_size: int = 256,
) -> dict[str, float]:
    """BetaVAE score of ``representation_function`` on the ground-truth ``dataset``.

    Args:
        dataset: a :class:`~pyro_partial.data.GroundTruthDataset`.
        representation_function: observations ``(N, *observation_shape)`` -> codes ``(N, D)``.
        seed: seeds the factor draws and the classifier.
        profile: ``"full"`` (disentanglement_lib) or ``"fast"``; see :mod:`pyro_partial.metrics.profiles`.
        num_train, num_eval: training / evaluation points (full: 10000 / 5000); ``None`` takes the profile's.
        group_size: pairs averaged per point (disentanglement_lib's ``batch_size``; full: 64).
        max_iter: iterations of the (otherwise default) logistic regression; disentanglement_lib keeps
            scikit-learn's 100, which often stops before convergence on unscaled codes.
        batch_size: rows per call of ``representation_function`` (speed and memory only).

    Returns:
        ``{"beta_vae_train_accuracy", "beta_vae_eval_accuracy"}``; the score is the eval accuracy.
    """
    options = resolve("beta_vae", profile, num_train=num_train, num_eval=num_eval, group_size=group_size)
    rng = np.random.default_rng(seed)
    group = options["group_size"]
    train_x, train_y = _features(
        dataset, representation_function, options["num_train"], group, rng, batch_size
    )
    eval_x, eval_y = _features(dataset, representation_function, options["num_eval"], group, rng, batch_size)
    model = LogisticRegression(max_iter=max_iter, random_state=seed).fit(train_x, train_y)
    return {
        "beta_vae_train_accuracy": float(np.mean(model.predict(train_x) == train_y)),
        "beta_vae_eval_accuracy": float(np.mean(model.predict(eval_x) == eval_y)),
    }


def _features(dataset, representation_function, num_points, group, rng, batch_size):
    """Features ``(num_points, D)`` and the index (among informative factors) of the shared factor."""
    informative = informative_factors(dataset)
    shared = rng.integers(informative.size, size=num_points)
    first = dataset.sample_factors(num_points * group, rng).reshape(num_points, group, -1)
    second = dataset.sample_factors(num_points * group, rng).reshape(num_points, group, -1)
    keep = np.zeros((num_points, 1, first.shape[-1]), dtype=bool)
    keep[np.arange(num_points), 0, informative[shared]] = True
    second = np.where(keep, first, second)
    both = np.concatenate([first, second]).reshape(2 * num_points * group, -1)
    codes = encode_factors(dataset, representation_function, both, rng, batch_size)
    codes = codes.reshape(2, num_points, group, -1)
    return np.abs(codes[0] - codes[1]).mean(axis=1), shared
