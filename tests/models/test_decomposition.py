"""Mathieu et al.'s decomposition experiments: the priors, the VAE and its log-likelihood bound against closed
forms, the command lines, and tiny runs of the three experiments (exact resume, figures, the CLI)."""

import csv
import gzip
import json
import math
import struct

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI
from pyro.optim import Adam
from torch import nn

from pyro_partial.data import DSprites
from pyro_partial.data.idx import magic_number
from pyro_partial.data.mnist import IDX_FILES
from pyro_partial.distributions import priors
from pyro_partial.infer import DecompositionELBO
from pyro_partial.training import load_checkpoint_file, runner
from pyro_partial_models import cli
from pyro_partial_models.decomposition import (
    DSpritesIndependence,
    Pinwheel,
    Sparsity,
    parse_metric_options,
)
from pyro_partial_models.decomposition_vae import (
    PRIORS,
    DecompositionGuide,
    DecompositionModel,
    DecompositionVAE,
    build_vae,
    make_prior,
)

QUIET = ["--no-progress", "--accelerator", "cpu"]
TINY_PINWHEEL = ["--num-points", "40", "--batch-size", "20", "--hidden", "8", *QUIET]
TINY_DSPRITES = ["--train-size", "32", "--batch-size", "16", "--channels", "4", "4", "4", "--hidden", "8"]
TINY_DSPRITES += ["--z-dim", "3", "--metrics", "mig", "--metric-profile", "fast", *QUIET]


@pytest.mark.parametrize("name", PRIORS)
def test_make_prior_shapes(name):
    dim = 2
    prior = make_prior(name, dim)
    assert prior.batch_shape == () and prior.event_shape == (dim,)
    assert prior.log_prob(torch.zeros(5, dim)).shape == (5,)


def test_make_prior_options():
    assert torch.equal(
        make_prior("anisotropic", 3, scales=[3.0, 2.0, 1.0]).base_dist.scale, torch.tensor([3.0, 2, 1])
    )
    assert torch.equal(make_prior("anisotropic", 3).base_dist.scale, torch.tensor([1.0, 0.6, 0.2]))
    assert make_prior("student-t", 2, df=3.0).base_dist.df.tolist() == [3.0, 3.0]
    # γ = 0: the sparse prior is exactly N(0, I)
    z = torch.randn(4, 3)
    assert torch.allclose(
        make_prior("sparse", 3, gamma=0.0).log_prob(z), priors.isotropic_gaussian(3).log_prob(z)
    )
    with pytest.raises(ValueError, match="3 standard deviations"):
        make_prior("anisotropic", 3, scales=[1.0])
    with pytest.raises(ValueError, match="2-dimensional"):
        make_prior("mixture", 3)
    with pytest.raises(ValueError, match="prior must be one of"):
        make_prior("laplace", 3)


@pytest.mark.parametrize("name", PRIORS)
def test_the_model_builds_its_prior_in_the_data_dtype(name):
    model = DecompositionModel(nn.Identity(), name, 2, (2,))
    x = torch.zeros(3, 2, dtype=torch.float64)
    prior = model.prior(x)
    assert prior.sample((4,)).dtype == torch.float64 and prior.log_prob(x).dtype == torch.float64
    assert model.prior(x) is prior and model.prior(x.float()).sample().dtype == torch.float32  # one per dtype


def linear_gaussian_vae(w: float, sigma: float) -> DecompositionVAE:
    """z ~ N(0, 1), x | z ~ N(w z, σ²), and an encoder equal to the exact posterior."""
    precision = 1.0 + w**2 / sigma**2
    body = nn.Linear(1, 2)
    with torch.no_grad():
        body.weight.copy_(torch.tensor([[w / sigma**2 / precision], [0.0]]))
        std = precision**-0.5 - 1e-3  # GaussianHead adds min_scale 1e-3 to softplus(raw)
        body.bias.copy_(torch.tensor([0.0, math.log(math.expm1(std))]))
    decoder = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        decoder.weight.fill_(w)
    model = DecompositionModel(decoder, "isotropic", 1, (1,), "normal", sigma)
    return DecompositionVAE(model, DecompositionGuide(body))


