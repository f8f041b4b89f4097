"""An epoch loop around :class:`pyro.infer.SVI` with progress bars, metrics CSV and exact resumption."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sized
from pathlib import Path
from typing import Any, Protocol

import torch
from pyro.infer import SVI
from pyro.optim import PyroOptim
from tqdm.auto import tqdm

from pyro_partial.training.checkpoint import load_checkpoint, save_checkpoint
from pyro_partial.training.records import MetricsCSV


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def fit(
    svi: SVI,
    epoch_batches: Callable[[int], Iterable[tuple]],
    *,
    epochs: int,
    modules: dict[str, torch.nn.Module],
    run_dir: str | os.PathLike,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    sampler: Stateful | None = None,
    resume: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train for ``epochs`` epochs; after each, evaluate, append a CSV row and checkpoint atomically.

    :param svi: the SVI object; its optimiser must be a :class:`~pyro.optim.PyroOptim`.
    :param epoch_batches: ``epoch -> iterable of svi.step argument tuples``. For exact resumption it must
        depend only on the epoch, the run's seed and ``sampler``'s state.
    :param modules: ``{name given to pyro.module: module}``, saved with their buffers.
    :param run_dir: holds ``checkpoint.pt`` (after every epoch) and ``metrics.csv`` (one row per epoch).
    :param evaluate: ``epoch -> {metric: value}``, called after each epoch (e.g. validation accuracy).
    :param sampler: an optional batch sampler whose ``state_dict`` is checkpointed as well.
    :param resume: continue from ``run_dir/checkpoint.pt``; the continuation is identical to an
        uninterrupted run (same batches, same random draws).
    :return: the per-epoch rows (``epoch``, ``loss``, ``seconds`` and the evaluated metrics).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be non-negative, got {epochs}")
    if not isinstance(svi.optim, PyroOptim):
        raise TypeError(f"svi.optim must be a pyro.optim.PyroOptim, got {type(svi.optim).__name__}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint.pt"
    metrics = MetricsCSV(run_dir / "metrics.csv")
    history: list[dict[str, Any]] = []
    start = 0
    if resume:
        extra = load_checkpoint(checkpoint, modules, svi.optim)
        history, start = extra["history"], extra["epoch"] + 1
        if sampler is not None:
            sampler.load_state_dict(extra["sampler"])
    metrics.truncate(start)
    for epoch in range(start, epochs):
        began = time.perf_counter()
        batches = epoch_batches(epoch)
        total = len(batches) if isinstance(batches, Sized) else None
        losses = []
        with tqdm(
            batches, total=total, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False
        ) as bar:
            for args in bar:
                losses.append(svi.step(*args))
                bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
        row = {
            "epoch": epoch,
            "loss": sum(losses) / max(len(losses), 1),
            "seconds": time.perf_counter() - began,
        }
        if evaluate is not None:
            row.update(evaluate(epoch))
        history.append(row)
        metrics.append(row)
        extra = {"epoch": epoch, "history": history}
        if sampler is not None:
            extra["sampler"] = sampler.state_dict()
        save_checkpoint(checkpoint, modules, svi.optim, extra)
        if progress:
            tqdm.write(
                ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            )
    return history
