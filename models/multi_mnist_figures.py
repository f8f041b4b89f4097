"""Figures of a trained :class:`~pyro_partial_models.multi_digit.MultiDigitVAE`: canvases over their
reconstructions, and each canvas decomposed into the digits its steps wrote, with the inferred windows
outlined in the steps' colours (red, green, blue, then cycling)."""

from __future__ import annotations

import torch

from pyro_partial_models.multi_digit import MultiDigitVAE

STEP_COLOURS = ((1.0, 0.2, 0.2), (0.2, 0.9, 0.2), (0.3, 0.5, 1.0))
"""The RGB colour of steps 0, 1, 2 (step k takes colour k mod 3)."""


def step_colours(steps: int, like: torch.Tensor) -> torch.Tensor:
    """The colours ``(steps, 3)`` of steps ``0..steps-1``, with the dtype and device of ``like``."""
    palette = torch.tensor(STEP_COLOURS, dtype=like.dtype, device=like.device)
    return palette[torch.arange(steps, device=like.device) % len(STEP_COLOURS)]


def window_outlines(canvases: torch.Tensor, wheres: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Grey canvases ``(B, S, S)`` as RGB ``(B, 3, S, S)`` with the outline of each present window
    ``wheres`` ``(B, K, 3)`` = ``(s, x, y)`` (``present`` ``(B, K)`` bool) in its step's colour."""
    size = canvases.shape[-1]
    images = canvases[:, None].expand(-1, 3, -1, -1).clone()
    pixels = torch.arange(size, dtype=canvases.dtype, device=canvases.device)
    colours = step_colours(wheres.shape[1], canvases)
    for k in range(wheres.shape[1]):
        s, x, y = (wheres[:, k, i, None] for i in range(3))
        # the window's edges in pixel units: left = (x − s + 1) S / 2, and so on
        left, right = ((x - s + 1) * size / 2).round(), ((x + s + 1) * size / 2).round() - 1
        top, bottom = ((y - s + 1) * size / 2).round(), ((y + s + 1) * size / 2).round() - 1
        columns = (pixels >= left) & (pixels <= right)  # (B, S)
        rows = (pixels >= top) & (pixels <= bottom)
        on_column_edge = (pixels == left) | (pixels == right)
        on_row_edge = (pixels == top) | (pixels == bottom)
        outline = (rows[:, :, None] & on_column_edge[:, None, :]) | (
            on_row_edge[:, :, None] & columns[:, None, :]
        )
        outline = outline & present[:, k, None, None]
        images = torch.where(outline[:, None], colours[k][:, None, None], images)
    return images


@torch.no_grad()
def decomposition_grid(vae: MultiDigitVAE, canvases: torch.Tensor) -> torch.Tensor:
    """Rows: canvases ``(B, S, S)``; columns: the canvas with the inferred windows (predicted count), its
    reconstruction, then each step's contribution in its window's colour. Shape ``(B, 2 + K, 3, S, S)``,
    on ``canvases``'s device (computed on the module's)."""
    device = next(vae.parameters()).device
    reading = vae.read_canvases(canvases.to(device))
    counts = reading.count_probs.argmax(-1)
    reconstruction, steps = vae.render(reading, counts)
    wheres, steps = reading.wheres.to(canvases.device), steps.to(canvases.device)
    reconstruction = reconstruction.to(canvases.device)
    present = torch.arange(vae.max_digits, device=canvases.device) < counts.to(canvases.device)[:, None]
    tinted = steps[:, :, None] * step_colours(vae.max_digits, canvases)[None, :, :, None, None]
    columns = [window_outlines(canvases, wheres, present), reconstruction[:, None].expand(-1, 3, -1, -1)]
    return torch.cat([torch.stack(columns, 1), tinted], 1)


@torch.no_grad()
def canvas_reconstruction_grid(vae: MultiDigitVAE, canvases: torch.Tensor) -> torch.Tensor:
    """Row 0: canvases ``(B, S, S)``; row 1: their reconstructions with the predicted counts.
    Shape ``(2, B, 1, S, S)``, on ``canvases``'s device (computed on the module's)."""
    device = next(vae.parameters()).device
    reading = vae.read_canvases(canvases.to(device))
    reconstruction, _ = vae.render(reading, reading.count_probs.argmax(-1))
    return torch.stack([canvases, reconstruction.to(canvases.device)])[:, :, None]
