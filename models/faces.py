"""Yale B faces with partially supervised identity and lighting (Siddharth et al. 2017, §4.2).

Generative model (:mod:`pyro_partial_models.faces_vae`), every latent independent under the prior::

    y ~ OneHotCat(1/38)               identity, partially labelled
    l ~ Uniform(S²)                   light direction, a unit 3-vector, partially labelled
    z ~ N(0, I_Z)                     everything else ("style"), never labelled
    x ~ Bernoulli(decoder(y, l, z))   the (1, H, W) face, intensities in [0, 1]

Guide q(y|x) q(l|x) q(z|x): one convolutional trunk reading out the identity logits (soft-capped at ±12), the
light's ProjectedNormal concentration and the style's mean and scale. Objective
(:class:`~pyro_partial.infer.SemiSupervisedELBO`): the ELBO on unlabelled rows and, on a labelled row (paper,
eq. 5 with the M2 identity; the importance weights are constant with this guide)

    L_sup(x, y, l) = E_q(z|x)[log p(x, y, l, z) − log q(z|x)] + α (log q(y|x) + log q(l|x)).

The classifier weight defaults to α = H · W / ρ (1,024 / ρ at 32x32), the paper's α ∝ 1 / ρ scaled per pixel:
the heads share the trunk with q(z|x), whose gradient grows with the H · W pixel terms of log p(x | y, l, z).
Unlabelled rows integrate the identity by a Gumbel-softmax relaxation (temperature ``--temperature``) by
default; ``--enumerate`` sums it out exactly, which runs the decoder 38 times per unlabelled face.

Data and split: the cropped faces (``<data root>/yaleb/CroppedYale.zip``, 2,414 images, 38 subjects, 64
light directions), resized to ``--size`` x ``--size``. ``--test-fraction`` (0.2) of each subject's images are
held out at random with ``--split-seed`` (fixed at 0 across training seeds, so every seed is tested on
the same images); identity and light are then predicted for unseen images of seen subjects. Of the
training images, ``--labels-fraction`` carry both labels (a subject-balanced subset drawn from ``--seed``,
rounded to a multiple of 38 images); the rest are unlabelled. An epoch visits every unlabelled face once,
mixed with labelled faces at the supervision rate ``--rho`` (by default the natural rate M / (N + M)); with
every face labelled it is one pass over the training faces. ``--baseline`` trains the same encoder as a
plain supervised CNN (:class:`~pyro_partial_models.faces_vae.FacesClassifier`), maximising
log q(y|x) + log q(l|x) on the labelled subset only; its epoch is one pass over that subset (give it
``--epochs 200`` on a 20% subset for about as many steps as the VAE's 40 epochs).

Defaults: 32x32 faces, convolutions of 32, 64 and 128 channels, a 256-unit hidden layer, Z = 10, batches
of 64, Adam at 1e-3, 40 epochs.

    pyro-partial train faces --labels-fraction 0.2 --seed 0               # semi-supervised, 20% labelled
    pyro-partial train faces --labels-fraction 1.0 --seed 0               # fully supervised
    pyro-partial train faces --labels-fraction 0.2 --baseline --epochs 200 --seed 0
    pyro-partial plot faces --run runs/faces/labels0.2_vae_size32_seed0

``metrics.csv`` has per epoch the loss and the held-out identity error and angular error of the light (mean
and median, degrees); ``results.json`` the final ones (``test_identity_error``, ``test_light_error_deg``,
``test_light_error_median_deg``) and, for the VAE, ``test_generative_identity_error``: the error of the
model's own posterior over the subject (:func:`~pyro_partial_models.faces_evaluation.generative_identity`,
twenty importance samples per subject), whose bound is the classifier the unlabelled faces teach q(y|x).
``plot`` writes the paper's Figure 5 analogue: a face re-rendered under varied light with its identity and
style fixed, and under varied identity with its light and style fixed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO
from torch import nn

from pyro_partial.data.sampling import ShuffledBatchSampler
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler
from pyro_partial.distributions.lighting import direction_from_angles
from pyro_partial.infer import SemiSupervisedELBO, supervision_rate
from pyro_partial.metrics import classification_error
from pyro_partial.plots import save_grid
from pyro_partial.training import DeviceBatches, Experiment, Setup
from pyro_partial_models.faces_data import FacesData, hide_unlabelled, labelled_split, load_faces
from pyro_partial_models.faces_evaluation import evaluate, generative_identity
from pyro_partial_models.faces_vae import NUM_IDENTITIES, FacesClassifier, FacesVAE


class Faces(Experiment):
    """The Yale B faces experiment (see the module docstring)."""

    name = "faces"
    description = __doc__
    defaults = {"epochs": 40, "batch_size": 64, "lr": 1e-3}
    plot_description = (
        "Write the Figure 5 analogue of a trained faces run: lighting.png (rows: held-out faces; columns: "
        "the face, then re-rendered with its identity and style under lights at --azimuths, elevation "
        "--elevation) and identity.png (the face, then re-rendered as --identities with its light and "
        "style)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--labels-fraction", type=float, default=0.2, help="fraction of training images with labels"
        )
        parser.add_argument(
            "--baseline", action="store_true", help="supervised CNN on the labelled images only"
        )
        parser.add_argument("--size", type=int, default=32, help="faces are resized to SIZE x SIZE")
        parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out images per subject")
        parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out images")
        parser.add_argument("--rho", type=float, default=None, help="supervision rate (default: M/(N+M))")
        parser.add_argument(
            "--alpha", type=float, default=None, help="weight α of log q(y, l|x) (default: SIZE² / rho)"
        )
        parser.add_argument("--temperature", type=float, default=0.5, help="Gumbel-softmax temperature of y")
        parser.add_argument(
            "--enumerate", action="store_true", help="sum y out exactly instead of relaxing it"
        )
        parser.add_argument("--z-dim", type=int, default=10, help="style dimension")
        parser.add_argument(
            "--hidden", type=int, nargs="*", default=[256], help="fully connected hidden sizes"
        )
        parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128], help="conv channels")

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        problems = []
        if not 0.0 < args.labels_fraction <= 1.0:
            problems.append(f"--labels-fraction must lie in (0, 1], got {args.labels_fraction}")
        if not 0.0 < args.test_fraction < 1.0:
            problems.append(f"--test-fraction must lie in (0, 1), got {args.test_fraction}")
        if args.rho is not None and not 0.0 < args.rho < 1.0:
            problems.append(f"--rho must lie in (0, 1), got {args.rho}")
        if args.alpha is not None and not args.alpha >= 0:  # also refuses NaN
            problems.append(f"--alpha must be a non-negative number, got {args.alpha}")
        if not args.temperature > 0:
            problems.append(f"--temperature must be positive, got {args.temperature}")
        if args.z_dim < 1:
            problems.append(f"--z-dim must be a positive dimension, got {args.z_dim}")
        if any(size < 1 for size in args.hidden + args.channels):
            problems.append(
                f"--hidden and --channels must be positive, got {args.hidden} and {args.channels}"
            )
        if args.size < 2 ** len(args.channels):
            problems.append(
                f"--size must be at least 2^{len(args.channels)} = {2 ** len(args.channels)} (one "
                f"halving per --channels entry), got {args.size}"
            )
        return problems

    def run_name(self, args: argparse.Namespace) -> str:
        kind = "baseline" if args.baseline else "vae"
        return f"labels{args.labels_fraction:g}_{kind}_size{args.size}_seed{args.seed}"

    def load_data(self, args: argparse.Namespace) -> FacesData:
        return load_faces(args.data, args.size, args.test_fraction, args.split_seed, download=args.download)

    def build_module(self, model_config: dict[str, Any]) -> FacesVAE | FacesClassifier:
        config = dict(model_config)
        return FacesClassifier(**config) if config.pop("baseline") else FacesVAE(**config)

    def build(self, args: argparse.Namespace, data: FacesData) -> Setup:
        split = labelled_split(data.train_subject, args.labels_fraction, args.seed)
        num_labelled = len(data.train_subject) if split is None else split.num_labelled
        num_unlabelled = 0 if split is None else split.num_unlabelled
        if args.baseline or split is None:
            rows = torch.arange(len(data.train_subject)) if split is None else split.labelled
            sampler = ShuffledBatchSampler(rows, args.batch_size, seed=args.seed, labelled=True)
            rho = 1.0
        else:
            sampler = SemiSupervisedBatchSampler(split, args.batch_size, rho=args.rho, seed=args.seed)
            rho = sampler.rho if args.rho is not None else supervision_rate(1.0, num_labelled, num_unlabelled)
        alpha = args.alpha if args.alpha is not None else args.size**2 / rho

        model_config = {
            "baseline": args.baseline,
            "image_shape": [1, args.size, args.size],
            "z_dim": args.z_dim,
            "hidden": list(args.hidden),
            "channels": list(args.channels),
        }
        module = self.build_module(model_config)
        if args.baseline:
            elbo = Trace_ELBO(max_plate_nesting=1)
        else:
            elbo = SemiSupervisedELBO(
                alpha=alpha,
                relax=None if args.enumerate else {"identity": args.temperature},
                max_plate_nesting=1,
                split_on="mask",
            )
        identity = nn.functional.one_hot(data.train_subject, NUM_IDENTITIES).to(data.train_x.dtype)
        tensors = {"images": data.train_x, "identity": identity, "light": data.train_light}
        batches = DeviceBatches(sampler, tensors, gather=hide_unlabelled)

        def evaluate_test(epoch: int) -> dict[str, float]:
            return evaluate(module, data.test_x, data.test_subject, data.test_light)

        kind = "supervised CNN baseline" if args.baseline else f"VAE (alpha={alpha:.4g}, rho={rho:.4g})"
        summary = (
            f"{args.size}x{args.size} faces: {num_labelled} labelled, {num_unlabelled} unlabelled training "
            f"images, {len(data.test_subject)} test images; {kind}"
        )
        extra = {"num_labelled": num_labelled, "num_unlabelled": num_unlabelled, "rho": rho, "alpha": alpha}
        return Setup(module, elbo, batches, model_config, evaluate_test, summary, extra)

    def results(
        self, args: argparse.Namespace, data: FacesData, setup: Setup, history: list[dict[str, float]]
    ) -> dict[str, Any]:
        test = evaluate(setup.module, data.test_x, data.test_subject, data.test_light)
        if not args.baseline:
            decoder_guess = generative_identity(setup.module, data.test_x)
            test["generative_identity_error"] = classification_error(decoder_guess, data.test_subject)
        print(
            f"test identity error {100 * test['identity_error']:.2f}%, light angular error "
            f"{test['light_error_deg']:.2f} deg (median {test['light_error_median_deg']:.2f}) "
            f"after {len(history)} epochs"
        )
        return {
            "baseline": args.baseline,
            "labels_fraction": args.labels_fraction,
            "num_labelled": setup.extra["num_labelled"],
            "num_unlabelled": setup.extra["num_unlabelled"],
            "num_test": len(data.test_subject),
            "rho": setup.extra["rho"],
            "alpha": None if args.baseline else setup.extra["alpha"],
            **{f"test_{name}": value for name, value in test.items()},
        }

    def add_plot_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(num_images=4)
        parser.add_argument(
            "--azimuths", type=float, nargs="+", default=[-110, -70, -35, 0, 35, 70, 110], help="degrees"
        )
        parser.add_argument("--elevation", type=float, default=0.0, help="degrees")
        parser.add_argument(
            "--identities", type=identity_index, nargs="+", default=list(range(8)), help="subjects 0..37"
        )

    def plot(self, args: argparse.Namespace, module: nn.Module, config: dict[str, Any]) -> dict[str, Path]:
        if not isinstance(module, FacesVAE):
            raise ValueError(f"--run {args.run} is a supervised baseline: it has no decoder to render with")
        # the run's own faces and split, from this command's data root
        data = self.load_data(
            argparse.Namespace(**{**config["arguments"], "data": args.data, "download": args.download})
        )
        generator = torch.Generator().manual_seed(args.seed)
        xs = data.test_x[torch.randperm(len(data.test_x), generator=generator)[: args.num_images]]
        angles = torch.tensor([[azimuth, args.elevation] for azimuth in args.azimuths])
        return {
            "lighting": save_grid(
                lighting_grid(module, xs, direction_from_angles(angles).to(xs)), args.out / "lighting.png"
            ),
            "identity": save_grid(identity_grid(module, xs, args.identities), args.out / "identity.png"),
        }


def identity_index(text: str) -> int:
    """``--identities``: a subject index in ``0..37``."""
    value = int(text)
    if not 0 <= value < NUM_IDENTITIES:
        raise argparse.ArgumentTypeError(f"subjects lie in 0..{NUM_IDENTITIES - 1}, got {value}")
    return value


@torch.no_grad()
def lighting_grid(vae: FacesVAE, xs: torch.Tensor, lights: torch.Tensor) -> torch.Tensor:
    """Each face re-rendered under each light, identity and style fixed at q's prediction and mean.

    :param xs: faces ``(B, 1, H, W)``; :param lights: unit light vectors ``(L, 3)``.
    :returns: grid ``(B, 1 + L, 1, H, W)``: the face, then its renderings.
    """
    posterior = vae.encode(xs)
    identity = nn.functional.one_hot(posterior.identity_logits.argmax(-1), vae.num_identities).to(xs.dtype)
    rendered = vae.decode(identity.unsqueeze(1), lights, posterior.z_loc.unsqueeze(1))
    return torch.cat([xs.unsqueeze(1), rendered], dim=1)


@torch.no_grad()
def identity_grid(vae: FacesVAE, xs: torch.Tensor, identities: Sequence[int]) -> torch.Tensor:
    """Each face re-rendered as each identity, light and style fixed at q's prediction and mean.

    :param xs: faces ``(B, 1, H, W)``; :param identities: K subject indices in ``0..37``.
    :returns: grid ``(B, 1 + K, 1, H, W)``: the face, then its renderings.
    """
    posterior = vae.encode(xs)
    light = dist.ProjectedNormal(posterior.light_concentration).mode
    subjects = torch.as_tensor(list(identities), device=xs.device)
    one_hot = nn.functional.one_hot(subjects, vae.num_identities).to(xs.dtype)
    rendered = vae.decode(one_hot, light.unsqueeze(1), posterior.z_loc.unsqueeze(1))
    return torch.cat([xs.unsqueeze(1), rendered], dim=1)
