"""Messengers that prepare a model or guide for one pass of :class:`~pyro_partial.infer.SemiSupervisedELBO`.

They act on the auxiliary sites of ``pyro.sample(name, d, obs=y, obs_mask=m)`` (``{name}_observed``,
``{name}_unobserved`` and the deterministic merge ``{name}``) so that the user's model and guide need no
change: :class:`ValidatePartialSites` checks the labels, :class:`IntegrateUnlabelled` chooses how the
unlabelled half of a site is integrated (enumerated, relaxed or sampled), :class:`ClampLabels` fixes it to
the labels for a supervised term, :class:`FixLatents` runs a model without sampling (to find its masks),
and :class:`ReplaySubsamples` makes every pass of one step see the same subsample of a subsampling plate.
:class:`ObserveLatents` observes latent sites at given values, for the evidence estimates of
:mod:`pyro_partial.infer.log_evidence`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import biject_to
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from pyro_partial.infer.inputs import count_non_finite
from pyro_partial.infer.pyro_internals import OBSERVED_SUFFIX, UNOBSERVED_SUFFIX, is_deterministic

CLAMPED = "_pyro_partial_clamped"
UNRELAXED = "_pyro_partial_unrelaxed"
"""Keys of a site's ``infer`` dict: a clamped site; the distribution a relaxed site had before."""


def base_name(name: str, suffix: str) -> str | None:
    """``name`` without ``suffix``, or ``None`` when it does not end with it."""
    return name[: -len(suffix)] if name.endswith(suffix) else None


def is_clamped(site: dict) -> bool:
    """Whether a trace ``site`` is a label clamped by :class:`ClampLabels` (so it has no score function)."""
    return bool(site["infer"].get(CLAMPED))


class ValidatePartialSites(Messenger):
    """Checks with messages naming the site: ``obs_mask`` shape, label range, NaN and ±inf in observations,
    and the shape of the merged value (an ``obs_mask`` with extra dims broadcasts it)."""

    def __enter__(self):
        self._parts: dict[str, dict[str, torch.Tensor]] = {}
        return super().__enter__()

    def _pyro_sample(self, msg: dict) -> None:
        if not msg["is_observed"]:
            return
        name, value, fn = msg["name"], msg["value"], msg["fn"]
        if is_deterministic(msg):
            self._check_merge(name, value)
            return
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"observed site {name!r} holds {count_non_finite(value)} in a tensor of shape "
                f"{tuple(value.shape)}; observations must be finite"
            )
        base = base_name(name, OBSERVED_SUFFIX)
        if base is not None and torch.is_tensor(msg["mask"]):
            _check_labels(base, fn, value, msg["mask"])
            self._parts[base] = {"observed": value, "mask": msg["mask"], "batch_shape": fn.batch_shape}

    def _pyro_post_sample(self, msg: dict) -> None:
        base = base_name(msg["name"], UNOBSERVED_SUFFIX)
        if base is not None and base in self._parts:
            self._parts[base]["unobserved"] = msg["value"]

    def _check_merge(self, name: str, value: torch.Tensor) -> None:
        parts = self._parts.pop(name, None)
        if parts is None or "unobserved" not in parts:
            return
        expected = torch.broadcast_shapes(parts["observed"].shape, parts["unobserved"].shape)
        if value.shape != expected:
            raise ValueError(
                f"site {name!r}: obs_mask has shape {tuple(parts['mask'].shape)}, which broadcasts the "
                f"site's value from {tuple(expected)} to {tuple(value.shape)}; expected a bool tensor "
                f"broadcastable to the site's batch shape {tuple(parts['batch_shape'])}, e.g. (batch,), "
                "not (batch, 1)"
            )


def _check_labels(base: str, fn, value: torch.Tensor, mask: torch.Tensor) -> None:
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
    bad = mask & ~fn.support.check(value)
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