@pytest.mark.parametrize("num_samples", [1, 7])
def test_log_likelihood_bound_is_exact_for_the_exact_posterior(num_samples):
    torch.set_default_dtype(torch.float64)  # reset by the autouse fixture
    w, sigma = 1.5, 0.5
    vae = linear_gaussian_vae(w, sigma)
    x = torch.linspace(-3, 3, 11).unsqueeze(-1)
    exact = dist.Normal(0.0, math.sqrt(w**2 + sigma**2)).log_prob(x[:, 0])
    bound = vae.log_likelihood_bound(x, num_samples)
    assert bound.dtype == torch.float64
    assert torch.allclose(bound, exact, rtol=0, atol=1e-10)


def test_log_likelihood_bound_tightens_with_more_samples():
    torch.set_default_dtype(torch.float64)
    vae = linear_gaussian_vae(1.5, 0.5)
    with torch.no_grad():
        vae.guide.encoder.body.weight[0] *= 0.5  # a worse encoder: the ELBO is loose
    x = torch.randn(2000, 1) * 1.6
    exact = dist.Normal(0.0, math.sqrt(1.5**2 + 0.5**2)).log_prob(x[:, 0]).mean()
    elbo, iwae = vae.log_likelihood_bound(x, 1).mean(), vae.log_likelihood_bound(x, 50).mean()
    assert elbo < iwae - 0.05 and iwae < exact + 0.01
    with pytest.raises(ValueError, match="positive"):
        vae.log_likelihood_bound(x, 0)


def test_encode_means_in_chunks_equals_one_pass_in_the_module_dtype():
    vae = build_vae((2,), 2, "mixture", hidden=[8])
    x = torch.randn(25, 2)
    assert torch.allclose(vae.encode_means(x, batch_size=4), vae.guide.encode(x)[0])
    vae.double()  # e.g. trained with --precision 64-true: float32 data is converted for it
    codes = vae.encode_means(x, batch_size=4)
    assert codes.dtype == torch.float64 and torch.allclose(codes, vae.guide.encode(x.double())[0])
    assert vae.log_likelihood_bound(vae.as_input(x), 2).dtype == torch.float64


@pytest.mark.parametrize("prior", ["mixture", "student-t", "sparse"])
def test_model_and_guide_train_with_validation_in_a_plain_svi_loop(prior, single_thread):
    vae = build_vae((2,), 2, prior, hidden=[8], likelihood="normal")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), DecompositionELBO(beta=1.0, alpha=1.0))
    x = torch.randn(16, 2)
    losses = [svi.step(x) for _ in range(20)]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-5:]) < sum(losses[:5])
    # PyroModule registers its networks' weights in the param store under their module paths
    assert set(pyro.get_param_store()) >= {"guide.encoder$$$body.1.0.weight", "model.decoder$$$0.0.weight"}


def test_decomposition_vae_errors():
    with pytest.raises(ValueError, match="likelihood"):
        DecompositionModel(nn.Identity(), "isotropic", 2, (2,), "poisson")
    with pytest.raises(ValueError, match="obs_scale"):
        DecompositionModel(nn.Identity(), "isotropic", 2, (2,), "normal", 0.0)
    with pytest.raises(ValueError, match="prior must be one of"):
        DecompositionModel(nn.Identity(), "cauchy", 2, (2,))
    with pytest.raises(ValueError, match="network must be one of"):
        build_vae((2,), 2, "isotropic", network="rnn")
    with pytest.raises(ValueError, match=r"x must have shape \(batch, \*\(2,\)\), got \(4, 3\)"):
        build_vae((2,), 2, "isotropic", hidden=[4]).model(torch.zeros(4, 3))


