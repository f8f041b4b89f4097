r"""Test-time refinement of the windows of a :class:`~pyro_partial_models.multi_digit.MultiDigitVAE`
reading (issue #23): a few gradient steps on each canvas's windows under the model, the count fixed.

For a canvas :math:`x` with count :math:`\hat n = \arg\max_n q(n | x)`, the windows
:math:`c_k = (\log s_k, x_k, y_k)`, :math:`k < \hat n`, start at the means of :math:`q(w_k | x, w_{<k})`
and climb, by Adam, the model's log-joint of the canvas and its windows with every step's digit and style
re-inferred by the guide from the glimpse :math:`g_k = \mathrm{read}(x, c_k)`:

.. math::

    J(c) = \log \mathrm{Bernoulli}\Big(x \,\Big|\, \mathrm{clamp}\Big(\sum_{k<\hat n}
        \mathrm{write}(\bar p_k, c_k), \epsilon, 1 - \epsilon\Big)\Big)
        + \sum_{k<\hat n} \log \mathcal N(c_k; \mu_w, \sigma_w^2),
    \qquad
    \bar p_k = \sum_y q(y | g_k)\, \sigma\big(\mathrm{decoder}(y, \bar z_k(y))\big),

:math:`\bar z_k(y)` the mean of :math:`q(z | g_k, y)` (``"m2"`` digit guide) or of :math:`q(z | g_k)`
(``"paper"``, with :math:`q(y | g_k, \bar z_k)` for the digit probabilities). The digit is marginalised in
the mean patch :math:`\bar p_k`, so :math:`J` is differentiable in the windows through the glimpse (the
classifier and the style encoder) and through the spatial transformer that writes the patch. It is the
model's joint density of the generative model's docstring (:mod:`pyro_partial_models.multi_digit`) at the
guide's point estimates, the digit and style priors left out (constant in :math:`y`, and tied to the
encoders' output for :math:`z`). Each canvas keeps the windows of the best :math:`J` met (the start
included), so refinement never lowers it; steps :math:`k \ge \hat n` keep their windows. The refined
reading re-reads its digits, styles and glimpses through the refined windows; the count probabilities are
unchanged.

:math:`J`'s optimum lies off the true windows (the mean patch is blurry), and the digit reader, sharp
within a pixel of a digit's centre, is far worse two or three pixels away. The glimpse search
(:func:`search_windows`) therefore asks the reader instead: each window :math:`k < \hat n` is moved to the
whole-pixel shift of its centre, within :math:`R` pixels in :math:`x` and :math:`y`, at which the reader is
most confident, :math:`\max_y q(y | g_k)` largest. It is a test-time search over glimpses, not a density:
it changes where the digits are read, never the count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pyro_partial.nn import write_patch
from pyro_partial_models.multi_digit import (
    NUM_CLASSES,
    PATCH_SHAPE,
    MultiDigitVAE,
    Reading,
    coords_from_where,
    shift_centres,
    where_from_coords,
)


def mean_patches(vae: MultiDigitVAE, canvases: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    r"""The mean patches :math:`\bar p_k` ``(B, K, 28, 28)`` of the module docstring for the windows
    ``coords`` (log s, x, y) ``(B, K, 3)`` of ``canvases`` ``(B, S, S)``; differentiable in ``coords``."""
    digit = vae.guide.digit
    glimpses = vae.guide.read(canvases.unsqueeze(1), coords).flatten(0, 1)  # (B·K, 28·28)
    images = digit.images.network_input(glimpses)
    rows = glimpses.shape[0]
    # each glimpse with each of the 10 one-hot digits, as rows (B·K·10, ·)
    labels = torch.eye(NUM_CLASSES, dtype=canvases.dtype, device=canvases.device).repeat(rows, 1)
    if digit.guide_type == "m2":
        probs = digit.encoder_y(images).softmax(-1)  # (B·K, 10)
        styles = digit.encoder_z(images.repeat_interleave(NUM_CLASSES, 0), labels)[0]
    else:
        style = digit.encoder_z(images)[0]  # (B·K, Z)
        probs = digit.encoder_y(images, style).softmax(-1)
        styles = style.repeat_interleave(NUM_CLASSES, 0)
    patches = torch.sigmoid(vae.model.digit.logits(styles, labels)).unflatten(0, (rows, NUM_CLASSES))
    mean = (probs.unsqueeze(-1) * patches).sum(-2)  # (B·K, 28·28)
    return mean.unflatten(-1, PATCH_SHAPE[1:]).unflatten(0, coords.shape[:2])


def window_objective(
    vae: MultiDigitVAE, canvases: torch.Tensor, coords: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    r""":math:`J(c)` ``(B,)`` of the module docstring: canvases ``(B, S, S)``, windows ``coords``
    (log s, x, y) ``(B, K, 3)`` and counts ``(B,)`` (steps ``k >= counts`` are left out)."""
    model = vae.model
    present = (torch.arange(vae.max_digits, device=counts.device) < counts[:, None]).to(canvases.dtype)
    steps = write_patch(mean_patches(vae, canvases, coords), where_from_coords(coords), vae.canvas_size)
    probs = (present[..., None, None] * steps).sum(1).clamp(model.eps, 1 - model.eps)
    likelihood = (canvases * probs.log() + (1 - canvases) * (-probs).log1p()).sum((-2, -1))
    prior = torch.distributions.Normal(model.where_loc, model.where_scale).log_prob(coords).sum(-1)
    return likelihood + (present * prior).sum(-1)


def refine_windows(
    vae: MultiDigitVAE,
    canvases: torch.Tensor,
    coords: torch.Tensor,
    counts: torch.Tensor,
    steps: int,
    lr: float,
) -> torch.Tensor:
    r"""The windows ``(B, K, 3)`` (log s, x, y) after ``steps`` Adam steps of learning rate ``lr`` up
    :math:`J` (:func:`window_objective`) from ``coords`` ``(B, K, 3)``, for ``canvases`` ``(B, S, S)`` of
    ``counts`` ``(B,)`` digits; each canvas's windows are those of the best :math:`J` met. Only the
    windows are optimised (the module's weights get no gradient)."""
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    current = coords.detach().clone().requires_grad_(True)
    best = coords.detach().clone()
    optimiser = torch.optim.Adam([current], lr=lr)
    with torch.enable_grad():
        best_value = torch.full(counts.shape, -torch.inf, dtype=canvases.dtype, device=canvases.device)
        for step in range(steps + 1):
            value = window_objective(vae, canvases, current, counts)
            better = value.detach() > best_value
            best = torch.where(better[:, None, None], current.detach(), best)
            best_value = torch.where(better, value.detach(), best_value)
            if step == steps:
                break
            (gradient,) = torch.autograd.grad(-value.sum(), current)
            current.grad = gradient
            optimiser.step()
    return best


def search_windows(
    vae: MultiDigitVAE,
    canvases: torch.Tensor,
    coords: torch.Tensor,
    counts: torch.Tensor,
    radius: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The windows ``coords`` (log s, x, y) ``(B, K, 3)`` of ``canvases`` ``(B, S, S)`` with each step
    ``k < counts[b]`` moved to the whole-pixel shift of its centre, within ``radius`` pixels in x and y (a
    grid of :math:`(2R + 1)^2` shifts), at which the digit reader's :math:`\max_y q(y | g_k)` is largest;
    ties go to the smaller shift, so ``radius=0`` returns ``coords``. Scales and absent steps are kept. The
    ``"paper"`` guide's draws come from ``generator`` (by default torch's global random state)."""
    if radius < 0:
        raise ValueError(f"radius must be non-negative, got {radius}")
    size = vae.canvas_size
    offsets = torch.arange(-radius, radius + 1, dtype=coords.dtype, device=coords.device)
    shifts = torch.cartesian_prod(offsets, offsets)  # (O, 2) (x, y) in pixels
    shifts = shifts[shifts.norm(dim=-1).argsort(stable=True)]  # the unshifted window first
    with torch.no_grad():
        confidence = torch.stack(
            [
                vae.guide.read_windows(canvases, shift_centres(coords, shift, size), generator)[0].amax(-1)
                for shift in shifts
            ]
        )  # (O, B, K)
    present = torch.arange(coords.shape[1], device=counts.device) < counts[:, None]  # (B, K)
    return shift_centres(coords, shifts[confidence.argmax(0)] * present[..., None], size)


def reread(
    vae: MultiDigitVAE,
    canvases: torch.Tensor,
    reading: Reading,
    move_windows: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> Reading:
    """``reading`` (of ``canvases`` ``(N, S, S)``, :meth:`MultiDigitVAE.read_canvases`) with its windows
    moved by ``move_windows(canvases, coords, counts)`` (``(B, S, S)``, ``(B, K, 3)`` log s, x, y and the
    counts ``argmax q(n | x)`` ``(B,)``, to new ``coords``) and its digits, styles and glimpses re-read
    through them (the ``"paper"`` guide's draws from ``generator``); in chunks of ``batch_size`` on the
    module's device, the result on ``canvases``'s device. The count probabilities are kept."""
    device = next(vae.parameters()).device
    counts = reading.count_probs.argmax(-1)
    coords = coords_from_where(reading.wheres)
    parts = []
    for i in range(0, len(canvases), batch_size):
        chunk = canvases[i : i + batch_size].to(device)
        moved = move_windows(
            chunk, coords[i : i + batch_size].to(device), counts[i : i + batch_size].to(device)
        )
        with torch.no_grad():
            parts.append((where_from_coords(moved), *vae.guide.read_windows(chunk, moved, generator)))
    wheres, digit_probs, styles, glimpses = (
        torch.cat(part).to(canvases.device) for part in zip(*parts, strict=True)
    )
    return Reading(reading.count_probs, wheres, digit_probs, styles, glimpses)


def refine_reading(
    vae: MultiDigitVAE,
    canvases: torch.Tensor,
    reading: Reading,
    steps: int,
    lr: float,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> Reading:
    """``reading`` of ``canvases`` ``(N, S, S)`` with the windows of the first ``argmax q(n | x)`` steps
    refined by :func:`refine_windows` and re-read (:func:`reread`, draws from ``generator``)."""
    return reread(
        vae,
        canvases,
        reading,
        lambda chunk, coords, counts: refine_windows(vae, chunk, coords, counts, steps, lr),
        batch_size,
        generator,
    )


def search_reading(
    vae: MultiDigitVAE,
    canvases: torch.Tensor,
    reading: Reading,
    radius: int,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> Reading:
    """``reading`` of ``canvases`` ``(N, S, S)`` with the windows of the first ``argmax q(n | x)`` steps
    moved by the glimpse search of :func:`search_windows` and re-read (:func:`reread`), both drawing from
    ``generator``."""
    return reread(
        vae,
        canvases,
        reading,
        lambda chunk, coords, counts: search_windows(vae, chunk, coords, counts, radius, generator),
        batch_size,
        generator,
    )
