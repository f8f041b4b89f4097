"""Finding, checking and configuring the partially observed sites of a model.

``pyro.sample(name, d, obs=y, obs_mask=m)`` splits a site into ``{name}_observed`` (masked by ``m``),
``{name}_unobserved`` (a latent masked by ``~m``) and a deterministic ``{name}`` merging the two. The
messengers here act on those auxiliary sites so that :class:`~pyro_partial.infer.SemiSupervisedELBO`
can treat labelled and unlabelled rows separately without any change to the user's model and guide.

A partially observed site may sit inside an enclosing ``poutine.mask`` that removes it from some rows,
e.g. the steps beyond a random length (:func:`pyro_partial.random_length.random_steps`). Its labels are
then used where it is present; a row is labelled when any partially observed site is observed on it, and
every site present on a labelled row must be observed there.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.trace_struct import Trace

OBSERVED = "_observed"
UNOBSERVED = "_unobserved"


@dataclass(frozen=True)
class PartialSite:
    """A partially observed site found in a model trace.

    :ivar name: the site name given to ``pyro.sample`` (without suffix).
    :ivar obs: the observed values, shape ``batch_shape + event_shape`` of the site.
    :ivar mask: bool tensor, broadcastable to the site's batch shape, true on labelled rows where the
        site is present (``obs_mask`` combined with any enclosing ``poutine.mask``); it may carry
        enumeration dimensions on the left when an enclosing mask depends on an enumerated variable.
    :ivar row_frames: ``(plate name, dim)`` pairs of the plates the mask varies over: the rows.
    :ivar scale: the site's scale (subsampling or ``poutine.scale``), applied to each row's
        supervised term as a whole.
    :ivar present: bool tensor, true where the site is present at all (its enclosing masks), labelled
        or not.
    """

    name: str
    obs: torch.Tensor
    mask: torch.Tensor
    row_frames: frozenset
    scale: float | torch.Tensor
    present: torch.Tensor


def is_deterministic(site: dict) -> bool:
    return bool(site["infer"].get("_deterministic"))


def frame_keys(site: dict) -> frozenset:
    """The ``(name, dim)`` pairs of the vectorised plates enclosing a site."""
    return frozenset((f.name, f.dim) for f in site["cond_indep_stack"] if f.vectorized)


def find_partial_sites(model_trace: Trace) -> dict[str, PartialSite]:
    """Return the partially observed sites of a model trace, keyed by name.

    Raises :class:`ValueError` when two partially observed sites label different rows: a row is
    either labelled for every partially observed site present on it or for none.
    """
    found: dict[str, PartialSite] = {}
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or not site["is_observed"] or not name.endswith(OBSERVED):
            continue
        base = name[: -len(OBSERVED)]
        if base + UNOBSERVED not in model_trace.nodes:
            continue
        device = site["value"].device
        mask = _as_mask(site["mask"], device)
        present = mask | _as_mask(model_trace.nodes[base + UNOBSERVED]["mask"], device)
        rows = frozenset(
            (f.name, f.dim)
            for f in site["cond_indep_stack"]
            if f.vectorized and -f.dim <= mask.dim() and mask.shape[f.dim] > 1
        )
        found[base] = PartialSite(base, site["value"], mask, rows, site["scale"], present)
    _check_same_rows(found)
    return found


def _as_mask(mask, device: torch.device) -> torch.Tensor:
    if mask is None or mask is True:
        return torch.ones((), dtype=torch.bool, device=device)
    if mask is False:
        return torch.zeros((), dtype=torch.bool, device=device)
    return mask


@dataclass(frozen=True)
class LabelledRows:
    """The labelled rows of a trace, common to all its partially observed sites.

    :ivar mask: bool tensor over the row dimensions, true where any partially observed site is observed
        (the sites' masks reduced over their other dimensions: enumeration, importance samples).
    :ivar row_frames: ``(plate name, dim)`` pairs of the plates every site's mask varies over: the rows.
    :ivar scale: the sites' scale, applied to each row's supervised term as a whole.
    """

    mask: torch.Tensor
    row_frames: frozenset
    scale: float | torch.Tensor


def labelled_rows(partials: dict[str, PartialSite]) -> LabelledRows | None:
    """The labelled rows of the partially observed sites ``partials``; ``None`` when there are none."""
    if not partials:
        return None
    sites = list(partials.values())
    frames = frozenset.intersection(*(site.row_frames for site in sites))
    mask = sites[0].mask
    for site in sites[1:]:
        mask = mask | site.mask
    row_dims = {dim for _, dim in frames}
    for dim in range(-mask.dim(), 0):
        if dim not in row_dims and mask.shape[dim] > 1:
            mask = mask.any(dim, keepdim=True)
    leading = mask.dim() - max((-dim for dim in row_dims), default=0)
    return LabelledRows(mask.reshape(mask.shape[leading:]) if leading > 0 else mask, frames, sites[0].scale)


def _check_same_rows(found: dict[str, PartialSite]) -> None:
    rows = labelled_rows(found)
    for site in found.values():
        try:
            observed, expected = torch.broadcast_tensors(site.mask, rows.mask & site.present)
            same = torch.equal(observed, expected)
        except RuntimeError:
            same = False
        if not same:
            other = next((s.name for s in found.values() if s is not site), site.name)
            raise ValueError(
                f"partially observed sites {site.name!r} and {other!r} label different rows "
                f"(obs_mask shapes {tuple(site.mask.shape)} and {tuple(found[other].mask.shape)}): "
                "SemiSupervisedELBO needs every row to be labelled for all partially observed sites "
                "present on it or for none"
            )


def is_row_site(site: dict, rows: LabelledRows) -> bool:
    """Whether a site lies inside every plate that the labelled/unlabelled mask varies over."""
    return rows.row_frames <= frame_keys(site)


def restrict_to_rows(site: dict, rows: torch.Tensor) -> None:
    """Intersect a trace site's mask with a row mask (before its log-probability is computed)."""
    mask = site["mask"]
    if mask is None or mask is True:
        site["mask"] = rows
    elif mask is False:
        return
    else:
        site["mask"] = mask & rows


def check_guide_has_unobserved(partials: dict[str, PartialSite], guide_trace: Trace) -> None:
    for base in partials:
        if base + UNOBSERVED not in guide_trace.nodes:
            raise ValueError(
                f"the model's site {base!r} is partially observed (obs_mask) but the guide has no site "
                f"{base + UNOBSERVED!r}; sample it in the guide over the whole batch, e.g. "
                f"pyro.sample({base!r}, q_{base}, obs={base}s, obs_mask=mask) as in the model"
            )


def check_finite_inputs(fn, args: tuple, kwargs: dict) -> None:
    """Raise a :class:`ValueError` naming the argument when a floating-point input holds NaN."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    named = [(names[i] if i < len(names) else f"#{i}", v) for i, v in enumerate(args)] + list(kwargs.items())
    for name, value in named:
        if torch.is_tensor(value) and value.is_floating_point() and torch.isnan(value).any():
            raise ValueError(
                f"argument {name!r} holds {int(torch.isnan(value).sum())} NaN value(s) in a tensor of shape "
                f"{tuple(value.shape)}; the data must be finite"
            )


class ValidatePartialSites(Messenger):
    """Checks with messages naming the site: ``obs_mask`` shape, label range, and NaN in observations."""

    def _pyro_sample(self, msg: dict) -> None:
        if not msg["is_observed"] or is_deterministic(msg):
            return
        name, value, fn = msg["name"], msg["value"], msg["fn"]
        if torch.is_tensor(value) and value.is_floating_point() and torch.isnan(value).any():
            count = int(torch.isnan(value).sum())
            raise ValueError(
                f"observed site {name!r} holds {count} NaN value(s) in a tensor of shape "
                f"{tuple(value.shape)}; observations must be finite"
            )
        if name.endswith(OBSERVED) and torch.is_tensor(msg["mask"]):
            self._check_partial(name[: -len(OBSERVED)], fn, value, msg["mask"])

    @staticmethod
    def _check_partial(base: str, fn, value: torch.Tensor, mask: torch.Tensor) -> None:
        batch_shape, event_shape = tuple(fn.batch_shape), tuple(fn.event_shape)
        try:
            broadcast = torch.broadcast_shapes(mask.shape, batch_shape)
        except RuntimeError:
            broadcast = None
        # an enclosing mask over an enumerated variable adds dimensions left of the batch shape
        if broadcast is None or broadcast[len(broadcast) - len(batch_shape) :] != torch.Size(batch_shape):
            raise ValueError(
                f"site {base!r}: obs_mask has shape {tuple(mask.shape)}, expected a bool tensor "
                f"broadcastable to the site's batch shape {batch_shape}"
            )
        expected = torch.Size(batch_shape + event_shape)
        try:
            value_ok = torch.broadcast_shapes(value.shape, expected) == expected
        except RuntimeError:
            value_ok = False
        if not value_ok:
            raise ValueError(
                f"site {base!r}: obs has shape {tuple(value.shape)}, expected {tuple(expected)} "
                f"(batch shape {batch_shape} + event shape {event_shape})"
            )
        in_support = fn.support.check(value)
        bad = mask & ~in_support
        if bad.any():
            raise ValueError(
                f"site {base!r}: obs holds {int(bad.sum())} value(s) outside the support of "
                f"{type(fn).__name__} ({_describe_support(fn)}) on labelled rows; rows with "
                "obs_mask=False may hold any valid placeholder (e.g. 0)"
            )


def _describe_support(fn) -> str:
    if isinstance(fn, dist.Categorical):
        return f"integers in [0, {fn.logits.shape[-1] - 1}]"
    if isinstance(fn, dist.OneHotCategorical):
        return f"one-hot vectors of length {fn.event_shape[-1]}"
    return str(fn.support)


class ConfigureUnlabelledSites(Messenger):
    """Chooses how the latent half ``{name}_unobserved`` of each partially observed site is integrated.

    - sites named in ``relax`` are relaxed in both model and guide: a ``OneHotCategorical`` becomes a
      ``RelaxedOneHotCategorical`` (Gumbel-softmax / Concrete) with the given temperature;
    - other discrete ones, with ``enumerate_sites`` (the guide's instance) and when the guide also
      writes ``obs=..., obs_mask=...`` for the site, are enumerated in parallel
      (``infer={"enumerate": "parallel"}`` is dropped by ``pyro.sample`` together with ``obs_mask``, so
      it is set here); a guide that samples ``{name}_unobserved`` directly configures it itself;
    - continuous ones are sampled as written.
    """

    def __init__(self, relax: dict[str, float], enumerate_sites: bool):
        super().__init__()
        self.relax = relax
        self.enumerate_sites = enumerate_sites
        self._observed_seen: set[str] = set()

    def __enter__(self):
        self._observed_seen = set()
        return super().__enter__()

    def _pyro_sample(self, msg: dict) -> None:
        name = msg["name"]
        if msg["is_observed"]:
            if name.endswith(OBSERVED):
                self._observed_seen.add(name[: -len(OBSERVED)])
            return
        if not name.endswith(UNOBSERVED):
            return
        base = name[: -len(UNOBSERVED)]
        if base in self.relax:
            msg["fn"] = _relaxed(base, msg["fn"], msg["infer"], self.relax[base])
        elif (
            self.enumerate_sites
            and base in self._observed_seen
            and getattr(msg["fn"], "has_enumerate_support", False)
        ):
            msg["infer"] = {**msg["infer"], "enumerate": msg["infer"].get("enumerate", "parallel")}
        if msg["infer"].get("enumerate") == "sequential":
            raise NotImplementedError(
                f"site {name!r} is configured for sequential enumeration; SemiSupervisedELBO supports "
                "parallel enumeration only"
            )


def _relaxed(base: str, fn, infer: dict, temperature: float) -> PositiveRelaxedOneHotCategorical:
    if infer.get("enumerate"):
        raise ValueError(f"site {base!r} is both configured for enumeration and named in relax=; choose one")
    if not isinstance(fn, torch.distributions.OneHotCategorical):
        raise ValueError(
            f"site {base!r}: relaxation needs a OneHotCategorical distribution (one-hot values), "
            f"got {type(fn).__name__}; use enumeration for Categorical sites"
        )
    temperature = torch.as_tensor(temperature, dtype=fn.logits.dtype, device=fn.logits.device)
    return PositiveRelaxedOneHotCategorical(temperature, logits=fn.logits)


class PositiveRelaxedOneHotCategorical(dist.RelaxedOneHotCategorical):
    """A Gumbel-softmax whose draws stay positive. A draw is ``exp`` of log-scores, which underflows to 0
    for a confident distribution (a score gap of about 100 in float32, e.g. logits 50 apart at
    temperature 0.5); the log-density of such a draw is infinite and its gradient NaN. Those coordinates
    (exactly zero) are raised to the smallest positive float; no other value changes."""

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PositiveRelaxedOneHotCategorical, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        value = super().rsample(sample_shape)
        return value.clamp(min=torch.finfo(value.dtype).tiny)


class ClampUnlabelledSites(Messenger):
    """Sets ``{name}_unobserved`` to the observed labels, for the supervised pass over labelled rows.

    The labels come from the guide's own ``{name}_observed`` site when the guide writes
    ``obs=..., obs_mask=...``, otherwise from ``partials`` (found in a model trace). The clamped value
    is not sampled and carries no score function; on labelled rows it equals the label, which the
    guide then conditions on exactly as the model does.
    """

    def __init__(self, partials: dict[str, PartialSite] | None = None):
        super().__init__()
        self.partials = partials or {}
        self._observed: dict[str, torch.Tensor] = {}

    def __enter__(self):
        self._observed = {}
        return super().__enter__()

    def _pyro_sample(self, msg: dict) -> None:
        name = msg["name"]
        if msg["is_observed"]:
            if name.endswith(OBSERVED) and not is_deterministic(msg):
                self._observed[name[: -len(OBSERVED)]] = msg["value"]
            return
        if not name.endswith(UNOBSERVED):
            return
        base = name[: -len(UNOBSERVED)]
        obs = self._observed.get(base)
        if obs is None and base in self.partials:
            obs = self.partials[base].obs
        if obs is None:
            return
        shape = msg["fn"].batch_shape + msg["fn"].event_shape
        msg["value"] = obs.expand(torch.broadcast_shapes(obs.shape, shape))
        msg["done"] = True
        msg["infer"] = {k: v for k, v in msg["infer"].items() if k != "enumerate"}
        msg["infer"]["_pyro_partial_clamped"] = True


def split_rows(fn, mask_name: str, args: tuple, kwargs: dict) -> tuple[tuple | None, tuple | None] | None:
    """Split a call's per-row arguments into ``(args, kwargs)`` for its unlabelled and labelled rows.

    ``mask_name`` names the argument of ``fn`` holding the 1-D bool ``obs_mask`` of length B; every
    tensor argument whose first dimension is B is indexed by ``~mask`` and by ``mask``; other arguments
    pass unchanged. A half with no rows is returned as ``None``. Returns ``None`` when this call leaves
    the mask argument out (or passes ``None``): the model then decides its rows itself.
    """
    parameters = inspect.signature(fn).parameters
    if mask_name not in parameters:
        raise ValueError(
            f"split_on={mask_name!r} names no argument of the model; it takes {list(parameters)}"
        )
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"split_on={mask_name!r}: cannot bind the call's arguments to the model: {e}") from e
    mask = bound.arguments.get(mask_name)
    if mask is None:
        return None
    if not (torch.is_tensor(mask) and mask.dtype == torch.bool and mask.dim() == 1):
        shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
        raise ValueError(f"split_on={mask_name!r}: expected a 1-D bool tensor (the obs_mask), got {shape}")
    size = mask.shape[0]

    def take(rows: torch.Tensor) -> tuple | None:
        if not bool(rows.any()):
            return None
        sliced = inspect.BoundArguments(bound.signature, bound.arguments.copy())
        for name, value in bound.arguments.items():
            if torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == size:
                sliced.arguments[name] = value[rows]
        return sliced.args, sliced.kwargs

    return take(~mask), take(mask)


def is_clamped(site: dict) -> bool:
    return bool(site["infer"].get("_pyro_partial_clamped"))
