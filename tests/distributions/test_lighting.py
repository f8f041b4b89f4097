import math

import numpy as np
import pytest
import torch

from pyro_partial.data.yaleb import light_directions
from pyro_partial.distributions.lighting import angles_from_direction, direction_from_angles, lighting_prior
from pyro_partial.metrics import angular_error

# Every (azimuth, elevation) pair of a 5-degree grid, poles and the Yale B extremes included.
AZIMUTHS = torch.arange(-175.0, 180.1, 5.0, dtype=torch.float64)
ELEVATIONS = torch.arange(-90.0, 90.1, 5.0, dtype=torch.float64)
GRID = torch.cartesian_prod(AZIMUTHS, ELEVATIONS)


def test_directions_are_unit_vectors_on_documented_axes():
    cases = torch.tensor([[0.0, 0.0], [90.0, 0.0], [-90.0, 0.0], [0.0, 90.0], [0.0, -90.0], [180.0, 0.0]])
    expected = torch.tensor(
        [
            [0.0, 0.0, 1.0],
            [1.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, -1.0, 0.0],
            [0.0, 0.0, -1.0],
        ]
    )
    assert torch.allclose(direction_from_angles(cases), expected, atol=1e-6)
    assert torch.allclose(
        direction_from_angles(GRID).norm(dim=-1), torch.ones(len(GRID), dtype=torch.float64)
    )


def test_same_axes_as_the_yale_b_loader():
    azimuth, elevation = GRID.unbind(-1)
    loader = light_directions(azimuth.numpy(), elevation.numpy())
    np.testing.assert_allclose(direction_from_angles(GRID).numpy(), loader, atol=1e-12)


def test_angles_round_trip_on_the_whole_grid():
    angles = angles_from_direction(direction_from_angles(GRID))
    off_pole = GRID[:, 1].abs() < 90
    torch.testing.assert_close(angles[off_pole], GRID[off_pole], atol=1e-9, rtol=0)
    # at the poles the azimuth is undefined: returned as 0, elevation exact
    torch.testing.assert_close(angles[~off_pole, 1], GRID[~off_pole, 1], atol=1e-9, rtol=0)
    assert torch.all(angles[~off_pole, 0] == 0)


def test_vectors_round_trip_including_poles_and_non_unit_input():
    directions = torch.nn.functional.normalize(torch.randn(1000, 3, dtype=torch.float64), dim=-1)
    directions = torch.cat([directions, torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])])
    back = direction_from_angles(angles_from_direction(3.5 * directions))
    torch.testing.assert_close(back, directions, atol=1e-12, rtol=0)


def test_azimuth_range_is_half_open_at_180():
    assert angles_from_direction(torch.tensor([0.0, 0.0, -1.0]))[0].item() == pytest.approx(180.0)
    assert angles_from_direction(torch.tensor([-1e-12, 0.0, -1.0]))[0].item() == pytest.approx(-180.0)


@pytest.mark.parametrize("bad", [torch.zeros(4, 2), torch.zeros(2, 3)])
def test_angles_from_direction_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="direction"):
        angles_from_direction(bad)


def test_angular_error_between_grid_directions_matches_the_spherical_law_of_cosines():
    a, b = GRID[::7], GRID.flip(0)[::7]
    (az1, el1), (az2, el2) = torch.deg2rad(a).unbind(-1), torch.deg2rad(b).unbind(-1)
    cosine = el1.sin() * el2.sin() + el1.cos() * el2.cos() * (az1 - az2).cos()
    expected = torch.rad2deg(torch.acos(cosine.clamp(-1, 1)))
    got = angular_error(direction_from_angles(a), direction_from_angles(b))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_angular_error_known_cases():
    x, y, z = torch.eye(3, dtype=torch.float64)
    pred = torch.stack([x, x, x, 2 * z, x + y])
    target = torch.stack([x, y, -x, z, x])
    expected = torch.tensor([0.0, 90.0, 180.0, 0.0, 45.0], dtype=torch.float64)
    torch.testing.assert_close(angular_error(pred, target), expected, atol=1e-9, rtol=0)
    # one degree of azimuth at the equator is one degree of arc, at elevation 60 half a degree
    one_degree = angular_error(
        direction_from_angles(torch.tensor([[10.0, 0.0], [10.0, 60.0]])),
        direction_from_angles(torch.tensor([[11.0, 0.0], [11.0, 60.0]])),
    )
    torch.testing.assert_close(
        one_degree.double(), torch.tensor([1.0, 0.5], dtype=torch.float64), atol=1e-3, rtol=0
    )


def test_lighting_prior_is_uniform_on_the_sphere_and_reparameterised():
    prior = lighting_prior((5,), dtype=torch.float64)
    assert prior.batch_shape == (5,) and prior.event_shape == (3,)
    directions = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(
        prior.log_prob(directions), torch.full((5,), -math.log(4 * math.pi), dtype=torch.float64)
    )
    assert prior.has_rsample
    samples = lighting_prior().rsample((20000,))
    torch.testing.assert_close(samples.norm(dim=-1), torch.ones(20000))
    assert samples.mean(0).abs().max() < 0.03  # uniform: no preferred direction