class IntegrateUnlabelled(Messenger):
    """Chooses how the latent half ``{name}_unobserved`` of each partially observed site is integrated.

    - sites named in ``relax`` are relaxed in both model and guide: a ``OneHotCategorical`` becomes a
      ``RelaxedOneHotCategorical`` (Gumbel-softmax / Concrete) with the given temperature;
    - other discrete ones, with ``enumerate_sites`` (the guide's instance) and when the guide also
      writes ``obs=..., obs_mask=...`` for the site, are enumerated in parallel
      (``infer={"enumerate": "parallel"}`` is dropped by ``pyro.sample`` together with ``obs_mask``, so
      it is set here); a guide that samples ``{name}_unobserved`` directly configures it itself;
    - continuous ones are sampled as written.

    :param relax: ``{site: temperature}``.
    :param enumerate_sites: enumerate the discrete sites (the guide's instance).
    :param latent: the sites to act on (``None``: all); :class:`ClampLabels` takes the others.
    """

    def __init__(self, relax: Mapping[str, float], enumerate_sites: bool, latent: frozenset | None = None):
        super().__init__()
        self.relax = relax
        self.enumerate_sites = enumerate_sites
        self.latent = latent

    def __enter__(self):
        self._observed_seen: set[str] = set()
        return super().__enter__()

    def _pyro_sample(self, msg: dict) -> None:
        name = msg["name"]
        if msg["is_observed"]:
            base = base_name(name, OBSERVED_SUFFIX)
            if base is not None:
                self._observed_seen.add(base)
            return
        base = base_name(name, UNOBSERVED_SUFFIX)
        if base is None or (self.latent is not None and base not in self.latent):
            return
        if base in self.relax:
            msg["infer"] = {**msg["infer"], UNRELAXED: msg["fn"]}
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
        """The distribution expanded to ``batch_shape``, still a :class:`PositiveRelaxedOneHotCategorical`."""
        new = self._get_checked_instance(PositiveRelaxedOneHotCategorical, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        """A reparameterised draw of shape ``sample_shape + batch_shape + event_shape``, its zero coordinates
        raised to the smallest positive float of its dtype."""
        value = super().rsample(sample_shape)
        return value.clamp(min=torch.finfo(value.dtype).tiny)


class ClampLabels(Messenger):
    """Sets ``{name}_unobserved`` to the observed labels, for a supervised term.

    The labels come from the guide's own ``{name}_observed`` site when the guide writes
    ``obs=..., obs_mask=...``, otherwise from ``labels`` (``{name: obs}``, found in a model trace). The
    clamped value is not sampled and carries no score function; on labelled entries it equals the label,
    which the guide then conditions on exactly as the model does.

    :param latent: the sites to leave alone (``None``: none is clamped), integrated by
        :class:`IntegrateUnlabelled` instead.
    """

    def __init__(self, latent: frozenset | None, labels: Mapping[str, torch.Tensor] | None = None):
        super().__init__()
        self.latent = latent
        self.labels = dict(labels or {})

    def __enter__(self):
        self._observed: dict[str, torch.Tensor] = {}
        return super().__enter__()

    def _pyro_sample(self, msg: dict) -> None:
        name = msg["name"]
        if msg["is_observed"]:
            base = base_name(name, OBSERVED_SUFFIX)
            if base is not None and not is_deterministic(msg):
                self._observed[base] = msg["value"]
            return
        base = base_name(name, UNOBSERVED_SUFFIX)
        if base is None or self.latent is None or base in self.latent:
            return
        obs = self._observed.get(base, self.labels.get(base))
        if obs is None:
            return
        shape = msg["fn"].batch_shape + msg["fn"].event_shape
        msg["value"] = obs.expand(torch.broadcast_shapes(obs.shape, shape))
        msg["done"] = True
        msg["infer"] = {k: v for k, v in msg["infer"].items() if k != "enumerate"}
        msg["infer"][CLAMPED] = True


class FixLatents(Messenger):
    """Gives every latent site a fixed, valid value instead of a draw: the first value of a discrete
    site's support, the mean of a continuous one (a point of its support where the mean is not). A model
    run under it finds its partially observed sites' masks without sampling anything."""

    def _pyro_sample(self, msg: dict) -> None:
        if msg["is_observed"] or msg["done"] or site_is_subsample(msg):
            return
        msg["value"] = fixed_value(msg["fn"])
        msg["done"] = True


def fixed_value(fn) -> torch.Tensor:
    """A valid value of the distribution ``fn``, of shape ``batch_shape + event_shape``, not a draw."""
    shape = fn.batch_shape + fn.event_shape
    if getattr(fn, "has_enumerate_support", False):
        return fn.enumerate_support(expand=False)[0].expand(shape)
    try:
        mean = fn.mean.expand(shape)
    except NotImplementedError:
        return fn.sample()
    if bool(fn.support.check(mean).all()):
        return mean
    return biject_to(fn.support)(torch.zeros_like(mean))


class ObserveLatents(Messenger):
    """Observes latent sites at given values: ``values[name]`` becomes the observed value of the site
    ``name``, or of ``{name}_unobserved`` for a partially observed site (its unlabelled entries; labelled
    entries keep their labels, and the merge ``{name}`` follows). Under it a model scores the value and a
    guide no longer draws it, so that a (model, guide) pair estimates the evidence of the data *and* the
    values.

    :param values: ``{site: value}``, each value broadcastable to the site's ``batch_shape + event_shape``.
    """

    def __init__(self, values: Mapping[str, torch.Tensor]):
        super().__init__()
        self.values = dict(values)

    def _pyro_sample(self, msg: dict) -> None:
        if msg["is_observed"]:
            return
        name = base_name(msg["name"], UNOBSERVED_SUFFIX) or msg["name"]
        if name not in self.values:
            return
        value, fn = self.values[name], msg["fn"]
        shape = fn.batch_shape + fn.event_shape
        try:
            msg["value"] = value.expand(torch.broadcast_shapes(value.shape, shape))
        except RuntimeError:
            raise ValueError(
                f"site {name!r}: the value to observe has shape {tuple(value.shape)}, expected one "
                f"broadcastable to the site's batch shape + event shape {tuple(shape)}"
            ) from None
        msg["is_observed"] = True


class ReplaySubsamples(Messenger):
    """Every subsampling plate draws its subsample once per instance and replays it afterwards, so the
    passes of one step (and model and guide) see the same rows."""

    def __init__(self):
        super().__init__()
        self.subsamples: dict[str, torch.Tensor] = {}

    def _pyro_sample(self, msg: dict) -> None:
        if _subsamples(msg) and msg["name"] in self.subsamples:
            msg["value"] = self.subsamples[msg["name"]]
            msg["done"] = True

    def _pyro_post_sample(self, msg: dict) -> None:
        if _subsamples(msg) and msg["value"] is not None:
            self.subsamples.setdefault(msg["name"], msg["value"])


def _subsamples(msg: dict) -> bool:
    """Whether a message is the draw of the subsample of a plate that subsamples (not of every row)."""
    if not site_is_subsample(msg):
        return False
    size, subsample_size = msg["fn"].size, msg["fn"].subsample_size
    return subsample_size is not None and subsample_size != size


__all__ = [
    "ClampLabels",
    "FixLatents",
    "IntegrateUnlabelled",
    "ObserveLatents",
    "PositiveRelaxedOneHotCategorical",
    "ReplaySubsamples",
    "ValidatePartialSites",
    "base_name",
    "fixed_value",
    "is_clamped",
]
