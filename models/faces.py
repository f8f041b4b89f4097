"""Yale B faces with partially supervised identity and lighting (Siddharth et al. 2017, §4.2).

Generative model, every latent independent under the prior (the paper imposes structure only through the
guide and the supervision)::

    y ~ OneHotCat(1/38)          identity, partially labelled
    l ~ Uniform(S²)              light direction, a unit 3-vector, partially labelled (pyro_partial.lighting)
    z ~ N(0, I_Z)                everything else ("style"), never labelled
    x ~ Bernoulli(decoder(y, l, z))   the (1, H, W) face, intensities in [0, 1]

The guide factorises as q(y|x) q(l|x) q(z|x): one convolutional trunk (:class:`~pyro_partial.nn.ConvEncoder`)
with a linear read-out of the identity logits ``(B, 38)``, the light's ProjectedNormal concentration
``(B, 3)`` (its direction is the predicted light, its norm the confidence) and the style's mean and scale
``(B, Z)`` each. With this guide the importance weights of the supervised term are constant, and on a
labelled row (paper, eq. 5 with the M2 identity)

    L_sup(x, y, l) = E_q(z|x)[log p(x, y, l, z) − log q(z|x)] + α (log q(y|x) + log q(l|x)).

The classifier weight defaults to α = H · W / ρ (1,024 / ρ at 32x32), the paper's α ∝ 1 / ρ scaled per pixel:
the heads share the trunk with q(z|x), whose gradient grows with the H · W pixel terms of log p(x | y, l, z).
Measured on 32x32 faces with all labels: at α = 0.1 / ρ the identity stayed at chance and the light at 30°
after four epochs; at the default α and 40 epochs the test identity error is about 7% and the light's error
about 4°, and α = 0.1 · H · W / ρ did as well (7.1%, 4.0°, one seed). With 20% labels, one seed at
α = 0.1 · H · W / ρ beat the default on identity (38.6% against 42.2%; docs/results.md).

The identity logits are soft-capped, ``max_logit · tanh(logits / max_logit)`` with ``max_logit = 12``. With a
large α, q(y|x) grows so confident that the Gumbel-softmax sample of an unlabelled row underflows to an exact
zero in float32 (logit gaps beyond about 50 at temperature 0.5), whose log density is NaN: a 20%-labelled run
at α ≈ 5,000 turned NaN after 19 epochs without the cap. The cap bounds the odds of two identities by e^24,
which keeps the relaxed samples positive for temperatures of 0.5 and above.

The likelihood is the Bernoulli cross-entropy on grey levels, as in the other experiments: no scale to tune,
means bounded to [0, 1], and Yale B's dark shadows (most pixels near 0) stay well modelled. Unlabelled rows
integrate the identity by a Gumbel-softmax relaxation (temperature ``--temperature``) by default: exact
enumeration (``--enumerate``) runs the decoder 38 times per unlabelled face, too slow on a CPU.

Data and split: the cropped faces (``<data root>/yaleb/CroppedYale.zip``, 2,414 images, 38 subjects, 64
light directions), resized to ``--size`` x ``--size``. ``--test-fraction`` (0.2) of each subject's images are
held out at random with ``--split-seed`` (fixed at 0 across training seeds, so every seed is tested on
the same images); identity and light are then predicted for unseen images of seen subjects. Of the
training images, ``--labels-fraction`` carry both labels (a subject-balanced subset drawn from ``--seed``,
rounded to a multiple of 38 images); the rest are unlabelled. ``--baseline`` trains the same encoder as a
plain supervised CNN, maximising log q(y|x) + log q(l|x) on the labelled subset only.

Defaults: 32x32 faces, convolutions of 32, 64 and 128 channels, a 256-unit hidden layer, Z = 10, batches
of 64, Adam at 1e-3, 40 epochs. An epoch of the VAE is one pass over the 1,924 training faces (31 steps),
so a run makes about 1,240 steps: 3–5 minutes on one CPU thread. The baseline's epoch is one pass over the
labelled subset only; give it ``--epochs 200`` on a 20% subset for the same number of steps (1–2 minutes).

    python -m models.faces --labels-fraction 0.2 --seed 0                 # semi-supervised, 20% labelled
    python -m models.faces --labels-fraction 1.0 --seed 0                 # fully supervised
    python -m models.faces --labels-fraction 0.2 --baseline --epochs 200 --seed 0
    pyro-partial train faces --labels-fraction 0.2 --seed 0               # the same, console script
    pyro-partial plot faces --run runs/faces/labels0.2_vae_size32_seed0

writes ``config.json``, ``metrics.csv`` (per epoch: loss, test identity error, test angular error),
``checkpoint.pt`` (atomic, after every epoch; ``--resume`` continues exactly) and ``results.json`` (the
held-out identity error, the mean and median angular error of the light in degrees, time, command,
versions, seed) under ``--out``. ``plot`` writes the paper's Figure 5 analogue: a face re-rendered under
varied light with its identity and style fixed, and under varied identity with its light and style fixed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from models import _semi_supervised
from pyro_partial.data.sampling import ResumableBatchSampler
from pyro_partial.data.semi_supervised import SemiSupervisedBatchSampler, SemiSupervisedSplit
from pyro_partial.data.yaleb import YaleB, train_test_split
from pyro_partial.infer import SemiSupervisedELBO, supervision_rate
from pyro_partial.lighting import LIGHT_DIM, direction_from_angles, lighting_prior
from pyro_partial.metrics import angular_error, classification_error
from pyro_partial.nn import ConvDecoder, ConvEncoder
from pyro_partial.plots import parse_run_figures_args, run_figures_parser, save_grid
from pyro_partial.training import (
    add_run_arguments,
    fit,
    load_trained_module,
    parse_recording_command,
    parsed_arguments,
    run_timing,
    write_results,
)

NUM_IDENTITIES = 38
PROG = "python -m models.faces"
CONFIG, CHECKPOINT, RESULTS = "config.json", "checkpoint.pt", "results.json"
MODULE = "faces"


class Posterior(NamedTuple):
    """The guide's parameters for images ``(B, 1, H, W)``."""

    identity_logits: torch.Tensor  # (B, 38)
    light_concentration: torch.Tensor  # (B, 3): direction = predicted light, norm = confidence
    z_loc: torch.Tensor  # (B, Z)
    z_scale: torch.Tensor  # (B, Z)


