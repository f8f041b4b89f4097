"""How well a faces model infers identity and light: the identity error of q(y|x)'s most probable subject and
the angular error, in degrees, of q(l|x)'s mode (:func:`pyro_partial.metrics.angular_error`); and, as a
diagnosis of what the unlabelled faces can teach, the identity error of the model's own decoder
(:func:`generative_identity`)."""

from __future__ import annotations

import pyro.distributions as dist
import torch

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
def generative_identity(vae: FacesVAE, x: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """The subject ``(N,)`` under which the decoder best explains each face ``x`` ``(N, 1, H, W)``:
    argmax_y log p(x | y, l̂, ẑ), with the light at q(l|x)'s mode and the style at q(z|x)'s mean.

    On an unlabelled face the objective is maximised over q(y|x) by
    q*(y|x) ∝ p(y) exp E_q(l,z|x)[log p(x | y, l, z)] (the guide's q(l|x) q(z|x) do not depend on y; p(y) is
    uniform), so this plug-in of the expectation is the classifier the unlabelled term pulls q(y|x) towards.
    If it is no better than q(y|x), the unlabelled faces cannot improve the identity. Computed in chunks of
    ``batch_size`` on the model's device and dtype, returned on ``x``'s device.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    parameter = next(vae.parameters())
    identities = torch.eye(vae.num_identities, dtype=parameter.dtype, device=parameter.device)
    chunks = []
    for i in range(0, len(x), batch_size):
        xs = x[i : i + batch_size].to(parameter)
        posterior = vae.encode(xs)
        light = dist.ProjectedNormal(posterior.light_concentration).mode
        logits = vae.model.decoder(identities[:, None], light, posterior.z_loc)  # (38, B, 1, H, W)
        log_likelihood = dist.Bernoulli(logits=logits, validate_args=False).log_prob(xs).flatten(2).sum(-1)
        chunks.append(log_likelihood.argmax(0).to(x.device))
    return torch.cat(chunks)
