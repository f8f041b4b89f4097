"""Priors for disentangled representations (Mathieu et al. 2019) as Pyro distributions."""

from pyro_partial.distributions.priors import (
    MIXTURE_VARIANCE,
    SPARSE_SPIKE_SCALE,
    anisotropic_gaussian,
    gaussian_mixture,
    isotropic_gaussian,
    sparse_gaussian_mixture,
    student_t,
)

__all__ = [
    "MIXTURE_VARIANCE",
    "SPARSE_SPIKE_SCALE",
    "anisotropic_gaussian",
    "gaussian_mixture",
    "isotropic_gaussian",
    "sparse_gaussian_mixture",
    "student_t",
]
