"""The Yale B faces model and guide (Siddharth et al. 2017, §4.2), and the supervised CNN baseline.

Generative model, every latent independent under the prior (the paper imposes structure only through the
guide and the supervision)::

    y ~ OneHotCat(1/38)               identity, partially labelled
    l ~ Uniform(S²)                   light direction, a unit 3-vector, partially labelled
                                      (:func:`pyro_partial.distributions.lighting.lighting_prior`)
    z ~ N(0, I_Z)                     everything else ("style"), never labelled
    x ~ Bernoulli(decoder(y, l, z))   the (1, H, W) face, intensities in [0, 1]

The guide factorises as q(y|x) q(l|x) q(z|x): one convolutional trunk (:class:`~pyro_partial.nn.ConvEncoder`,
:class:`FacesEncoder`) with a linear read-out of the identity logits ``(B, 38)``, the light's ProjectedNormal
concentration ``(B, 3)`` (its direction is the predicted light, its norm the confidence) and the style's mean
and scale ``(B, Z)`` each. With this guide the importance weights of the supervised term are constant, and on
a labelled row (paper, eq. 5 with the M2 identity)

    L_sup(x, y, l) = E_q(z|x)[log p(x, y, l, z) − log q(z|x)] + α (log q(y|x) + log q(l|x)).

The identity logits are soft-capped, ``max_logit · tanh(logits / max_logit)`` with ``max_logit = 12``: with a
large α, q(y|x) can grow so confident that a Gumbel-softmax sample of an unlabelled row underflows to an exact
zero in float32 (logit gaps beyond about 50 at temperature 0.5), whose log density is NaN. The cap bounds the
odds of two identities by e^24, which keeps the relaxed samples positive for temperatures of 0.5 and above.

The likelihood is the Bernoulli cross-entropy on grey levels, as in the other experiments: no scale to tune
and means bounded to [0, 1].

:class:`FacesVAE` holds the model (:class:`FacesModel`, the decoder) and the guide (:class:`FacesGuide`, the
encoder) as the ``PyroModule`` submodules ``model`` and ``guide`` of the experiment contract
(:mod:`pyro_partial.training.experiment`). :class:`FacesClassifier` is the baseline: the same encoder as a
conditional model of the labels given the image (:class:`FacesClassifierModel`) with a guide of no latent
variables (:class:`NoLatents`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from pyro_partial.distributions.lighting import LIGHT_DIM, lighting_prior
from pyro_partial.nn import ConvDecoder, ConvEncoder

NUM_IDENTITIES = 38


class Posterior(NamedTuple):
    """The guide's parameters for images ``(B, 1, H, W)``."""

    identity_logits: torch.Tensor  # (B, 38), soft-capped
    light_concentration: torch.Tensor  # (B, 3): direction = predicted light, norm = confidence
    z_loc: torch.Tensor  # (B, Z)
    z_scale: torch.Tensor  # (B, Z)


