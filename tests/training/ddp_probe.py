"""One training step of a tiny exact semi-supervised model through the engine, on 1 or 2 CPU processes (DDP
with the gloo backend), writing the gradient each rank applies.

    python -m tests.training.ddp_probe OUT DEVICES

The model has no continuous latent: p(y) = Cat(π), p(x | y) = N(W_y, I), q(y | x) = softmax(xC), so the
objective (y enumerated on unlabelled rows, clamped on labelled ones) is exact and the gradient of a global
batch is the same whichever ranks compute its rows. The one global batch of 8 rows has labelled and
unlabelled rows on both ranks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning
import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pyro_partial.data.sampling import ResumableBatchSampler
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.training import DeviceBatches, SVIModule

K, X, ROWS = 3, 4, 8


class Model(PyroModule):
    def __init__(self):
        super().__init__()
        self.means = torch.nn.Parameter(torch.randn(K, X, generator=torch.Generator().manual_seed(1)))

    def forward(self, x, y, mask):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=x.new_zeros(K)), obs=y, obs_mask=mask)
            pyro.sample("x", dist.Normal(self.means[y], 1.0).to_event(1), obs=x)


class Guide(PyroModule):
    def __init__(self):
        super().__init__()
        self.classifier = torch.nn.Linear(X, K)

    def forward(self, x, y, mask):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(logits=self.classifier(x)), obs=y, obs_mask=mask)


class OneBatch(ResumableBatchSampler):
    """Rows 0..7, labelled where the mask says: each rank's share (rows r::2) mixes both kinds."""

    def __len__(self):
        return 1

    def _config(self):
        return {}

    def _epoch_batches(self, epoch):
        yield torch.arange(ROWS), torch.tensor([True, True, False, False, True, False, False, True])


class SaveGradients(lightning.Callback):
    def __init__(self, out: Path):
        self.out = out

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = {name: p.grad.detach().clone() for name, p in pl_module.named_parameters()}
        torch.save(grads, self.out / f"grads_{trainer.world_size}_rank{trainer.global_rank}.pt")


def main(out: Path, devices: int) -> None:
    torch.manual_seed(0)
    data = torch.randn(ROWS, X, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    batches = DeviceBatches(OneBatch(), {"x": data, "y": labels})
    with pyro.settings.context(module_local_params=True):
        model, guide = Model(), Guide()
        loss_fn = SemiSupervisedELBO(alpha=2.0, max_plate_nesting=1)(model, guide)
        trainer = lightning.Trainer(
            accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", max_epochs=1,
            precision="64-true", logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, use_distributed_sampler=False, callbacks=[SaveGradients(out)],
        )  # fmt: skip
        trainer.fit(SVIModule(loss_fn, batches, lr=0.1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
