"""Sampling factors and codes from a ground-truth data set for the disentanglement metrics.

A *representation function* maps a float tensor of observations ``(N, *observation_shape)`` to codes
``(N, D)`` (a tensor or a numpy array), e.g. the mean of an encoder. The metrics call it in chunks of
``batch_size`` rows under :func:`torch.no_grad` and work on float64 numpy codes.

Factors with a single value (e.g. dSprites' colour) carry no information: the metrics score only the
*informative* factors, as disentanglement_lib does by leaving such factors out of its data sets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

RepresentationFunction = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]


def informative_factors(dataset) -> np.ndarray:
    """Indices of the factors of ``dataset`` that take more than one value; int64 array ``(K,)``."""
    sizes = getattr(dataset, "factor_sizes", None)
    if sizes is None or not hasattr(dataset, "observations_from_factors"):
        raise TypeError(
            "dataset must implement pyro_partial.data.GroundTruthDataset "
            f"(factor_sizes, observations_from_factors); got {type(dataset).__name__}"
        )
    index = np.flatnonzero(np.asarray(sizes) > 1)
    if index.size == 0:
        raise ValueError(f"dataset has no factor with more than one value: factor_sizes={tuple(sizes)}")
    return index


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


def encode(
    representation_function: RepresentationFunction, observations: torch.Tensor, batch_size: int
) -> np.ndarray:
    """Codes of ``observations`` ``(N, *observation_shape)`` as a float64 array ``(N, D)``."""
    check_positive(batch_size=batch_size)
    chunks = []
    with torch.no_grad():
        for start in range(0, observations.shape[0], batch_size):
            chunk = observations[start : start + batch_size]
            chunks.append(_as_codes(representation_function(chunk), chunk.shape[0]))
    return np.concatenate(chunks, axis=0)


def encode_factors(
    dataset,
    representation_function: RepresentationFunction,
    factors: np.ndarray,
    rng: np.random.Generator,
    batch_size: int,
) -> np.ndarray:
    """Render factor indices ``(N, F)`` chunk by chunk and return their codes, float64 ``(N, D)``."""
    check_positive(batch_size=batch_size)
    chunks = []
    for start in range(0, factors.shape[0], batch_size):
        observations = dataset.observations_from_factors(factors[start : start + batch_size], rng)
        chunks.append(encode(representation_function, observations, batch_size))
    return np.concatenate(chunks, axis=0)


def sample_codes(
    dataset,
    representation_function: RepresentationFunction,
    num_points: int,
    rng: np.random.Generator,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num_points`` random factor vectors and their codes.

    Returns ``(factors, codes)``: the informative factors as int64 ``(num_points, K)`` and the codes
    as float64 ``(num_points, D)``.
    """
    check_positive(num_points=num_points)
    informative = informative_factors(dataset)
    factors = dataset.sample_factors(num_points, rng)
    codes = encode_factors(dataset, representation_function, factors, rng, batch_size)
    return factors[:, informative], codes


def _as_codes(codes, num_rows: int) -> np.ndarray:
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().double().numpy()
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] != num_rows:
        raise ValueError(
            f"representation_function must return codes of shape (N, D) = ({num_rows}, D) "
            f"for a batch of {num_rows} observations; got shape {codes.shape}"
        )
    if not np.isfinite(codes).all():
        raise ValueError("representation_function returned non-finite codes (NaN or inf)")
    return codes
