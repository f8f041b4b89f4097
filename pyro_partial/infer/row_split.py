"""Running each pass of :class:`~pyro_partial.infer.SemiSupervisedELBO` on its own rows (``split_on``).

The rows of a call are found from the ``obs_mask`` of the model's sites, in one run of the model with its
latent variables fixed; a pass then takes the rows of its group from every tensor argument with one row
per entry of the data plate, and from the tensors of ``poutine.mask`` / ``poutine.scale`` handlers around
model and guide. No argument name is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.infer.autoguide import AutoCallable, AutoGuide, AutoGuideList

from pyro_partial.infer.inputs import has_rows, model_errors_named, take_rows
from pyro_partial.infer.partial_sites import RowGroups, find_partial_sites, row_groups
from pyro_partial.infer.pyro_internals import (
    handler_chain,
    preserved_rng_state,
    row_tensor,
    with_handlers,
    with_row_tensor,
)
from pyro_partial.infer.site_messengers import FixLatents


@dataclass(frozen=True)
class RowSplit:
    """The groups of rows of a call, and the (negative) dim of its one row plate."""

    groups: RowGroups
    dim: int

    def call(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict, rows: torch.Tensor
    ) -> tuple[Callable, Callable, tuple, dict]:
        """The call restricted to ``rows``: its arguments, and the tensors of the ``poutine.mask`` and
        ``poutine.scale`` handlers around model and guide, that have one entry per row."""
        rows = rows.reshape(-1)
        return (
            self._handlers_on(model, rows),
            self._handlers_on(guide, rows),
            *take_rows(args, kwargs, rows),
        )

    def _handlers_on(self, fn: Callable, rows: torch.Tensor) -> Callable:
        messengers, inner = handler_chain(fn)
        restricted = []
        for messenger in messengers:
            found = row_tensor(messenger)
            value = None if found is None else found[1]
            if torch.is_tensor(value) and value.dim() >= -self.dim and value.shape[self.dim] == rows.shape[0]:
                index = rows.nonzero().reshape(-1)
                messenger = with_row_tensor(messenger, value.index_select(self.dim, index))
            restricted.append(messenger)
        return with_handlers(restricted, inner)


def find_row_split(model: Callable, guide: Callable, args: tuple, kwargs: dict) -> RowSplit | None:
    """The rows of each group of a call (:class:`~pyro_partial.infer.partial_sites.RowGroups`), from one
    run of the model with its latent variables fixed (no draws, no gradients); ``None`` when the call's
    rows cannot be split (no partially observed site, a subsampling data plate, no argument with the
    plate's rows, an autoguide with parameters per row): the passes then mask instead."""
    with torch.no_grad(), preserved_rng_state(), poutine.block(), model_errors_named():
        trace = poutine.trace(FixLatents()(model)).get_trace(*args, **kwargs)
    groups = row_groups(find_partial_sites(trace))
    if groups is None or len(groups.row_frames) != 1:
        return None
    ((plate, dim),) = groups.row_frames
    frame = next(
        f for site in trace.nodes.values() for f in site.get("cond_indep_stack", ()) if f.name == plate
    )
    size = frame.size
    if (frame.full_size is not None and frame.full_size != size) or not has_rows(args, kwargs, size):
        return None
    if autoguide_has_rows(guide, plate):
        return None
    return RowSplit(groups, dim)


def autoguide_has_rows(guide: Callable, plate: str) -> bool:
    """Whether ``guide`` is (or lists) an autoguide with sites in ``plate``, i.e. parameters for each of
    its rows, or one not yet run (whose sites are not known yet)."""
    _, inner = handler_chain(guide)
    parts = list(inner) if isinstance(inner, AutoGuideList) else [inner]
    for part in parts:
        if not isinstance(part, AutoGuide) or isinstance(part, AutoCallable):
            continue
        if part.prototype_trace is None:
            return True
        for _, site in part.prototype_trace.iter_stochastic_nodes():
            if any(frame.name == plate for frame in site["cond_indep_stack"]):
                return True
    return False


__all__ = ["RowSplit", "autoguide_has_rows", "find_row_split"]
