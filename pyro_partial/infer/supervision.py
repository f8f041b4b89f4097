r"""The supervision rate of Siddharth et al. (2017) and the weights :math:`\gamma` and :math:`\alpha`
derived from it."""

from __future__ import annotations


def supervision_rate(gamma: float, num_labelled: int, num_unlabelled: int) -> float:
    r"""The effective fraction of supervised terms, :math:`\rho = \gamma M / (N + \gamma M)`.

    :param gamma: weight :math:`\gamma` of each supervised term in the objective
        :math:`\mathcal{L} = \sum_n \mathcal{L}_\text{unsup}(x_n)
        + \gamma \sum_m \mathcal{L}_\text{sup}(x_m, y_m)`.
    :param num_labelled: :math:`M`, the number of labelled examples.
    :param num_unlabelled: :math:`N`, the number of unlabelled examples.
    """
    _check_sizes(num_labelled, num_unlabelled)
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return gamma * num_labelled / (num_unlabelled + gamma * num_labelled)


def supervision_weights(
    rho: float | None, num_labelled: int, num_unlabelled: int, alpha_scale: float = 0.1
) -> tuple[float, float]:
    r"""Return ``(gamma, alpha)`` for a target supervision rate :math:`\rho`.

    Inverts :math:`\rho = \gamma M / (N + \gamma M)` to :math:`\gamma = \rho N / ((1 - \rho) M)` and sets
    the classifier weight :math:`\alpha = a / \rho`, :math:`a` = ``alpha_scale``, the choice Siddharth et
    al. (2017) take from Kingma et al. (2014) (``alpha_scale = 0.1``). ``rho=None`` keeps the natural rate
    :math:`M / (N + M)`, i.e. :math:`\gamma = 1`.

    A sampler that shows labelled rows at rate :math:`\rho` (:class:`pyro_partial.data.semi_supervised`
    samplers) realises the same over-representation by sampling instead of weighting; use ``gamma=1`` with it.
    """
    _check_sizes(num_labelled, num_unlabelled)
    if rho is None:
        rho = supervision_rate(1.0, num_labelled, num_unlabelled)
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (0, 1), got {rho}")
    gamma = rho * num_unlabelled / ((1.0 - rho) * num_labelled)
    return gamma, alpha_scale / rho


def _check_sizes(num_labelled: int, num_unlabelled: int) -> None:
    if num_labelled <= 0:
        raise ValueError(f"num_labelled must be positive, got {num_labelled}")
    if num_unlabelled < 0:
        raise ValueError(f"num_unlabelled must be non-negative, got {num_unlabelled}")
