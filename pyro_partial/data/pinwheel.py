"""The pinwheel toy data set (Johnson et al. 2016), used for 2-D clustering by Mathieu et al. (2019).

Point ``n`` belongs to arm ``k = n mod K``. It draws a radial coordinate ``r ~ N(1, radial_std^2)`` and a
tangential one ``t ~ N(0, tangential_std^2)``, then turns ``(r, t)`` clockwise by
``phi = 2 pi k / K + rate * exp(r)``::

    point = (r cos(phi) + t sin(phi), -r sin(phi) + t cos(phi))

so arm ``k`` starts near the unit circle at angle ``-2 pi k / K`` and curls clockwise as ``r`` grows.
The defaults are Mathieu et al.'s settings: 4 arms, radial std 0.1, tangential std 0.3, rate 0.25, 400
points (Johnson et al. multiply the points by 10; here they stay on the unit-circle scale, matching
the 4-Gaussian prior with means at ``(0, +-1)`` and ``(+-1, 0)``).
"""

from __future__ import annotations

import numpy as np
import torch

from pyro_partial.data.ground_truth import GroundTruthDataset


def pinwheel_points(
    arms: np.ndarray,
    rng: np.random.Generator,
    num_arms: int = 4,
    radial_std: float = 0.1,
    tangential_std: float = 0.3,
    rate: float = 0.25,
) -> np.ndarray:
    """Draw one point for each arm index in ``arms`` ``(N,)``; returns float64 ``(N, 2)``."""
    arms = np.asarray(arms)
    if arms.ndim != 1 or (arms < 0).any() or (arms >= num_arms).any():
        raise ValueError(f"arms must be a 1-D array of indices in [0, {num_arms}), got shape {arms.shape}")
    if radial_std < 0 or tangential_std < 0:
        raise ValueError(f"radial_std and tangential_std must be >= 0, got {radial_std}, {tangential_std}")
    radial = 1.0 + radial_std * rng.standard_normal(len(arms))
    tangential = tangential_std * rng.standard_normal(len(arms))
    phi = 2.0 * np.pi * arms / num_arms + rate * np.exp(radial)
    cos, sin = np.cos(phi), np.sin(phi)
    return np.stack([radial * cos + tangential * sin, -radial * sin + tangential * cos], axis=1)


class Pinwheel(GroundTruthDataset):
    """A fixed sample of pinwheel points with their arm labels, deterministic given ``seed``.

    :param num_points: number of points ``N``; arm ``k`` gets the points ``n`` with ``n mod K = k``
        (balanced to within one), then the points are shuffled.
    :param num_arms: number of arms ``K``.
    :param seed: seed of the ``numpy.random.Generator`` that draws the sample.

    ``points`` is a float32 tensor ``(N, 2)`` and ``labels`` an int64 tensor ``(N,)``. As a ground-truth
    data set the single factor is the arm (``factor_sizes = (K,)``); ``__getitem__`` returns
    ``(point (2,), factors (1,))`` and :meth:`observations_from_factors` draws fresh points of the
    requested arms from the same process with the caller's ``rng``.
    """

    factor_names = ("arm",)
    observation_shape = (2,)

    def __init__(
        self,
        num_points: int = 400,
        num_arms: int = 4,
        radial_std: float = 0.1,
        tangential_std: float = 0.3,
        rate: float = 0.25,
        seed: int = 0,
    ) -> None:
        if num_points < 1 or num_arms < 1:
            raise ValueError(f"num_points and num_arms must be >= 1, got {num_points}, {num_arms}")
        self.factor_sizes = (num_arms,)
        self._process = dict(
            num_arms=num_arms, radial_std=radial_std, tangential_std=tangential_std, rate=rate
        )
        rng = np.random.default_rng(seed)
        arms = rng.permutation(np.arange(num_points) % num_arms)
        self.points = torch.from_numpy(pinwheel_points(arms, rng, **self._process).astype(np.float32))
        self.labels = torch.from_numpy(arms.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.points[index], self.labels[index].reshape(1)

    def observations_from_factors(self, factors: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Fresh points ``(N, 2)`` (float32) for arm indices ``factors`` of shape ``(N, 1)``."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != 1:
            raise ValueError(f"factors must have shape (N, 1) (the arm index), got {factors.shape}")
        return torch.from_numpy(pinwheel_points(factors[:, 0], rng, **self._process).astype(np.float32))
