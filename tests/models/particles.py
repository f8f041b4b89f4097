"""A check that a model broadcasts over vectorised particles, shared by the models' tests."""

import math

import pyro
import torch

from pyro_partial.infer import row_log_evidence


def assert_broadcasts_over_particles(model, guide, xs, latents):
    """With every latent site observed at ``latents`` (``{site: (K, B, ...)}``, one value per particle and
    row), the vectorised K-particle estimate must be the log-mean-exp of the K one-particle estimates, each
    with its own particle's values: the model's densities broadcast over the leading particle dimension
    without mixing particles or rows."""
    num_particles = len(next(iter(latents.values())))
    pyro.set_rng_seed(0)
    # the values carry the particle dimension, so the nesting (the models' one "data" plate) is given: a
    # guess would run the model outside the particle plate
    at_once = row_log_evidence(
        model,
        guide,
        xs,
        num_particles=num_particles,
        observe=latents,
        vectorize_particles=True,
        max_plate_nesting=1,
    )
    each = [
        row_log_evidence(model, guide, xs, observe={site: value[k] for site, value in latents.items()})
        for k in range(num_particles)
    ]
    expected = torch.stack(each).logsumexp(0) - math.log(num_particles)
    assert at_once.shape == (len(xs),)
    torch.testing.assert_close(at_once, expected, rtol=1e-10, atol=1e-8)