class FacesVAE(nn.Module):
    """Identity y, light direction l and style z generate a face (see the module docstring).

    :param image_shape: ``(1, H, W)`` of the faces, intensities in [0, 1].
    :param num_identities: number of values of y (38 subjects).
    :param z_dim: style dimension Z.
    :param hidden: hidden sizes of the fully connected layers after the encoder's convolutions and
        before the decoder's transposed convolutions.
    :param channels: channels of the encoder's stride-2 convolutions (the decoder mirrors them).
    :param activation: activation of both networks (see :class:`~pyro_partial.nn.MLP`).
    :param min_scale: lower bound of the style's posterior scale.
    :param max_logit: the identity logits are soft-capped to ``(-max_logit, max_logit)`` (see the module
        docstring: a larger spread lets the Gumbel-softmax sample underflow to an exact zero).

    ``model`` and ``guide`` take images ``xs`` ``(B, 1, H, W)``, one-hot identities ``(B, 38)``, unit light
    vectors ``(B, 3)`` and a bool ``mask`` ``(B,)`` true on labelled rows (both labels are given or neither:
    :class:`~pyro_partial.infer.SemiSupervisedELBO` needs one row mask for all partially observed sites).
    Values on unlabelled rows are ignored; omitting the labels makes the whole batch unlabelled.
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 32, 32),
        num_identities: int = NUM_IDENTITIES,
        z_dim: int = 10,
        hidden: Sequence[int] = (256,),
        channels: Sequence[int] = (32, 64, 128),
        activation: str = "relu",
        min_scale: float = 1e-3,
        max_logit: float = 12.0,
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {image_shape}")
        if num_identities < 2 or z_dim < 1:
            raise ValueError(f"need num_identities >= 2 and z_dim >= 1, got {num_identities} and {z_dim}")
        if max_logit <= 0:
            raise ValueError(f"max_logit must be positive, got {max_logit}")
        self.num_identities, self.z_dim, self.min_scale = num_identities, z_dim, min_scale
        self.max_logit = max_logit
        self._split = [num_identities, LIGHT_DIM, z_dim, z_dim]
        self.encoder = ConvEncoder(
            image_shape, sum(self._split), hidden, channels=channels, activation=activation
        )
        self.decoder = ConvDecoder(
            num_identities + LIGHT_DIM + z_dim,
            image_shape,
            hidden[::-1],
            channels=channels[::-1],
            activation=activation,
        )

    def encode(self, xs: torch.Tensor) -> Posterior:
        """The guide's parameters for images ``xs`` ``(B, 1, H, W)``."""
        if xs.dim() != 4 or tuple(xs.shape[1:]) != self.image_shape:
            raise ValueError(
                f"xs must be images of shape (batch, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(xs.shape)}"
            )
        raw_logits, concentration, z_loc, raw_scale = self.encoder(xs).split(self._split, dim=-1)
        logits = self.max_logit * torch.tanh(raw_logits / self.max_logit)
        return Posterior(logits, concentration, z_loc, nn.functional.softplus(raw_scale) + self.min_scale)

    def _labels(
        self,
        xs: torch.Tensor,
        identity: torch.Tensor | None,
        light: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = xs.shape[0]
        if (identity is None) != (light is None):
            raise ValueError(
                "pass both identity and light (with mask for a partially labelled batch) or neither"
            )
        if identity is None:  # a fully unlabelled batch: valid placeholders, masked out everywhere
            identity, light = placeholders(batch, self.num_identities, dtype=xs.dtype, device=xs.device)
            return identity, light, torch.zeros(batch, dtype=torch.bool, device=xs.device)
        if identity.shape != (batch, self.num_identities):
            raise ValueError(
                f"identity must be one-hot of shape ({batch}, {self.num_identities}), "
                f"got {tuple(identity.shape)}"
            )
        if light.shape != (batch, LIGHT_DIM):
            raise ValueError(f"light must be unit vectors of shape ({batch}, 3), got {tuple(light.shape)}")
        if mask is None:
            mask = torch.ones(batch, dtype=torch.bool, device=xs.device)
        elif mask.shape != (batch,) or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be a bool tensor of shape ({batch},), got {mask.dtype} {tuple(mask.shape)}"
            )
        return identity, light, mask

    def model(
        self,
        xs: torch.Tensor,
        identity: torch.Tensor | None = None,
        light: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """p(x, y, l, z) = p(y) p(l) p(z) p(x | y, l, z), y and l observed where ``mask`` is true."""
        identity, light, mask = self._labels(xs, identity, light, mask)
        pyro.module(MODULE, self)
        with pyro.plate("data", xs.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([self.z_dim]).to_event(1))
            prior = dist.OneHotCategorical(logits=xs.new_zeros(self.num_identities))
            y = pyro.sample("identity", prior, obs=identity, obs_mask=mask)
            light_prior = lighting_prior(dtype=xs.dtype, device=xs.device)
            lit = pyro.sample("light", light_prior, obs=light, obs_mask=mask)
            likelihood = dist.Bernoulli(logits=self.decoder(y, lit, z), validate_args=False)
            pyro.sample("x", likelihood.to_event(3), obs=xs)

    def guide(
        self,
        xs: torch.Tensor,
        identity: torch.Tensor | None = None,
        light: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """q(y|x) q(l|x) q(z|x); same arguments as :meth:`model`."""
        identity, light, mask = self._labels(xs, identity, light, mask)
        pyro.module(MODULE, self)
        posterior = self.encode(xs)
        with pyro.plate("data", xs.shape[0]):
            y_dist = dist.OneHotCategorical(logits=posterior.identity_logits)
            pyro.sample("identity", y_dist, obs=identity, obs_mask=mask)
            pyro.sample(
                "light", dist.ProjectedNormal(posterior.light_concentration), obs=light, obs_mask=mask
            )
            pyro.sample("z", dist.Normal(posterior.z_loc, posterior.z_scale).to_event(1))

    def discriminative_model(
        self,
        xs: torch.Tensor,
        identity: torch.Tensor,
        light: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> None:
        """The baseline: the guide's q(y|x) q(l|x) as a conditional model of the labels given the image,
        rows with ``mask`` false ignored. With an empty guide, ``Trace_ELBO`` minimises the supervised
        CNN's loss −Σ_rows [log q(y|x) + log q(l|x)] (cross-entropy plus the light's negative log density)."""
        identity, light, mask = self._labels(xs, identity, light, mask)
        pyro.module(MODULE, self)
        posterior = self.encode(xs)
        with pyro.plate("data", xs.shape[0]), poutine.mask(mask=mask):
            pyro.sample("identity", dist.OneHotCategorical(logits=posterior.identity_logits), obs=identity)
            pyro.sample("light", dist.ProjectedNormal(posterior.light_concentration), obs=light)

    @torch.no_grad()
    def predict(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The most probable identity ``(B,)`` and the mode of q(l|x), a unit vector ``(B, 3)``."""
        posterior = self.encode(xs)
        return posterior.identity_logits.argmax(-1), dist.ProjectedNormal(posterior.light_concentration).mode

    @torch.no_grad()
    def decode(self, identity: torch.Tensor, light: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Mean face E[x | y, l, z] in [0, 1], ``(..., 1, H, W)``, for one-hot identities ``(..., 38)``,
        light directions ``(..., 3)`` and styles ``(..., Z)`` (batch dimensions broadcast)."""
        return torch.sigmoid(self.decoder(identity, light, z))


def placeholders(
    batch: int, num_identities: int = NUM_IDENTITIES, **tensor_options
) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid label values for unlabelled rows: identity 0 ``(batch, 38)`` and a light at the camera
    ``(batch, 3)``. Pyro evaluates a partially observed site's density on every row before masking."""
    identity = torch.zeros(batch, num_identities, **tensor_options)
    identity[:, 0] = 1
    light = torch.zeros(batch, LIGHT_DIM, **tensor_options)
    light[:, 2] = 1
    return identity, light


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class FacesData:
    """Faces ``(N, 1, H, W)`` in [0, 1], subject indices ``(N,)`` in ``0..37`` and unit light vectors
    ``(N, 3)`` of the training and held-out test split."""

    train_x: torch.Tensor
    train_subject: torch.Tensor
    train_light: torch.Tensor
    test_x: torch.Tensor
    test_subject: torch.Tensor
    test_light: torch.Tensor


def load_faces(
    root: str | Path | None, size: int, test_fraction: float = 0.2, split_seed: int = 0
) -> FacesData:
    """Yale B resized to ``size`` x ``size``, split by :func:`pyro_partial.data.yaleb.train_test_split`
    (``round(test_fraction · n_s)`` random images of each subject ``s`` held out)."""
    faces = YaleB(root, size=(size, size))
    x = faces.images.unsqueeze(1).float() / 255.0
    subject = torch.from_numpy(faces.subject)
    angles = np.stack([faces.azimuth, faces.elevation], axis=-1)
    light = torch.from_numpy(direction_from_angles(angles)).float()
    train, test = (
        torch.from_numpy(rows) for rows in train_test_split(faces.subject, test_fraction, split_seed)
    )
    return FacesData(x[train], subject[train], light[train], x[test], subject[test], light[test])


class ShuffledBatchSampler(ResumableBatchSampler):
    """``(index, is_labelled)`` batches of a fixed set of labelled rows, reshuffled every epoch from
    ``numpy.random.default_rng([seed, epoch])`` (fully supervised training and the baseline)."""

    def __init__(self, rows: torch.Tensor, batch_size: int, seed: int = 0):
        if rows.dim() != 1 or len(rows) == 0:
            raise ValueError(f"rows must be a non-empty index tensor of shape (M,), got {tuple(rows.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        super().__init__()

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def _config(self) -> dict:
        return {"seed": self.seed, "batch_size": self.batch_size, "num_rows": len(self.rows)}

    def _epoch_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.rows[
            torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(len(self.rows)))
        ]
        for batch in order.split(self.batch_size):
            yield batch, torch.ones(len(batch), dtype=torch.bool)


class Batches:
    """The sampler's remaining batches as ``(images, one-hot identities, lights, is_labelled)``, the labels
    of unlabelled rows replaced by :func:`placeholders` (so nothing can leak from them)."""

    def __init__(
        self, sampler: ResumableBatchSampler, x: torch.Tensor, subject: torch.Tensor, light: torch.Tensor
    ):
        self.sampler, self.x, self.light = sampler, x, light
        self.identity = nn.functional.one_hot(subject, NUM_IDENTITIES).to(x.dtype)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for index, is_labelled in self.sampler:
            identity, light = placeholders(len(index), dtype=self.x.dtype)
            keep = is_labelled.unsqueeze(-1)
            identity = torch.where(keep, self.identity[index], identity)
            light = torch.where(keep, self.light[index], light)
            yield self.x[index], identity, light, is_labelled


@torch.no_grad()
def evaluate(
    vae: FacesVAE, x: torch.Tensor, subject: torch.Tensor, light: torch.Tensor, batch_size: int = 500
):
    """Identity error (fraction) and the light's angular error in degrees (mean and median) of q's
    predictions for faces ``x`` ``(N, 1, H, W)`` with subjects ``(N,)`` and unit lights ``(N, 3)``."""
    predicted = [vae.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    identity = torch.cat([p[0] for p in predicted])
    angles = angular_error(torch.cat([p[1] for p in predicted]).double(), light.double())
    return {
        "identity_error": classification_error(identity, subject),
        "light_error_deg": angles.mean().item(),
        "light_error_median_deg": angles.median().item(),
    }


# ---------------------------------------------------------------------------------------------- training


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--labels-fraction", type=float, default=0.2, help="fraction of training images with labels"
    )
    parser.add_argument("--baseline", action="store_true", help="supervised CNN on the labelled images only")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the labelled subset, batches and weights"
    )
    parser.add_argument("--size", type=int, default=32, help="faces are resized to SIZE x SIZE")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out images per subject")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out images")
    parser.add_argument("--rho", type=float, default=None, help="supervision rate (default: natural M/(N+M))")
    parser.add_argument(
        "--alpha", type=float, default=None, help="weight α of log q(y, l|x) (default: SIZE² / rho)"
    )
    parser.add_argument("--temperature", type=float, default=0.5, help="Gumbel-softmax temperature of y")
    parser.add_argument("--enumerate", action="store_true", help="sum y out exactly instead of relaxing it")
    parser.add_argument("--z-dim", type=int, default=10, help="style dimension")
    parser.add_argument("--hidden", type=int, nargs="*", default=[256], help="fully connected hidden sizes")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128], help="conv channels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    add_run_arguments(parser, "faces")
    return parser


def parse(argv: Sequence[str] | None, prog: str = PROG) -> argparse.Namespace:
    """Parse and check ``argv`` (default ``sys.argv[1:]``); record the command, fill in ``--out``."""
    parser = build_parser(prog)
    args = parse_recording_command(parser, argv)
    if not 0.0 < args.labels_fraction <= 1.0:
        parser.error(f"--labels-fraction must lie in (0, 1], got {args.labels_fraction}")
    if args.temperature <= 0:
        parser.error(f"--temperature must be positive, got {args.temperature}")
    if args.out is None:
        kind = "baseline" if args.baseline else "vae"
        args.out = (
            Path("runs") / "faces" / f"labels{args.labels_fraction:g}_{kind}_size{args.size}_seed{args.seed}"
        )
    return args


def labelled_rows(subject: torch.Tensor, fraction: float, seed: int) -> SemiSupervisedSplit | None:
    """The subject-balanced labelled subset of ``round(fraction · N / 38) · 38`` (at least 38) training
    images, or ``None`` for ``fraction = 1`` (every image labelled)."""
    if fraction == 1.0:
        return None
    per_subject = max(1, round(fraction * len(subject) / NUM_IDENTITIES))
    return SemiSupervisedSplit(subject, per_subject * NUM_IDENTITIES, seed=seed, num_classes=NUM_IDENTITIES)


def train(args: argparse.Namespace, data: FacesData) -> dict[str, Any]:
    """Train as ``args`` say; write the run directory; return the results record."""
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    pyro.enable_validation(False)  # checked by the test suite; off here for speed

    split = labelled_rows(data.train_subject, args.labels_fraction, args.seed)
    all_rows = torch.arange(len(data.train_subject))
    num_labelled = len(all_rows) if split is None else split.num_labelled
    num_unlabelled = 0 if split is None else split.num_unlabelled
    if args.baseline or split is None:
        sampler = ShuffledBatchSampler(
            all_rows if split is None else split.labelled, args.batch_size, args.seed
        )
        rho = 1.0
    else:
        sampler = SemiSupervisedBatchSampler(split, args.batch_size, rho=args.rho, seed=args.seed)
        rho = sampler.rho if args.rho is not None else supervision_rate(1.0, num_labelled, num_unlabelled)
    alpha = args.alpha if args.alpha is not None else args.size**2 / rho

    model_config = {
        "image_shape": [1, args.size, args.size],
        "z_dim": args.z_dim,
        "hidden": list(args.hidden),
        "channels": list(args.channels),
    }
    data_config = {"size": args.size, "test_fraction": args.test_fraction, "split_seed": args.split_seed}
    config = {"experiment": "faces", "baseline": args.baseline, "data": data_config, "model": model_config}
    _semi_supervised.write_config(args.out, config, resume=args.resume)
    vae = FacesVAE(**model_config)
    if args.baseline:
        svi = SVI(vae.discriminative_model, _empty_guide, Adam({"lr": args.lr}), Trace_ELBO())
    else:
        elbo = SemiSupervisedELBO(
            alpha=alpha,
            relax=None if args.enumerate else {"identity": args.temperature},
            max_plate_nesting=1,
            split_on="mask",
        )
        svi = SVI(vae.model, vae.guide, Adam({"lr": args.lr}), elbo)

    def epoch_batches(epoch: int) -> Batches:
        sampler.set_epoch(epoch)
        return Batches(sampler, data.train_x, data.train_subject, data.train_light)

    def evaluate_test(epoch: int) -> dict[str, float]:
        return evaluate(vae, data.test_x, data.test_subject, data.test_light)

    kind = "supervised CNN baseline" if args.baseline else f"VAE (alpha={alpha:.4g}, rho={rho:.4g})"
    print(
        f"faces {args.size}x{args.size}: {num_labelled} labelled, {num_unlabelled} unlabelled training "
        f"images, {len(data.test_subject)} test images; {kind}; run directory {args.out}"
    )
    began = time.perf_counter()
    history = fit(
        svi,
        epoch_batches,
        epochs=args.epochs,
        modules={MODULE: vae},
        run_dir=args.out,
        evaluate=evaluate_test,
        sampler=sampler,
        resume=args.resume,
        progress=not args.no_progress,
    )
    test = evaluate(vae, data.test_x, data.test_subject, data.test_light)
    results = {
        "command": args.command,
        "experiment": "faces",
        "baseline": args.baseline,
        "labels_fraction": args.labels_fraction,
        "num_labelled": num_labelled,
        "num_unlabelled": num_unlabelled,
        "num_test": len(data.test_subject),
        "rho": rho,
        "alpha": None if args.baseline else alpha,
        "epochs": args.epochs,
        **{f"test_{name}": value for name, value in test.items()},
        **run_timing(history, began),
        "arguments": parsed_arguments(args),
    }
    write_results(args.out / RESULTS, results, seed=args.seed)
    print(
        f"test identity error {100 * test['identity_error']:.2f}%, light angular error "
        f"{test['light_error_deg']:.2f} deg (median {test['light_error_median_deg']:.2f}) "
        f"after {args.epochs} epochs"
    )
    return results


def _empty_guide(*args, **kwargs) -> None:
    """The baseline has no latent variables."""


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Train (see the module docstring); ``argv`` defaults to ``sys.argv[1:]``. Returns the results record."""
    args = parse(argv, prog)
    data = load_faces(args.data, size=args.size, test_fraction=args.test_fraction, split_seed=args.split_seed)
    return train(args, data)


# ---------------------------------------------------------------------------------------------- figures


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
    one_hot = nn.functional.one_hot(torch.as_tensor(list(identities)), vae.num_identities).to(xs.dtype)
    rendered = vae.decode(one_hot, light.unsqueeze(1), posterior.z_loc.unsqueeze(1))
    return torch.cat([xs.unsqueeze(1), rendered], dim=1)


def load_trained(run_dir: str | Path) -> tuple[FacesVAE, dict[str, Any]]:
    """The model of a run directory at its last checkpoint, and the run's ``config.json``."""
    return load_trained_module(
        run_dir, MODULE, lambda config: FacesVAE(**config["model"]), experiments=("faces",)
    )


def plot(argv: Sequence[str] | None = None, prog: str = "pyro-partial plot faces") -> dict[str, Path]:
    """``--run DIR``: write ``lighting.png`` and ``identity.png`` of a trained run; return their paths."""
    parser = run_figures_parser(
        prog,
        "Write the Figure 5 analogue of a trained faces run: lighting.png (rows: held-out faces; "
        "columns: the face, then re-rendered with its identity and style under lights at --azimuths, "
        "elevation --elevation) and identity.png (the face, then re-rendered as --identities with "
        "its light and style).",
        num_images=4,
        images="faces (rows)",
    )
    parser.add_argument(
        "--azimuths", type=float, nargs="+", default=[-110, -70, -35, 0, 35, 70, 110], help="degrees"
    )
    parser.add_argument("--elevation", type=float, default=0.0, help="degrees")
    parser.add_argument("--identities", type=int, nargs="+", default=list(range(8)), help="subjects 0..37")
    args = parse_run_figures_args(parser, argv)
    if not all(0 <= k < NUM_IDENTITIES for k in args.identities):
        parser.error(f"--identities must lie in 0..{NUM_IDENTITIES - 1}, got {args.identities}")
    vae, config = load_trained(args.run)
    if config["baseline"]:
        parser.error(f"--run {args.run} is a supervised baseline: it has no decoder to render with")
    data = load_faces(args.data, **config["data"])
    generator = torch.Generator().manual_seed(args.seed)
    xs = data.test_x[torch.randperm(len(data.test_x), generator=generator)[: args.num_images]]
    angles = torch.tensor([[azimuth, args.elevation] for azimuth in args.azimuths])
    paths = {
        "lighting": save_grid(
            lighting_grid(vae, xs, direction_from_angles(angles).float()), args.out / "lighting.png"
        ),
        "identity": save_grid(identity_grid(vae, xs, args.identities), args.out / "identity.png"),
    }
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    return paths


if __name__ == "__main__":
    main()
