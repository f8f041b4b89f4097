"""Pinwheel: determinism, balance, and the generative process checked against its closed form."""

import math

import numpy as np
import pytest
import torch

from pyro_partial.data.pinwheel import Pinwheel, pinwheel_points


def test_defaults_are_mathieu_et_al():
    data = Pinwheel()
    assert data.points.shape == (400, 2) and data.points.dtype == torch.float32
    assert data.factor_sizes == (4,) and data.observation_shape == (2,)
    assert torch.bincount(data.labels).tolist() == [100, 100, 100, 100]
    point, factors = data[7]
    assert torch.equal(point, data.points[7]) and factors.tolist() == [data.labels[7].item()]


def test_deterministic_from_seed():
    a, b, c = Pinwheel(seed=3), Pinwheel(seed=3), Pinwheel(seed=4)
    assert torch.equal(a.points, b.points) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.points, c.points)


def test_noise_free_points_lie_on_the_arm_curve():
    # With no noise, r = 1 and t = 0: the point is (cos phi, -sin phi), phi = 2 pi k / K + rate * e.
    arms = np.arange(6) % 3
    points = pinwheel_points(arms, np.random.default_rng(0), 3, 0.0, 0.0, 0.5)
    phi = 2 * math.pi * arms / 3 + 0.5 * math.e
    np.testing.assert_allclose(points, np.stack([np.cos(phi), -np.sin(phi)], axis=1), atol=1e-12)


def test_radial_and_angular_structure():
    # Without tangential noise |point| = r ~ N(1, 0.1^2), and the clockwise angle is 2 pi k / 4 + 0.25 e^r.
    arms = np.arange(20000) % 4
    points = pinwheel_points(arms, np.random.default_rng(1), 4, 0.1, 0.0, 0.25)
    radius = np.linalg.norm(points, axis=1)
    assert abs(radius.mean() - 1.0) < 0.005 and abs(radius.std() - 0.1) < 0.005
    angle = np.arctan2(-points[:, 1], points[:, 0])
    residual = np.angle(np.exp(1j * (angle - 2 * math.pi * arms / 4 - 0.25 * np.exp(radius))))
    np.testing.assert_allclose(residual, 0.0, atol=1e-9)
    # The tangential coordinate has the requested spread: t = (x sin phi + y cos phi) given phi.
    points = pinwheel_points(arms, np.random.default_rng(2), 4, 0.0, 0.3, 0.25)
    phi = 2 * math.pi * arms / 4 + 0.25 * math.e
    tangential = points[:, 0] * np.sin(phi) + points[:, 1] * np.cos(phi)
    assert abs(tangential.std() - 0.3) < 0.01


def test_observations_from_factors():
    data = Pinwheel(radial_std=0.0, tangential_std=0.0)
    factors = np.array([[0], [2], [3]])
    points = data.observations_from_factors(factors, np.random.default_rng(0)).double().numpy()
    phi = 2 * math.pi * factors[:, 0] / 4 + 0.25 * math.e
    np.testing.assert_allclose(points, np.stack([np.cos(phi), -np.sin(phi)], axis=1), atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(N, 1\)"):
        data.observations_from_factors(np.array([0, 1]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="arms"):
        data.observations_from_factors(np.array([[4]]), np.random.default_rng(0))
