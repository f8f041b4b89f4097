"""The experiments of Mathieu et al. (2019), "Disentangling Disentanglement in Variational Autoencoders".

A VAE with encoder q(z | x) = N(μ(x), diag σ(x)²), a chosen prior p(z) and a decoder p(x | z)
(:mod:`pyro_partial_models.decomposition_vae`) is trained on the decomposition objective (eq. 7,
:class:`~pyro_partial.infer.DecompositionELBO`)

    L(x) = E_q(z|x)[log p(x | z)] − β KL(q(z | x) ‖ p(z)) − α D(q(z), p(z)),

with q(z) the aggregate posterior of the batch and D the MMD (default) or the inclusive KL. Each epoch visits
the training data in a fresh random order (``--seed``), in batches of ``--batch-size`` (the last incomplete
batch dropped). Three experiments, one command each:

``pinwheel`` (clustering, section 6): 400 pinwheel points, D = 2, the 4-Gaussian mixture prior;
(β, α) = (1, 0) against (0, 1). Scores: the adjusted Rand index and purity of the prior component most
responsible for each encoder mean against the true arm (does q(z) take the prior's clusters?,
:mod:`pyro_partial.metrics.clustering`) and the MMD between the aggregate posterior (one draw per point) and
the prior. Figure: q(z) over p(z), ``pinwheel.png``.

``sparsity`` (section 6): MNIST or Fashion-MNIST (``--dataset``), D = 50, the sparse prior
γ N(0, 0.05²) + (1 − γ) N(0, 1) per dimension (γ = 0 is N(0, I)), Laplace likelihood of scale 0.1,
α ∈ {0, ..., 100}. Scores on the test set: Hoyer sparsity of the encoder means normalised as in the paper,
and the log-likelihood's importance-weighted bound log (1/K) Σ_k p(x, z_k) / q(z_k | x)
(K = ``--iwae-samples``; K = 1 is the ELBO). Figures: average ``|z_d|`` per class (``class_bars.png``), latent
traversals (``traversals.png``). The paper runs it on Fashion-MNIST resized to 32×32, our default for
``--dataset fashion-mnist`` (``--image-size``); its four IDX files (``train-images-idx3-ubyte.gz``, ...)
are read from ``<--data>/FashionMNIST/raw/``.

``dsprites`` (independence, section 5): procedurally rendered dSprites (no npz needed), D = 10, Bernoulli
likelihood, convolutional networks; prior isotropic, anisotropic (fixed standard deviations) or Student-t.
The ``--train-size`` training frames (default all 737,280) are rendered once, kept bit-packed on the training
device and unpacked batch by batch there (:mod:`pyro_partial_models.binary_images`). Scores: the
disentanglement metrics of :mod:`pyro_partial.metrics` (Kim & Mnih's FactorVAE score by default) on the
encoder means, with per-metric options such as Mathieu et al.'s 1000 points per FactorVAE vote:
``--metric-option factor_vae.group_size=1000``. Figure: latent traversals (``traversals.png``).

    pyro-partial train pinwheel --beta 1 --alpha 0 --seed 0
    pyro-partial train pinwheel --beta 0 --alpha 1 --seed 0
    pyro-partial train sparsity --alpha 100 --gamma 0.8 --seed 0
    pyro-partial train sparsity --dataset fashion-mnist --alpha 100 --seed 0
    pyro-partial train dsprites --prior anisotropic --beta 4 --seed 0
    pyro-partial plot pinwheel --run runs/pinwheel/mixture_beta0_alpha1_seed0

Budgets. The defaults are the paper's reference settings where known (Mathieu et al.'s code): sparsity
batch 500, lr 5e-4, 80 epochs; dSprites batch 64, lr 5e-4, 20 epochs of all 737,280 images. The pinwheel's
300 full-batch epochs, the network sizes and the anisotropic scales are our choices. The budget of
``benchmarks/decomposition_grid.py`` for dSprites is ``--train-size 32000 --epochs 4`` (2,000 steps) with
``--metric-option factor_vae.num_train=2000 --metric-option factor_vae.num_eval=1000``. ``results.json``
holds the scores; the figures are drawn by ``pyro-partial plot``.
"""

from __future__ import annotations

