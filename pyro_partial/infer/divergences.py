r"""Divergences between the aggregate posterior :math:`q(z)` and the prior :math:`p(z)` (Mathieu et al.
2019, section 4).

The aggregate posterior of a mini-batch is :math:`q(z) = \frac{1}{N} \sum_n q(z|x_n)`. Two estimators of
:math:`D(q(z), p(z))`:

- :func:`mmd_imq`: the squared maximum mean discrepancy between samples of :math:`q(z)` (one :math:`z` per
  data point) and samples of :math:`p(z)`, with an inverse multiquadratic kernel;
- :func:`inclusive_kl`: :math:`\mathrm{KL}(p(z) \,\|\, q(z))` by Monte Carlo over prior samples, with
  :math:`q(z)` evaluated as the mixture of the batch's encoders.

Both accept optional non-negative row weights (e.g. a float mask: weight 0 drops a row), and leading
batch dimensions, over which independent estimates are returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution

MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
r"""The kernel bandwidths :math:`s` of the paper's reference setting; the kernel constant is
:math:`C = 2s`."""


def imq_kernel(a: torch.Tensor, b: torch.Tensor, scales: Sequence[float] = MMD_SCALES, per_dim: bool = True):
    r"""The inverse multiquadratic kernel matrix, summed over bandwidths.

    ``per_dim=True`` (the paper's choice, and its reference code's):

    .. math::

        k(a, b) = \sum_s \sum_d \frac{C_s}{C_s + (a_d - b_d)^2}, \qquad C_s = 2s.

    ``per_dim=False``: one kernel on whole vectors,

    .. math::

        k(a, b) = \sum_s \frac{C_s}{C_s + \|a - b\|^2}, \qquad C_s = 2Ds,

    the convention of Tolstikhin et al.'s WAE (:math:`C` proportional to :math:`\mathbb{E}\|a - b\|^2 = 2D`
    for unit variance codes), which keeps the same ratio of :math:`C` to the typical squared distance as
    the per-dimension kernel.

    The per-dimension kernel is computed in blocks of rows and dimensions, with an analytic gradient
    :math:`\partial k / \partial a_d = -2 (a_d - b_d) \sum_s C_s / (C_s + (a_d - b_d)^2)^2` recomputed
    block by block in the backward pass, so that no ``(..., N, M, D)`` tensor is built or kept for autograd
    (first derivatives only).

    :param a: shape ``(..., N, D)``.
    :param b: shape ``(..., M, D)``.
    :returns: shape ``(..., N, M)``.
    """
    scales = _check_scales(scales)
    if per_dim:
        batch_shape = (a[..., :0, :0] + b[..., :0, :0]).shape[:-2]  # cheap: no torch._refs import
        a = a.expand(*batch_shape, *a.shape[-2:])
        b = b.expand(*batch_shape, *b.shape[-2:])
        return _PerDimIMQKernel.apply(a, b, tuple(2.0 * s for s in scales))
    sq = (a.unsqueeze(-2) - b.unsqueeze(-3)).square().sum(-1)  # (..., N, M)
    return sum(c / (c + sq) for c in (2.0 * a.shape[-1] * s for s in scales))


_BLOCK_ELEMENTS = 2**16
"""Number of (row, row, dimension) triples per block of the per-dimension kernel (keeps blocks in cache)."""


def _blocks(a: torch.Tensor, b: torch.Tensor):
    """Row and dimension slices of ``a`` (..., N, D) such that each block against ``b`` (..., M, D) has
    about ``_BLOCK_ELEMENTS`` entries."""
    *batch, n, dim = a.shape
    per_row = max(1, b.shape[-2] * math.prod(batch))
    dims = max(1, min(dim, _BLOCK_ELEMENTS // max(1, per_row * n)))
    rows = max(1, min(n, _BLOCK_ELEMENTS // (per_row * dims)))
    for d in range(0, dim, dims):
        for i in range(0, n, rows):
            yield slice(i, i + rows), slice(d, d + dims)


def _imq_sums(
    a: torch.Tensor, b: torch.Tensor, constants: tuple[float, ...], slope: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """For a block a (..., n, d) and b (..., M, d): the differences δ = a_i − b_j (..., n, M, d), and
    either Σ_s C_s / (C_s + δ²) (``slope=False``) or Σ_s C_s / (C_s + δ²)² (``slope=True``)."""
    diff = a.unsqueeze(-2) - b.unsqueeze(-3)
    sq = diff.square()
    total, term = torch.zeros_like(sq), torch.empty_like(sq)
    for c in constants:
        torch.add(sq, c, out=term).reciprocal_()
        if slope:
            total.addcmul_(term, term, value=c)
        else:
            total.add_(term, alpha=c)
    return diff, total


class _PerDimIMQKernel(torch.autograd.Function):
    """k_ij = Σ_d Σ_s C_s / (C_s + (a_id − b_jd)²) for a (..., N, D) and b (..., M, D) of equal batch
    shape; see :func:`imq_kernel`."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, constants: tuple[float, ...]) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        ctx.constants = constants
        kernel = a.new_zeros(*a.shape[:-1], b.shape[-2])
        for rows, dims in _blocks(a, b):
            _, total = _imq_sums(a[..., rows, dims], b[..., dims], constants, slope=False)
            kernel[..., rows, :] += total.sum(-1)
        return kernel

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        grad_a = a.new_zeros(a.shape) if ctx.needs_input_grad[0] else None
        grad_b = b.new_zeros(b.shape) if ctx.needs_input_grad[1] else None
        for rows, dims in _blocks(a, b):
            diff, slope = _imq_sums(a[..., rows, dims], b[..., dims], ctx.constants, slope=True)
            # ∂k_ij/∂a_id = −2 δ_ijd slope_ijd = −∂k_ij/∂b_jd, weighted by the incoming gradient G_ij
            weighted = diff.mul_(slope).mul_(grad[..., rows, :, None])
            if grad_a is not None:
                grad_a[..., rows, dims] = -2.0 * weighted.sum(-2)
            if grad_b is not None:
                grad_b[..., dims] += 2.0 * weighted.sum(-3)
        return grad_a, grad_b, None


