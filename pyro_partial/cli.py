"""The ``pyro-partial`` command: train the experiments of ``models/`` and plot their runs.

    pyro-partial train mnist --labels 100 --epochs 3 --seed 0
    pyro-partial train mnist --help                 # the experiment's own arguments
    pyro-partial plot mnist --run runs/mnist/labels100_m2_mlp_seed0

An experiment is a module ``models/<name>.py`` of the repository with ``main(argv)``, which trains, and
optionally ``plot(argv)``, which writes figures of a trained run; when they take a ``prog`` argument, it
receives the command's name (``pyro-partial train mnist``) for their usage messages and run records.
The ``models`` package is not installed with ``pyro_partial``: it is imported from the working
directory, else from the checkout that holds an editable install of ``pyro_partial``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pyro_partial

PROG = "pyro-partial"


def import_models() -> ModuleType:
    """The repository's ``models`` package; raises :class:`RuntimeError` outside a checkout."""
    try:
        return importlib.import_module("models")
    except ModuleNotFoundError as error:
        if error.name != "models":
            raise
    checkout = Path(pyro_partial.__file__).resolve().parents[1]
    if not (checkout / "models" / "__init__.py").is_file():
        raise RuntimeError(
            "the experiments live in the models/ folder of a pyro-partial checkout, which is not installed "
            f"with the package: run {PROG} from the repository root, or install the checkout with "
            "`pip install -e .`"
        )
    sys.path.insert(0, str(checkout))
    return importlib.import_module("models")


def experiments() -> dict[str, set[str]]:
    """``{name: commands}`` for the modules ``models/<name>.py`` (public names) that define a top-level
    ``main`` function, ``commands`` holding ``"train"`` and, where ``plot`` is defined too, ``"plot"``.

    The modules' sources are parsed, not imported: listing them runs none of their code.
    """
    models = import_models()
    found = {}
    for info in pkgutil.iter_modules(models.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        source = importlib.util.find_spec(f"models.{info.name}").origin
        tree = ast.parse(Path(source).read_text(), filename=source)
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if "main" in functions:
            found[info.name] = {"train"} | ({"plot"} if "plot" in functions else set())
    return found


def build_parser(available: dict[str, set[str]]) -> argparse.ArgumentParser:
    plottable = sorted(name for name, commands in available.items() if "plot" in commands)
    listing = f"experiments: {', '.join(sorted(available)) or '(none found)'}"
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, epilog=listing, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,plot}")
    train = commands.add_parser(
        "train",
        help="train an experiment",
        description="Train an experiment; the arguments after its name are the experiment's own.",
        epilog=f"{listing}. `{PROG} train EXPERIMENT --help` lists an experiment's arguments.",
    )
    train.add_argument("experiment", choices=sorted(available), help="experiment name")
    train.add_argument("arguments", nargs=argparse.REMAINDER, help="the experiment's arguments")
    plot = commands.add_parser(
        "plot",
        help="write PNG figures of a trained run",
        description="Write PNG figures of a trained run (reconstructions, analogies, style variation).",
        epilog=f"`{PROG} plot EXPERIMENT --help` lists the options, e.g. --run DIR --out DIR.",
    )
    plot.add_argument("experiment", choices=plottable, help="experiment name")
    plot.add_argument("arguments", nargs=argparse.REMAINDER, help="--run DIR [--out DIR] ...")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    available = experiments()
    args = build_parser(available).parse_args(argv)
    module = importlib.import_module(f"models.{args.experiment}")
    run = getattr(module, "main" if args.command == "train" else "plot")
    if "prog" in inspect.signature(run).parameters:
        run(args.arguments, prog=f"{PROG} {args.command} {args.experiment}")
    else:
        run(args.arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
