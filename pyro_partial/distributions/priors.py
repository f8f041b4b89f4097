r"""Latent priors of Mathieu et al. (2019), "Disentangling Disentanglement in Variational Autoencoders".

Every factory returns a standard Pyro distribution over a latent vector :math:`z` of :math:`D` dimensions:
batch shape
``()`` and event shape ``(D,)`` (``event_dim`` 1), so it can be used directly as
``pyro.sample("z", prior)`` inside a data plate, which expands it to the plate's batch shape.

Learnable hyper-parameters: pass a tensor that requires grad, e.g. a constrained Pyro parameter
``pyro.param("prior_scales", torch.ones(D), constraint=constraints.positive)``, created inside the model so
that SVI optimises it. Reparameterised sampling (``rsample``) is available wherever the math allows:
the Gaussian and Student-t priors; the two mixtures draw a discrete component and have
``has_rsample == False``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

SPARSE_SPIKE_SCALE = 0.05
"""The spike's standard deviation in the sparse prior (a std, as in the paper's reference code)."""

MIXTURE_VARIANCE = 0.03
"""The variance of each component of the default 2-D clustering prior."""


def isotropic_gaussian(
    dim: int, scale: float | torch.Tensor = 1.0, *, dtype: torch.dtype | None = None, device=None
) -> dist.Independent:
    r""":math:`p(z) = \mathcal{N}(0, s^2 I_D)`: the standard VAE prior for ``scale=1``.

    :param dim: :math:`D`, the number of latent dimensions.
    :param scale: :math:`s > 0`, the common standard deviation: a float or a scalar tensor (learnable if it
        requires grad; its dtype and device are then the distribution's).
    :param dtype: the parameters' dtype when ``scale`` is a float (default: torch's default dtype).
    :param device: the parameters' device when ``scale`` is a float.
    :returns: a distribution with batch shape ``()`` and event shape ``(D,)``.
    """
    _check_dim(dim)
    scale = _positive_tensor(scale, "scale", dtype, device)
    if scale.dim() != 0:
        raise ValueError(f"scale must be a scalar, got shape {tuple(scale.shape)}; use anisotropic_gaussian")
    return dist.Normal(scale.new_zeros(dim), scale.expand(dim)).to_event(1)


def anisotropic_gaussian(scales: torch.Tensor) -> dist.Independent:
    r""":math:`p(z) = \mathcal{N}(0, \mathrm{diag}(\sigma_1^2, \dots, \sigma_D^2))`: one standard deviation
    per latent dimension.

    Breaks the rotation invariance of the isotropic prior (Mathieu et al. 2019, section 5). The scales
    may be fixed (e.g. the square roots of the leading PCA variances of the data) or learnt (a tensor
    that requires grad).

    :param scales: :math:`\sigma`, shape ``(D,)``, all positive.
    :returns: a distribution with batch shape ``()`` and event shape ``(D,)``.
    """
    scales = _positive_tensor(scales, "scales")
    if scales.dim() != 1:
        raise ValueError(f"scales must have shape (D,), got {tuple(scales.shape)}")
    return dist.Normal(torch.zeros_like(scales), scales).to_event(1)


def student_t(
    dim: int,
    df: float | torch.Tensor,
    scale: float | torch.Tensor = 1.0,
    *,
    dtype: torch.dtype | None = None,
    device=None,
) -> dist.Independent:
    r""":math:`p(z) = \prod_d \mathrm{StudentT}(z_d; \nu, 0, s)`: independent heavy-tailed dimensions
    (reparameterised).

    :param dim: :math:`D`, the number of latent dimensions.
    :param df: :math:`\nu > 0`, degrees of freedom (a float, a scalar or a ``(D,)`` tensor).
    :param scale: :math:`s > 0`, the scale of every dimension (a float, a scalar or a ``(D,)`` tensor).
    :param dtype: the dtype of parameters given as floats (default: torch's default dtype).
    :param device: the device of parameters given as floats.
    :returns: a distribution with batch shape ``()`` and event shape ``(D,)``.
    """
    _check_dim(dim)
    df = _positive_tensor(df, "df", dtype, device)
    scale = _positive_tensor(scale, "scale", dtype, device)
    for name, value in (("df", df), ("scale", scale)):
        if value.shape not in ((), (dim,)):
            raise ValueError(f"{name} must be a scalar or have shape ({dim},), got {tuple(value.shape)}")
    df, scale = torch.broadcast_tensors(df.expand(dim), scale.expand(dim))
    return dist.StudentT(df, torch.zeros_like(scale), scale).to_event(1)


def sparse_gaussian_mixture(
    dim: int,
    gamma: float = 0.8,
    spike_scale: float = SPARSE_SPIKE_SCALE,
    slab_scale: float = 1.0,
    *,
    dtype: torch.dtype | None = None,
    device=None,
) -> dist.Independent:
    r"""The sparse prior

    .. math::

        p(z) = \prod_d [\gamma\, \mathcal{N}(z_d; 0, \sigma_\text{spike}^2)
            + (1 - \gamma)\, \mathcal{N}(z_d; 0, \sigma_\text{slab}^2)].

    Each dimension is a spike at zero with probability :math:`\gamma` and a unit slab otherwise (Mathieu et
    al. 2019, section 6: :math:`\gamma = 0.8, \sigma_\text{spike} = 0.05, \sigma_\text{slab} = 1`). The
    log-density is exact (a log-sum-exp over the two components of each dimension). Sampling draws the
    component, so it is not reparameterisable: ``has_rsample`` is false, and gradients do not flow through
    prior samples.

    :param dim: :math:`D`, the number of latent dimensions.
    :param gamma: :math:`\gamma \in (0, 1)`, the spike's weight.
    :param spike_scale: :math:`\sigma_\text{spike} > 0`, the spike's standard deviation.
    :param slab_scale: :math:`\sigma_\text{slab} > 0`, the slab's standard deviation.
    :param dtype: the parameters' dtype (default: torch's default dtype).
    :param device: the parameters' device.
    :returns: a distribution with batch shape ``()`` and event shape ``(D,)``.
    """
    _check_dim(dim)
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    scales = _positive_tensor([spike_scale, slab_scale], "spike_scale and slab_scale", dtype, device)
    probs = scales.new_tensor([gamma, 1.0 - gamma])
    mixing = dist.Categorical(probs=probs.expand(dim, 2))
    components = dist.Normal(scales.new_zeros(dim, 2), scales.expand(dim, 2))
    return dist.MixtureSameFamily(mixing, components).to_event(1)


def gaussian_mixture(
    means: torch.Tensor | None = None,
    variance: float | torch.Tensor = MIXTURE_VARIANCE,
    weights: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
    device=None,
) -> dist.MixtureSameFamily:
    r"""A mixture of :math:`K` isotropic Gaussians for clustering:
    :math:`p(z) = \sum_k \pi_k\, \mathcal{N}(z; \mu_k, v_k I)`.

    The default is the 2-D prior of Mathieu et al.'s pinwheel experiment: means :math:`(0, \pm 1)`,
    :math:`(\pm 1, 0)`, variance 0.03, equal weights. Sampling draws a component (``has_rsample`` is false).

    :param means: :math:`\mu`, shape ``(K, D)``; default the four 2-D means above.
    :param variance: :math:`v > 0`, a float, a scalar, a ``(K,)`` tensor (one per component) or a ``(K, D)``
        tensor (diagonal covariances).
    :param weights: :math:`\pi`, shape ``(K,)``, non-negative with a positive sum (normalised here); default
        uniform.
    :param dtype: the dtype of the default or non-tensor means (default: torch's default dtype).
    :param device: the device of the default or non-tensor means.
    :returns: a distribution with batch shape ``()`` and event shape ``(D,)``.
    """
    if means is None:
        means = [[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]]
    if not torch.is_tensor(means):
        means = torch.tensor(means, dtype=dtype or torch.get_default_dtype(), device=device)
    if means.dim() != 2 or 0 in means.shape:
        raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(means.shape)}")
    num_components, dim = means.shape
    variance = _positive_tensor(variance, "variance", means.dtype, means.device)
    if variance.shape == (num_components,):
        variance = variance.unsqueeze(-1)
    elif variance.shape not in ((), (num_components, dim)):
        raise ValueError(
            f"variance must be a scalar, or have shape ({num_components},) or ({num_components}, {dim}), "
            f"got {tuple(variance.shape)}"
        )
    if weights is None:
        weights = means.new_full((num_components,), 1.0 / num_components)
    weights = torch.as_tensor(weights, dtype=means.dtype, device=means.device)
    if weights.shape != (num_components,) or bool((weights < 0).any()) or not float(weights.sum()) > 0:
        raise ValueError(
            f"weights must be {num_components} non-negative numbers with a positive sum, got {weights}"
        )
    scales = variance.sqrt().expand(num_components, dim)
    components = dist.Normal(means, scales).to_event(1)
    return dist.MixtureSameFamily(dist.Categorical(probs=weights / weights.sum()), components)


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")


def _positive_tensor(value, name: str, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """``value`` as a tensor (keeping a given tensor's dtype, device and graph unless ``dtype`` or ``device``
    is given), checked to be positive and finite."""
    if not torch.is_tensor(value):
        value = torch.tensor(value, dtype=dtype or torch.get_default_dtype(), device=device)
    else:
        value = value.to(dtype=dtype or value.dtype, device=device or value.device)
    if not bool(torch.isfinite(value).all()) or bool((value <= 0).any()):
        raise ValueError(f"{name} must be positive and finite, got {value.tolist()}")
    return value


__all__ = [
    "MIXTURE_VARIANCE",
    "SPARSE_SPIKE_SCALE",
    "anisotropic_gaussian",
    "gaussian_mixture",
    "isotropic_gaussian",
    "sparse_gaussian_mixture",
    "student_t",
]
