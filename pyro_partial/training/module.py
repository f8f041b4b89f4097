"""The training engine: a Pyro objective trained by a Lightning ``Trainer``.

Following Pyro's route to devices and several GPUs (its ``examples/svi_lightning.py``): model and guide are
``PyroModule`` objects, used with ``pyro.settings.set(module_local_params=True)``; the objective is the ELBO's
``ELBOModule`` ``elbo(model, guide)``, a ``torch.nn.Module`` whose forward is the differentiable loss; and
:class:`SVIModule` is the ``LightningModule`` whose training step returns that loss. Lightning runs the loop,
the progress bar, the loggers, the device moves, mixed precision and DDP;
:class:`~pyro_partial.training.callbacks.ExactResume` adds what it does not keep
(:mod:`pyro_partial.training.callbacks`): the random number generators and the sampler's position, and an
atomic checkpoint after each epoch's evaluation, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import lightning
import torch
from torch.utils.data import DataLoader

from pyro_partial.training.batches import DeviceBatches

Evaluate = Callable[[int], Mapping[str, float]]


class NonFiniteLossError(FloatingPointError):
    """The loss of a training step is NaN or infinite."""


class SVIModule(lightning.LightningModule):
    """Minimises ``loss_fn(*batch)`` with Adam over the mini-batches of ``batches``.

    :param loss_fn: the objective as a module, e.g. ``SemiSupervisedELBO(...)(model, guide)``; its parameters
        are the model's and guide's.
    :param batches: the training data and the sampler of its mini-batches; moved to the training device when
        fitting starts.
    :param lr: Adam's learning rate.
    :param warmup_steps: the learning rate grows linearly over the first ``warmup_steps`` optimiser steps,
        ``lr · min(1, (t + 1) / warmup_steps)`` at step ``t`` (Goyal et al. 2017's warm-up); 0: ``lr`` from
        the first step. It keeps Adam's first steps, which move every weight by about ``lr`` at once, from
        driving a wide layer's pre-activations far into a saturated range.
    :param lr_decay: the learning rate is multiplied by ``lr_decay`` at the start of each epoch after the
        first, ``lr · lr_decay ** epoch`` (an exponential schedule, in ``(0, 1]``; 1: none). It depends on
        the epoch alone, so a run resumed with more epochs continues the schedule it would have followed.
    :param evaluate: ``epoch -> {metric: value}``, called (without gradients, modules in eval mode) at the end
        of each training epoch, before the epoch's checkpoint; its metrics are logged with the epoch's mean
        ``loss`` and its training ``seconds``.

    Under DDP each rank takes its share of every global batch and its loss is multiplied by the number of
    ranks, so the averaged gradient is the gradient of the whole global batch's loss, as in one process.
    """

    def __init__(
        self,
        loss_fn: torch.nn.Module,
        batches: DeviceBatches,
        *,
        lr: float,
        warmup_steps: int = 0,
        lr_decay: float = 1.0,
        evaluate: Evaluate | None = None,
    ):
        super().__init__()
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a number of steps, 0 or more, got {warmup_steps}")
        if not 0 < lr_decay <= 1:
            raise ValueError(f"lr_decay must be a factor in (0, 1], got {lr_decay}")
        self.loss_fn = loss_fn
        self.batches = batches
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.lr_decay = lr_decay
        self.evaluate = evaluate
        self._epoch_began = 0.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the parameters of ``loss_fn`` at learning rate ``lr``."""
        return torch.optim.Adam(self.loss_fn.parameters(), lr=self.lr)

    def on_fit_start(self) -> None:
        """Move the data to the training device, in the parameters' dtype (float64 under precision
        ``"64-true"``, bf16 under ``"bf16-true"``)."""
        self.batches.to(self.device, next(self.loss_fn.parameters()).dtype)

    def train_dataloader(self) -> DataLoader:
        """This rank's mini-batches of ``batches`` (index tensors, gathered in :meth:`training_step`).

        The sampler moves to its next epoch after each epoch's last batch; a resumed run gets its position
        back from the checkpoint (:class:`~pyro_partial.training.callbacks.ExactResume`).
        """
        return self.batches.loader(self.global_rank, self.trainer.world_size)

    def learning_rate(self, step: int, epoch: int = 0) -> float:
        """The learning rate of optimiser step ``step`` of epoch ``epoch`` (both counted from 0 over the
        whole run): ``lr · min(1, (step + 1) / warmup_steps) · lr_decay ** epoch``."""
        warm = 1.0 if step >= self.warmup_steps else (step + 1) / self.warmup_steps
        return self.lr * warm * self.lr_decay**epoch

    def on_train_batch_start(self, item: Any, batch_idx: int) -> None:
        """Set the optimiser's learning rate to :meth:`learning_rate` of this step. It depends on the step
        and epoch alone, so a resumed run (whose optimiser comes back with its saved rate) continues the
        warm-up and the decay where it stopped, and an overridden ``lr`` takes effect at once."""
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = self.learning_rate(self.global_step, self.current_epoch)

    def on_train_epoch_start(self) -> None:
        """Start the epoch's clock (its training ``seconds``)."""
        self._epoch_began = time.perf_counter()

    def training_step(self, item: Any, batch_idx: int) -> torch.Tensor:
        """The loss of mini-batch ``item`` times the number of ranks, logged as the epoch's mean ``loss``.

        :raises NonFiniteLossError: the loss is NaN or infinite (naming the epoch and step).
        """
        loss = self.loss_fn(*self.batches.gather(item))
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss is {loss.item()} at epoch {self.current_epoch}, step {batch_idx} of the epoch "
                f"(global step {self.global_step})"
            )
        world_size = self.trainer.world_size
        self.log(
            "loss", loss.detach() * world_size, on_step=False, on_epoch=True, batch_size=1, sync_dist=True
        )
        return loss * world_size

    def on_train_epoch_end(self) -> None:
        """Send the epoch's ``seconds`` and ``evaluate``'s metrics (computed without gradients, in eval mode)
        to every logger as one row of that epoch."""
        metrics = {"seconds": time.perf_counter() - self._epoch_began}
        if self.evaluate is not None:
            was_training = self.training
            self.eval()
            with torch.no_grad():
                metrics.update(self.evaluate(self.current_epoch))
            self.train(was_training)
        # every rank computes the same scores; they go to the loggers as Python floats (``self.log`` would
        # round them to float32 tensors and reduce them across ranks)
        row = {"epoch": self.current_epoch, **{name: float(value) for name, value in metrics.items()}}
        for logger in self.trainer.loggers:
            logger.log_metrics(row, step=self.global_step)
