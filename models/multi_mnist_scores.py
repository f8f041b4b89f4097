"""The Multi-MNIST test scores (Siddharth et al. 2017, §4.3) of a
:class:`~pyro_partial_models.multi_digit.MultiDigitVAE` on canvases with their ground truth
(:class:`~pyro_partial.data.multi_mnist.MultiMNIST`):

- ``count_accuracy``: the most probable count under q(n | x) is right (chance: 1 / (K + 1));
- ``digit_accuracy``: the fraction of the true digits, read left to right by the first n steps of the
  guide (n the true count), classified right by the sub-model's q(y | glimpse);
- ``canvas_accuracy``: the count and the multiset of the digits read with the predicted count are right;
- ``position_error_px``: the mean distance in pixels between the true and the inferred digit centres;
- ``matched_digit_accuracy``, ``matched_position_error_px``: the same with each true digit compared with
  the inferred step whose centre is closest (the assignment of the first n steps to the n digits with the
  least summed distance, :func:`match_steps`), so a reading in another order than left to right is not
  counted wrong;
- ``true_window_digit_accuracy`` (the oracle of localisation): the fraction of the true digits classified
  right by q(y | glimpse) from glimpses read through the *true* windows (true count, centres and scales),
  the digit accuracy that perfect windows would give the sub-model as trained.

:data:`READING_SCORES` are those that depend on the windows read (all but the count and the oracle):
:func:`reading_scores` of a refined reading (:mod:`pyro_partial_models.multi_mnist_refine`) gives them
again after refinement.
"""

from __future__ import annotations

import itertools

import torch

from pyro_partial.data.multi_mnist import MultiMNIST
from pyro_partial_models.multi_digit import NUM_CLASSES, MultiDigitVAE, Reading, coords_from_where

SCORES = (
    "count_accuracy",
    "digit_accuracy",
    "canvas_accuracy",
    "position_error_px",
    "matched_digit_accuracy",
    "matched_position_error_px",
    "true_window_digit_accuracy",
)
"""The scores of the module docstring, in the order :func:`evaluate` returns them."""

READING_SCORES = (
    "digit_accuracy",
    "canvas_accuracy",
    "position_error_px",
    "matched_digit_accuracy",
    "matched_position_error_px",
)
"""The scores that depend on the windows of a reading (those :func:`reading_scores` returns)."""


def match_steps(inferred: torch.Tensor, true: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Which inferred step reads which true digit: ``(N, K)`` step indices, for each canvas the assignment
    of its first ``counts[n]`` inferred steps to its ``counts[n]`` true digits that minimises the summed
    distance between their centres ``inferred``, ``true`` ``(N, K, 2)`` (ties: the identity first);
    slots ``k >= counts[n]`` map to themselves."""
    steps = inferred.shape[1]
    orders = torch.tensor(list(itertools.permutations(range(steps))), device=counts.device)  # (P, K)
    slots = torch.arange(steps, device=counts.device)
    present = slots < counts[:, None]  # (N, K)
    distance = (inferred[:, orders] - true[:, None]).norm(dim=-1)  # (N, P, K)
    cost = (distance * present[:, None]).sum(-1)
    keeps_absent = ((orders[None] == slots) | present[:, None]).all(-1)
    return orders[cost.masked_fill(~keeps_absent, float("inf")).argmin(-1)]


@torch.no_grad()
def read_all(
    vae: MultiDigitVAE,
    canvases: torch.Tensor,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> Reading:
    """:meth:`MultiDigitVAE.read_canvases` of ``canvases`` ``(N, S, S)`` in chunks of ``batch_size``, each
    computed on the module's device (the ``"paper"`` guide's draws from ``generator``, on that device); the
    reading is returned on ``canvases``'s device."""
    device = next(vae.parameters()).device
    parts = [
        vae.read_canvases(canvases[i : i + batch_size].to(device), generator)
        for i in range(0, len(canvases), batch_size)
    ]
    return Reading(*(torch.cat(part).to(canvases.device) for part in zip(*parts, strict=True)))


