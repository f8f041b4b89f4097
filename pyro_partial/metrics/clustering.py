r"""How well a mixture prior's components cluster a set of codes (Mathieu et al. 2019, section 6, pinwheel).

Each code :math:`z_n` ``(D,)`` is assigned to the component most responsible for it,
:math:`\operatorname{argmax}_k \pi_k p_k(z_n)` (:func:`mixture_assignments`), and the assignment is scored
against the true labels:

- the adjusted Rand index (Hubert & Arabie 1985), the Rand index corrected for chance: with
  :math:`n_{ij}` the contingency counts of labels :math:`i` and clusters :math:`j`, :math:`a_i` and
  :math:`b_j` its row and column sums and :math:`N` the number of codes,

  .. math::

      \mathrm{ARI} = \frac{\sum_{ij} \binom{n_{ij}}{2} - E}
          {\frac{1}{2} \big(\sum_i \binom{a_i}{2} + \sum_j \binom{b_j}{2}\big) - E}, \qquad
      E = \frac{\sum_i \binom{a_i}{2} \sum_j \binom{b_j}{2}}{\binom{N}{2}}:

  1 for the same partition (up to renaming), about 0 by chance;
- purity, :math:`\frac{1}{N} \sum_j \max_i n_{ij}`: the fraction of codes whose cluster's majority label
  is their own.
"""

from __future__ import annotations

import numpy as np
import pyro.distributions as dist
import torch
from sklearn.metrics import adjusted_rand_score


def mixture_assignments(prior: dist.MixtureSameFamily, z: torch.Tensor) -> torch.Tensor:
    r"""The most responsible component :math:`\operatorname{argmax}_k [\log \pi_k + \log p_k(z_n)]` of each
    code: int64 ``(N,)``.

    :param prior: a mixture with batch shape ``()`` and event shape ``(D,)`` (e.g.
        :func:`~pyro_partial.distributions.priors.gaussian_mixture`).
    :param z: codes ``(N, D)``.
    """
    if not isinstance(prior, dist.MixtureSameFamily):
        raise TypeError(
            f"cluster scores need a mixture prior (MixtureSameFamily), got {type(prior).__name__}"
        )
    if prior.batch_shape != () or z.dim() != 2 or z.shape[1:] != prior.event_shape:
        raise ValueError(
            f"z must have shape (N, *{tuple(prior.event_shape)}) for a mixture of batch shape () and event "
            f"shape {tuple(prior.event_shape)}; got z of shape {tuple(z.shape)} and a mixture of batch shape "
            f"{tuple(prior.batch_shape)}"
        )
    log_weights = prior.mixture_distribution.logits.log_softmax(-1)
    return (log_weights + prior.component_distribution.log_prob(z.unsqueeze(-2))).argmax(-1)


def purity(labels: torch.Tensor, assigned: torch.Tensor) -> float:
    r""":math:`\frac{1}{N} \sum_j \max_i n_{ij}` for true ``labels`` and cluster indices ``assigned``, both
    int ``(N,)``."""
    truth, clusters = _check_partitions(labels, assigned)
    majority = sum(np.bincount(truth[clusters == k]).max() for k in np.unique(clusters))
    return float(majority / len(truth))


def adjusted_rand_index(labels: torch.Tensor, assigned: torch.Tensor) -> float:
    """The adjusted Rand index (see the module docstring) of two partitions, int ``(N,)`` each."""
    truth, clusters = _check_partitions(labels, assigned)
    return float(adjusted_rand_score(truth, clusters))


def cluster_scores(prior: dist.MixtureSameFamily, z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``{"adjusted_rand_index", "purity"}`` of the :func:`mixture_assignments` of codes ``z`` ``(N, D)``
    against ``labels`` ``(N,)``."""
    assigned = mixture_assignments(prior, z)
    return {
        "adjusted_rand_index": adjusted_rand_index(labels, assigned),
        "purity": purity(labels, assigned),
    }


def _check_partitions(labels: torch.Tensor, assigned: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    for name, value in (("labels", labels), ("assigned", assigned)):
        if value.dim() != 1 or len(value) == 0 or value.dtype.is_floating_point or bool((value < 0).any()):
            raise ValueError(
                f"{name} must be a non-empty vector (N,) of non-negative integers, got {value.dtype} "
                f"of shape {tuple(value.shape)}"
            )
    if labels.shape != assigned.shape:
        raise ValueError(
            f"labels and assigned must have the same shape (N,), got {tuple(labels.shape)} and "
            f"{tuple(assigned.shape)}"
        )
    return labels.cpu().numpy(), assigned.cpu().numpy()


__all__ = ["adjusted_rand_index", "cluster_scores", "mixture_assignments", "purity"]
