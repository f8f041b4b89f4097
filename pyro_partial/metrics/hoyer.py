r"""Hoyer sparsity of a representation, normalised as in Mathieu et al. (2019, sec. 5).

Each code dimension is divided by its standard deviation over the data (no centring), so that a
dimension cannot look sparse merely by collapsing to a small scale; then

.. math::

    \text{sparsity} = \frac{\sqrt{D} - \frac{1}{N} \sum_n \|z_n\|_1 / \|z_n\|_2}{\sqrt{D} - 1},

which is 1 when every :math:`z_n` has a single non-zero entry and 0 when all entries of each :math:`z_n` have
equal magnitude. Conventions for degenerate input: dimensions with zero variance (nothing to
normalise) and all-zero rows (no direction) are left out; fewer than two varying dimensions, or no
non-zero row, give 0.
"""

from __future__ import annotations

import numpy as np

from pyro_partial.metrics.profiles import resolve
from pyro_partial.metrics.sampling import RepresentationFunction, sample_codes


def hoyer_score(
    dataset,
    representation_function: RepresentationFunction,
    *,
    seed: int = 0,
    profile: str = "full",
    num_points: int | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Normalised Hoyer sparsity of ``representation_function``'s codes on ``dataset``.

    Args:
        dataset: a :class:`~pyro_partial.data.GroundTruthDataset` (only its observations are used).
        representation_function: observations ``(N, *observation_shape)`` -> codes ``(N, D)``.
        seed: seeds the draws.
        profile: ``"full"`` (10000 points; not in disentanglement_lib) or ``"fast"`` (5000).
        num_points: points sampled.
        batch_size: rows per call of ``representation_function`` (speed and memory only).

    Returns:
        ``{"hoyer_sparsity": score}``.
    """
    options = resolve("hoyer", profile, num_points=num_points)
    _, codes = sample_codes(
        dataset, representation_function, options["num_points"], np.random.default_rng(seed), batch_size
    )
    return {"hoyer_sparsity": hoyer_sparsity(codes)}


def hoyer_sparsity(codes: np.ndarray) -> float:
    """Normalised Hoyer sparsity of ``(N, D)``: each dimension divided by its std (ddof=1), not centred."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] < 2:
        raise ValueError(f"codes must have shape (N, D) with N >= 2; got {codes.shape}")
    std = codes.std(axis=0, ddof=1)
    codes = codes[:, std > 0] / std[std > 0]
    dim = codes.shape[1]
    l2 = np.linalg.norm(codes, axis=1)
    if dim < 2 or not np.any(l2 > 0):
        return 0.0
    ratio = np.abs(codes[l2 > 0]).sum(axis=1) / l2[l2 > 0]
    return float((np.sqrt(dim) - ratio.mean()) / (np.sqrt(dim) - 1))