def mmd_imq(
    z_q: torch.Tensor,
    z_p: torch.Tensor,
    scales: Sequence[float] = MMD_SCALES,
    per_dim: bool = True,
    q_weights: torch.Tensor | None = None,
    p_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Unbiased estimate of :math:`\mathrm{MMD}^2(q, p)` with the :func:`imq_kernel`.

    .. math::

        \mathrm{MMD}^2 = \mathbb{E}\, k(z, z') + \mathbb{E}\, k(\zeta, \zeta') - 2\, \mathbb{E}\, k(z, \zeta)

    for :math:`z, z' \sim q` and :math:`\zeta, \zeta' \sim p` independent. The within-sample expectations
    average over distinct pairs only (:math:`i \ne j`, a U-statistic: unbiased), the cross term over all
    :math:`NM` pairs. With row weights :math:`w` (for ``z_q``) and :math:`v` (for ``z_p``) every average is
    weighted: :math:`\sum_{i \ne j} w_i w_j k_{ij} / \sum_{i \ne j} w_i w_j`, and
    :math:`\sum_{ij} w_i v_j k_{ij} / (\sum_i w_i \sum_j v_j)`; 0/1 weights give exactly the estimate on the
    selected rows.

    :param z_q: samples of :math:`q(z)` (e.g. one per data point of the batch), shape ``(..., N, D)``,
        :math:`N \ge 2`.
    :param z_p: samples of :math:`p(z)`, shape ``(..., M, D)``, :math:`M \ge 2`; leading dims broadcast with
        ``z_q``'s.
    :param scales: the bandwidths :math:`s` (:math:`C = 2s` per dimension, see :func:`imq_kernel`).
    :param per_dim: sum one-dimensional kernels over latent dimensions (paper) or use one kernel on whole
        vectors.
    :param q_weights: optional non-negative weights of z_q's rows, shape broadcastable to ``(..., N)``.
    :param p_weights: optional non-negative weights of z_p's rows, shape broadcastable to ``(..., M)``.
    :returns: the estimate, shape ``(...)`` (it can be slightly negative, being unbiased).
    """
    _check_samples(z_q, "z_q")
    _check_samples(z_p, "z_p")
    if z_q.shape[-1] != z_p.shape[-1]:
        raise ValueError(
            f"z_q and z_p must have the same latent dimension, got {z_q.shape[-1]} and {z_p.shape[-1]}"
        )
    w = _weights(q_weights, z_q, "q_weights")
    v = _weights(p_weights, z_p, "p_weights")
    within_q = _within_mean(imq_kernel(z_q, z_q, scales, per_dim), w, "q_weights")
    within_p = _within_mean(imq_kernel(z_p, z_p, scales, per_dim), v, "p_weights")
    cross = torch.einsum("...i,...ij,...j->...", w, imq_kernel(z_q, z_p, scales, per_dim), v)
    cross = cross / (w.sum(-1) * v.sum(-1))
    return within_q + within_p - 2.0 * cross


def inclusive_kl(
    prior: Distribution,
    posterior: Distribution,
    num_samples: int = 1,
    weights: torch.Tensor | None = None,
    dim: int = -1,
) -> torch.Tensor:
    r"""Monte Carlo estimate of the inclusive :math:`\mathrm{KL}(p(z) \,\|\, q(z))` to the batch's
    aggregate posterior.

    ``posterior`` holds one encoder :math:`q(z|x_n)` per data point along batch dimension ``dim``
    (:math:`N` of them); the aggregate posterior is :math:`q(z) = \sum_n w_n q(z|x_n) / \sum_n w_n`.
    ``prior`` is either one distribution :math:`p(z)` (batch shape ``()``), or one per data point along the
    same dimension (a conditional prior :math:`p(z|y_n)`), in which case :math:`p(z)` is their
    :math:`w`-weighted mixture in the same way. The estimate is

    .. math::

        \mathrm{KL} \approx \frac{\sum_j w_j [\log p(\zeta_j) - \log q(\zeta_j)]}{\sum_j w_j}, \qquad
        \log q(\zeta) = \operatorname{logsumexp}_n (\log w_n + \log q(\zeta|x_n)) - \log \sum_n w_n,

    over :math:`\zeta_j` drawn from the prior of each row, :math:`S` = ``num_samples`` per row
    (reparameterised when the prior allows), so that it is consistent as :math:`NS` grows. It costs
    :math:`O(N^2 S)` density evaluations.

    :param prior: :math:`p(z)`, event shape ``(D,)`` like ``posterior``, batch shape broadcastable to the
        posterior's.
    :param posterior: the batch of encoders, batch shape ``(..., N, ...)`` with N at ``dim``.
    :param num_samples: prior samples per row.
    :param weights: optional non-negative row weights, shape broadcastable to the posterior's batch shape.
    :param dim: the (negative) batch dimension that indexes the data points.
    :returns: the estimate, shape of the posterior's batch shape without ``dim``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    batch_shape = posterior.batch_shape
    if not -len(batch_shape) <= dim < 0:
        raise ValueError(
            f"dim must be a negative batch dimension of the posterior (batch shape {tuple(batch_shape)}), "
            f"got {dim}"
        )
    if prior.event_shape != posterior.event_shape:
        raise ValueError(
            f"prior and posterior must have the same event shape, got {tuple(prior.event_shape)} and "
            f"{tuple(posterior.event_shape)}"
        )
    if prior.batch_shape != batch_shape:
        prior = prior.expand(batch_shape)
    event_dim = len(posterior.event_shape)
    value_dim = dim - event_dim
    zeta = prior.rsample((num_samples,)) if prior.has_rsample else prior.sample((num_samples,))
    # ζ_j for j = (sample, row), stacked along a new leading dim; the row dim is kept with size 1 so that
    # each ζ_j meets every encoder of its own replicate: (S·N, ..., 1, ..., *event)
    zeta = zeta.movedim(value_dim, 1).flatten(0, 1).unsqueeze(value_dim)
    w = torch.ones(batch_shape, dtype=zeta.dtype, device=zeta.device)
    if weights is not None:
        w = _checked_weights(weights, batch_shape, "weights").to(zeta)
    log_w = w.log()
    normaliser = torch.logsumexp(log_w, dim)
    log_p = torch.logsumexp(prior.log_prob(zeta) + log_w, dim) - normaliser  # (S·N, ...)
    log_q = torch.logsumexp(posterior.log_prob(zeta) + log_w, dim) - normaliser
    w_j = w.movedim(dim, 0).expand(num_samples, *w.movedim(dim, 0).shape).flatten(0, 1)  # (S·N, ...)
    terms = torch.where(w_j > 0, w_j * (log_p - log_q), torch.zeros_like(log_p))  # 0 · ∞ = 0 on dropped rows
    return terms.sum(0) / w_j.sum(0)


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    scales = tuple(float(s) for s in scales)
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales}")
    return scales


