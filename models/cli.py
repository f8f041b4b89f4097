"""The ``pyro-partial`` command: train the papers' experiments and plot their runs.

    pyro-partial train mnist --labels 100 --epochs 3 --seed 0
    pyro-partial train mnist --help                 # the experiment's own options and the shared ones
    pyro-partial plot mnist --run runs/mnist/labels100_m2_mlp_seed0

Every experiment is an :class:`~pyro_partial.training.Experiment` trained and plotted by
:mod:`pyro_partial.training.runner`; :data:`EXPERIMENTS` names them. The command is installed with the package
(``pip install pyro-partial``) and needs no checkout.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pyro_partial.training import Experiment, runner

PROG = "pyro-partial"
EXPERIMENTS = {
    "mnist": "pyro_partial_models.mnist:MNIST",
    "svhn": "pyro_partial_models.svhn:SVHN",
    "faces": "pyro_partial_models.faces:Faces",
    "multi_mnist": "pyro_partial_models.multi_mnist:MultiMNISTExperiment",
    "mlvae": "pyro_partial_models.mlvae:MLVAE",
    "pinwheel": "pyro_partial_models.decomposition:Pinwheel",
    "sparsity": "pyro_partial_models.decomposition:Sparsity",
    "dsprites": "pyro_partial_models.decomposition:DSpritesIndependence",
}
"""``name: "module:class"`` of each experiment (imported only when used)."""


def experiment(name: str) -> Experiment:
    """The experiment called ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"no experiment {name!r}; the experiments are {sorted(EXPERIMENTS)}")
    module, class_name = EXPERIMENTS[name].split(":")
    return getattr(importlib.import_module(module), class_name)()


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``pyro-partial``: the ``train`` and ``plot`` commands, each taking an experiment name
    (a key of :data:`EXPERIMENTS`) followed by that experiment's own options."""
    listing = f"experiments: {', '.join(sorted(EXPERIMENTS))}"
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, epilog=listing, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,plot}")
    train = commands.add_parser(
        "train",
        help="train an experiment",
        description="Train an experiment; the arguments after its name are the experiment's own.",
        epilog=f"{listing}. `{PROG} train EXPERIMENT --help` lists an experiment's options.",
    )
    train.add_argument("experiment", choices=sorted(EXPERIMENTS), help="experiment name")
    train.add_argument("arguments", nargs=argparse.REMAINDER, help="the experiment's options")
    plot = commands.add_parser(
        "plot",
        help="write PNG figures of a trained run",
        description="Write PNG figures of a trained run.",
        epilog=f"`{PROG} plot EXPERIMENT --help` lists the options, e.g. --run DIR --out DIR.",
    )
    plot.add_argument("experiment", choices=sorted(EXPERIMENTS), help="experiment name")
    plot.add_argument("arguments", nargs=argparse.REMAINDER, help="--run DIR [--out DIR] ...")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = experiment(args.experiment)
    prog = f"{PROG} {args.command} {args.experiment}"
    if args.command == "train":
        runner.train(chosen, args.arguments, prog)
    elif not chosen.plot_description:
        parser.error(f"experiment {args.experiment!r} draws no figures")
    else:
        runner.plot(chosen, args.arguments, prog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
