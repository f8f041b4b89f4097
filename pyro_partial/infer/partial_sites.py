"""Finding the partially observed sites of a model trace, and which rows of the batch each labels.

``pyro.sample(name, d, obs=y, obs_mask=m)`` splits a site into ``{name}_observed`` (masked by ``m``),
``{name}_unobserved`` (a latent masked by ``~m``) and a deterministic ``{name}`` merging the two
(:mod:`pyro_partial.infer.pyro_internals`). Each partially observed site has its own mask: a row may be
labelled for some sites and not for others.

A partially observed site may sit inside an enclosing ``poutine.mask`` that removes it from some rows,
e.g. the steps beyond a random length (:func:`pyro_partial.poutine.random_steps`). Its labels are then
used where it is present, and on the rows where it is absent it is neither labelled nor unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro.poutine.trace_struct import Trace

from pyro_partial.infer.pyro_internals import OBSERVED_SUFFIX, UNOBSERVED_SUFFIX


@dataclass(frozen=True)
class PartialSite:
    """A partially observed site found in a model trace.

    :ivar name: the site name given to ``pyro.sample`` (without suffix).
    :ivar obs: the observed values, shape ``batch_shape + event_shape`` of the site.
    :ivar mask: bool tensor, broadcastable to the site's batch shape, true on labelled entries where the
        site is present (``obs_mask`` combined with any enclosing ``poutine.mask``); it may carry
        enumeration dimensions on the left when an enclosing mask depends on an enumerated variable.
    :ivar present: bool tensor, true where the site is present at all (its enclosing masks), labelled
        or not.
    :ivar row_frames: ``(plate name, dim)`` pairs of the plates the mask varies over: the rows.
    :ivar scale: the site's scale (subsampling or ``poutine.scale``).
    """

    name: str
    obs: torch.Tensor
    mask: torch.Tensor
    present: torch.Tensor
    row_frames: frozenset
    scale: float | torch.Tensor


def frame_keys(site: dict) -> frozenset:
    """The ``(name, dim)`` pairs of the vectorised plates enclosing a site."""
    return frozenset((f.name, f.dim) for f in site["cond_indep_stack"] if f.vectorized)


def find_partial_sites(model_trace: Trace) -> dict[str, PartialSite]:
    """Return the partially observed sites of a model trace, keyed by name."""
    found: dict[str, PartialSite] = {}
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or not site["is_observed"] or not name.endswith(OBSERVED_SUFFIX):
            continue
        base = name[: -len(OBSERVED_SUFFIX)]
        if base + UNOBSERVED_SUFFIX not in model_trace.nodes:
            continue
        device = site["value"].device
        mask = _as_mask(site["mask"], device)
        present = mask | _as_mask(model_trace.nodes[base + UNOBSERVED_SUFFIX]["mask"], device)
        rows = frozenset(
            (f.name, f.dim)
            for f in site["cond_indep_stack"]
            if f.vectorized and -f.dim <= mask.dim() and mask.shape[f.dim] > 1
        )
        found[base] = PartialSite(base, site["value"], mask, present, rows, site["scale"])
    return found


def _as_mask(mask, device: torch.device) -> torch.Tensor:
    if mask is None or mask is True:
        return torch.ones((), dtype=torch.bool, device=device)
    if mask is False:
        return torch.zeros((), dtype=torch.bool, device=device)
    return mask


@dataclass(frozen=True)
class RowGroups:
    """The rows of a batch grouped by the partially observed sites they label.

    Every row belongs to one group: the rows that label no site (``unlabelled``), or, among the rows
    that label at least one, those with the same set of sites present but unlabelled on them (the key of
    ``labelled``): in a row's supervised term, those sites are integrated like latent variables.

    :ivar row_frames: ``(plate name, dim)`` pairs of the plates common to every site's mask: the rows.
    :ivar unlabelled: bool tensor over the row dims (trailing dims of the batch shape), true on the rows
        that label no site.
    :ivar labelled: ``{sites unlabelled on the rows: bool tensor of those rows}``, one entry per group
        of labelled rows that is not empty.
    :ivar scale: the sites' scale (subsampling, ``poutine.scale``), applied to each row's supervised term
        as a whole.
    """

    row_frames: frozenset
    unlabelled: torch.Tensor
    labelled: dict[frozenset, torch.Tensor]
    scale: float | torch.Tensor

    @property
    def any_labelled(self) -> torch.Tensor:
        """Bool tensor over the row dims, true on rows that label at least one site."""
        return ~self.unlabelled


def row_groups(partials: dict[str, PartialSite]) -> RowGroups | None:
    """Group the rows of a batch by the labels of its partially observed sites; ``None`` without any.

    A site's mask is reduced to the rows (any labelled entry along its other dims, e.g. enumeration or
    an inner plate, makes the row labelled for it).
    """
    if not partials:
        return None
    sites = list(partials.values())
    frames = frozenset.intersection(*(site.row_frames for site in sites))
    row_dims = {dim for _, dim in frames}
    labelled = {s.name: _to_rows(s.mask, row_dims) for s in sites}
    missing = {s.name: _to_rows(s.present & ~s.mask, row_dims) for s in sites}
    shape = torch.broadcast_shapes(*(m.shape for m in (*labelled.values(), *missing.values())))
    labelled = {name: m.expand(shape) for name, m in labelled.items()}
    missing = {name: m.expand(shape) for name, m in missing.items()}
    any_label = torch.stack(list(labelled.values())).any(0)
    # a group's key: which sites are missing their label on the row, coded as one integer per row
    codes = torch.zeros(shape, dtype=torch.long, device=any_label.device)
    names = sorted(missing)
    for bit, name in enumerate(names):
        codes = codes | (missing[name].long() << bit)
    groups = {}
    for code in torch.unique(codes[any_label]).tolist():
        key = frozenset(name for bit, name in enumerate(names) if code >> bit & 1)
        groups[key] = any_label & (codes == code)
    return RowGroups(frames, ~any_label, groups, sites[0].scale)


def _to_rows(mask: torch.Tensor, row_dims: set[int]) -> torch.Tensor:
    """Reduce a mask to the row dims (``any`` over the others), keeping only the trailing dims."""
    for dim in range(-mask.dim(), 0):
        if dim not in row_dims and mask.shape[dim] > 1:
            mask = mask.any(dim, keepdim=True)
    keep = max((-dim for dim in row_dims), default=0)
    leading = mask.dim() - keep
    if leading > 0:
        mask = mask.reshape(mask.shape[leading:])
    return mask.reshape((1,) * (keep - mask.dim()) + tuple(mask.shape))


def is_row_site(site: dict, row_frames: frozenset) -> bool:
    """Whether a site lies inside every plate that the rows vary over."""
    return row_frames <= frame_keys(site)


def restrict_to_rows(site: dict, rows: torch.Tensor) -> None:
    """Intersect a trace site's mask with a row mask (before its log-probability is computed)."""
    mask = site["mask"]
    if mask is None or mask is True:
        site["mask"] = rows
    elif mask is not False:
        site["mask"] = mask & rows


__all__ = [
    "PartialSite",
    "RowGroups",
    "find_partial_sites",
    "frame_keys",
    "is_row_site",
    "restrict_to_rows",
    "row_groups",
]
