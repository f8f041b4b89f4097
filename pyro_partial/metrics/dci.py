r"""DCI disentanglement, completeness, informativeness (Eastwood & Williams 2018) as in disentanglement_lib.

One gradient-boosted tree classifier (scikit-learn defaults) per informative factor :math:`k` predicts
:math:`v_k` from the codes; its feature importances fill column :math:`k` of the importance matrix
:math:`R` ``(D, K)``. With :math:`P_{dk} = R_{dk} / \sum_{k'} R_{dk'}` and :math:`H_K` the entropy in base
:math:`K`, the disentanglement (paper eq. 2) and the completeness (eq. 3) are

.. math::

    \text{disentanglement} &= \sum_d \rho_d \,(1 - H_K(P_{d\cdot})),
        \qquad \rho_d = \frac{\sum_k R_{dk}}{\sum_{dk} R_{dk}}, \\
    \text{completeness} &= \sum_k \rho_k \,\Big(1 - H_D\Big(\frac{R_{\cdot k}}{\sum_d R_{dk}}\Big)\Big),
        \qquad \rho_k = \frac{\sum_d R_{dk}}{\sum_{dk} R_{dk}},

and the informativeness is the mean over factors of the classifier's accuracy (train and test).

disentanglement_lib reports accuracy (not error) under "informativeness"; so does this module.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

from pyro_partial.metrics.profiles import resolve
from pyro_partial.metrics.sampling import RepresentationFunction, sample_codes


def dci_score(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    num_train: int | None = None,
    num_test: int | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """DCI scores of ``representation_function`` on the ground-truth ``dataset``.

    Args:
        dataset: a :class:`~pyro_partial.data.GroundTruthDataset` with at least two informative factors.
        representation_function: observations ``(N, *observation_shape)`` -> codes ``(N, D)``, ``D >= 2``.
        seed: seeds the factor draws and the tree classifiers.
        profile: ``"full"`` (disentanglement_lib) or ``"fast"``; see :mod:`pyro_partial.metrics.profiles`.
        num_train, num_test: training / test points (full: 10000 / 5000).
        batch_size: rows per call of ``representation_function`` (speed and memory only).

    Returns:
        ``{"dci_disentanglement", "dci_completeness", "dci_informativeness_train",
        "dci_informativeness_test"}``.
    """
    options = resolve("dci", profile, num_train=num_train, num_test=num_test)
    rng = np.random.default_rng(seed)
    train = sample_codes(dataset, representation_function, options["num_train"], rng, batch_size)
    test = sample_codes(dataset, representation_function, options["num_test"], rng, batch_size)
    return dci_from_codes(train[1], train[0], test[1], test[0], seed=seed)


def dci_from_codes(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    """DCI scores from codes ``(N, D)`` and discrete factors ``(N, K)`` (train and test sets)."""
    importance, accuracy_train, accuracy_test = gbt_importance(
        codes_train, factors_train, codes_test, factors_test, seed=seed
    )
    return {
        "dci_disentanglement": dci_disentanglement(importance),
        "dci_completeness": dci_completeness(importance),
        "dci_informativeness_train": accuracy_train,
        "dci_informativeness_test": accuracy_test,
    }


def gbt_importance(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    seed: int = 0,
) -> tuple[np.ndarray, float, float]:
    """Importance matrix ``(D, K)`` and mean train / test accuracies of one tree classifier per factor."""
    _check_pair(codes_train, factors_train, "train")
    _check_pair(codes_test, factors_test, "test")
    if codes_test.shape[1] != codes_train.shape[1] or factors_test.shape[1] != factors_train.shape[1]:
        raise ValueError(
            f"train and test widths differ: codes {codes_train.shape} / {codes_test.shape}, "
            f"factors {factors_train.shape} / {factors_test.shape}"
        )
    importance = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    accuracy_train, accuracy_test = [], []
    for k in range(factors_train.shape[1]):
        model = GradientBoostingClassifier(random_state=seed).fit(codes_train, factors_train[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        accuracy_train.append(np.mean(model.predict(codes_train) == factors_train[:, k]))
        accuracy_test.append(np.mean(model.predict(codes_test) == factors_test[:, k]))
    return importance, float(np.mean(accuracy_train)), float(np.mean(accuracy_test))


def dci_disentanglement(importance: np.ndarray) -> float:
    """DCI disentanglement of an importance matrix ``(D, K)``, ``K >= 2`` (Eastwood & Williams eq. 2)."""
    importance = _check_importance(importance, axis=1, name="K (factors)")
    return _weighted_one_minus_entropy(importance)


def dci_completeness(importance: np.ndarray) -> float:
    """DCI completeness of an importance matrix ``(D, K)``, ``D >= 2`` (Eastwood & Williams eq. 3)."""
    importance = _check_importance(importance, axis=0, name="D (codes)")
    return _weighted_one_minus_entropy(importance.T)


def _weighted_one_minus_entropy(rows: np.ndarray) -> float:
    """``sum_r rho_r (1 - H_C(p_r))`` for non-negative ``rows (R, C)``, ``p_r`` each row normalised."""
    total = rows.sum()
    if total == 0:
        return 0.0
    row_sums = rows.sum(axis=1)
    p = rows[row_sums > 0] / row_sums[row_sums > 0, None]
    logs = np.log(np.where(p > 0, p, 1.0))
    entropy = -(p * logs).sum(axis=1) / np.log(rows.shape[1])
    return float(np.sum(row_sums[row_sums > 0] / total * (1.0 - entropy)))


def _check_importance(importance, axis: int, name: str) -> np.ndarray:
    importance = np.asarray(importance, dtype=np.float64)
    if importance.ndim != 2 or importance.shape[axis] < 2:
        raise ValueError(f"importance must have shape (D, K) with {name} >= 2; got {importance.shape}")
    if np.any(importance < 0) or not np.isfinite(importance).all():
        raise ValueError("importance must be finite and non-negative")
    return importance


def _check_pair(codes: np.ndarray, factors: np.ndarray, split: str) -> None:
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes_{split} must be (N, D) and factors_{split} (N, K) with the same N; "
            f"got {codes.shape} and {factors.shape}"
        )