class FacesEncoder(nn.Module):
    """The guide's network: images ``(B, 1, H, W)`` to a :class:`Posterior`.

    :param image_shape: ``(1, H, W)`` of the faces, intensities in [0, 1].
    :param num_identities: number of values of y (38 subjects).
    :param z_dim: style dimension Z.
    :param hidden: hidden sizes of the fully connected layers after the convolutions.
    :param channels: channels of the stride-2 convolutions.
    :param activation: activation of the network (see :class:`~pyro_partial.nn.MLP`).
    :param min_scale: lower bound of the style's posterior scale.
    :param max_logit: the identity logits are soft-capped to ``(-max_logit, max_logit)`` (see the module
        docstring: a larger spread lets the Gumbel-softmax sample underflow to an exact zero).
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 32, 32),
        num_identities: int = NUM_IDENTITIES,
        z_dim: int = 10,
        hidden: Sequence[int] = (256,),
        channels: Sequence[int] = (32, 64, 128),
        activation: str = "relu",
        min_scale: float = 1e-3,
        max_logit: float = 12.0,
    ):
        super().__init__()
        self.image_shape = _check_sizes(image_shape, num_identities, z_dim)
        if max_logit <= 0:
            raise ValueError(f"max_logit must be positive, got {max_logit}")
        self.min_scale, self.max_logit = min_scale, max_logit
        self.split_sizes = (num_identities, LIGHT_DIM, z_dim, z_dim)
        self.network = ConvEncoder(
            self.image_shape, sum(self.split_sizes), hidden, channels=channels, activation=activation
        )

    def forward(self, xs: torch.Tensor) -> Posterior:
        """The :class:`Posterior` of faces ``xs`` ``(B, 1, H, W)``."""
        if xs.dim() != 4 or tuple(xs.shape[1:]) != self.image_shape:
            raise ValueError(
                f"xs must be images of shape (batch, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(xs.shape)}"
            )
        raw_logits, concentration, z_loc, raw_scale = self.network(xs).split(self.split_sizes, dim=-1)
        logits = self.max_logit * torch.tanh(raw_logits / self.max_logit)
        return Posterior(logits, concentration, z_loc, nn.functional.softplus(raw_scale) + self.min_scale)

    @torch.no_grad()
    def predict(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The most probable identity ``(B,)`` and the mode of q(l|x), a unit vector ``(B, 3)``."""
        posterior = self(xs)
        return posterior.identity_logits.argmax(-1), dist.ProjectedNormal(posterior.light_concentration).mode


def _check_sizes(image_shape: Sequence[int], num_identities: int, z_dim: int) -> tuple[int, int, int]:
    """``image_shape`` as a tuple ``(C, H, W)``, after checking it and the numbers of identities and
    style dimensions."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (channels, height, width), got {tuple(image_shape)}")
    if num_identities < 2 or z_dim < 1:
        raise ValueError(f"need num_identities >= 2 and z_dim >= 1, got {num_identities} and {z_dim}")
    return shape


def placeholders(
    batch: int, num_identities: int = NUM_IDENTITIES, **tensor_options
) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid label values for unlabelled rows: identity 0 ``(batch, 38)`` and a light at the camera
    ``(batch, 3)``. Pyro evaluates a partially observed site's density on every row before masking.

    :param tensor_options: ``dtype`` / ``device`` of the placeholders.
    """
    identity = torch.zeros(batch, num_identities, **tensor_options)
    identity[:, 0] = 1
    light = torch.zeros(batch, LIGHT_DIM, **tensor_options)
    light[:, 2] = 1
    return identity, light


