"""Effect-handler helpers for models whose structure is itself random."""

from pyro_partial.poutine.random_length import random_steps

__all__ = ["random_steps"]
