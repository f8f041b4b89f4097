"""Checks of the objectives' options, each error naming the argument, the value found and the valid range."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def check_real(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float, which must be finite and ≥ 0 (> 0 with ``positive``)."""
    valid = "positive (a finite number > 0)" if positive else "non-negative (a finite number >= 0)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {valid}, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return number


def check_count(name: str, value: object) -> int:
    """``value``, which must be an integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        if not (isinstance(value, float) and value.is_integer() and value >= 1):
            raise ValueError(f"{name} must be a positive integer (>= 1), got {value!r}")
    return int(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; else a :class:`ValueError` naming the option ``name``, the value
    and the choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_options(
    *,
    alpha: float | Mapping[str, float],
    gamma: float,
    num_particles: int,
    num_importance_samples: int,
    estimator: str,
    estimators: Sequence[str],
    relax: Mapping[str, float],
    max_plate_nesting: float,
) -> None:
    """The options of :class:`~pyro_partial.infer.SemiSupervisedELBO`."""
    check_choice("estimator", estimator, estimators)
    if isinstance(alpha, Mapping):
        for site, value in alpha.items():
            check_real(f"alpha[{site!r}]", value)
    else:
        check_real("alpha", alpha)
    check_real("gamma", gamma)
    check_count("num_particles", num_particles)
    check_count("num_importance_samples", num_importance_samples)
    for site, temperature in relax.items():
        check_real(f"relax[{site!r}]: the temperature", temperature, positive=True)
    if max_plate_nesting != float("inf"):
        if (
            isinstance(max_plate_nesting, bool)
            or not float(max_plate_nesting).is_integer()
            or max_plate_nesting < 0
        ):
            raise ValueError(
                f"max_plate_nesting must be an integer >= 0 (or inf, to guess it), got {max_plate_nesting!r}"
            )


__all__ = ["check_choice", "check_count", "check_options", "check_real"]
