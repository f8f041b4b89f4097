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

    Inputs broadcast against each other in their batch dimensions, so an enumerated label of shape
    ``(10, 1, 10)`` combines with data of shape ``(B, 784)`` into a ``(10, B, ·)`` output. The
    concatenation is never built: the first layer is applied to each input with its own block of columns,
    ``W [x; y] + b = W_x x + W_y y + b``, and the blocks are summed with broadcasting, so the large input
    is multiplied once rather than once per enumerated value (the same parameters and results as
    concatenating first).
    """

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Map inputs ``(..., F_i)`` (batch dims broadcast, ``Σ F_i = in_features``) to
        ``(..., out_features)``."""
        widths = [x.shape[-1] for x in inputs]
        if sum(widths) != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs whose last dimensions add up to {self.in_features}, "
                f"got {widths}"
            )
        first, *rest = self
        weights = first.weight.split(widths, dim=-1)
        hidden = first.bias
        for x, weight in zip(inputs, weights, strict=True):
            hidden = hidden + nn.functional.linear(x, weight)
        for layer in rest:
            hidden = layer(hidden)
        return hidden


class GaussianHead(nn.Module):
    """Splits a network output ``(..., 2 * D)`` into a mean ``(..., D)`` and a positive scale ``(..., D)``.

    The scale is ``softplus(raw) + min_scale``: smooth, and bounded away from zero for stability.
    """

    def __init__(self, body: nn.Module, min_scale: float = 1e-3):
        super().__init__()
        self.body = body
        self.min_scale = min_scale

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``body(*inputs)`` of shape ``(..., 2 * D)`` as ``(loc, scale)``, each ``(..., D)``."""
        loc, raw_scale = self.body(*inputs).chunk(2, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + self.min_scale
