"""The experiments of Mathieu et al. (2019), "Disentangling Disentanglement in Variational Autoencoders".

A VAE with encoder q(z | x) = N(μ(x), diag σ(x)²), a chosen prior p(z) and a decoder p(x | z) is trained on
the decomposition objective (eq. 7, :class:`~pyro_partial.infer.DecompositionELBO`)

    L(x) = E_q(z|x)[log p(x | z)] − β KL(q(z | x) ‖ p(z)) − α D(q(z), p(z)),

with q(z) the aggregate posterior of the batch and D the MMD (default) or the inclusive KL. Three
sub-experiments, one command each:

``pinwheel`` (clustering, section 6): 400 pinwheel points, D = 2, the 4-Gaussian mixture prior;
(β, α) = (1, 0) against (0, 1). Scores: the adjusted Rand index and purity of the prior component most
responsible for each encoder mean against the true arm (does q(z) take the prior's clusters?) and the MMD
between the aggregate posterior (one draw per point) and the prior. Figure: q(z) over p(z), ``pinwheel.png``.

``sparsity`` (section 6): MNIST or Fashion-MNIST (``--dataset``), D = 50, the sparse prior
γ N(0, 0.05²) + (1 − γ) N(0, 1) per dimension (γ = 0 is N(0, I)), Laplace likelihood of scale 0.1,
α ∈ {0, ..., 100}. Scores on the test set: Hoyer sparsity of the encoder means normalised as in the paper,
and the log-likelihood's importance-weighted bound log (1/K) Σ_k p(x, z_k) / q(z_k | x)
(K = ``--iwae-samples``; K = 1 is the ELBO). Figures: average |z_d| per class (``class_bars.png``), latent
traversals (``traversals.png``). The paper runs it on Fashion-MNIST resized to 32×32, our default for
``--dataset fashion-mnist`` (``--image-size``); its four IDX files (``train-images-idx3-ubyte.gz``, ...)
are read from ``<--data>/FashionMNIST/raw/``.

``dsprites`` (independence, section 5): procedurally rendered dSprites (no npz needed), D = 10, Bernoulli
likelihood, convolutional networks; prior isotropic, anisotropic (fixed standard deviations) or Student-t.
Scores: the disentanglement metrics of :mod:`pyro_partial.metrics` (Kim & Mnih's FactorVAE score by
default) on the encoder means, with per-metric options such as Mathieu et al.'s 1000 points per FactorVAE
vote: ``--metric-option factor_vae.group_size=1000``. Figure: latent traversals (``traversals.png``).

    python -m models.decomposition pinwheel --beta 1 --alpha 0 --seed 0
    python -m models.decomposition pinwheel --beta 0 --alpha 1 --seed 0
    python -m models.decomposition sparsity --alpha 100 --gamma 0.8 --seed 0
    python -m models.decomposition sparsity --dataset fashion-mnist --alpha 100 --seed 0
    python -m models.decomposition dsprites --prior anisotropic --beta 4 --seed 0
    pyro-partial train decomposition pinwheel --beta 0 --alpha 1 --seed 0   # the same, via the CLI

Budgets. The defaults are the paper's reference settings where known (Mathieu et al.'s code): sparsity
batch 500, lr 5e-4, 80 epochs; dSprites batch 64, lr 5e-4, 20 epochs of all 737,280 images. The pinwheel's
300 full-batch epochs, the network sizes and the anisotropic scales are our choices. Measured on a shared
2-core CPU, one thread: pinwheel 300 epochs take 0.5-1 minute; sparsity on all 60,000 MNIST images takes
about 9 s per epoch at α = 0 and 80 s at α > 0 (the per-dimension MMD of 50 dimensions over 500 × 500 pairs),
so ``--epochs 10`` fits a quarter of an hour and the paper's 80 epochs about two hours; dSprites is GPU scale
(20 epochs are 230,000 steps): ``--train-size 32000 --epochs 4`` (2,000 steps, about 8 minutes, plus 3-4
minutes for FactorVAE with ``--metric-option factor_vae.num_train=2000 --metric-option
factor_vae.num_eval=1000`` and MIG) is the budget of ``benchmarks/decomposition_grid.py``.
Every run writes ``config.json``, ``metrics.csv`` (per epoch), ``checkpoint.pt`` (atomic; ``--resume``
continues exactly), the figures and ``results.json`` (the scores, command, versions and seed) under
``--out`` (default ``runs/decomposition/<experiment>_<prior>_beta<β>_alpha<α>_seed<seed>``).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI
from pyro.optim import Adam
from sklearn.metrics import adjusted_rand_score
from torch import nn

from pyro_partial.data import DSprites, Pinwheel, load_mnist
from pyro_partial.data.mnist import DATASETS
from pyro_partial.distributions import priors
from pyro_partial.infer import DecompositionELBO
from pyro_partial.infer.divergences import mmd_imq
from pyro_partial.metrics import METRICS, evaluate_disentanglement, hoyer_sparsity
from pyro_partial.metrics.evaluate import metric_options
from pyro_partial.nn import MLP, ConvDecoder, ConvEncoder, GaussianHead
from pyro_partial.plots import save_grid
from pyro_partial.plots_latent import (
    class_mean_abs,
    plot_aggregate_posterior,
    plot_class_mean_abs,
    traversal_grid,
)
from pyro_partial.training import (
    add_run_arguments,
    atomic_write,
    fit,
    parse_recording_command,
    parsed_arguments,
    write_results,
)

PROG = "python -m models.decomposition"
EXPERIMENTS = ("pinwheel", "sparsity", "dsprites")
PRIORS = ("isotropic", "anisotropic", "student-t", "sparse", "mixture")
LIKELIHOODS = ("bernoulli", "laplace", "normal")
NETWORKS = ("mlp", "conv")
CONFIG, RESULTS = "config.json", "results.json"
MODULE = "decomposition_vae"
"""The name of the VAE in Pyro's parameter store and in checkpoints."""


