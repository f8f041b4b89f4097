r"""Separated attribute predictability, SAP (Kumar et al. 2018, sec. 5), as in disentanglement_lib.

Score matrix :math:`S` ``(D, K)``: for discrete factors, :math:`S_{dk}` is the test accuracy of a linear
SVM (``LinearSVC(C=0.01, class_weight="balanced")``) predicting :math:`v_k` from the single code
:math:`z_d`; for continuous factors it is the squared correlation
:math:`\mathrm{Cov}(z_d, v_k)^2 / (\mathrm{Var}\, z_d \, \mathrm{Var}\, v_k)` on the training set (0 where
:math:`\mathrm{Var}\, z_d \le 10^{-12}`). Then

.. math::

    \mathrm{SAP} = \frac{1}{K} \sum_k (S_{(1)k} - S_{(2)k}),

the mean gap between the largest and second-largest entry of each column.

With discrete factors even a perfect code's gap is below 1: a 1-D linear classifier separates at most
two classes well, and an uninformative code still scores chance accuracy (:math:`1/\text{size}` in
expectation).
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from pyro_partial.metrics.profiles import resolve
from pyro_partial.metrics.sampling import RepresentationFunction, sample_codes


def sap_score(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    num_train: int | None = None,
    num_test: int | None = None,
    continuous_factors: bool = False,
    batch_size: int = 256,
) -> dict[str, float]:
    """SAP of ``representation_function`` on the ground-truth ``dataset``.

    Args:
        dataset: a :class:`~pyro_partial.data.GroundTruthDataset`.
        representation_function: observations ``(N, *observation_shape)`` -> codes ``(N, D)``, ``D >= 2``.
        seed: seeds the factor draws and the SVMs.
        profile: ``"full"`` (disentanglement_lib) or ``"fast"``; see :mod:`pyro_partial.metrics.profiles`.
        num_train, num_test: training / test points (full: 10000 / 5000).
        continuous_factors: score by squared correlation instead of SVM accuracy (disentanglement_lib: False).
        batch_size: rows per call of ``representation_function`` (speed and memory only).

    Returns:
        ``{"sap": score}``.
    """
    options = resolve("sap", profile, num_train=num_train, num_test=num_test)
    rng = np.random.default_rng(seed)
    factors, codes = sample_codes(dataset, representation_function, options["num_train"], rng, batch_size)
    if continuous_factors:
        matrix = sap_score_matrix(codes, factors, continuous_factors=True)
    else:
        factors_test, codes_test = sample_codes(
            dataset, representation_function, options["num_test"], rng, batch_size
        )
        matrix = sap_score_matrix(codes, factors, codes_test, factors_test, seed=seed)
    return {"sap": sap_from_matrix(matrix)}


def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray | None = None,
    factors_test: np.ndarray | None = None,
    continuous_factors: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Score matrix ``(D, K)`` of single codes ``(N, D)`` against factors ``(N, K)``.

    The test set is needed (and used) only for discrete factors.
    """
    codes_train, factors_train = np.asarray(codes_train, dtype=np.float64), np.asarray(factors_train)
    if codes_train.ndim != 2 or factors_train.ndim != 2 or codes_train.shape[0] != factors_train.shape[0]:
        raise ValueError(
            "codes_train must be (N, D) and factors_train (N, K) with the same N; "
            f"got {codes_train.shape} and {factors_train.shape}"
        )
    if continuous_factors:
        return _squared_correlations(codes_train, factors_train.astype(np.float64))
    if codes_test is None or factors_test is None:
        raise ValueError("codes_test and factors_test are required for discrete factors")
    matrix = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    for d in range(codes_train.shape[1]):
        for k in range(factors_train.shape[1]):
            classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            classifier.fit(codes_train[:, d : d + 1], factors_train[:, k])
            matrix[d, k] = np.mean(classifier.predict(codes_test[:, d : d + 1]) == factors_test[:, k])
    return matrix


def sap_from_matrix(matrix: np.ndarray) -> float:
    """Mean over columns of the gap between the two largest entries of a score matrix ``(D >= 2, K)``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        raise ValueError(f"matrix must have shape (D, K) with D >= 2; got {matrix.shape}")
    top = np.sort(matrix, axis=0)
    return float(np.mean(top[-1] - top[-2]))


def _squared_correlations(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    codes_c = codes - codes.mean(axis=0)
    factors_c = factors - factors.mean(axis=0)
    n = codes.shape[0] - 1
    covariance = codes_c.T @ factors_c / n
    code_variance = (codes_c**2).sum(axis=0) / n
    factor_variance = (factors_c**2).sum(axis=0) / n
    if np.any(factor_variance == 0):
        raise ValueError(
            f"every factor must vary in the sample; constant: {np.flatnonzero(factor_variance == 0)}"
        )
    active = code_variance > 1e-12
    matrix = np.zeros_like(covariance)
    matrix[active] = covariance[active] ** 2 / (code_variance[active, None] * factor_variance[None, :])
    return matrix
