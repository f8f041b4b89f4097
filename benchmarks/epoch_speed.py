"""Seconds per M2 epoch through the Lightning engine, a bare torch loop over the same objective, and the loop
Pyro's SS-VAE example writes, with the limit the arithmetic sets.

One epoch: 3,000 labelled and 47,000 unlabelled MNIST images at the natural supervision rate, batches of 200
(250 steps), M2 guide, z = 50, 784-500 softplus MLPs, y enumerated exactly on unlabelled rows, Adam, no
evaluation. The methods, each timed on the same batches in one process:

- ``engine``: ``lightning.Trainer`` fitting :class:`~pyro_partial.training.SVIModule` on
  ``SemiSupervisedELBO(split_on="mask")(vae.model, vae.guide)``;
- ``bare torch loop``: the same ``ELBOModule`` and ``torch.optim.Adam`` in a ``for`` loop (the Lightning
  layer's cost is ``engine / bare``);
- ``Pyro SS-VAE loop``: as Pyro's ``examples/vae/ss_vae_M2.py`` trains M2: ``SVI`` with ``TraceEnum_ELBO``
  on the unlabelled rows, ``SVI`` with ``Trace_ELBO`` on the labelled rows, and a second ``SVI`` for the
  classifier loss α·(−log q(y|x)) on the labelled rows.

The limit: the matmul FLOPs of one epoch (counted by ``torch.utils.flop_counter`` on one step of each kind of
row, forward and backward) divided by the matmul throughput measured here on 2000×2000 matrices.

    PYRO_PARTIAL_DATA=../shared/data python -m benchmarks.epoch_speed --seed 0
    python -m benchmarks.epoch_speed --steps 40      # time the first 40 steps of the epoch and scale to 250
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import lightning
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from pyro.optim import Adam
from torch.utils.flop_counter import FlopCounterMode

from pyro_partial.data.mnist import load_mnist
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.training import DeviceBatches, SVIModule
from pyro_partial_models.ss_vae import SSVAE

LABELS, BATCH, Z_DIM, HIDDEN, ALPHA, LR = 3000, 200, 50, (500,), 50.0, 1e-3


class FirstSteps:
    """The first ``steps`` batches of a sampler's epoch (to time part of an epoch)."""

    def __init__(self, sampler: SemiSupervisedBatchSampler, steps: int):
        self.sampler, self.steps = sampler, min(steps, len(sampler))

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.steps)


