"""The VAE of Mathieu et al.'s (2019) decomposition experiments: a chosen prior, Gaussian encoder, decoder.

Generative model and guide, for observations x of shape ``obs_shape`` and codes z of D dimensions::

    z ~ p(z),   x | z ~ p(x | decoder(z))        q(z | x) = N(μ(x), diag σ(x)²)

with p(z) one of the priors of :func:`make_prior` and p(x | z) a Bernoulli (logits), Laplace or normal
(location, fixed scale) likelihood. Trained on the decomposition objective (eq. 7,
:class:`~pyro_partial.infer.DecompositionELBO` on the site ``"z"``)

    L(x) = E_q(z|x)[log p(x | z)] − β KL(q(z | x) ‖ p(z)) − α D(q(z), p(z)).

Model and guide are the ``PyroModule`` objects :class:`DecompositionModel` and :class:`DecompositionGuide`,
the submodules ``model`` and ``guide`` of :class:`DecompositionVAE` (the experiment contract of
:mod:`pyro_partial.training.experiment`); :func:`build_vae` builds one from JSON-able settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_partial.distributions import priors
from pyro_partial.nn import MLP, ConvDecoder, ConvEncoder, GaussianHead

PRIORS = ("isotropic", "anisotropic", "student-t", "sparse", "mixture")
LIKELIHOODS = ("bernoulli", "laplace", "normal")
NETWORKS = ("mlp", "conv")


def make_prior(
    name: str,
    dim: int,
    *,
    scales: Sequence[float] | None = None,
    df: float = 5.0,
    gamma: float = 0.8,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> dist.Distribution:
    """The prior p(z) over ``dim`` latent dimensions (batch shape ``()``, event shape ``(dim,)``), with its
    parameters in ``dtype`` (default: torch's default dtype) on ``device``.

    :param name: ``"isotropic"`` N(0, I); ``"anisotropic"`` N(0, diag σ²) with ``scales`` σ (default
        ``linspace(1, 0.2, dim)``, our choice: the paper fixes the variances without stating them here);
        ``"student-t"`` with ``df`` ν per dimension; ``"sparse"`` γ N(0, 0.05²) + (1 − γ) N(0, 1) per
        dimension (``gamma`` = 0 is exactly N(0, I)); ``"mixture"`` the 4-Gaussian clustering prior (dim 2).
    """
    options = {"dtype": dtype, "device": device}
    if name == "isotropic" or (name == "sparse" and gamma == 0):
        return priors.isotropic_gaussian(dim, **options)
    if name == "anisotropic":
        dtype = dtype or torch.get_default_dtype()
        sigma = (
            torch.linspace(1.0, 0.2, dim, dtype=dtype, device=device)
            if scales is None
            else torch.tensor(list(scales), dtype=dtype, device=device)
        )
        if sigma.shape != (dim,):
            raise ValueError(
                f"scales must hold {dim} standard deviations (one per dimension), got {len(sigma)}"
            )
        return priors.anisotropic_gaussian(sigma)
    if name == "student-t":
        return priors.student_t(dim, df, **options)
    if name == "sparse":
        return priors.sparse_gaussian_mixture(dim, gamma, **options)
    if name == "mixture":
        if dim != 2:
            raise ValueError(f"the mixture prior is 2-dimensional, got a latent dimension of {dim}")
        return priors.gaussian_mixture(**options)
    raise ValueError(f"prior must be one of {PRIORS}, got {name!r}")


class DecompositionModel(PyroModule):
    """p(x, z) = p(z) p(x | z).

    :param decoder: codes ``(..., D)`` to the likelihood's parameters ``(..., *obs_shape)`` (Bernoulli
        logits, or the Laplace / normal location).
    :param prior: the name of the prior (see :func:`make_prior`).
    :param z_dim: D.
    :param obs_shape: the shape of one observation.
    :param likelihood: ``"bernoulli"``, ``"laplace"`` or ``"normal"``, with fixed scale ``obs_scale``.
    :param prior_options: ``scales``, ``df`` or ``gamma`` of :func:`make_prior`.
    """

    def __init__(
        self,
        decoder: nn.Module,
        prior: str,
        z_dim: int,
        obs_shape: Sequence[int],
        likelihood: str = "bernoulli",
        obs_scale: float = 0.1,
        prior_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not obs_scale > 0:
            raise ValueError(f"obs_scale must be positive, got {obs_scale}")
        self.prior_name, self.z_dim, self.prior_options = prior, z_dim, dict(prior_options or {})
        self.build_prior()  # checks the settings now rather than at the first step
        # p(z) per device and dtype, built once: building checks its parameters' values (a device sync)
        self._priors: dict[tuple[torch.device, torch.dtype], dist.Distribution] = {}
        self.decoder = decoder
        self.obs_shape = tuple(obs_shape)
        self.likelihood = likelihood
        self.obs_scale = obs_scale

    def build_prior(self, dtype: torch.dtype | None = None, device=None) -> dist.Distribution:
        """:func:`make_prior` with the module's settings, in ``dtype`` on ``device``."""
        return make_prior(self.prior_name, self.z_dim, **self.prior_options, dtype=dtype, device=device)

    def prior(self, like: torch.Tensor) -> dist.Distribution:
        """p(z), event shape ``(D,)``, with its parameters on the device and in the dtype of ``like`` (built
        once per device and dtype)."""
        key = (like.device, like.dtype)
        if key not in self._priors:
            self._priors[key] = self.build_prior(like.dtype, like.device)
        return self._priors[key]

    def observation_dist(self, z: torch.Tensor) -> dist.Distribution:
        """p(x | z) for codes ``(..., D)``: batch shape ``(...)``, event shape ``obs_shape``."""
        params = self.decoder(z)
        if self.likelihood == "bernoulli":  # validate_args off: grey-level images lie in [0, 1], not {0, 1}
            base = dist.Bernoulli(logits=params, validate_args=False)
        elif self.likelihood == "laplace":
            base = dist.Laplace(params, self.obs_scale)
        else:
            base = dist.Normal(params, self.obs_scale)
        return base.to_event(len(self.obs_shape))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z), ``(..., *obs_shape)``, for codes ``(..., D)``."""
        params = self.decoder(z)
        return torch.sigmoid(params) if self.likelihood == "bernoulli" else params

    def forward(self, x: torch.Tensor) -> None:
        """``x``: observations ``(B, *obs_shape)``."""
        if tuple(x.shape[1:]) != self.obs_shape:
            raise ValueError(f"x must have shape (batch, *{self.obs_shape}), got {tuple(x.shape)}")
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x))
            pyro.sample("x", self.observation_dist(z), obs=x)


class DecompositionGuide(PyroModule):
    """q(z | x) = N(μ(x), diag σ(x)²).

    :param encoder: observations ``(B, *obs_shape)`` to ``(B, 2D)``: the mean and raw scale of q(z | x)
        (a :class:`~pyro_partial.nn.GaussianHead` turns them into ``(μ, σ)``).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = GaussianHead(encoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x)'s mean and standard deviation, each ``(B, D)``, for observations ``(B, *obs_shape)``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> None:
        """Same argument as :meth:`DecompositionModel.forward`."""
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encode(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class DecompositionVAE(PyroModule):
    """:class:`DecompositionModel` as ``model`` and :class:`DecompositionGuide` as ``guide``."""

    def __init__(self, model: DecompositionModel, guide: DecompositionGuide):
        super().__init__()
        self.model, self.guide = model, guide

    @property
    def z_dim(self) -> int:
        """D, the model's latent dimension."""
        return self.model.z_dim

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """The shape of one observation."""
        return self.model.obs_shape

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the device and in the floating dtype of the module's parameters (e.g. CPU data for a
        module trained on a GPU or in float64)."""
        parameter = next(self.parameters())
        return x.to(device=parameter.device, dtype=parameter.dtype)

    @torch.no_grad()
    def encode_means(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The encoder means ``(N, D)`` of observations ``(N, *obs_shape)``, computed in chunks on the
        module's device (:meth:`as_input`) and returned on ``x``'s, in the module's dtype."""
        return torch.cat(
            [
                self.guide.encode(self.as_input(x[i : i + batch_size]))[0].to(x.device)
                for i in range(0, len(x), batch_size)
            ]
        )

    @torch.no_grad()
    def log_likelihood_bound(self, x: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        """log p(x) ≥ log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x) (Burda et al. 2016).

        K = ``num_samples``; K = 1 is the ELBO (β = 1, α = 0) and the bound tightens as K grows.

        :param x: observations ``(B, *obs_shape)`` on the module's device and in its dtype (:meth:`as_input`).
        :returns: one bound per observation, ``(B,)``.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        loc, scale = self.guide.encode(x)
        posterior = dist.Normal(loc, scale).to_event(1)
        z = posterior.sample((num_samples,))  # (K, B, D)
        log_w = (
            self.model.observation_dist(z).log_prob(x)
            + self.model.prior(x).log_prob(z)
            - posterior.log_prob(z)
        )
        return torch.logsumexp(log_w, 0) - math.log(num_samples)


def networks(
    obs_shape: Sequence[int], z_dim: int, network: str, hidden: Sequence[int], channels: Sequence[int]
) -> tuple[nn.Module, nn.Module]:
    """Encoder (``(B, *obs_shape)`` to ``2 · z_dim`` outputs) and decoder (``(..., z_dim)`` to
    ``(..., *obs_shape)``): ``network="mlp"``, ReLU layers of sizes ``hidden`` (mirrored in the decoder), or
    ``"conv"``, stride-2 convolutions of ``channels`` then the ``hidden`` layers."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    obs_shape, hidden, out = tuple(obs_shape), list(hidden), 2 * z_dim
    if network == "conv":
        encoder = ConvEncoder(obs_shape, out, hidden, channels=list(channels))
        decoder = ConvDecoder(z_dim, obs_shape, hidden[::-1], channels=list(channels)[::-1])
        return encoder, decoder
    size = math.prod(obs_shape)
    encoder = nn.Sequential(nn.Flatten(1), MLP(size, hidden, out, activation="relu"))
    decoder = nn.Sequential(MLP(z_dim, hidden[::-1], size, activation="relu"), nn.Unflatten(-1, obs_shape))
    return encoder, decoder


def build_vae(
    obs_shape: Sequence[int],
    z_dim: int,
    prior: str,
    network: str = "mlp",
    hidden: Sequence[int] = (256,),
    channels: Sequence[int] = (32, 32, 64, 64),
    likelihood: str = "bernoulli",
    obs_scale: float = 0.1,
    prior_options: dict[str, Any] | None = None,
) -> DecompositionVAE:
    """A :class:`DecompositionVAE` with the networks of :func:`networks` (the arguments are JSON values, the
    ``model_config`` of a run)."""
    encoder, decoder = networks(obs_shape, z_dim, network, hidden, channels)
    model = DecompositionModel(decoder, prior, z_dim, obs_shape, likelihood, obs_scale, prior_options)
    return DecompositionVAE(model, DecompositionGuide(encoder))