import abc
import argparse
import ast
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro.distributions as dist
import torch

from pyro_partial.data import DSprites, load_mnist
from pyro_partial.data import Pinwheel as PinwheelData
from pyro_partial.data.mnist import DATASETS
from pyro_partial.data.sampling import ShuffledBatchSampler
from pyro_partial.infer import DecompositionELBO, mmd_imq
from pyro_partial.metrics import METRICS, cluster_scores, evaluate_disentanglement, hoyer_sparsity
from pyro_partial.metrics.evaluate import metric_options
from pyro_partial.plots import class_mean_abs, plot_aggregate_posterior, plot_class_mean_abs
from pyro_partial.plots.latent import image_shape, write_traversals
from pyro_partial.training import DeviceBatches, Experiment, Setup
from pyro_partial_models.binary_images import gather_unpacked, pack_images
from pyro_partial_models.decomposition_vae import LIKELIHOODS, NETWORKS, PRIORS, DecompositionVAE, build_vae

RENDER_CHUNK = 8192
"""dSprites frames rendered (and packed) at a time."""


class DecompositionExperiment(Experiment):
    """The shared experiment: the VAE's options, the objective, the batches and the results record.

    A subclass sets ``name``, ``description``, ``defaults`` and the VAE's defaults below, and supplies its
    data (:meth:`load_data`), the training batches (:meth:`training_batches`) and its scores
    (:meth:`scores`).
    """

    prior = "isotropic"
    z_dim = 10
    network = "mlp"
    hidden: tuple[int, ...] = (256,)
    likelihood = "bernoulli"
    plot_description = "Write PNG figures of a trained run."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--beta", type=float, default=1.0, help="β, the weight of KL(q(z|x) ‖ p(z))")
        parser.add_argument(
            "--alpha", type=float, default=0.0, help="α, the weight of D(q(z), p(z)) per point"
        )
        parser.add_argument("--divergence", choices=("mmd", "inclusive_kl"), default="mmd", help="D")
        parser.add_argument("--prior", choices=PRIORS, default=self.prior, help="p(z)")
        parser.add_argument("--gamma", type=float, default=0.8, help="spike weight γ of the sparse prior")
        parser.add_argument(
            "--df", type=float, default=5.0, help="degrees of freedom ν of the Student-t prior"
        )
        parser.add_argument("--prior-scales", type=float, nargs="+", help="σ_d of the anisotropic prior")
        parser.add_argument("--z-dim", type=int, default=self.z_dim, help="latent dimension D")
        parser.add_argument("--network", choices=NETWORKS, default=self.network, help="encoder/decoder")
        parser.add_argument(
            "--hidden", type=int, nargs="+", default=list(self.hidden), help="fully connected hidden sizes"
        )
        parser.add_argument(
            "--channels", type=int, nargs="+", default=[32, 32, 64, 64], help="conv channels (--network conv)"
        )
        parser.add_argument("--likelihood", choices=LIKELIHOODS, default=self.likelihood, help="p(x | z)")
        parser.add_argument(
            "--obs-scale", type=float, default=0.1, help="scale of the Laplace / normal p(x | z)"
        )
        parser.add_argument("--train-size", type=int, help="use only this many training observations")

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        problems = []
        if not (args.beta >= 0 and args.alpha >= 0):  # also refuses NaN
            problems.append(f"--beta and --alpha must be non-negative, got {args.beta} and {args.alpha}")
        if args.z_dim < 1:
            problems.append(f"--z-dim must be a positive dimension, got {args.z_dim}")
        if any(size < 1 for size in args.hidden + args.channels):
            problems.append(
                f"--hidden and --channels must be positive, got {args.hidden} and {args.channels}"
            )
        if not args.obs_scale > 0:
            problems.append(f"--obs-scale must be positive, got {args.obs_scale}")
        if not 0 <= args.gamma < 1:
            problems.append(f"--gamma must lie in [0, 1), got {args.gamma}")
        if not args.df > 0:
            problems.append(f"--df must be positive, got {args.df}")
        if args.prior_scales is not None:
            if len(args.prior_scales) != args.z_dim or not all(s > 0 for s in args.prior_scales):
                problems.append(
                    f"--prior-scales must be {args.z_dim} positive standard deviations (--z-dim), got "
                    f"{args.prior_scales}"
                )
        if args.prior == "mixture" and args.z_dim != 2:
            problems.append(f"--prior mixture is 2-dimensional: --z-dim must be 2, got {args.z_dim}")
        if args.train_size is not None and args.train_size < 1:
            problems.append(f"--train-size must be a positive number of observations, got {args.train_size}")
        return problems

    def run_name(self, args: argparse.Namespace) -> str:
        return f"{args.prior}_beta{args.beta:g}_alpha{args.alpha:g}_seed{args.seed}"

    def build_module(self, model_config: dict[str, Any]) -> DecompositionVAE:
        return build_vae(**model_config)

    def model_config(self, args: argparse.Namespace, obs_shape: Sequence[int]) -> dict[str, Any]:
        """The settings of :func:`~pyro_partial_models.decomposition_vae.build_vae` (JSON values)."""
        return {
            "obs_shape": list(obs_shape),
            "z_dim": args.z_dim,
            "prior": args.prior,
            "network": args.network,
            "hidden": list(args.hidden),
            "channels": list(args.channels),
            "likelihood": args.likelihood,
            "obs_scale": args.obs_scale,
            "prior_options": {"scales": args.prior_scales, "df": args.df, "gamma": args.gamma},
        }

    @abc.abstractmethod
    def training_batches(self, args: argparse.Namespace, data: Any) -> tuple[DeviceBatches, Sequence[int]]:
        """The training data's batches (each gathered as ``(observations,)``) and one observation's shape."""

    @abc.abstractmethod
    def scores(self, args: argparse.Namespace, data: Any, vae: DecompositionVAE) -> dict[str, Any]:
        """The scores of the trained ``vae`` (in eval mode) recorded in ``results.json``."""

    def sampler(self, args: argparse.Namespace, num_train: int) -> ShuffledBatchSampler:
        """Each epoch a permutation of the ``num_train`` rows from ``(seed, epoch)``, the last incomplete
        batch dropped (unless the data is smaller than one batch)."""
        return ShuffledBatchSampler(num_train, args.batch_size, seed=args.seed, drop_last=True)

    def build(self, args: argparse.Namespace, data: Any) -> Setup:
        batches, obs_shape = self.training_batches(args, data)
        model_config = self.model_config(args, obs_shape)
        vae = self.build_module(model_config)
        elbo = DecompositionELBO(
            beta=args.beta, alpha=args.alpha, divergence=args.divergence, latent_sites=["z"]
        )
        summary = (
            f"{len(batches.sampler.rows)} training points, prior {args.prior}, β={args.beta:g}, "
            f"α={args.alpha:g} ({args.divergence})"
        )
        return Setup(vae, elbo, batches, model_config, summary=summary)

    def results(
        self, args: argparse.Namespace, data: Any, setup: Setup, history: list[dict[str, float]]
    ) -> dict[str, Any]:
        began = time.perf_counter()
        vae = setup.module.eval()
        scores = self.scores(args, data, vae)
        print(", ".join(f"{k}={v:.4g}" for k, v in scores.items() if isinstance(v, float)))
        return {
            "prior": args.prior,
            "beta": args.beta,
            "alpha": args.alpha,
            "divergence": args.divergence,
            "final_loss": history[-1]["loss"] if history else None,
            **scores,
            "evaluation_seconds": time.perf_counter() - began,
        }


