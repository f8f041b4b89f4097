"""Semi-supervised splits: a fixed class-balanced labelled subset, and batches at a supervision rate ρ.

:class:`SemiSupervisedSplit` draws ``M`` labelled rows once, from a seed, ``M / K`` from each of ``K``
classes; the other ``N`` rows are unlabelled. The draw is fixed for a whole run: build the split once
and keep it (re-building it with the same seed gives the same rows).

:class:`SemiSupervisedBatchSampler` yields mini-batches mixing unlabelled and labelled rows so that a
fraction ρ of the rows are labelled, labelled rows being re-used as often as needed. Siddharth et al.
(2017) write the objective as ``Σ_n L_unsup(x_n) + γ Σ_m L_sup(x_m, y_m)`` with supervision rate
ρ = γM / (N + γM). One sampler epoch visits every unlabelled row once and shows
``K = round(ρN / (1 − ρ))`` labelled rows, so summed over an epoch the batch objectives give the
supervised terms the weight ``K / M``, the γ that :func:`pyro_partial.infer.supervision.supervision_weights`
returns for the same ρ. The over-representation is done by sampling, so a loss on these batches uses
``γ = 1``; the classifier weight α = alpha_scale / ρ is unchanged.

:func:`validation_rows` is the held-out convention of the loaders: the last rows of a training file.

Use with whole data sets in memory, for example::

    images, labels = load_mnist("train")                      # (50000, 784), (50000,)
    split = SemiSupervisedSplit(labels, num_labelled=100, seed=0)
    sampler = SemiSupervisedBatchSampler(split, batch_size=200, rho=0.1, seed=0)
    for epoch in range(num_epochs):
        for index, is_labelled in sampler:
            ys = torch.where(is_labelled, labels[index], 0)   # hide the unlabelled rows' labels
            svi.step(images[index], ys, is_labelled)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from pyro_partial.data.sampling import ResumableBatchSampler


def validation_rows(num_examples: int, validation_size: int, *, validation: bool) -> slice:
    """The training rows (``validation=False``) or the held-out validation rows of a training file.

    Validation is the last ``validation_size`` rows: Pyro's SS-VAE example trains on the first 50,000
    MNIST training images and validates on the last 10,000. ``validation_size=0`` keeps every row for
    training (and then has no validation rows to give).
    """
    if not 0 <= validation_size < num_examples:
        raise ValueError(
            f"validation_size must be in [0, {num_examples}) for {num_examples} training rows, "
            f"got {validation_size}"
        )
    if validation and validation_size == 0:
        raise ValueError("validation rows were asked for with validation_size=0; pass validation_size > 0")
    cut = num_examples - validation_size
    return slice(cut, num_examples) if validation else slice(0, cut)


def _as_label_array(labels: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array of shape (N,), got {labels.dtype} {labels.shape}"
        )
    return labels


class SemiSupervisedSplit:
    """``num_labelled`` class-balanced labelled rows drawn once from ``seed``; the other rows are unlabelled.

    For each class, in increasing order, ``num_labelled / K`` of its rows are drawn without replacement
    from ``numpy.random.default_rng(seed)``; the draw depends only on ``labels``, ``num_labelled``,
    ``num_classes`` and ``seed``.

    :param labels: integer class labels of all training rows, shape ``(N + M,)``.
    :param num_labelled: ``M``, the number of labelled rows; a multiple of the number of classes.
    :param seed: seed of the draw.
    :param num_classes: ``K``; the labels must then lie in ``[0, K)`` and every class needs
        ``M / K`` rows. By default the classes are the distinct values in ``labels``.

    Attributes: ``labelled`` and ``unlabelled``, sorted int64 index tensors of shapes ``(M,)`` and
    ``(N,)``; ``label_mask``, a bool tensor of shape ``(N + M,)``, true at labelled rows.
    """

    def __init__(
        self,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        num_labelled: int,
        *,
        seed: int = 0,
        num_classes: int | None = None,
    ):
        labels = _as_label_array(labels)
        if num_classes is None:
            classes = np.unique(labels)
        else:
            low, high = labels.min(initial=0), labels.max(initial=0)
            if num_classes < 1 or low < 0 or high >= num_classes:
                raise ValueError(
                    f"labels must lie in [0, num_classes) with num_classes >= 1, got "
                    f"num_classes={num_classes} and labels in [{low}, {high}]"
                )
            classes = np.arange(num_classes)
        if num_labelled < 1 or num_labelled % len(classes) != 0:
            raise ValueError(
                f"num_labelled must be a positive multiple of the number of classes {len(classes)}, "
                f"got {num_labelled}"
            )
        per_class = num_labelled // len(classes)
        rng = np.random.default_rng(seed)
        chosen = []
        for c in classes:
            members = np.flatnonzero(labels == c)
            if len(members) < per_class:
                raise ValueError(
                    f"class {c} has {len(members)} rows, fewer than the {per_class} labelled rows per class "
                    f"that num_labelled={num_labelled} needs"
                )
            chosen.append(rng.choice(members, size=per_class, replace=False))
        mask = np.zeros(len(labels), dtype=bool)
        mask[np.concatenate(chosen)] = True
        self.num_classes = len(classes)
        self.seed = seed
        self.label_mask = torch.from_numpy(mask)
        self.labelled = torch.from_numpy(np.flatnonzero(mask))
        self.unlabelled = torch.from_numpy(np.flatnonzero(~mask))

    @property
    def num_labelled(self) -> int:
        """``M``."""
        return len(self.labelled)

    @property
    def num_unlabelled(self) -> int:
        """``N``."""
        return len(self.unlabelled)


class SemiSupervisedBatchSampler(ResumableBatchSampler):
    """Yield ``(index, is_labelled)`` mini-batches in which a fraction ρ of the rows are labelled.

    Epoch ``e`` is a deterministic function of ``(seed, e)``: the ``N`` unlabelled rows in a random order,
    interleaved at random positions with ``K = round(ρN / (1 − ρ))`` labelled slots, cut into batches of
    ``batch_size`` rows (the last one smaller unless ``drop_last``). The labelled slots take labelled
    rows from consecutive random permutations of the ``M`` labelled rows (re-used when ``K > M``). Every
    row of a batch is labelled with probability ``K / (N + K) ≈ ρ``; ``rho=None`` gives ``K = M``, the
    natural rate ``M / (N + M)``, where an epoch is one shuffled pass over all rows.

    Iterating resumes where the last iteration stopped; after an epoch's last batch the sampler moves on
    to the next epoch. :meth:`state_dict` / :meth:`load_state_dict` save and restore that position
    exactly; :meth:`set_epoch` jumps to the start of an epoch.

    :param split: the labelled / unlabelled rows.
    :param batch_size: rows per batch.
    :param rho: the supervision rate ρ in (0, 1), or None for the natural rate.
    :param seed: seed of the sampler's randomness (independent of the split's seed).
    :param drop_last: drop each epoch's last batch when it is smaller than ``batch_size``.
    """

    def __init__(
        self,
        split: SemiSupervisedSplit,
        batch_size: int,
        *,
        rho: float | None = None,
        seed: int = 0,
        drop_last: bool = False,
    ):
        num_unlabelled, num_labelled = split.num_unlabelled, split.num_labelled
        if num_unlabelled == 0:
            raise ValueError("split has no unlabelled rows; an epoch is one pass over the unlabelled rows")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if rho is None:
            slots = num_labelled
        elif 0.0 < rho < 1.0:
            slots = round(rho * num_unlabelled / (1.0 - rho))
            if slots == 0:
                raise ValueError(
                    f"rho={rho} gives no labelled row in an epoch of {num_unlabelled} unlabelled rows; "
                    f"use rho > {0.5 / (num_unlabelled + 0.5):.3g}"
                )
        else:
            raise ValueError(f"rho must lie in (0, 1) or be None, got {rho}")
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.labelled_per_epoch = slots
        rows = num_unlabelled + slots
        self.rows_per_epoch = rows - rows % batch_size if drop_last else rows
        super().__init__()
        if len(self) == 0:
            raise ValueError(
                f"batch_size={batch_size} with drop_last=True exceeds the {rows} rows of an epoch"
            )

    @property
    def rho(self) -> float:
        """The realised supervision rate ``K / (N + K)``, ρ up to the rounding of ``K``."""
        return self.labelled_per_epoch / (self.split.num_unlabelled + self.labelled_per_epoch)

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.rows_per_epoch // self.batch_size)

    def _config(self) -> dict:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "drop_last": self.drop_last,
            "labelled_per_epoch": self.labelled_per_epoch,
            "num_labelled": self.split.num_labelled,
            "num_unlabelled": self.split.num_unlabelled,
            "split_seed": self.split.seed,
        }

    def _epoch_rows(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All rows of ``epoch`` in order: indices ``(rows_per_epoch,)`` and labelled flags, same shape."""
        rng = np.random.default_rng([self.seed, epoch])
        unlabelled = self.split.unlabelled.numpy()
        labelled = self.split.labelled.numpy()
        slots = self.labelled_per_epoch
        is_labelled = rng.permutation(np.repeat([True, False], [slots, len(unlabelled)]))
        cycles = -(-slots // len(labelled))
        index = np.empty(len(is_labelled), dtype=np.int64)
        index[~is_labelled] = rng.permutation(unlabelled)
        index[is_labelled] = np.concatenate([rng.permutation(labelled) for _ in range(cycles)])[:slots]
        keep = self.rows_per_epoch
        return torch.from_numpy(index[:keep]), torch.from_numpy(is_labelled[:keep])

    def _epoch_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch``: ``(index, is_labelled)``, an int64 tensor of row indices and a bool
        tensor, both of shape ``(B,)``; ``is_labelled`` equals ``split.label_mask[index]``."""
        index, is_labelled = self._epoch_rows(epoch)
        for b in range(len(self)):
            rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield index[rows], is_labelled[rows]