def _check_samples(z: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(z) or z.dim() < 2 or z.shape[-2] < 2 or z.shape[-1] < 1:
        shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"{name} must be a tensor of shape (..., N, D) with N >= 2 and D >= 1, got {shape}")


def _weights(weights: torch.Tensor | None, z: torch.Tensor, name: str) -> torch.Tensor:
    """Row weights broadcast to ``z.shape[:-1]``."""
    if weights is None:
        return torch.ones(z.shape[:-1], dtype=z.dtype, device=z.device)
    return _checked_weights(weights, z.shape[:-1], name).to(z)


def _checked_weights(weights: torch.Tensor, shape: torch.Size, name: str) -> torch.Tensor:
    weights = torch.as_tensor(weights)
    try:
        weights = weights.expand(shape)
    except RuntimeError:
        raise ValueError(
            f"{name} must broadcast to shape {tuple(shape)}, got {tuple(weights.shape)}"
        ) from None
    if weights.dtype == torch.bool:
        weights = weights.to(torch.get_default_dtype())
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError(f"{name} must be non-negative and finite")
    return weights


def _within_mean(kernel: torch.Tensor, w: torch.Tensor, name: str) -> torch.Tensor:
    """Σ_{i≠j} w_i w_j k_ij / Σ_{i≠j} w_i w_j for a square kernel matrix ``(..., N, N)``."""
    diagonal = torch.diagonal(kernel, dim1=-2, dim2=-1)
    total = torch.einsum("...i,...ij,...j->...", w, kernel, w) - (w.square() * diagonal).sum(-1)
    pairs = w.sum(-1).square() - w.square().sum(-1)
    if not bool((pairs > 0).all()):
        raise ValueError(f"{name}: the unbiased estimate needs at least two rows with positive weight")
    return total / pairs


__all__ = ["MMD_SCALES", "imq_kernel", "inclusive_kl", "mmd_imq"]
