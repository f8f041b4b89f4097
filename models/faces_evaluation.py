"""How well a faces model infers identity and light: the identity error of q(y|x)'s most probable subject and
the angular error, in degrees, of q(l|x)'s mode (:func:`pyro_partial.metrics.angular_error`); and, as a
diagnosis of what the unlabelled faces can teach, the identity error of the model's own posterior
(:func:`generative_identity`)."""

from __future__ import annotations

import torch

from pyro_partial.infer import most_probable_class
from pyro_partial.metrics import angular_error, classification_error
from pyro_partial_models.faces_vae import FacesVAE


@torch.no_grad()
def predict(
    predictor: torch.nn.Module, x: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted identities ``(N,)`` and unit lights ``(N, 3)`` for faces ``x`` ``(N, 1, H, W)``, computed in
    chunks of ``batch_size`` on the predictor's device (in its dtype) and returned on ``x``'s.

    :param predictor: a module with ``predict(xs) -> (identities (B,), unit lights (B, 3))``, e.g.
        :class:`~pyro_partial_models.faces_vae.FacesVAE` or
        :class:`~pyro_partial_models.faces_vae.FacesClassifier`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    parameter = next(predictor.parameters())  # the faces go to its device and dtype
    chunks = [predictor.predict(x[i : i + batch_size].to(parameter)) for i in range(0, len(x), batch_size)]
    return (
        torch.cat([identity.to(x.device) for identity, _ in chunks]),
        torch.cat([light.to(x.device) for _, light in chunks]),
    )


def evaluate(
    predictor: torch.nn.Module,
    x: torch.Tensor,
    subject: torch.Tensor,
    light: torch.Tensor,
    batch_size: int = 500,
) -> dict[str, float]:
    """The identity error (a fraction) and the light's angular error in degrees, mean and median, of the
    predictions for faces ``x`` ``(N, 1, H, W)`` with subjects ``subject`` ``(N,)`` and unit lights ``light``
    ``(N, 3)``: ``{"identity_error", "light_error_deg", "light_error_median_deg"}``."""
    if len(x) == 0 or subject.shape != (len(x),) or light.shape != (len(x), 3):
        raise ValueError(
            f"need N > 0 faces x (N, 1, H, W), subject (N,) and light (N, 3); got x {tuple(x.shape)}, "
            f"subject {tuple(subject.shape)} and light {tuple(light.shape)}"
        )
    identity, predicted_light = predict(predictor, x, batch_size)
    angles = angular_error(predicted_light.double(), light.double())
    return {
        "identity_error": classification_error(identity, subject),
        "light_error_deg": angles.mean().item(),
        "light_error_median_deg": angles.median().item(),
    }


@torch.no_grad()
def generative_identity(
    vae: FacesVAE,
    x: torch.Tensor,
    num_particles: int = 20,
    batch_size: int = 500,
    vectorize_particles: bool = True,
) -> torch.Tensor:
    """The subject ``(N,)`` the model itself infers for each face ``x`` ``(N, 1, H, W)``: argmax_y of its
    posterior p(y|x) ∝ p(y) ∫ p(x | y, l, z) p(l) p(z), each evidence estimated with ``num_particles``
    draws of q(l|x) q(z|x), drawn at once unless ``vectorize_particles`` is false
    (:func:`pyro_partial.infer.log_evidence.class_log_posterior`).

    On an unlabelled face the objective is maximised over q(y|x) by
    q*(y|x) ∝ p(y) exp E_q(l,z|x)[log p(x | y, l, z)] (the guide's q(l|x) q(z|x) do not depend on y): this
    posterior with each identity's evidence replaced by its bound, the classifier the unlabelled term pulls
    q(y|x) towards. If the model's posterior is no better than q(y|x), the unlabelled faces cannot improve
    the identity. Computed in chunks of ``batch_size`` on the model's device and dtype, returned on ``x``'s
    device.
    """
    parameter = next(vae.parameters())
    identities = torch.eye(vae.num_identities, dtype=parameter.dtype, device=parameter.device)
    index = most_probable_class(
        vae.model,
        vae.guide,
        "identity",
        identities,
        x.to(parameter),
        num_particles,
        batch_size,
        vectorize_particles=vectorize_particles,
    )
    return index.to(x.device)