def decoded_images(vae: DecompositionVAE) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z (..., D) -> mean images (..., C, H, W)`` in [0, 1], on ``z``'s device (for traversals)."""
    shape = image_shape(vae.obs_shape)

    def decode(z: torch.Tensor) -> torch.Tensor:
        images = vae.model.decode(vae.as_input(z)).to(z.device)
        return images.reshape(*z.shape[:-1], *shape).clamp(0, 1)

    return decode


@torch.no_grad()
def aggregate_mmd(vae: DecompositionVAE, x: torch.Tensor, seed: int) -> float:
    """MMD² between the aggregate posterior and the prior (the paper's per-dimension IMQ kernel): one draw
    of q(z | x_n) per row of ``x`` ``(N, *obs_shape)`` against N prior draws, the draws seeded by ``seed``
    (the global random state is left as it was)."""
    z, prior_samples = aggregate_posterior_sample(vae, x, seed, len(x))
    return float(mmd_imq(z, prior_samples))


@torch.no_grad()
def aggregate_posterior_sample(
    vae: DecompositionVAE, x: torch.Tensor, seed: int, num_prior_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw of q(z | x_n) per row of ``x`` ``(N, *obs_shape)``, ``(N, D)``, and ``num_prior_samples``
    draws of p(z), all on the module's device and seeded by ``seed`` (the global state is left as it was)."""
    x = vae.as_input(x)
    with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]):
        torch.manual_seed(seed)
        loc, scale = vae.guide.encode(x)
        return dist.Normal(loc, scale).sample(), vae.model.prior(x).sample((num_prior_samples,))