class EpochTimer(lightning.Callback):
    """Seconds from the start of the training epoch to its end (the trainer's set-up left out)."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.began = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.began


def engine(vae: SSVAE, batches: DeviceBatches, accelerator: str) -> float:
    loss_fn = SemiSupervisedELBO(alpha=ALPHA, max_plate_nesting=1, split_on="mask")(vae.model, vae.guide)
    timer = EpochTimer()
    trainer = lightning.Trainer(
        accelerator=accelerator, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        callbacks=[timer],
    )  # fmt: skip
    trainer.fit(SVIModule(loss_fn, batches, lr=LR))
    return timer.seconds


def bare_loop(vae: SSVAE, batches: DeviceBatches) -> float:
    loss_fn = SemiSupervisedELBO(alpha=ALPHA, max_plate_nesting=1, split_on="mask")(vae.model, vae.guide)
    optimiser = torch.optim.Adam(loss_fn.parameters(), lr=LR)
    began = time.perf_counter()
    for item in batches.sampler:
        optimiser.zero_grad()
        loss_fn(*batches.gather(item)).backward()
        optimiser.step()
    return time.perf_counter() - began


def pyro_loop(vae: SSVAE, batches: DeviceBatches) -> float:
    """Pyro's SS-VAE example's training: separate SVI objects for unlabelled rows, labelled rows and the
    classifier loss, sharing one Pyro optimiser (its parameters in the param store)."""
    model, guide = vae.model, vae.guide

    def unlabelled_model(xs):
        pyro.module("ss_vae_model", model)
        with pyro.plate("data", xs.shape[0]):
            z = pyro.sample("z", dist.Normal(xs.new_zeros(()), 1.0).expand([Z_DIM]).to_event(1))
            y = pyro.sample("y", dist.OneHotCategorical(logits=xs.new_zeros(10)))
            pyro.sample(
                "x", dist.Bernoulli(logits=model.logits(z, y), validate_args=False).to_event(1), obs=xs
            )

    def unlabelled_guide(xs):
        pyro.module("ss_vae_guide", guide)
        with pyro.plate("data", xs.shape[0]):
            y = pyro.sample(
                "y", dist.OneHotCategorical(logits=guide.encoder_y(xs)), infer={"enumerate": "parallel"}
            )
            pyro.sample("z", dist.Normal(*guide.encoder_z(xs, y)).to_event(1))

    def labelled_model(xs, ys):
        pyro.module("ss_vae_model", model)
        with pyro.plate("data", xs.shape[0]):
            z = pyro.sample("z", dist.Normal(xs.new_zeros(()), 1.0).expand([Z_DIM]).to_event(1))
            y = pyro.sample("y", dist.OneHotCategorical(logits=xs.new_zeros(10)), obs=ys)
            pyro.sample(
                "x", dist.Bernoulli(logits=model.logits(z, y), validate_args=False).to_event(1), obs=xs
            )

    def labelled_guide(xs, ys):
        pyro.module("ss_vae_guide", guide)
        with pyro.plate("data", xs.shape[0]):
            pyro.sample("z", dist.Normal(*guide.encoder_z(xs, ys)).to_event(1))

    def classifier_model(xs, ys):
        pyro.module("ss_vae_guide", guide)
        with pyro.plate("data", xs.shape[0]), pyro.poutine.scale(scale=ALPHA):
            pyro.sample("y_aux", dist.OneHotCategorical(logits=guide.encoder_y(xs)), obs=ys)

    def classifier_guide(xs, ys):
        pass

    optimiser = Adam({"lr": LR})
    unlabelled = SVI(unlabelled_model, unlabelled_guide, optimiser, TraceEnum_ELBO(max_plate_nesting=1))
    labelled = SVI(labelled_model, labelled_guide, optimiser, Trace_ELBO(max_plate_nesting=1))
    classifier = SVI(classifier_model, classifier_guide, optimiser, Trace_ELBO(max_plate_nesting=1))
    began = time.perf_counter()
    for item in batches.sampler:
        xs, ys, mask = batches.gather(item)
        if (~mask).any():
            unlabelled.step(xs[~mask])
        if mask.any():
            labelled.step(xs[mask], ys[mask])
            classifier.step(xs[mask], ys[mask])
    return time.perf_counter() - began


def flops_per_epoch(vae: SSVAE, batches: DeviceBatches) -> float:
    """Matmul FLOPs (forward and backward) of one epoch: one counted step per kind of row, times the rows."""
    loss_fn = SemiSupervisedELBO(alpha=ALPHA, max_plate_nesting=1, split_on="mask")(vae.model, vae.guide)
    xs, ys = batches.tensors["images"][:BATCH], batches.tensors["labels"][:BATCH]
    per_row = {}
    for labelled in (False, True):
        mask = torch.full((BATCH,), labelled, device=xs.device)
        with FlopCounterMode(display=False) as counter:
            loss_fn(xs, ys, mask).backward()
        per_row[labelled] = counter.get_total_flops() / BATCH
    sampler = batches.sampler
    num_labelled = sampler.labelled_per_epoch
    return per_row[False] * (sampler.rows_per_epoch - num_labelled) + per_row[True] * num_labelled


def matmul_throughput(device: torch.device, size: int = 2000, repeats: int = 10) -> float:
    """float32 matmul FLOP/s on ``device``."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    synchronise = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    synchronise()
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronise()
    return 2 * size**3 * repeats / (time.perf_counter() - began)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $PYRO_PARTIAL_DATA)")
    parser.add_argument(
        "--steps", type=int, default=None, help="time only the first N steps (scaled to 1 epoch)"
    )
    parser.add_argument(
        "--accelerator", choices=("cpu", "gpu"), default="cpu", help="where every method runs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    pyro.enable_validation(False)
    images, labels = load_mnist("train", args.data)
    split = SemiSupervisedSplit(labels, LABELS, seed=args.seed, num_classes=10)
    sampler = SemiSupervisedBatchSampler(split, BATCH, seed=args.seed)
    one_hot = torch.nn.functional.one_hot(labels, 10).to(images.dtype)
    batches = DeviceBatches(sampler, {"images": images, "labels": one_hot})
    steps = len(sampler) if args.steps is None else min(args.steps, len(sampler))
    timed = DeviceBatches(FirstSteps(sampler, steps), batches.tensors)

    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    batches.to(device)
    timed.to(device)

    def fresh() -> SSVAE:
        pyro.set_rng_seed(args.seed)
        pyro.clear_param_store()
        sampler.set_epoch(0)
        return SSVAE(z_dim=Z_DIM, hidden=HIDDEN).to(device)

    with pyro.settings.context(module_local_params=True):
        flops = flops_per_epoch(fresh(), batches)
        seconds = {
            "engine": engine(fresh(), timed, args.accelerator),
            "bare torch loop": bare_loop(fresh(), timed),
        }
    seconds["Pyro SS-VAE loop"] = pyro_loop(fresh(), timed)
    per_epoch = {name: value * len(sampler) / steps for name, value in seconds.items()}
    throughput = matmul_throughput(device)
    limit = flops / throughput
    print(
        f"one M2 epoch ({len(sampler)} steps of {BATCH}; timed {steps}) on {device}, torch "
        f"{torch.__version__}, pyro {pyro.__version__}, lightning {lightning.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, value in per_epoch.items():
        print(f"{name:>17s}: {value:7.1f} s/epoch")
    ratios = {
        "engine_vs_pyro_loop": per_epoch["engine"] / per_epoch["Pyro SS-VAE loop"],
        "engine_vs_bare_loop": per_epoch["engine"] / per_epoch["bare torch loop"],
        "engine_vs_limit": per_epoch["engine"] / limit,
    }
    print(
        f"{flops / 1e9:.0f} GFLOP per epoch at {throughput / 1e9:.0f} GFLOP/s matmul: limit {limit:.1f} "
        f"s/epoch; engine / Pyro loop {ratios['engine_vs_pyro_loop']:.2f}x (target <= 0.5), engine / bare "
        f"loop {ratios['engine_vs_bare_loop']:.3f}x (target <= 1.05), engine / limit "
        f"{ratios['engine_vs_limit']:.1f}x"
    )
    record = {
        "command": " ".join(["python -m benchmarks.epoch_speed", *sys.argv[1:]]),
        "seed": args.seed,
        "versions": {
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "lightning": lightning.__version__,
        },
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": str(torch.cuda.get_device_name() if device.type == "cuda" else platform.processor()),
        "timed_steps": steps,
        "seconds_per_epoch": per_epoch,
        "flops_per_epoch": flops,
        "matmul_flops_per_second": throughput,
        "limit_seconds_per_epoch": limit,
        "ratios": ratios,
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
