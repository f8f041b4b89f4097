"""Binary images kept bit-packed in memory and unpacked batch by batch on the training device.

A binary image ``(C, H, W)`` of values 0 and 1, W a multiple of 8, is stored as ``(C, H, W / 8)`` bytes,
eight pixels a byte, the first pixel in the most significant bit (NumPy's ``packbits`` order): 737,280
dSprites frames of 64×64 take 377 MB instead of 12 GB of float32. :func:`pack_images` packs them once on
the CPU; :func:`gather_unpacked` is the ``gather`` of a :class:`~pyro_partial.training.DeviceBatches`
holding the packed images, which indexes and unpacks the rows of each mini-batch on the device the bytes
live on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


def pack_images(images: torch.Tensor) -> torch.Tensor:
    """Bit-pack binary images ``(N, C, H, W)`` (values 0 and 1, any dtype, W a multiple of 8) along the
    width: uint8 ``(N, C, H, W / 8)`` on the CPU."""
    if images.dim() != 4 or images.shape[-1] % 8:
        raise ValueError(f"images must have shape (N, C, H, W), W a multiple of 8, got {tuple(images.shape)}")
    if bool(((images != 0) & (images != 1)).any()):
        raise ValueError("images must be binary: every pixel 0 or 1")
    return torch.from_numpy(np.packbits(images.cpu().numpy().astype(np.uint8), axis=-1))


def unpack_images(packed: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The images ``(..., 8·B)`` of values 0 and 1 of :func:`pack_images`'s bytes ``(..., B)``, on
    ``packed``'s device, in ``dtype`` (default: the default floating dtype)."""
    if packed.dtype != torch.uint8:
        raise ValueError(f"packed must hold uint8 bytes, got {packed.dtype}")
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1  # (..., B, 8), most significant bit first
    return bits.flatten(-2).to(torch.get_default_dtype() if dtype is None else dtype)


def gather_unpacked(tensors: Mapping[str, torch.Tensor], index: torch.Tensor) -> tuple[torch.Tensor]:
    """``(images,)``: rows ``index`` ``(B,)`` of the bit-packed ``tensors["images"]`` ``(N, C, H, W / 8)``,
    unpacked to ``(B, C, H, W)`` on their device (the ``gather`` of a
    :class:`~pyro_partial.training.DeviceBatches`)."""
    return (unpack_images(tensors["images"][index]),)
