"""Multi-layer perceptrons shared by the models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


class MLP(nn.Sequential):
    """``Linear -> activation`` blocks ending in a plain ``Linear`` layer.

    :param in_features: size of the last input dimension.
    :param hidden: sizes of the hidden layers (may be empty).
    :param out_features: size of the output.
    :param activation: one of ``relu``, ``softplus``, ``tanh``, ``elu``, ``gelu``.

    Maps ``(..., in_features)`` to ``(..., out_features)``.
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int], out_features: int, activation: str = "softplus"
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        sizes = [in_features, *hidden]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], out_features))
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_features


class ConcatMLP(MLP):
    """An :class:`MLP` applied to the concatenation of several inputs along the last dimension.

    Inputs are broadcast against each other in their batch dimensions first, so an enumerated label of
    shape ``(10, 1, 10)`` combines with data of shape ``(B, 784)`` into ``(10, B, 794)``.
    """

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch_shape = torch.broadcast_shapes(*(x.shape[:-1] for x in inputs))
        expanded = [x.expand(*batch_shape, x.shape[-1]) for x in inputs]
        return super().forward(torch.cat(expanded, dim=-1))


class GaussianHead(nn.Module):
    """Splits a network output ``(..., 2 * D)`` into a mean ``(..., D)`` and a positive scale ``(..., D)``.

    The scale is ``softplus(raw) + min_scale``: smooth, and bounded away from zero for stability.
    """

    def __init__(self, body: nn.Module, min_scale: float = 1e-3):
        super().__init__()
        self.body = body
        self.min_scale = min_scale

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.body(*inputs).chunk(2, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + self.min_scale