class Pinwheel(DecompositionExperiment):
    """``pinwheel``: clustering 2-D pinwheel points with the 4-Gaussian mixture prior (section 6)."""

    name = "pinwheel"
    description = __doc__
    defaults = {"epochs": 300, "batch_size": 400, "lr": 1e-3}
    prior = "mixture"
    z_dim = 2
    hidden = (100, 100)
    likelihood = "normal"
    plot_description = "Write pinwheel.png: the aggregate posterior (one draw per point) over prior samples."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The shared VAE options and ``--num-points``."""
        super().add_arguments(parser)
        parser.add_argument("--num-points", type=int, default=400, help="pinwheel points (drawn from --seed)")

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        """The shared checks, and ``--num-points`` positive."""
        problems = super().check_arguments(args)
        if args.num_points < 1:
            problems.append(f"--num-points must be a positive number of points, got {args.num_points}")
        return problems

    def load_data(self, args: argparse.Namespace) -> PinwheelData:
        """``--num-points`` pinwheel points drawn from ``--seed`` (the first ``--train-size`` trained on)."""
        return PinwheelData(args.num_points, seed=args.seed)

    def training_batches(
        self, args: argparse.Namespace, data: PinwheelData
    ) -> tuple[DeviceBatches, Sequence[int]]:
        points = data.points[: args.train_size]
        return DeviceBatches(self.sampler(args, len(points)), {"points": points}), data.observation_shape

    def scores(self, args: argparse.Namespace, data: PinwheelData, vae: DecompositionVAE) -> dict[str, Any]:
        scores: dict[str, Any] = {"mmd_aggregate_prior": aggregate_mmd(vae, data.points, args.seed)}
        codes = vae.encode_means(data.points)
        prior = vae.model.prior(codes)
        if isinstance(prior, dist.MixtureSameFamily):
            scores.update(cluster_scores(prior, codes, data.labels))
        return scores

    def plot(
        self, args: argparse.Namespace, module: DecompositionVAE, config: dict[str, Any]
    ) -> dict[str, Path]:
        run = config["arguments"]
        data = PinwheelData(run["num_points"], seed=run["seed"])
        z, prior_samples = aggregate_posterior_sample(module, data.points, args.seed, 2000)
        title = f"{run['prior']} prior, β = {run['beta']:g}, α = {run['alpha']:g}"
        path = plot_aggregate_posterior(z, prior_samples, args.out / "pinwheel.png", data.labels, title)
        return {"pinwheel": path}


@dataclass(frozen=True)
class SparsityData:
    """Training images and the test images with their labels (flattened for MLP networks)."""

    train_x: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


class Sparsity(DecompositionExperiment):
    """``sparsity``: sparse codes of MNIST or Fashion-MNIST under the sparse prior (section 6)."""

    name = "sparsity"
    description = __doc__
    defaults = {"epochs": 80, "batch_size": 500, "lr": 5e-4}
    prior = "sparse"
    z_dim = 50
    hidden = (500,)
    likelihood = "laplace"
    plot_description = (
        "Write class_bars.png (average |z_d| of the test images' encoder means per class) and traversals.png "
        "(a test image's code, each of the 10 dimensions of largest variance swept over its range)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The shared VAE options, ``--dataset``, ``--image-size``, ``--eval-size`` and ``--iwae-samples``."""
        super().add_arguments(parser)
        parser.add_argument("--dataset", choices=tuple(DATASETS), default="mnist")
        parser.add_argument(
            "--image-size", type=int, help="image side, resized if not 28 (default: 28; fashion-mnist 32)"
        )
        parser.add_argument("--eval-size", type=int, default=10000, help="test images scored")
        parser.add_argument("--iwae-samples", type=int, default=100, help="K of the log-likelihood bound")

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        """The shared checks, and ``--image-size``, ``--eval-size`` and ``--iwae-samples`` positive."""
        problems = super().check_arguments(args)
        for option in ("image_size", "eval_size", "iwae_samples"):
            value = getattr(args, option)
            if value is not None and value < 1:
                problems.append(f"--{option.replace('_', '-')} must be a positive integer, got {value}")
        return problems

    def run_name(self, args: argparse.Namespace) -> str:
        """The shared run name, prefixed by the data set's name unless it is MNIST."""
        data = "" if args.dataset == "mnist" else f"{args.dataset}_"
        return data + super().run_name(args)

    @staticmethod
    def image_size(args: argparse.Namespace) -> int:
        """``--image-size``, by default 32 for Fashion-MNIST (the paper's) and 28 for MNIST."""
        if args.image_size is not None:
            return args.image_size
        return 32 if args.dataset == "fashion-mnist" else 28

    def load_data(self, args: argparse.Namespace) -> SparsityData:
        """All 60,000 training images (or the first ``--train-size``) and the first ``--eval-size`` test
        images."""
        load = self.loading(args, args.network == "mlp", args.download)
        try:
            train_x, _ = load_mnist("train", args.data, validation_size=0, **load)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error} Here the data root is --data.") from None
        return SparsityData(train_x[: args.train_size], *self.load_test(args, args.data, load))

    def loading(self, run: argparse.Namespace, flatten: bool, download: bool) -> dict[str, Any]:
        """The keyword arguments of :func:`~pyro_partial.data.load_mnist` for a run's options."""
        return dict(flatten=flatten, dataset=run.dataset, image_size=self.image_size(run), download=download)

    def load_test(
        self, run: argparse.Namespace, root: Path | None, load: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``--eval-size`` test images of a run and their labels."""
        test_x, test_y = load_mnist("test", root, **load)
        return test_x[: run.eval_size], test_y[: run.eval_size]

    def training_batches(
        self, args: argparse.Namespace, data: SparsityData
    ) -> tuple[DeviceBatches, Sequence[int]]:
        sampler = self.sampler(args, len(data.train_x))
        return DeviceBatches(sampler, {"images": data.train_x}), data.train_x.shape[1:]

    def scores(self, args: argparse.Namespace, data: SparsityData, vae: DecompositionVAE) -> dict[str, Any]:
        codes = vae.encode_means(data.test_x)
        bounds = torch.cat(
            [
                vae.log_likelihood_bound(vae.as_input(x), args.iwae_samples).cpu()
                for x in data.test_x.split(500)
            ]
        )
        return {
            "hoyer_sparsity": hoyer_sparsity(codes.cpu().numpy()),
            "test_log_likelihood_bound": float(bounds.mean()),
            "iwae_samples": args.iwae_samples,
            "num_test": len(data.test_x),
            "image_size": self.image_size(args),
        }

    def plot(
        self, args: argparse.Namespace, module: DecompositionVAE, config: dict[str, Any]
    ) -> dict[str, Path]:
        run = argparse.Namespace(**config["arguments"])
        load = self.loading(run, len(module.obs_shape) == 1, args.download)
        test_x, test_y = self.load_test(run, args.data, load)
        codes = module.encode_means(test_x)
        title = f"{run.dataset}, {run.prior} prior (γ = {run.gamma:g}), β = {run.beta:g}, α = {run.alpha:g}"
        bars = plot_class_mean_abs(
            class_mean_abs(codes, test_y, 10), args.out / "class_bars.png", title=title
        )
        traversals = write_traversals(decoded_images(module), codes[0], codes, args.out / "traversals.png")
        return {"class_bars": bars, "traversals": traversals}


def parse_metric_options(items: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``METRIC.OPTION=VALUE`` strings (``--metric-option``) as the ``options`` of
    :func:`~pyro_partial.metrics.evaluate_disentanglement`; values are Python literals (1000, 0.05, True)."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, equals, text = item.partition("=")
        metric, dot, option = key.partition(".")
        if not (equals and dot):
            raise ValueError(
                f"--metric-option {item!r}: expected METRIC.OPTION=VALUE, e.g. factor_vae.group_size=1000"
            )
        if metric not in metrics:
            raise ValueError(
                f"--metric-option {item!r}: metric {metric!r} is not among --metrics {list(metrics)}"
            )
        if option not in metric_options(metric):
            raise ValueError(f"--metric-option {item!r}: {metric} takes {list(metric_options(metric))}")
        try:
            options.setdefault(metric, {})[option] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"--metric-option {item!r}: {text!r} is no number or Python literal") from None
    return options


@dataclass(frozen=True)
class DSpritesFrames:
    """The dSprites data set and its training frames, bit-packed ``(N, 1, 64, 8)``."""

    dataset: DSprites
    packed: torch.Tensor


class DSpritesIndependence(DecompositionExperiment):
    """``dsprites``: independent factors of dSprites frames, scored by disentanglement metrics (section 5)."""

    name = "dsprites"
    description = __doc__
    defaults = {"epochs": 20, "batch_size": 64, "lr": 5e-4}
    network = "conv"
    plot_description = (
        "Write traversals.png: the code of a random frame, each of the 10 dimensions of largest variance "
        "(over 1000 random frames) swept over its range."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The shared VAE options, ``--metrics``, ``--metric-profile`` and ``--metric-option``."""
        super().add_arguments(parser)
        parser.add_argument("--metrics", nargs="+", choices=sorted(METRICS), default=["factor_vae"])
        parser.add_argument("--metric-profile", choices=("fast", "full"), default="full")
        parser.add_argument(
            "--metric-option",
            action="append",
            default=[],
            metavar="METRIC.OPTION=VALUE",
            help="an option of one metric, e.g. factor_vae.group_size=1000 (points per vote); repeatable",
        )

    def check_arguments(self, args: argparse.Namespace) -> list[str]:
        """The shared checks, and each ``--metric-option`` a ``METRIC.OPTION=VALUE`` of a chosen metric
        (:func:`parse_metric_options`)."""
        problems = super().check_arguments(args)
        try:
            parse_metric_options(args.metric_option, args.metrics)
        except ValueError as error:
            problems.append(str(error))
        return problems

    def load_data(self, args: argparse.Namespace) -> DSpritesFrames:
        """``--train-size`` frames drawn without replacement from ``--seed`` (default all 737,280), rendered
        and bit-packed."""
        dataset = DSprites(source="procedural")
        rng = np.random.default_rng(args.seed)
        size = len(dataset) if args.train_size is None else min(args.train_size, len(dataset))
        index = rng.choice(len(dataset), size, replace=False)
        factors = np.stack(np.unravel_index(index, dataset.factor_sizes), axis=1)
        packed = torch.cat(
            [
                pack_images(dataset.observations_from_factors(factors[i : i + RENDER_CHUNK], rng))
                for i in range(0, size, RENDER_CHUNK)
            ]
        )  # rendering is deterministic: the rng is not used
        return DSpritesFrames(dataset, packed)

    def training_batches(
        self, args: argparse.Namespace, data: DSpritesFrames
    ) -> tuple[DeviceBatches, Sequence[int]]:
        sampler = self.sampler(args, len(data.packed))
        return DeviceBatches(
            sampler, {"images": data.packed}, gather_unpacked
        ), data.dataset.observation_shape

    def scores(self, args: argparse.Namespace, data: DSpritesFrames, vae: DecompositionVAE) -> dict[str, Any]:
        options = parse_metric_options(args.metric_option, args.metrics)
        scores = evaluate_disentanglement(
            data.dataset,
            vae.encode_means,
            seed=args.seed,
            profile=args.metric_profile,
            metrics=args.metrics,
            options=options,
        )
        return {**scores, "metric_profile": args.metric_profile, "metric_options": options}

    def plot(
        self, args: argparse.Namespace, module: DecompositionVAE, config: dict[str, Any]
    ) -> dict[str, Path]:
        _, frames = DSprites(source="procedural").sample(1000, np.random.default_rng(args.seed))
        codes = module.encode_means(frames)
        path = write_traversals(decoded_images(module), codes[0], codes, args.out / "traversals.png")
        return {"traversals": path}