def _complete_labels(
    xs: torch.Tensor,
    identity: torch.Tensor | None,
    light: torch.Tensor | None,
    mask: torch.Tensor | None,
    num_identities: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check the labels of a batch of faces ``xs`` ``(B, 1, H, W)`` and fill in the defaults.

    No labels is a fully unlabelled batch (:func:`placeholders`, masked out everywhere); labels without a
    mask are a fully labelled batch. Returns one-hot identities ``(B, 38)``, unit lights ``(B, 3)`` and the
    bool mask ``(B,)``.
    """
    batch = xs.shape[0]
    if (identity is None) != (light is None):
        raise ValueError("pass both identity and light (with mask for a partially labelled batch) or neither")
    if identity is None:
        identity, light = placeholders(batch, num_identities, dtype=xs.dtype, device=xs.device)
        return identity, light, torch.zeros(batch, dtype=torch.bool, device=xs.device)
    if identity.shape != (batch, num_identities):
        raise ValueError(
            f"identity must be one-hot of shape ({batch}, {num_identities}), got {tuple(identity.shape)}"
        )
    if light.shape != (batch, LIGHT_DIM):
        raise ValueError(f"light must be unit vectors of shape ({batch}, 3), got {tuple(light.shape)}")
    if mask is None:
        mask = torch.ones(batch, dtype=torch.bool, device=xs.device)
    elif mask.shape != (batch,) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape ({batch},), got {mask.dtype} {tuple(mask.shape)}"
        )
    return identity, light, mask


class FacesModel(PyroModule):
    """p(x, y, l, z) = p(y) p(l) p(z) p(x | y, l, z), y and l observed where ``mask`` is true.

    :param decoder: ``(one-hot identities (..., 38), lights (..., 3), styles (..., Z)) ->`` Bernoulli logits
        of the faces ``(..., 1, H, W)``.
    """

    def __init__(self, decoder: nn.Module, num_identities: int, z_dim: int):
        super().__init__()
        self.decoder, self.num_identities, self.z_dim = decoder, num_identities, z_dim

    def forward(
        self,
        xs: torch.Tensor,
        identity: torch.Tensor | None = None,
        light: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """``xs`` faces ``(B, 1, H, W)``, ``identity`` one-hot ``(B, 38)``, ``light`` unit vectors ``(B, 3)``,
        ``mask`` bool ``(B,)`` true on labelled rows (the experiment labels both or neither; the objective
        would also take a mask per site). Values on unlabelled rows are ignored; omitting the labels
        makes the whole batch unlabelled."""
        identity, light, mask = _complete_labels(xs, identity, light, mask, self.num_identities)
        with pyro.plate("data", xs.shape[0]):
            z = pyro.sample("z", dist.Normal(xs.new_zeros(()), 1.0).expand([self.z_dim]).to_event(1))
            prior = dist.OneHotCategorical(logits=xs.new_zeros(self.num_identities))
            y = pyro.sample("identity", prior, obs=identity, obs_mask=mask)
            light_prior = lighting_prior(dtype=xs.dtype, device=xs.device)
            lit = pyro.sample("light", light_prior, obs=light, obs_mask=mask)
            likelihood = dist.Bernoulli(logits=self.decoder(y, lit, z), validate_args=False)
            pyro.sample("x", likelihood.to_event(3), obs=xs)


class FacesGuide(PyroModule):
    """q(y|x) q(l|x) q(z|x) from a :class:`FacesEncoder`; same arguments as :class:`FacesModel`."""

    def __init__(self, encoder: FacesEncoder, num_identities: int):
        super().__init__()
        self.encoder, self.num_identities = encoder, num_identities

    def forward(
        self,
        xs: torch.Tensor,
        identity: torch.Tensor | None = None,
        light: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Sample ``identity``, ``light`` (observed where ``mask`` is true) and ``z`` for faces ``xs``;
        the arguments are :meth:`FacesModel.forward`'s."""
        identity, light, mask = _complete_labels(xs, identity, light, mask, self.num_identities)
        posterior = self.encoder(xs)
        with pyro.plate("data", xs.shape[0]):
            y_dist = dist.OneHotCategorical(logits=posterior.identity_logits)
            pyro.sample("identity", y_dist, obs=identity, obs_mask=mask)
            light_dist = dist.ProjectedNormal(posterior.light_concentration)
            pyro.sample("light", light_dist, obs=light, obs_mask=mask)
            pyro.sample("z", dist.Normal(posterior.z_loc, posterior.z_scale).to_event(1))


class FacesVAE(PyroModule):
    """Identity y, light direction l and style z generate a face (see the module docstring):
    :class:`FacesModel` as ``model`` and :class:`FacesGuide` as ``guide``.

    :param image_shape: ``(1, H, W)`` of the faces, intensities in [0, 1].
    :param num_identities: number of values of y (38 subjects).
    :param z_dim: style dimension Z.
    :param hidden: hidden sizes of the fully connected layers after the encoder's convolutions and
        before the decoder's transposed convolutions.
    :param channels: channels of the encoder's stride-2 convolutions (the decoder mirrors them).
    :param activation: activation of both networks (see :class:`~pyro_partial.nn.MLP`).
    :param min_scale: lower bound of the style's posterior scale.
    :param max_logit: the cap of the identity logits (see :class:`FacesEncoder`).
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 32, 32),
        num_identities: int = NUM_IDENTITIES,
        z_dim: int = 10,
        hidden: Sequence[int] = (256,),
        channels: Sequence[int] = (32, 64, 128),
        activation: str = "relu",
        min_scale: float = 1e-3,
        max_logit: float = 12.0,
    ):
        super().__init__()
        encoder = FacesEncoder(
            image_shape, num_identities, z_dim, hidden, channels, activation, min_scale, max_logit
        )
        self.image_shape, self.num_identities, self.z_dim = encoder.image_shape, num_identities, z_dim
        decoder = ConvDecoder(
            num_identities + LIGHT_DIM + z_dim,
            self.image_shape,
            tuple(hidden)[::-1],
            channels=tuple(channels)[::-1],
            activation=activation,
        )
        self.guide = FacesGuide(encoder, num_identities)
        self.model = FacesModel(decoder, num_identities, z_dim)

    def encode(self, xs: torch.Tensor) -> Posterior:
        """The guide's parameters for faces ``xs`` ``(B, 1, H, W)``."""
        return self.guide.encoder(xs)

    def predict(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The most probable identity ``(B,)`` and the mode of q(l|x), a unit vector ``(B, 3)``."""
        return self.guide.encoder.predict(xs)

    @torch.no_grad()
    def decode(self, identity: torch.Tensor, light: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Mean face E[x | y, l, z] in [0, 1], ``(..., 1, H, W)``, for one-hot identities ``(..., 38)``,
        light directions ``(..., 3)`` and styles ``(..., Z)`` (batch dimensions broadcast)."""
        return torch.sigmoid(self.model.decoder(identity, light, z))


class FacesClassifierModel(PyroModule):
    """The baseline's model: q(y|x) q(l|x) of a :class:`FacesEncoder` as a conditional model of the labels
    given the image, rows with ``mask`` false ignored. With :class:`NoLatents` as the guide, ``Trace_ELBO``
    minimises the supervised CNN's loss −Σ_rows [log q(y|x) + log q(l|x)] (cross-entropy plus the light's
    negative log density). Same arguments as :class:`FacesModel`, the labels required."""

    def __init__(self, encoder: FacesEncoder, num_identities: int):
        super().__init__()
        self.encoder, self.num_identities = encoder, num_identities

    def forward(
        self,
        xs: torch.Tensor,
        identity: torch.Tensor,
        light: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Observe ``identity`` ``(B, 38)`` and ``light`` ``(B, 3)`` under q(y|x) q(l|x) of faces ``xs``
        ``(B, 1, H, W)``, rows where ``mask`` ``(B,)`` is false left out."""
        identity, light, mask = _complete_labels(xs, identity, light, mask, self.num_identities)
        posterior = self.encoder(xs)
        with pyro.plate("data", xs.shape[0]), poutine.mask(mask=mask):
            pyro.sample("identity", dist.OneHotCategorical(logits=posterior.identity_logits), obs=identity)
            pyro.sample("light", dist.ProjectedNormal(posterior.light_concentration), obs=light)


class NoLatents(PyroModule):
    """The guide of a model without latent variables: it samples nothing."""

    def forward(self, *args, **kwargs) -> None:
        """Ignores its arguments (the model's)."""


class FacesClassifier(PyroModule):
    """The supervised CNN baseline: :class:`FacesClassifierModel` as ``model`` and :class:`NoLatents` as
    ``guide``. Takes the arguments of :class:`FacesVAE` and uses its encoder, style read-out included (unused
    here), so that with the same seed both start from the same encoder weights."""

    def __init__(self, **vae_arguments):
        super().__init__()
        vae = FacesVAE(**vae_arguments)
        encoder, num_identities = vae.guide.encoder, vae.num_identities
        self.image_shape, self.num_identities = vae.image_shape, num_identities
        self.model = FacesClassifierModel(encoder, num_identities)
        self.guide = NoLatents()

    def predict(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The most probable identity ``(B,)`` and the mode of q(l|x), a unit vector ``(B, 3)``."""
        return self.model.encoder.predict(xs)
