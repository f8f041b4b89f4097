"""Every Pyro internal that :mod:`pyro_partial` relies on, in one place.

Pyro (checked with ``pyro-ppl`` 1.9.x) has no public API for some of what a multi-pass ELBO needs: the
DiCE estimator of :class:`~pyro.infer.TraceEnum_ELBO` for one (model, guide) trace pair, the checks it runs
on those traces, the guess of ``max_plate_nesting``, the particle plate, and the conventions by which
``pyro.sample(..., obs_mask=...)`` splits a site. Each is re-exported here under a public name;
``tests/infer/test_pyro_internals.py`` checks every one of them against the installed Pyro, so an
incompatible Pyro release fails there, loudly, rather than as a wrong loss elsewhere.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import torch
from pyro.infer.elbo import ELBO
from pyro.infer.traceenum_elbo import _check_tmc_elbo_constraint, _compute_dice_elbo
from pyro.params.param_store import _MODULE_NAMESPACE_DIVIDER
from pyro.poutine.indep_messenger import IndepMessenger
from pyro.poutine.mask_messenger import MaskMessenger
from pyro.poutine.messenger import Messenger, _context_wrap
from pyro.poutine.scale_messenger import ScaleMessenger
from pyro.poutine.trace_struct import Trace

try:  # numpy is optional for Pyro, and so is its random state
    import numpy
except ImportError:  # pragma: no cover
    numpy = None

PYRO_VERSIONS = (">=1.9.2", "<1.10")
"""The ``pyro-ppl`` versions these internals are checked against (``tests/infer/test_pyro_internals.py``)."""

OBSERVED_SUFFIX = "_observed"
UNOBSERVED_SUFFIX = "_unobserved"
"""``pyro.sample(name, d, obs=y, obs_mask=m)`` records ``{name}_observed`` (masked by ``m``),
``{name}_unobserved`` (latent, masked by ``~m``) and a deterministic ``{name}`` merging the two."""

PARTICLE_PLATE = "num_particles_vectorized"
"""The name of the plate of :class:`~pyro.infer.ELBO`'s vectorised particles."""

MODULE_NAMESPACE_DIVIDER = _MODULE_NAMESPACE_DIVIDER
"""The separator between a module's name and its parameter's name in Pyro's parameter store."""

compute_dice_elbo: Callable[[Trace, Trace], torch.Tensor] = _compute_dice_elbo
"""The DiCE surrogate of :class:`~pyro.infer.TraceEnum_ELBO` for one packed (model, guide) trace pair."""

check_tmc_elbo_constraint: Callable[[Trace, Trace], None] = _check_tmc_elbo_constraint
"""TraceEnum_ELBO's warnings about multiply sampled (TMC) sites."""


def is_deterministic(site: dict) -> bool:
    """Whether a trace site was recorded by ``pyro.deterministic`` (e.g. the merge of an ``obs_mask``)."""
    return bool(site["infer"].get("_deterministic"))


def pack_traces(model_trace: Trace, guide_trace: Trace) -> None:
    """Give the log-densities of both traces the packed form that :func:`compute_dice_elbo` reads."""
    guide_trace.pack_tensors()
    model_trace.pack_tensors(guide_trace.plate_to_symbol)


def vectorized_num_particles(elbo: ELBO, fn: Callable) -> Callable:
    """``fn`` inside the ELBO's outermost plate of ``num_particles`` (unchanged for one particle)."""
    return elbo._vectorized_num_particles(fn)


@contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Restore every random number generator Pyro draws from (torch's on the CPU and on each CUDA device,
    Python's and numpy's) on exit, so that the code inside consumes no random numbers."""
    python_state = random.getstate()
    numpy_state = None if numpy is None else numpy.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            if numpy_state is not None:
                numpy.random.set_state(numpy_state)


def guess_max_plate_nesting(elbo: ELBO, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> None:
    """Set ``elbo.max_plate_nesting`` as Pyro's ELBO guesses it (one run of model and guide), without
    consuming random numbers: a run that gives ``max_plate_nesting`` and one that lets it be guessed draw
    the same numbers, so an exactly resumed run does not depend on it."""
    with preserved_rng_state():
        elbo._guess_max_plate_nesting(model, guide, args, kwargs)


def masked_observe_call(error: BaseException) -> tuple[str, object, object] | None:
    """``(site name, obs_mask, distribution)`` of the ``pyro.sample(..., obs_mask=...)`` call that raised
    ``error`` (``None`` when it was raised elsewhere): Pyro's own messages ("Expected mask to be a
    BoolTensor", "Invalid obs_mask shape") do not name the site."""
    found = _frame_locals(error, "_masked_observe", ("name", "obs_mask", "fn"))
    return None if found is None else (found["name"], found["obs_mask"], found["fn"])


def empty_plate(error: BaseException) -> str | None:
    """The name of the plate whose construction raised ``error`` for a size of zero, else ``None``."""
    if not isinstance(error, ZeroDivisionError):
        return None
    found = _frame_locals(error, "__init__", ("self", "name", "size"))
    if found is None or not isinstance(found["self"], IndepMessenger) or found["size"] != 0:
        return None
    return found["name"]


def handler_chain(fn: Callable) -> tuple[list[Messenger], Callable]:
    """The messengers that Pyro handlers (``poutine.mask(fn, mask=m)``, ``poutine.scale``, ...) wrap
    around ``fn``, outermost first, and the callable inside them."""
    messengers = []
    while isinstance(fn, partial):
        wrap = fn.func if isinstance(fn.func, partial) else fn  # Pyro's _bound_partial holds a partial
        if wrap.func is not _context_wrap or len(wrap.args) != 2 or wrap.keywords:
            break
        messenger, fn = wrap.args
        messengers.append(messenger)
    return messengers, fn


def with_handlers(messengers: list[Messenger], fn: Callable) -> Callable:
    """``fn`` wrapped in ``messengers`` (outermost first), as :func:`handler_chain` found them."""
    for messenger in reversed(messengers):
        fn = messenger(fn)
    return fn


def row_tensor(messenger: Messenger) -> tuple[str, object] | None:
    """``("mask", m)`` or ``("scale", s)`` for a ``poutine.mask`` or ``poutine.scale`` messenger, else
    ``None``; ``with_row_tensor`` builds the same handler with another tensor."""
    if isinstance(messenger, MaskMessenger):
        return "mask", messenger.mask
    if isinstance(messenger, ScaleMessenger):
        return "scale", messenger.scale
    return None


def with_row_tensor(messenger: Messenger, value: torch.Tensor) -> Messenger:
    """A new ``poutine.mask`` or ``poutine.scale`` messenger, of the kind of ``messenger`` (one that
    :func:`row_tensor` recognises), holding ``value`` as its mask or scale."""
    kind, _ = row_tensor(messenger)
    return MaskMessenger(mask=value) if kind == "mask" else ScaleMessenger(scale=value)


def _frame_locals(error: BaseException, function: str, names: tuple[str, ...]) -> dict | None:
    """The named locals of the innermost call of ``function`` in the traceback of ``error``."""
    found, traceback = None, error.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name == function and all(name in frame.f_locals for name in names):
            found = {name: frame.f_locals[name] for name in names}
        traceback = traceback.tb_next
    return found


__all__ = [
    "MODULE_NAMESPACE_DIVIDER",
    "OBSERVED_SUFFIX",
    "PARTICLE_PLATE",
    "PYRO_VERSIONS",
    "UNOBSERVED_SUFFIX",
    "check_tmc_elbo_constraint",
    "compute_dice_elbo",
    "empty_plate",
    "guess_max_plate_nesting",
    "handler_chain",
    "is_deterministic",
    "masked_observe_call",
    "pack_traces",
    "preserved_rng_state",
    "row_tensor",
    "vectorized_num_particles",
    "with_handlers",
    "with_row_tensor",
]
