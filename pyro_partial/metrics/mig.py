r"""Mutual information gap (Chen et al. 2018, eq. 5) with histogram discretisation, as in disentanglement_lib.

Each code :math:`z_d` is discretised into ``num_bins`` equal-width bins between its minimum and maximum;
:math:`I(z_d; v_k)` is the plug-in mutual information (nats) between the binned code and factor
:math:`v_k`, and

.. math::

    \mathrm{MIG} = \frac{1}{K} \sum_k \frac{I(z_{d_1(k)}; v_k) - I(z_{d_2(k)}; v_k)}{H(v_k)}

with :math:`d_1(k)`, :math:`d_2(k)` the codes with the largest and second-largest information about
:math:`v_k`.
"""

from __future__ import annotations

import numpy as np

from pyro_partial.metrics.profiles import resolve
from pyro_partial.metrics.sampling import RepresentationFunction, check_positive, sample_codes


def mig_score(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    num_train: int | None = None,
    num_bins: int = 20,
    batch_size: int = 256,
) -> dict[str, float]:
    """MIG of ``representation_function`` on the ground-truth ``dataset``.

    Args:
        dataset: a :class:`~pyro_partial.data.GroundTruthDataset`.
        representation_function: observations ``(N, *observation_shape)`` -> codes ``(N, D)``, ``D >= 2``.
        seed: seeds the factor draws.
        profile: ``"full"`` (disentanglement_lib) or ``"fast"``; see :mod:`pyro_partial.metrics.profiles`.
        num_train: points sampled (full: 10000).
        num_bins: histogram bins per code (disentanglement_lib: 20).
        batch_size: rows per call of ``representation_function`` (speed and memory only).

    Returns:
        ``{"mig": score}``.
    """
    options = resolve("mig", profile, num_train=num_train)
    factors, codes = sample_codes(
        dataset, representation_function, options["num_train"], np.random.default_rng(seed), batch_size
    )
    return {"mig": mig_from_codes(codes, factors, num_bins=num_bins)}


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> float:
    """MIG of codes ``(N, D)`` (``D >= 2``) for discrete factors ``(N, K)`` that each vary."""
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(f"codes must have shape (N, D) with D >= 2; got {codes.shape}")
    if factors.ndim != 2 or factors.shape[0] != codes.shape[0]:
        raise ValueError(f"factors must have shape (N, K) = ({codes.shape[0]}, K); got {factors.shape}")
    information = discrete_mutual_information(histogram_discretize(codes, num_bins), factors)
    entropy = np.diag(discrete_mutual_information(factors, factors))
    if np.any(entropy <= 0):
        raise ValueError(
            f"every factor must vary in the sample; constant factor(s) {np.flatnonzero(entropy <= 0)}"
        )
    top = np.sort(information, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Bin each column of ``codes (N, D)`` into ``num_bins`` equal-width bins; int64 ``(N, D)`` in 1..bins."""
    check_positive(num_bins=num_bins)
    binned = np.empty(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, d], bins=num_bins)
        binned[:, d] = np.digitize(codes[:, d], edges[:-1])
    return binned


def discrete_mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""Plug-in mutual information (nats) between the columns of ``a (N, A)`` and ``b (N, B)``; ``(A, B)``.

    :math:`I(a; b) = \sum_{i,j} p(i, j) \log \frac{p(i, j)}{p(i)\, p(j)}` from the contingency table of the
    values; :math:`I(a; a)` is the entropy of :math:`a`.
    """
    a_labels = [np.unique(column, return_inverse=True)[1] for column in np.asarray(a).T]
    b_labels = [np.unique(column, return_inverse=True)[1] for column in np.asarray(b).T]
    information = np.zeros((len(a_labels), len(b_labels)))
    for i, x in enumerate(a_labels):
        for j, y in enumerate(b_labels):
            shape = (x.max() + 1, y.max() + 1)
            counts = np.bincount(x * shape[1] + y, minlength=shape[0] * shape[1]).reshape(shape)
            information[i, j] = _information_of_table(counts)
    return information


def _information_of_table(counts: np.ndarray) -> float:
    joint = counts / float(counts.sum())
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))
