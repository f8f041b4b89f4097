"""A tiny VAE experiment on the experiment contract, for the engine's tests: Gaussian data, a linear decoder,
an encoder with a BatchNorm (buffers, which a checkpoint must keep) and a shuffled sampler."""

from __future__ import annotations

import argparse
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule

from pyro_partial.data.sampling import ShuffledBatchSampler
from pyro_partial.training import DeviceBatches, Experiment, Setup


class ToyModel(PyroModule):
    def __init__(self, x_dim: int, z_dim: int):
        super().__init__()
        self.decoder = torch.nn.Linear(z_dim, x_dim)
        self.z_dim = z_dim

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0).expand([self.z_dim]).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z), 1.0).to_event(1), obs=x)


class ToyGuide(PyroModule):
    def __init__(self, x_dim: int, z_dim: int):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(x_dim)
        self.encoder = torch.nn.Linear(x_dim, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = self.encoder(self.norm(x)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


class ToyVAE(PyroModule):
    def __init__(self, x_dim: int = 3, z_dim: int = 2):
        super().__init__()
        self.model, self.guide = ToyModel(x_dim, z_dim), ToyGuide(x_dim, z_dim)


class Toy(Experiment):
    """32 points in 3-D, 4 batches an epoch; ``--poison-step K`` turns the data to NaN from the K-th batch a
    process draws (a divergence)."""

    name = "toy"
    defaults = {"epochs": 2, "batch_size": 8, "lr": 0.05}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--z-dim", type=int, default=2)
        parser.add_argument("--poison-step", type=int, default=None)

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        return [] if args.z_dim >= 1 else [f"--z-dim must be at least 1, got {args.z_dim}"]

    def load_data(self, args: argparse.Namespace) -> torch.Tensor:
        self.loaded = True
        return torch.randn(32, 3, generator=torch.Generator().manual_seed(0))

    def build_module(self, model_config: dict[str, Any]) -> ToyVAE:
        return ToyVAE(**model_config)

    def build(self, args: argparse.Namespace, data: torch.Tensor) -> Setup:
        config = {"x_dim": data.shape[1], "z_dim": args.z_dim}
        vae = self.build_module(config)
        sampler = ShuffledBatchSampler(len(data), args.batch_size, seed=args.seed)

        steps = []

        def gather(tensors, index):
            steps.append(index)
            x = tensors["x"][index]
            return (
                (x * float("nan"),)
                if args.poison_step is not None and len(steps) > args.poison_step
                else (x,)
            )

        batches = DeviceBatches(sampler, {"x": data}, gather)

        def evaluate(epoch: int) -> dict[str, float]:
            return {"decoder_norm": vae.model.decoder.weight.norm().item()}

        return Setup(vae, Trace_ELBO(), batches, config, evaluate, summary="toy")
