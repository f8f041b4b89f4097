r"""Light directions as unit 3-vectors, and a prior over them (Yale B lighting, Siddharth et al. 2017, §4.2).

Yale B names each image's point light by an azimuth :math:`a` and an elevation :math:`e` in degrees. We
represent the direction as the unit vector

.. math::

    l(a, e) = (\cos e \sin a, \; \sin e, \; \cos e \cos a)

in the face's axes: x to the subject's right (the image's left), y up, z from the face towards the camera.
``(0, 0)`` is a light at the camera, positive azimuth moves it to the subject's right (Yale B's positive
azimuths light the left half of the image) and positive elevation up; :math:`e = \pm 90`
points straight up or down, where the azimuth is undefined. These are the axes of
:func:`pyro_partial.data.yaleb.light_directions` and :func:`pyro_partial.metrics.direction_from_angles`
(the latter is re-exported here as the forward map).

The vector avoids the angles' wrap-around and the singularity at the poles, and the angular error
between two directions is simply :math:`\arccos(l \cdot l')`. The prior :func:`lighting_prior` is the uniform
distribution on the sphere, a :class:`~pyro.distributions.ProjectedNormal` with zero concentration: it
has a reparameterised sampler and an exact ``log_prob`` for observed unit vectors (the two things
:class:`~pyro_partial.infer.SemiSupervisedELBO` needs of a partially observed continuous site), and it
is independent of every other latent, as in the paper.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_partial.metrics.supervised import direction_from_angles

__all__ = ["LIGHT_DIM", "angles_from_direction", "direction_from_angles", "lighting_prior"]

LIGHT_DIM = 3


def angles_from_direction(direction: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`direction_from_angles`: ``(azimuth, elevation)`` in degrees.

    :param direction: light directions ``(..., 3)``, unit or not (only the direction matters), non-zero.
    :returns: angles ``(..., 2)``, azimuth in ``(-180, 180]`` and elevation in ``[-90, 90]``. At the
        poles the azimuth is undefined and returned as 0; a direction counts as a pole when its
        horizontal part ``hypot(x, z)`` is below the dtype's rounding of ``|y|`` (``cos 90°`` is not 0 in
        floating point, so ``direction_from_angles`` of a pole lands there).
    """
    if direction.shape[-1:] != (LIGHT_DIM,):
        raise ValueError(f"direction must have shape (..., 3), got {tuple(direction.shape)}")
    x, y, z = direction.unbind(-1)
    horizontal = torch.hypot(x, z)
    if bool((horizontal == 0).logical_and(y == 0).any()):
        raise ValueError("direction holds a zero vector, which has no angles")
    at_pole = horizontal <= torch.finfo(direction.dtype).eps * y.abs()
    azimuth = torch.where(at_pole, torch.zeros_like(x), torch.atan2(x, z))
    elevation = torch.atan2(y, horizontal)
    return torch.rad2deg(torch.stack([azimuth, elevation], dim=-1))


def lighting_prior(batch_shape: torch.Size | tuple[int, ...] = (), **tensor_options) -> dist.ProjectedNormal:
    """The uniform distribution on the unit sphere, batch shape ``batch_shape``, event shape ``(3,)``.

    :param tensor_options: ``dtype`` / ``device`` of the distribution's parameters.
    """
    return dist.ProjectedNormal(torch.zeros(LIGHT_DIM, **tensor_options)).expand(torch.Size(batch_shape))
