"""The arguments of a model call: checking them, naming them in errors, and taking a subset of their rows."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from pyro_partial.infer.pyro_internals import empty_plate, masked_observe_call


def argument_names(fn: Callable, num_args: int) -> list[str]:
    """Names for the first ``num_args`` positional arguments of ``fn`` in error messages: the parameter
    names of a function or of a module's ``forward``, ``args[i]`` where there are none."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = []
    for i in range(num_args):
        if i < len(parameters) and parameters[i].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            names.append(parameters[i].name)
        else:
            names.append(f"args[{i}]")
    return names


def check_finite_inputs(fn: Callable, args: tuple, kwargs: dict) -> None:
    """Raise a :class:`ValueError` naming the argument when a floating-point input holds NaN or ±inf."""
    named = list(zip(argument_names(fn, len(args)), args, strict=True)) + list(kwargs.items())
    for name, value in named:
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"argument {name!r} holds {count_non_finite(value)} in a tensor of shape "
                f"{tuple(value.shape)}; the data must be finite"
            )


def count_non_finite(value: torch.Tensor) -> str:
    """E.g. ``"1 NaN value(s) and 2 infinite value(s)"``."""
    nan, inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
    return " and ".join([f"{nan} NaN value(s)"] * bool(nan) + [f"{inf} infinite value(s)"] * bool(inf))


def take_rows(args: tuple, kwargs: dict, rows: torch.Tensor) -> tuple[tuple, dict]:
    """The call restricted to ``rows`` (a 1-D bool tensor of length B): every tensor argument whose first
    dimension is B is indexed by it; other arguments pass unchanged."""
    size = rows.shape[0]

    def take(value):
        if torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == size:
            return value[rows]
        return value

    return tuple(take(v) for v in args), {k: take(v) for k, v in kwargs.items()}


def has_rows(args: tuple, kwargs: dict, size: int) -> bool:
    """Whether some tensor argument has ``size`` rows (its first dimension)."""
    return any(torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == size for v in (*args, *kwargs.values()))


@contextmanager
def model_errors_named() -> Iterator[None]:
    """Re-raise Pyro's errors for a bad ``obs_mask`` (not a bool tensor, or of a shape that does not
    broadcast) and for an empty plate, naming the site or plate, what was found and what is expected."""
    try:
        yield
    except ZeroDivisionError as error:
        plate = empty_plate(error)
        if plate is None:
            raise
        raise ValueError(
            f"plate {plate!r} has size 0: the mini-batch is empty; expected at least one row"
        ) from error
    except ValueError as error:
        pyro_message = "BoolTensor" in str(error) or str(error).startswith("Invalid obs_mask shape")
        call = masked_observe_call(error) if pyro_message else None
        if call is None:
            raise
        name, mask, _ = call
        if not (torch.is_tensor(mask) and mask.dtype == torch.bool):
            found = (
                f"dtype {mask.dtype} and shape {tuple(mask.shape)}"
                if torch.is_tensor(mask)
                else f"type {type(mask).__name__}"
            )
            raise ValueError(
                f"site {name!r}: obs_mask has {found}, expected a bool tensor (torch.bool) broadcastable "
                "to the site's batch shape; convert it with mask.bool()"
            ) from error
        raise ValueError(
            f"site {name!r}: obs_mask has shape {tuple(mask.shape)}, expected a bool tensor of the site's "
            f"batch shape, e.g. (batch,), not (batch, 1) (Pyro: {str(error).splitlines()[0]})"
        ) from error


__all__ = [
    "argument_names",
    "check_finite_inputs",
    "count_non_finite",
    "has_rows",
    "model_errors_named",
    "take_rows",
]