def make_prior(
    name: str,
    dim: int,
    *,
    scales: Sequence[float] | None = None,
    df: float = 5.0,
    gamma: float = 0.8,
) -> dist.Distribution:
    """The prior p(z) over ``dim`` latent dimensions (batch shape ``()``, event shape ``(dim,)``).

    :param name: ``"isotropic"`` N(0, I); ``"anisotropic"`` N(0, diag σ²) with ``scales`` σ (default
        ``linspace(1, 0.2, dim)``, our choice: the paper fixes the variances without stating them here);
        ``"student-t"`` with ``df`` ν per dimension; ``"sparse"`` γ N(0, 0.05²) + (1 − γ) N(0, 1) per
        dimension (``gamma`` = 0 is exactly N(0, I)); ``"mixture"`` the 4-Gaussian clustering prior (dim 2).
    """
    if name == "isotropic" or (name == "sparse" and gamma == 0):
        return priors.isotropic_gaussian(dim)
    if name == "anisotropic":
        sigma = torch.linspace(1.0, 0.2, dim) if scales is None else torch.tensor(list(scales))
        if sigma.shape != (dim,):
            raise ValueError(
                f"scales must hold {dim} standard deviations (one per dimension), got {len(sigma)}"
            )
        return priors.anisotropic_gaussian(sigma)
    if name == "student-t":
        return priors.student_t(dim, df)
    if name == "sparse":
        return priors.sparse_gaussian_mixture(dim, gamma)
    if name == "mixture":
        if dim != 2:
            raise ValueError(f"the mixture prior is 2-dimensional, got a latent dimension of {dim}")
        return priors.gaussian_mixture()
    raise ValueError(f"prior must be one of {PRIORS}, got {name!r}")