def test_arguments_defaults_and_errors():
    args = runner.parse(DSpritesIndependence(), ["--prior", "anisotropic", "--beta", "4"])
    assert (args.network, args.z_dim, args.batch_size, args.lr, args.epochs) == ("conv", 10, 64, 5e-4, 20)
    assert str(args.out) == "runs/dsprites/anisotropic_beta4_alpha0_seed0"
    args = runner.parse(Sparsity(), [])
    assert (args.prior, args.z_dim, args.likelihood, args.obs_scale, args.eval_size) == (
        "sparse",
        50,
        "laplace",
        0.1,
        10000,
    )
    assert (args.batch_size, args.lr, args.epochs) == (500, 5e-4, 80)
    args = runner.parse(Pinwheel(), [])
    assert (args.prior, args.z_dim, args.likelihood, args.epochs, args.batch_size) == (
        "mixture",
        2,
        "normal",
        300,
        400,
    )
    for bad in (
        ["--alpha", "-1"],
        ["--epochs", "-1"],
        ["--z-dim", "3"],  # the mixture prior is 2-D
        ["--prior", "anisotropic", "--prior-scales", "1"],
        ["--gamma", "1"],
        ["--num-points", "0"],
    ):
        with pytest.raises(SystemExit):
            runner.parse(Pinwheel(), bad)


def test_arguments_of_the_dataset_and_the_metrics():
    args = runner.parse(Sparsity(), ["--dataset", "fashion-mnist", "--alpha", "100"])
    assert Sparsity.image_size(args) == 32 and str(args.out) == (
        "runs/sparsity/fashion-mnist_sparse_beta1_alpha100_seed0"
    )
    assert Sparsity.image_size(runner.parse(Sparsity(), [])) == 28
    args = runner.parse(DSpritesIndependence(), ["--metric-option", "factor_vae.group_size=1000"])
    assert parse_metric_options(args.metric_option, args.metrics) == {"factor_vae": {"group_size": 1000}}
    for bad in (
        ["--metric-option", "group_size=1000"],
        ["--metric-option", "mig.group_size=1000"],
        ["--metric-option", "factor_vae.points=1000"],
        ["--metric-option", "factor_vae.group_size=many"],
    ):
        with pytest.raises(SystemExit):
            runner.parse(DSpritesIndependence(), bad)
    with pytest.raises(SystemExit):
        runner.parse(Sparsity(), ["--image-size", "0"])


def weights(run_dir):
    return load_checkpoint_file(run_dir / "checkpoint.ckpt")["state_dict"]


def test_pinwheel_run_resumes_bit_identically_and_plots(tmp_path, single_thread, capsys):
    def train(out, *argv):
        return runner.train(Pinwheel(), [*TINY_PINWHEEL, "--alpha", "1", "--out", str(out), *argv])

    straight = train(tmp_path / "a", "--epochs", "3")
    train(tmp_path / "b", "--epochs", "2")
    torch.manual_seed(123)  # resuming restores the generators itself
    resumed = train(tmp_path / "b", "--epochs", "3", "--resume")
    expected, found = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert expected.keys() == found.keys() and len(expected) > 0
    for name, value in expected.items():
        assert torch.equal(value, found[name]), name
    for key in ("final_loss", "adjusted_rand_index", "purity", "mmd_aggregate_prior"):
        assert resumed[key] == straight[key], key
    record = json.loads((tmp_path / "b" / "results.json").read_text())
    assert record["command"].endswith("--resume") and record["seed"] == 0
    assert -1 <= record["adjusted_rand_index"] <= 1 and 0 < record["purity"] <= 1
    with open(tmp_path / "b" / "metrics.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2"]
    paths = runner.plot(Pinwheel(), ["--run", str(tmp_path / "b")])
    assert paths == {"pinwheel": tmp_path / "b" / "figures" / "pinwheel.png"} and paths["pinwheel"].is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        runner.train(Pinwheel(), [*TINY_PINWHEEL, "--epochs", "4", "--out", str(tmp_path / "b"), "--resume"])
    assert "alpha: saved 1.0, asked 0.0" in capsys.readouterr().err


