"""The interface of data sets whose generative factors are known (used by :mod:`pyro_partial.metrics`).

A ground-truth data set has ``F`` discrete factors; factor ``f`` takes ``factor_sizes[f]`` values,
indexed ``0 .. factor_sizes[f] - 1``. Metrics sample factor index arrays of shape ``(N, F)`` and ask the
data set to render observations of shape ``(N, *observation_shape)`` from them, in the spirit of
disentanglement_lib's ``GroundTruthData``. Randomness always comes from a ``numpy.random.Generator``.
"""

from __future__ import annotations

import abc

import numpy as np
import torch


class GroundTruthDataset(torch.utils.data.Dataset, abc.ABC):
    """Abstract base class; subclasses set ``factor_names``, ``factor_sizes`` and ``observation_shape``.

    ``__getitem__(i)`` returns ``(observation, factors)``: a float tensor of shape ``observation_shape``
    and an int64 tensor of shape ``(F,)``.
    """

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    observation_shape: tuple[int, ...]

    @property
    def num_factors(self) -> int:
        """F, the number of factors."""
        return len(self.factor_sizes)

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``num`` factor index vectors uniformly at random; returns int64 array ``(num, F)``."""
        return np.stack([rng.integers(0, size, size=num) for size in self.factor_sizes], axis=1)

    @abc.abstractmethod
    def observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Render observations for factor indices ``(N, F)`` as a float tensor ``(N, *observation_shape)``.

        ``rng`` resolves any factor the data set does not control (e.g. which of several images
        share the given factors).
        """

    def sample(self, num: int, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
        """Return ``(factors, observations)`` for ``num`` random factor draws."""
        factors = self.sample_factors(num, rng)
        return factors, self.observations_from_factors(factors, rng)
