"""A spatial transformer (Jaderberg et al. 2015) restricted to scale and translation, as used to write
and read the digits of Multi-MNIST (Siddharth et al. 2017, section 4.3).

**The "where" convention.** A where is a tensor ``(..., 3)`` holding ``(s, x, y)``. It names a window
of the canvas: the axis-aligned rectangle centred at ``(x, y)`` whose sides are ``s`` times the canvas
sides, i.e. ``s * W`` by ``s * H`` canvas pixels (a square on a square canvas). Coordinates are torch's
normalised image coordinates with ``align_corners=False``: ``x`` runs from -1 at the left *edge* of the
canvas to +1 at its right edge, ``y`` from -1 at the top edge to +1 at the bottom edge, so the centre of
canvas pixel ``(row i, column j)`` lies at

    x_j = (2 j + 1) / W - 1,        y_i = (2 i + 1) / H - 1.

The window spans ``[x - s, x + s]`` by ``[y - s, y + s]``; it lies inside the canvas when
``|x| <= 1 - s`` and ``|y| <= 1 - s``. A patch of ``h x w`` pixels fills the window, again with
``align_corners=False``: its pixel ``(r, c)`` has centre ``(u_c, v_r) = ((2c + 1)/w - 1, (2r + 1)/h - 1)``
in its own normalised coordinates, which the transform maps to the canvas point

    (x + s u_c,  y + s v_r),        i.e. canvas column  j = (x + s u_c + 1) W / 2 - 1/2

(and row ``i = (y + s v_r + 1) H / 2 - 1/2``). When ``s W = w`` and the window's left edge
``(x - s + 1) W / 2`` is an integer, patch column ``c`` lands exactly on canvas column
``(x - s + 1) W / 2 + c``: writing copies pixels and reading recovers them exactly.

Values between pixel centres are interpolated bilinearly, and points outside the image being sampled
read as zero (``grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False)``), so a written
patch fades to zero over half a patch pixel around the window. ``s`` must be positive; ``s > 1`` (a
window larger than the canvas) is allowed.

:func:`write_patch` renders a patch into an otherwise empty canvas (the inverse transform: each canvas
pixel samples the patch at ``((x_j - x) / s, (y_i - y) / s)``); :func:`read_patch` crops the window and
resamples it to a patch (each patch pixel samples the canvas at ``(x + s u_c, y + s v_r)``). Both are
differentiable in the images and in the where, and broadcast leading batch dimensions (enumeration
dimensions added by Pyro, for example) between the image and the where.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["read_patch", "write_patch"]


def write_patch(patch: torch.Tensor, where: torch.Tensor, canvas_size: int | tuple[int, int]) -> torch.Tensor:
    """Render ``patch`` into the window ``where`` of an empty canvas.

    :param patch: images ``(..., h, w)``.
    :param where: windows ``(..., 3)`` = ``(s, x, y)`` (see the module docstring); its batch shape
        ``where.shape[:-1]`` broadcasts with ``patch.shape[:-2]``.
    :param canvas_size: ``H`` (a square canvas) or ``(H, W)``.
    :returns: canvases ``(..., H, W)``, zero outside the window, over the broadcast batch shape.
    """
    size = _size("canvas_size", canvas_size)
    scale, x, y = _unbind_where(where)
    # Canvas point c samples the patch at (c - t) / s.
    theta = _affine(1 / scale, -x / scale, -y / scale)
    return _resample(patch, theta, size, "patch", where)


def read_patch(canvas: torch.Tensor, where: torch.Tensor, patch_size: int | tuple[int, int]) -> torch.Tensor:
    """Crop the window ``where`` of ``canvas`` and resample it to ``patch_size`` pixels.

    :param canvas: images ``(..., H, W)``.
    :param where: windows ``(..., 3)`` = ``(s, x, y)`` (see the module docstring); its batch shape
        ``where.shape[:-1]`` broadcasts with ``canvas.shape[:-2]``.
    :param patch_size: ``h`` (a square patch) or ``(h, w)``.
    :returns: patches ``(..., h, w)`` over the broadcast batch shape; parts of the window outside the
        canvas read as zero.
    """
    size = _size("patch_size", patch_size)
    scale, x, y = _unbind_where(where)
    # Patch point u samples the canvas at s u + t.
    theta = _affine(scale, x, y)
    return _resample(canvas, theta, size, "canvas", where)


def _size(name: str, size: int | tuple[int, int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(n, int) and n >= 1 for n in pair):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of them, got {size!r}")
    return pair


def _unbind_where(where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(where, torch.Tensor) or where.dim() < 1 or where.shape[-1] != 3:
        shape = tuple(where.shape) if isinstance(where, torch.Tensor) else type(where).__name__
        raise ValueError(f"where must be a tensor of shape (..., 3) holding (s, x, y), got {shape}")
    scale, x, y = where.unbind(-1)
    if not bool((scale > 0).all()):
        raise ValueError(f"where[..., 0] (the scale s) must be > 0, got minimum {scale.min().item()}")
    return scale, x, y


def _affine(scale: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """The ``(..., 2, 3)`` matrices ``[[scale, 0, shift_x], [0, scale, shift_y]]``."""
    zero = torch.zeros_like(scale)
    return torch.stack([scale, zero, shift_x, zero, scale, shift_y], -1).unflatten(-1, (2, 3))


def _resample(
    image: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], name: str, where: torch.Tensor
) -> torch.Tensor:
    """Sample ``image (..., h, w)`` on the grid ``theta (..., 2, 3)`` maps an output of ``size`` to."""
    if not isinstance(image, torch.Tensor) or image.dim() < 2:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name} must be a tensor of shape (..., height, width), got {shape}")
    try:
        batch = torch.broadcast_shapes(image.shape[:-2], theta.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the batch shapes of {name} {tuple(image.shape[:-2])} (its shape without the last two "
            f"dimensions) and of where {tuple(where.shape[:-1])} (without the last) do not broadcast"
        ) from None
    dtype = torch.promote_types(image.dtype, theta.dtype)
    if batch.numel() == 0:  # affine_grid rejects an empty batch
        return image.new_zeros(*batch, *size, dtype=dtype)
    images = image.to(dtype).expand(*batch, *image.shape[-2:]).reshape(-1, 1, *image.shape[-2:])
    thetas = theta.to(dtype).expand(*batch, 2, 3).reshape(-1, 2, 3)
    grid = F.affine_grid(thetas, [images.shape[0], 1, *size], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(*batch, *size)
