"""Atomic checkpoints of everything a training run needs to continue exactly.

A checkpoint holds the modules' state dicts (buffers included, which Pyro's param store does not keep),
the param store, the Pyro optimiser's per-parameter states, the random number generators of Python,
NumPy and torch, and any extra picklable state (epoch, sampler position, metric history).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from pyro.optim import PyroOptim
from pyro.params.param_store import _MODULE_NAMESPACE_DIVIDER, module_from_param_with_module_name


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash leaves either the old file or the new one, never a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rng_state() -> dict[str, Any]:
    # the legacy global NumPy state is what third-party code draws from, so it is what must be restored
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    path: str | os.PathLike,
    modules: dict[str, torch.nn.Module],
    optim: PyroOptim,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (see module docstring for its contents).

    ``modules`` maps the names passed to ``pyro.module`` to the modules.
    """
    state = {
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "param_store": pyro.get_param_store().get_state(),
        "optim": optim.get_state(),
        "rng": rng_state(),
        "extra": extra or {},
    }
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(
    path: str | os.PathLike, modules: dict[str, torch.nn.Module], optim: PyroOptim
) -> dict[str, Any]:
    """Restore modules, param store, optimiser and RNGs from ``path``; return the ``extra`` state."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train without --resume to start a new run")
    state = torch.load(path, map_location="cpu", weights_only=False)
    missing = sorted(set(state["modules"]) ^ set(modules))
    if missing:
        raise ValueError(
            f"checkpoint {path} holds modules {sorted(state['modules'])}, expected {sorted(modules)}"
        )
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    # Module parameters come back through the modules' own tensors (pyro.module registers them again
    # on the next step); only free-standing pyro.param sites are restored through the param store.
    store = pyro.get_param_store()
    store.clear()
    store.set_state(state["param_store"])
    for param_name in list(store.keys()):
        if (
            _MODULE_NAMESPACE_DIVIDER in param_name
            and module_from_param_with_module_name(param_name) in modules
        ):
            del store[param_name]
    optim.set_state(state["optim"])
    set_rng_state(state["rng"])
    return state["extra"]


def load_trained_module(
    run_dir: str | os.PathLike,
    module_name: str,
    build: Callable[[dict[str, Any]], torch.nn.Module],
    *,
    experiments: Collection[str] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A run directory's module at its last checkpoint (in eval mode) and the run's ``config.json``.

    :param module_name: the module's name in the checkpoint (the ``modules`` key given to ``fit``).
    :param build: makes the untrained module from the run's config.
    :param experiments: the ``config["experiment"]`` values accepted (any when omitted).
    """
    run_dir = Path(run_dir)
    config_path, checkpoint_path = run_dir / "config.json", run_dir / "checkpoint.pt"
    for path in (config_path, checkpoint_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --run must be a run directory written by training")
    config = json.loads(config_path.read_text())
    if experiments is not None and config.get("experiment") not in experiments:
        raise ValueError(
            f"{run_dir} is a {config.get('experiment')!r} run, not a {' or '.join(sorted(experiments))} run"
        )
    module = build(config)
    # written by save_checkpoint, which pickles RNG states: load trusted files only
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    module.load_state_dict(state["modules"][module_name])
    return module.eval(), config