@torch.no_grad()
def read_true_windows(
    vae: MultiDigitVAE,
    data: MultiMNIST,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The digit probabilities ``(N, K, 10)`` of the sub-model reading ``data``'s canvases through their
    true windows (:meth:`~pyro_partial_models.multi_digit.MultiDigitGuide.read_windows`; padding slots read
    the prior mean window), in chunks of ``batch_size`` on the module's device (draws as in
    :func:`read_all`)."""
    device = next(vae.parameters()).device
    coords = coords_from_where(data.wheres, vae.guide.where_loc.tolist())
    parts = [
        vae.guide.read_windows(
            data.canvases[i : i + batch_size].to(device), coords[i : i + batch_size].to(device), generator
        )[0]
        for i in range(0, len(data), batch_size)
    ]
    return torch.cat(parts).to(data.canvases.device)


def evaluation_generator(vae: MultiDigitVAE, seed: int = 0) -> torch.Generator:
    """A random generator on ``vae``'s device seeded with ``seed``, for the draws of an evaluation."""
    return torch.Generator(device=next(vae.parameters()).device).manual_seed(seed)


def check_layout(vae: MultiDigitVAE, data: MultiMNIST) -> None:
    """Raise a :class:`ValueError` unless ``data``'s canvases have the model's size and largest count."""
    if data.max_digits != vae.max_digits or data.canvas_size != vae.canvas_size:
        raise ValueError(
            f"data: canvases of {data.canvas_size} pixels with at most {data.max_digits} digits, expected "
            f"{vae.canvas_size} pixels and {vae.max_digits} digits (the model's)"
        )


def reading_scores(reading: Reading, data: MultiMNIST) -> dict[str, float]:
    """The :data:`READING_SCORES` of a reading of ``data``'s canvases (``reading.count_probs`` gives the
    predicted count of ``canvas_accuracy``)."""
    counts, digits = data.counts, data.digits
    slots = torch.arange(data.max_digits, device=counts.device)
    predicted_count = reading.count_probs.argmax(-1)
    predicted = reading.digit_probs.argmax(-1)  # (N, K)
    true_slots = slots < counts[:, None]
    read_slots = slots < predicted_count[:, None]
    # multisets of digits compared as sorted rows, absent slots set to 10 (after every digit)
    true_set = torch.where(true_slots, digits, NUM_CLASSES).sort(-1).values
    read_set = torch.where(read_slots, predicted, NUM_CLASSES).sort(-1).values
    pixels = data.canvas_size / 2
    centres, true_centres = reading.wheres[..., 1:], data.wheres[..., 1:]
    centre_error = (centres - true_centres).norm(dim=-1) * pixels
    match = match_steps(centres, true_centres, counts)
    matched_centres = centres.gather(1, match[..., None].expand(-1, -1, 2))
    matched_error = (matched_centres - true_centres).norm(dim=-1) * pixels
    return {
        "digit_accuracy": (predicted == digits)[true_slots].double().mean().item(),
        "canvas_accuracy": (true_set == read_set).all(-1).double().mean().item(),
        "position_error_px": centre_error[true_slots].double().mean().item(),
        "matched_digit_accuracy": (predicted.gather(1, match) == digits)[true_slots].double().mean().item(),
        "matched_position_error_px": matched_error[true_slots].double().mean().item(),
    }


@torch.no_grad()
def evaluate(vae: MultiDigitVAE, data: MultiMNIST, batch_size: int = 500, seed: int = 0) -> dict[str, float]:
    """The scores of the module docstring for the canvases ``data``. The ``"paper"`` guide's draws come from
    a generator seeded with ``seed`` on the module's device (:func:`evaluation_generator`), so a checkpoint
    always scores the same and torch's global random state, and with it training, is untouched."""
    check_layout(vae, data)
    generator = evaluation_generator(vae, seed)
    reading = read_all(vae, data.canvases, batch_size, generator)
    true_slots = torch.arange(vae.max_digits, device=data.counts.device) < data.counts[:, None]
    oracle = read_true_windows(vae, data, batch_size, generator).argmax(-1) == data.digits
    scores = {
        "count_accuracy": (reading.count_probs.argmax(-1) == data.counts).double().mean().item(),
        **reading_scores(reading, data),
        "true_window_digit_accuracy": oracle[true_slots].double().mean().item(),
    }
    return {name: scores[name] for name in SCORES}