class DecompositionVAE(nn.Module):
    """A VAE whose latent site ``"z"`` carries the decomposition objective.

    :param encoder: observations ``(B, *obs_shape)`` to ``(B, 2D)``: the mean and raw scale of q(z | x).
    :param decoder: codes ``(..., D)`` to the likelihood's parameters ``(..., *obs_shape)`` (Bernoulli
        logits, or the Laplace / normal location).
    :param prior: p(z), event shape ``(D,)`` (see :func:`make_prior`).
    :param obs_shape: the shape of one observation.
    :param likelihood: ``"bernoulli"``, ``"laplace"`` or ``"normal"``, with fixed scale ``obs_scale``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: dist.Distribution,
        obs_shape: Sequence[int],
        likelihood: str = "bernoulli",
        obs_scale: float = 0.1,
    ):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not obs_scale > 0:
            raise ValueError(f"obs_scale must be positive, got {obs_scale}")
        self.encoder = GaussianHead(encoder)
        self.decoder = decoder
        self.prior = prior
        self.obs_shape = tuple(obs_shape)
        self.likelihood = likelihood
        self.obs_scale = obs_scale

    @property
    def z_dim(self) -> int:
        return self.prior.event_shape[0]

    def observation_dist(self, z: torch.Tensor) -> dist.Distribution:
        """p(x | z) for codes ``(..., D)``: batch shape ``(...)``, event shape ``obs_shape``."""
        params = self.decoder(z)
        if self.likelihood == "bernoulli":  # validate_args off: grey-level images lie in [0, 1], not {0, 1}
            base = dist.Bernoulli(logits=params, validate_args=False)
        elif self.likelihood == "laplace":
            base = dist.Laplace(params, self.obs_scale)
        else:
            base = dist.Normal(params, self.obs_scale)
        return base.to_event(len(self.obs_shape))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x)'s mean and standard deviation, each ``(B, D)``, for observations ``(B, *obs_shape)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z), ``(..., *obs_shape)``, for codes ``(..., D)``."""
        params = self.decoder(z)
        return torch.sigmoid(params) if self.likelihood == "bernoulli" else params

    def model(self, x: torch.Tensor) -> None:
        pyro.module(MODULE, self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior)
            pyro.sample("x", self.observation_dist(z), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module(MODULE, self)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encode(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    @torch.no_grad()
    def log_likelihood_bound(self, x: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        """log p(x) ≥ log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x) (Burda et al. 2016).

        K = ``num_samples``; K = 1 is the ELBO (β = 1, α = 0) and the bound tightens as K grows.

        :param x: observations ``(B, *obs_shape)``.
        :returns: one bound per observation, ``(B,)``.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        loc, scale = self.encode(x)
        posterior = dist.Normal(loc, scale).to_event(1)
        z = posterior.sample((num_samples,))  # (K, B, D)
        log_w = self.observation_dist(z).log_prob(x) + self.prior.log_prob(z) - posterior.log_prob(z)
        return torch.logsumexp(log_w, 0) - math.log(num_samples)


def cluster_scores(prior: dist.MixtureSameFamily, z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """How well the mixture prior's components cluster the codes: each code ``(N, D)`` goes to its most
    responsible component argmax_k π_k p_k(z); the assignment is scored against ``labels`` ``(N,)`` by the
    adjusted Rand index (1: the same partition, ~0: chance) and by purity (the fraction of codes whose
    component's majority label is their own)."""
    if not isinstance(prior, dist.MixtureSameFamily):
        raise TypeError(f"cluster scores need a mixture prior, got {type(prior).__name__}")
    log_resp = prior.mixture_distribution.logits + prior.component_distribution.log_prob(z.unsqueeze(-2))
    assigned = log_resp.argmax(-1).cpu().numpy()
    truth = labels.cpu().numpy()
    majority = sum(np.bincount(truth[assigned == k]).max() for k in np.unique(assigned))
    return {
        "adjusted_rand_index": float(adjusted_rand_score(truth, assigned)),
        "purity": float(majority / len(truth)),
    }


@torch.no_grad()
def aggregate_mmd(vae: DecompositionVAE, x: torch.Tensor, seed: int) -> float:
    """MMD² between the aggregate posterior and the prior (the paper's per-dimension IMQ kernel): one draw
    of q(z | x_n) per row of ``x`` ``(N, *obs_shape)`` against N prior draws, the draws seeded by ``seed``
    (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loc, scale = vae.encode(x)
        z = dist.Normal(loc, scale).sample()
        return float(mmd_imq(z, vae.prior.sample((len(x),))))


@torch.no_grad()
def encode_means(vae: DecompositionVAE, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The encoder means ``(N, D)`` of observations ``(N, *obs_shape)``, computed in chunks."""
    return torch.cat([vae.encode(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)])


def traversal_values(codes: torch.Tensor, steps: int = 9, coverage: float = 0.9) -> torch.Tensor:
    """Per-dimension traversal ranges ``(D, steps)``: evenly spaced between the codes' ``(1 ± coverage) / 2``
    quantiles, so that every dimension is swept over the values the encoder actually uses."""
    bounds = torch.quantile(codes, torch.tensor([(1 - coverage) / 2, (1 + coverage) / 2]), dim=0)  # (2, D)
    fractions = torch.linspace(0.0, 1.0, steps)
    return bounds[0, :, None] + (bounds[1] - bounds[0])[:, None] * fractions


def write_traversals(
    vae: DecompositionVAE, x: torch.Tensor, codes: torch.Tensor, path: Path, max_dims: int = 10
) -> Path:
    """Traversals of the first observation of ``x`` over the ``max_dims`` codes of largest variance."""
    dims = codes.var(0).argsort(descending=True)[:max_dims].sort().values.tolist()
    z = encode_means(vae, x[:1])[0]
    grid = traversal_grid(
        lambda z: vae.decode(z).reshape(*z.shape[:-1], *_image_shape(vae.obs_shape)).clamp(0, 1),
        z,
        traversal_values(codes),
        dims,
    )
    return save_grid(grid, path)


def _image_shape(obs_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` of image observations; flattened square grey images ``(H·W,)`` are unflattened."""
    if len(obs_shape) == 3:
        return obs_shape
    side = math.isqrt(math.prod(obs_shape))
    if len(obs_shape) != 1 or side * side != obs_shape[0]:
        raise ValueError(f"observations of shape {obs_shape} are no images")
    return (1, side, side)


@dataclass
class Experiment:
    """What a sub-experiment gives the training driver.

    :param vae: the model.
    :param num_train: the number of training observations.
    :param batch: training indices ``(B,)`` to observations ``(B, *obs_shape)``.
    :param evaluate: ``(vae, run_dir) -> scores`` after training; also writes the figures.
    """

    vae: DecompositionVAE
    num_train: int
    batch: Callable[[torch.Tensor], torch.Tensor]
    evaluate: Callable[[DecompositionVAE, Path], dict[str, Any]]


def networks(args: argparse.Namespace, obs_shape: Sequence[int]) -> tuple[nn.Module, nn.Module]:
    """Encoder (to ``2 · z_dim`` outputs) and decoder of ``--network``, with ``--hidden`` fully connected
    layers (mirrored in the decoder) and, for ``conv``, ``--channels`` convolutions."""
    out = 2 * args.z_dim
    hidden = list(args.hidden)
    if args.network == "conv":
        encoder = ConvEncoder(obs_shape, out, hidden, channels=args.channels)
        decoder = ConvDecoder(args.z_dim, obs_shape, hidden[::-1], channels=args.channels[::-1])
        return encoder, decoder
    size = math.prod(obs_shape)
    encoder = nn.Sequential(nn.Flatten(1), MLP(size, hidden, out, activation="relu"))
    decoder = nn.Sequential(
        MLP(args.z_dim, hidden[::-1], size, activation="relu"), nn.Unflatten(-1, obs_shape)
    )
    return encoder, decoder


def build_vae(args: argparse.Namespace, obs_shape: Sequence[int]) -> DecompositionVAE:
    prior = make_prior(args.prior, args.z_dim, scales=args.prior_scales, df=args.df, gamma=args.gamma)
    encoder, decoder = networks(args, obs_shape)
    return DecompositionVAE(encoder, decoder, prior, obs_shape, args.likelihood, args.obs_scale)


def pinwheel(args: argparse.Namespace) -> Experiment:
    """The clustering experiment on ``--num-points`` pinwheel points (drawn from ``--seed``)."""
    data = Pinwheel(args.num_points, seed=args.seed)
    vae = build_vae(args, data.observation_shape)

    def evaluate(vae: DecompositionVAE, run_dir: Path) -> dict[str, Any]:
        scores: dict[str, Any] = {"mmd_aggregate_prior": aggregate_mmd(vae, data.points, args.seed)}
        if isinstance(vae.prior, dist.MixtureSameFamily):
            scores.update(cluster_scores(vae.prior, encode_means(vae, data.points), data.labels))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            loc, scale = vae.encode(data.points)
            z, prior_samples = dist.Normal(loc, scale).sample(), vae.prior.sample((2000,))
        title = f"{args.prior} prior, β = {args.beta:g}, α = {args.alpha:g}"
        plot_aggregate_posterior(z, prior_samples, run_dir / "pinwheel.png", data.labels, title)
        return scores

    return Experiment(vae, len(data), lambda index: data.points[index], evaluate)


def sparsity(args: argparse.Namespace) -> Experiment:
    """The sparsity experiment on MNIST or Fashion-MNIST: all 60,000 training images (or the first
    ``--train-size``), scored on the first ``--eval-size`` test images."""
    load = dict(flatten=args.network == "mlp", dataset=args.dataset, image_size=args.image_size)
    try:
        train_x, _ = load_mnist("train", args.data, validation_size=0, **load)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error} Here the data root is --data.") from None
    test_x, test_y = load_mnist("test", args.data, **load)
    train_x = train_x[: args.train_size]
    test_x, test_y = test_x[: args.eval_size], test_y[: args.eval_size]
    vae = build_vae(args, train_x.shape[1:])

    def evaluate(vae: DecompositionVAE, run_dir: Path) -> dict[str, Any]:
        codes = encode_means(vae, test_x)
        bounds = torch.cat([vae.log_likelihood_bound(x, args.iwae_samples) for x in test_x.split(500)])
        title = (
            f"{args.dataset}, {args.prior} prior (γ = {args.gamma:g}), β = {args.beta:g}, α = {args.alpha:g}"
        )
        plot_class_mean_abs(class_mean_abs(codes, test_y, 10), run_dir / "class_bars.png", title=title)
        write_traversals(vae, test_x, codes, run_dir / "traversals.png")
        return {
            "hoyer_sparsity": hoyer_sparsity(codes.numpy()),
            "test_log_likelihood_bound": float(bounds.mean()),
            "iwae_samples": args.iwae_samples,
            "num_test": len(test_x),
        }

    return Experiment(vae, len(train_x), lambda index: train_x[index], evaluate)


def dsprites(args: argparse.Namespace) -> Experiment:
    """The independence experiment on procedurally rendered dSprites: ``--train-size`` images drawn once
    from ``--seed`` (default all 737,280), rendered batch by batch."""
    data = DSprites(source="procedural")
    rng = np.random.default_rng(args.seed)
    size = len(data) if args.train_size is None else min(args.train_size, len(data))
    index = rng.choice(len(data), size, replace=False)
    factors = np.stack(np.unravel_index(index, data.factor_sizes), axis=1)
    vae = build_vae(args, data.observation_shape)

    def batch(rows: torch.Tensor) -> torch.Tensor:  # rendering is deterministic: the rng is never used
        return data.observations_from_factors(factors[rows.numpy()], np.random.default_rng(0))

    def evaluate(vae: DecompositionVAE, run_dir: Path) -> dict[str, Any]:
        def representation(x: torch.Tensor) -> torch.Tensor:
            return vae.encode(x)[0]

        options = parse_metric_options(args.metric_option, args.metrics)
        scores = evaluate_disentanglement(
            data,
            representation,
            seed=args.seed,
            profile=args.metric_profile,
            metrics=args.metrics,
            options=options,
        )
        _, sample = data.sample(1000, np.random.default_rng(args.seed))
        write_traversals(vae, sample, encode_means(vae, sample), run_dir / "traversals.png")
        return {**scores, "metric_profile": args.metric_profile, "metric_options": options}

    return Experiment(vae, size, batch, evaluate)


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


BUILDERS: dict[str, Callable[[argparse.Namespace], Experiment]] = {
    "pinwheel": pinwheel,
    "sparsity": sparsity,
    "dsprites": dsprites,
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "pinwheel": dict(
        prior="mixture", z_dim=2, hidden=[100, 100], network="mlp", likelihood="normal", obs_scale=0.1,
        batch_size=400, lr=1e-3, epochs=300,
    ),
    "sparsity": dict(
        prior="sparse", z_dim=50, hidden=[500], network="mlp", likelihood="laplace", obs_scale=0.1,
        batch_size=500, lr=5e-4, epochs=80, eval_size=10000,
    ),
    "dsprites": dict(
        prior="isotropic", z_dim=10, hidden=[256], network="conv", likelihood="bernoulli", obs_scale=0.1,
        batch_size=64, lr=5e-4, epochs=20,
    ),
}  # fmt: skip


class Batches:
    """One epoch's training batches as ``(observations,)`` tuples for ``svi.step``.

    The order is a permutation drawn from ``(seed, epoch)`` alone (so resumed runs see the same batches);
    the last incomplete batch is dropped, unless the data is smaller than one batch.
    """

    def __init__(self, experiment: Experiment, batch_size: int, seed: int, epoch: int):
        self.experiment, self.batch_size = experiment, min(batch_size, experiment.num_train)
        self.order = torch.from_numpy(np.random.default_rng((seed, epoch)).permutation(experiment.num_train))

    def __len__(self) -> int:
        return self.experiment.num_train // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor]]:
        for i in range(len(self)):
            yield (self.experiment.batch(self.order[i * self.batch_size : (i + 1) * self.batch_size]),)


def add_common_arguments(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """The options every sub-experiment takes; ``defaults`` are the experiment's own settings."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--beta", type=float, default=1.0, help="β, the weight of KL(q(z|x) ‖ p(z))")
    parser.add_argument("--alpha", type=float, default=0.0, help="α, the weight of D(q(z), p(z)) per point")
    parser.add_argument("--divergence", choices=("mmd", "inclusive_kl"), default="mmd", help="D")
    parser.add_argument("--prior", choices=PRIORS)
    parser.add_argument("--gamma", type=float, default=0.8, help="spike weight γ of the sparse prior")
    parser.add_argument("--df", type=float, default=5.0, help="degrees of freedom ν of the Student-t prior")
    parser.add_argument("--prior-scales", type=float, nargs="+", help="σ_d of the anisotropic prior")
    parser.add_argument("--z-dim", type=int)
    parser.add_argument("--network", choices=NETWORKS)
    parser.add_argument("--hidden", type=int, nargs="+", help="fully connected hidden layer sizes")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 32, 64, 64], help="conv channels")
    parser.add_argument("--likelihood", choices=LIKELIHOODS)
    parser.add_argument("--obs-scale", type=float, help="scale of the Laplace / normal likelihood")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--train-size", type=int, help="use only this many training observations")
    add_run_arguments(parser, "decomposition", data=False)
    parser.set_defaults(**defaults)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command line: ``<experiment> [options]``, with each experiment's defaults."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(
        dest="experiment", required=True, metavar="{" + ",".join(EXPERIMENTS) + "}"
    )
    for name in EXPERIMENTS:
        sub = commands.add_parser(name, help=(BUILDERS[name].__doc__ or "").split("\n")[0])
        add_common_arguments(sub, DEFAULTS[name])
        if name == "pinwheel":
            sub.add_argument("--num-points", type=int, default=400)
        if name == "sparsity":
            sub.add_argument("--data", type=Path, help="data root (default: $PYRO_PARTIAL_DATA)")
            sub.add_argument("--dataset", choices=tuple(DATASETS), default="mnist")
            sub.add_argument(
                "--image-size", type=int, help="image side, resized if not 28 (default: 28; fashion-mnist 32)"
            )
            sub.add_argument("--eval-size", type=int, help="test images scored")
            sub.add_argument("--iwae-samples", type=int, default=100, help="K of the log-likelihood bound")
        if name == "dsprites":
            sub.add_argument("--metrics", nargs="+", choices=sorted(METRICS), default=["factor_vae"])
            sub.add_argument("--metric-profile", choices=("fast", "full"), default="full")
            sub.add_argument(
                "--metric-option",
                action="append",
                default=[],
                metavar="METRIC.OPTION=VALUE",
                help="an option of one metric, e.g. factor_vae.group_size=1000 (points per vote); repeatable",
            )
    return parser


def parse(argv: Sequence[str] | None = None, prog: str = PROG) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``), check it, record the command and fill in ``--out``."""
    parser = build_parser(prog)
    args = parse_recording_command(parser, argv)
    positive = ("epochs", "z_dim", "batch_size", "train_size", "eval_size", "iwae_samples", "num_points")
    for name in (*positive, "image_size"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "epochs" else 1):
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.beta < 0 or args.alpha < 0:
        parser.error(f"--beta and --alpha must be non-negative, got {args.beta} and {args.alpha}")
    if args.experiment == "sparsity" and args.image_size is None:
        args.image_size = 32 if args.dataset == "fashion-mnist" else 28
    if args.experiment == "dsprites":
        try:
            parse_metric_options(args.metric_option, args.metrics)
        except ValueError as error:
            parser.error(str(error))
    if args.out is None:
        data = "" if getattr(args, "dataset", "mnist") == "mnist" else f"-{args.dataset}"
        run = f"{args.experiment}{data}_{args.prior}_beta{args.beta:g}_alpha{args.alpha:g}_seed{args.seed}"
        args.out = Path("runs") / "decomposition" / run
    return args


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate the parsed experiment; write the run directory; return the results record."""
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    pyro.enable_validation(False)  # the test suite runs the model with validation on; off here for speed
    experiment = BUILDERS[args.experiment](args)
    _write_config(args)
    elbo = DecompositionELBO(beta=args.beta, alpha=args.alpha, divergence=args.divergence, latent_sites=["z"])
    svi = SVI(experiment.vae.model, experiment.vae.guide, Adam({"lr": args.lr}), elbo)
    print(
        f"decomposition {args.experiment}: {experiment.num_train} training points, prior {args.prior}, "
        f"β={args.beta:g}, α={args.alpha:g} ({args.divergence}); run directory {args.out}"
    )
    history = fit(
        svi,
        lambda epoch: Batches(experiment, args.batch_size, args.seed, epoch),
        epochs=args.epochs,
        modules={MODULE: experiment.vae},
        run_dir=args.out,
        resume=args.resume,
        progress=not args.no_progress,
    )
    began = time.perf_counter()
    experiment.vae.eval()
    scores = experiment.evaluate(experiment.vae, args.out)
    results = {
        "command": args.command,
        "experiment": args.experiment,
        "prior": args.prior,
        "beta": args.beta,
        "alpha": args.alpha,
        "divergence": args.divergence,
        "epochs": args.epochs,
        "final_loss": history[-1]["loss"] if history else None,
        "train_seconds": sum(row["seconds"] for row in history),
        "evaluation_seconds": time.perf_counter() - began,
        **scores,
        "arguments": parsed_arguments(args),
    }
    write_results(args.out / RESULTS, results, seed=args.seed)
    print(", ".join(f"{k}={v:.4g}" for k, v in scores.items() if isinstance(v, float)))
    return results


def _write_config(args: argparse.Namespace) -> None:
    """Write the run's settings; on ``--resume`` first check that they are the run's original ones."""
    ignored = {"out", "resume", "no_progress", "epochs", "command"}
    config = {k: v for k, v in parsed_arguments(args).items() if k not in ignored}
    path = args.out / CONFIG
    if args.resume and path.is_file():
        saved = json.loads(path.read_text())
        changed = sorted(k for k in config.keys() | saved.keys() if config.get(k) != saved.get(k))
        if changed:
            raise ValueError(
                f"--resume: {path} differs in {changed}; resume with the run's original arguments"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write((json.dumps(config, indent=2) + "\n").encode()))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Run ``<experiment> [options]`` (see the module docstring); returns the results record."""
    return train(parse(argv, prog))


if __name__ == "__main__":
    main()
