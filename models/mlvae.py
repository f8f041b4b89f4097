"""Multi-Level VAE (Bouchacourt et al. 2018) for MNIST grouped by digit class.

Each group holds images of one digit: the content ``C_G`` (10-D) is shared by the group, the style ``S_i``
(10-D) is per image, and ``x_i ~ Bernoulli(decoder(C_G, S_i))`` over the 784 pixels (intensities in
``[0, 1]``, used as Bernoulli targets as usual for MNIST). Networks are 784-500 tanh MLPs as in the
paper's reimplementations; see :class:`pyro_partial.grouped.GroupedVAE` for the model, the guide and the
per-group normalisation of the ELBO. Batches come from
:class:`pyro_partial.data.grouped_sampler.GroupedBatchSampler` over the digit labels.

Run ``python -m models.mlvae --epochs 10`` to train on MNIST
(data root: ``--data-root`` or ``PYRO_PARTIAL_DATA``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from pyro_partial.data import mnist
from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups
from pyro_partial.grouped import GroupedVAE
from pyro_partial.nn import MLP, ConcatMLP, GaussianHead


class MLVAEEncoder(nn.Module):
    """One MLP per member giving its content evidence and its style posterior.

    Maps ``x`` ``(..., x_dim)`` to ``(content_loc, content_scale, style_loc, style_scale)``, shapes
    ``(..., content_dim)`` and ``(..., style_dim)``.
    """

    def __init__(self, x_dim: int, content_dim: int, style_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.content_dim = content_dim
        self.head = GaussianHead(MLP(x_dim, hidden, 2 * (content_dim + style_dim), activation="tanh"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, scale = self.head(x)
        return (
            loc[..., : self.content_dim],
            scale[..., : self.content_dim],
            loc[..., self.content_dim :],
            scale[..., self.content_dim :],
        )


class BernoulliDecoder(nn.Module):
    """``p(x | c, s) = Bernoulli(logits = MLP([c, s]))`` with event shape ``(x_dim,)``.

    Content ``(..., G, 1, content_dim)`` broadcasts against style ``(..., G, K, style_dim)``; the result has
    batch shape ``(..., G, K)``. Sample validation is off so grey-level targets in ``[0, 1]`` are allowed.
    """

    def __init__(self, x_dim: int, content_dim: int, style_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.body = ConcatMLP(content_dim + style_dim, hidden, x_dim, activation="tanh")

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=self.body(content, style), validate_args=False).to_event(1)


def build_mnist_mlvae(
    content_dim: int = 10,
    style_dim: int = 10,
    hidden: Sequence[int] = (500,),
    evidence: str = "product",
    x_dim: int = 784,
) -> GroupedVAE:
    """The MNIST ML-VAE: ``x_dim``-``hidden`` tanh MLP encoder and decoder (784-500 by default).

    ``evidence`` is ``"product"`` (ML-VAE) or ``"average"`` (GVAE).
    """
    return GroupedVAE(
        MLVAEEncoder(x_dim, content_dim, style_dim, hidden),
        BernoulliDecoder(x_dim, content_dim, style_dim, hidden),
        content_dim,
        style_dim,
        evidence,
    )


def train(
    vae: GroupedVAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    sampler: GroupedBatchSampler,
    epochs: int,
    lr: float = 1e-3,
) -> list[float]:
    """Train with SVI and ``Trace_ELBO`` on groups of ``images`` ``(N, x_dim)`` sharing ``labels`` ``(N,)``.

    :returns: the mean loss (negative ELBO per group) of each epoch.
    """
    if images.dim() != 2 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"images must have shape (N, x_dim) and labels shape (N,), got {tuple(images.shape)} "
            f"and {tuple(labels.shape)}"
        )
    svi = SVI(vae.model, vae.guide, Adam({"lr": lr}), Trace_ELBO(max_plate_nesting=2))
    history = []
    for _ in range(epochs):
        losses = []
        for batch in sampler:
            index, mask = pad_groups(batch)
            losses.append(svi.step(images[index], mask))
        history.append(sum(losses) / len(losses))
    return history


def load_mnist(data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """All 60,000 MNIST training images ``(60000, 784)`` in ``[0, 1]`` and their labels ``(60000,)``."""
    return mnist.load_mnist("train", data_root, validation_size=0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--groups-per-batch", type=int, default=10, help="distinct digits per batch")
    parser.add_argument("--group-size", type=int, default=25, help="images per group (the largest size)")
    parser.add_argument("--min-group-size", type=int, default=None, help="draw group sizes in [this, size]")
    parser.add_argument("--evidence", choices=("product", "average"), default="product")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--data-root", default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[float]:
    """Train the MNIST ML-VAE from the command line; returns the per-epoch losses."""
    args = parse_args(argv)
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    images, labels = load_mnist(args.data_root)
    sampler = GroupedBatchSampler(
        labels, args.groups_per_batch, args.group_size, min_group_size=args.min_group_size, seed=args.seed
    )
    vae = build_mnist_mlvae(hidden=(args.hidden,), evidence=args.evidence)
    history = train(vae, images, labels, sampler, args.epochs, args.lr)
    for epoch, loss in enumerate(history):
        print(f"epoch {epoch}: loss {loss:.2f}")
    return history


if __name__ == "__main__":
    main()
