r"""Models of random length: a loop over a random number of steps, as ordinary Pyro code.

A generative process with a random number of parts (digits on a canvas, objects in a scene) samples a
count :math:`n` and then, for :math:`k = 0, 1, \dots`, the latent variables of step :math:`k` *only while*
:math:`k < n`::

    n = pyro.sample("count", dist.Categorical(prior), obs=counts, obs_mask=labelled)
    for k, present in random_steps(n):
        z_k = pyro.sample(f"z_{k}", ...)          # a site of step k, masked to the rows with k < n

:func:`random_steps` runs the loop to the largest count in ``n`` and wraps each step in
``poutine.mask(mask=k < n)``, so every row's log-density holds exactly the steps it has,

.. math::

    \log p(n, z_{<n}) = \log p(n) + \sum_{k < n} \log p(z_k | n, z_{<k}).

The loop's length is data-dependent: with labels (``n`` observed or clamped) it is the largest label;
when the guide enumerates ``n`` in parallel, ``n`` is a tensor holding every value :math:`0, \dots, K`
along an enumeration dimension, so the loop runs to :math:`K` and the masks (which then carry that
enumeration dimension) select each branch's steps. Step :math:`k`'s draws are shared by every branch
:math:`n > k`, so networks run once per step, not once per branch.
:class:`~pyro_partial.infer.SemiSupervisedELBO` accepts partially observed sites inside such masks (the
per-step labels of a labelled row are used on its present steps only; values at absent steps may be any
valid placeholder).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from pyro import poutine


def random_steps(count: torch.Tensor, max_steps: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    r"""Yield ``(k, present)`` for :math:`k = 0, \dots, \max(\text{count}) - 1`, the body of each step
    running inside ``poutine.mask(mask=present)`` with ``present = count > k``.

    :param count: the number of steps of each row, an integer tensor of any shape (a batch of rows,
        possibly with enumeration or sample dimensions on the left).
    :param max_steps: the largest count the model allows; a count above it is an error naming it.
    :returns: an iterator of the step index and the bool mask ``present``, shaped like ``count``.
    """
    if count.is_floating_point() or count.dtype == torch.bool:
        raise ValueError(f"count must be an integer tensor, got dtype {count.dtype}")
    if count.numel() == 0:
        return
    largest = int(count.max())
    if int(count.min()) < 0 or (max_steps is not None and largest > max_steps):
        bound = "" if max_steps is None else f" and at most max_steps={max_steps}"
        raise ValueError(f"count must be non-negative{bound}, got values in [{int(count.min())}, {largest}]")
    for k in range(largest):
        present = count > k
        with poutine.mask(mask=present):
            yield k, present