def test_through_the_cli(tmp_path, single_thread):
    argv = ["train", "pinwheel", *TINY_PINWHEEL, "--epochs", "1", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["command"].startswith("pyro-partial train pinwheel --num-points 40")
    assert record["experiment"] == "pinwheel" and record["epochs"] == 1


def test_dsprites_batches_are_the_rendered_frames():
    experiment = DSpritesIndependence()
    args = runner.parse(experiment, [*TINY_DSPRITES, "--seed", "3"])
    frames = experiment.load_data(args)
    batches, obs_shape = experiment.training_batches(args, frames)
    assert obs_shape == (1, 64, 64) and frames.packed.shape == (32, 1, 64, 8)
    index = torch.arange(32)[torch.randperm(32)][:16]
    (images,) = batches.gather(index)
    # the frames drawn from the seed, rendered again directly
    rows = np.random.default_rng(3).choice(len(frames.dataset), 32, replace=False)[index.numpy()]
    factors = np.stack(np.unravel_index(rows, frames.dataset.factor_sizes), axis=1)
    assert torch.equal(
        images, DSprites(source="procedural").observations_from_factors(factors, np.random.default_rng(0))
    )


def test_dsprites_smoke(tmp_path, single_thread):
    argv = [*TINY_DSPRITES, "--epochs", "1", "--metric-option", "mig.num_bins=5"]
    record = runner.train(DSpritesIndependence(), [*argv, "--out", str(tmp_path), "--prior", "student-t"])
    assert 0 <= record["mig"] <= 1 and record["metric_profile"] == "fast"
    assert record["metric_options"] == {"mig": {"num_bins": 5}}
    paths = runner.plot(DSpritesIndependence(), ["--run", str(tmp_path)])
    assert paths["traversals"].is_file()


def test_sparsity_smoke(tmp_path, real_data_root, single_thread):
    argv = ["--data", str(real_data_root), "--train-size", "100", "--eval-size", "60", "--epochs", "1"]
    argv += ["--hidden", "16", "--z-dim", "5", "--iwae-samples", "3", "--alpha", "10", *QUIET]
    record = runner.train(Sparsity(), [*argv, "--out", str(tmp_path)])
    assert 0 <= record["hoyer_sparsity"] <= 1 and record["num_test"] == 60
    assert math.isfinite(record["test_log_likelihood_bound"])
    paths = runner.plot(Sparsity(), ["--run", str(tmp_path), "--data", str(real_data_root)])
    assert paths["class_bars"].is_file() and paths["traversals"].is_file()


def write_idx_files(raw, images, labels):
    """The four gzipped IDX files of MNIST's layout (the same images for training and test)."""
    raw.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    image_bytes = struct.pack(">4i", magic_number(3), n, rows, cols) + images.astype(np.uint8).tobytes()
    label_bytes = struct.pack(">2i", magic_number(1), n) + labels.astype(np.uint8).tobytes()
    for name in IDX_FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress(image_bytes if "images" in name else label_bytes))


def test_fashion_mnist_sparsity_smoke_on_idx_files(tmp_path, single_thread):
    """The experiment reads Fashion-MNIST's IDX files from <--data>/FashionMNIST/raw and trains on 32x32
    images; without the files it names the paths it looked for."""
    rng = np.random.default_rng(0)
    write_idx_files(
        tmp_path / "data" / "FashionMNIST" / "raw", rng.integers(0, 256, (30, 28, 28)), np.arange(30) % 10
    )
    argv = ["--dataset", "fashion-mnist", "--data", str(tmp_path / "data"), "--train-size", "20"]
    argv += ["--eval-size", "10", "--epochs", "1", "--hidden", "8", "--z-dim", "3", "--iwae-samples", "2"]
    record = runner.train(Sparsity(), [*argv, "--alpha", "10", *QUIET, "--out", str(tmp_path / "run")])
    assert record["image_size"] == 32 and record["num_test"] == 10
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["obs_shape"] == [1024]
    assert math.isfinite(record["test_log_likelihood_bound"]) and 0 <= record["hoyer_sparsity"] <= 1
    argv[3] = str(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="FashionMNIST/raw.*Here the data root is --data"):
        runner.train(Sparsity(), [*argv, *QUIET, "--out", str(tmp_path / "run2")])
