import json
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI
from pyro.optim import Adam
from torch import nn

from models import decomposition
from models.decomposition import DecompositionVAE, cluster_scores, make_prior, parse_metric_options
from pyro_partial import cli
from pyro_partial.distributions import priors
from pyro_partial.infer import DecompositionELBO
from tests.data.test_mnist import _write_idx

TINY_PINWHEEL = ["pinwheel", "--num-points", "40", "--batch-size", "20", "--hidden", "8", "--no-progress"]


@pytest.mark.parametrize("name", decomposition.PRIORS)
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


def test_cluster_scores():
    prior = priors.gaussian_mixture()
    labels = torch.arange(40) % 4
    # codes at the component means, arms mapped to components by any permutation: a perfect clustering
    codes = prior.component_distribution.base_dist.loc[(labels + 1) % 4] + 0.01 * torch.randn(40, 2)
    assert cluster_scores(prior, codes, labels) == {"adjusted_rand_index": 1.0, "purity": 1.0}
    # all codes in one component: no information about the arms
    scores = cluster_scores(prior, torch.zeros(40, 2) + torch.tensor([1.0, 0.0]), labels)
    assert scores["adjusted_rand_index"] == 0.0 and scores["purity"] == 0.25
    with pytest.raises(TypeError, match="mixture prior"):
        cluster_scores(priors.isotropic_gaussian(2), codes, labels)


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
    return DecompositionVAE(body, decoder, priors.isotropic_gaussian(1), (1,), "normal", sigma)


@pytest.mark.parametrize("num_samples", [1, 7])
def test_log_likelihood_bound_is_exact_for_the_exact_posterior(num_samples):
    w, sigma = 1.5, 0.5
    vae = linear_gaussian_vae(w, sigma)
    x = torch.linspace(-3, 3, 11).unsqueeze(-1)
    exact = dist.Normal(0.0, math.sqrt(w**2 + sigma**2)).log_prob(x[:, 0])
    assert torch.allclose(vae.log_likelihood_bound(x, num_samples), exact, atol=1e-4)


def test_log_likelihood_bound_tightens_with_more_samples():
    vae = linear_gaussian_vae(1.5, 0.5)
    with torch.no_grad():
        vae.encoder.body.weight[0] *= 0.5  # a worse encoder: the ELBO is loose
    x = torch.randn(2000, 1) * 1.6
    exact = dist.Normal(0.0, math.sqrt(1.5**2 + 0.5**2)).log_prob(x[:, 0]).mean()
    elbo, iwae = vae.log_likelihood_bound(x, 1).mean(), vae.log_likelihood_bound(x, 50).mean()
    assert elbo < iwae - 0.05 and iwae < exact + 0.01
    with pytest.raises(ValueError, match="positive"):
        vae.log_likelihood_bound(x, 0)


@pytest.mark.parametrize("prior", ["mixture", "student-t", "sparse"])
def test_model_and_guide_train_with_validation(prior, single_thread):
    args = decomposition.parse([*TINY_PINWHEEL, "--prior", prior, "--alpha", "1"])
    vae = decomposition.build_vae(args, (2,))
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), DecompositionELBO(beta=1.0, alpha=1.0))
    x = torch.randn(16, 2)
    losses = [svi.step(x) for _ in range(20)]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-5:]) < sum(losses[:5])
    assert set(pyro.get_param_store()) >= {
        "decomposition_vae$$$encoder.body.1.0.weight",
        "decomposition_vae$$$decoder.0.0.weight",
    }


def test_decomposition_vae_errors():
    with pytest.raises(ValueError, match="likelihood"):
        DecompositionVAE(nn.Identity(), nn.Identity(), priors.isotropic_gaussian(2), (2,), "poisson")
    with pytest.raises(ValueError, match="obs_scale"):
        DecompositionVAE(nn.Identity(), nn.Identity(), priors.isotropic_gaussian(2), (2,), "normal", 0.0)


def test_parse_defaults_and_errors(tmp_path):
    args = decomposition.parse(["dsprites", "--prior", "anisotropic", "--beta", "4"])
    assert (args.network, args.z_dim, args.batch_size, args.lr, args.epochs) == ("conv", 10, 64, 5e-4, 20)
    assert str(args.out) == "runs/decomposition/dsprites_anisotropic_beta4_alpha0_seed0"
    args = decomposition.parse(["sparsity"])
    assert (args.prior, args.z_dim, args.likelihood, args.obs_scale, args.eval_size) == (
        "sparse",
        50,
        "laplace",
        0.1,
        10000,
    )
    assert decomposition.parse(["pinwheel"]).prior == "mixture"
    for bad in (["pinwheel", "--alpha", "-1"], ["pinwheel", "--epochs", "-1"], ["mnist"]):
        with pytest.raises(SystemExit):
            decomposition.parse(bad)


def test_pinwheel_run_resumes_exactly(tmp_path, single_thread):
    straight = decomposition.main(
        [*TINY_PINWHEEL, "--epochs", "3", "--alpha", "1", "--out", str(tmp_path / "a")]
    )
    decomposition.main([*TINY_PINWHEEL, "--epochs", "2", "--alpha", "1", "--out", str(tmp_path / "b")])
    resumed = decomposition.main(
        [*TINY_PINWHEEL, "--epochs", "3", "--alpha", "1", "--out", str(tmp_path / "b"), "--resume"]
    )
    assert resumed["final_loss"] == straight["final_loss"]
    assert resumed["adjusted_rand_index"] == straight["adjusted_rand_index"]
    record = json.loads((tmp_path / "b" / "results.json").read_text())
    assert record["command"].endswith("--resume") and record["seed"] == 0
    assert -1 <= record["adjusted_rand_index"] <= 1 and 0 < record["purity"] <= 1
    assert (tmp_path / "b" / "pinwheel.png").is_file()
    assert len((tmp_path / "b" / "metrics.csv").read_text().splitlines()) == 4  # header + 3 epochs
    with pytest.raises(ValueError, match=r"differs in \['alpha'\]"):
        decomposition.main([*TINY_PINWHEEL, "--epochs", "4", "--out", str(tmp_path / "b"), "--resume"])


def test_through_the_cli(tmp_path, single_thread):
    assert cli.main(["train", "decomposition", *TINY_PINWHEEL, "--epochs", "1", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["command"].startswith("pyro-partial train decomposition pinwheel")


def test_dsprites_smoke(tmp_path, single_thread):
    args = [
        "dsprites",
        "--train-size",
        "32",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--channels",
        "4",
        "4",
        "4",
    ]
    args += ["--hidden", "8", "--z-dim", "3", "--metrics", "mig", "--metric-profile", "fast", "--no-progress"]
    args += ["--metric-option", "mig.num_bins=5"]
    record = decomposition.main([*args, "--out", str(tmp_path), "--prior", "student-t"])
    assert 0 <= record["mig"] <= 1 and record["metric_profile"] == "fast"
    assert record["metric_options"] == {"mig": {"num_bins": 5}}
    assert (tmp_path / "traversals.png").is_file()


def test_sparsity_smoke(tmp_path, real_data_root, single_thread):
    args = [
        "sparsity",
        "--data",
        str(real_data_root),
        "--train-size",
        "100",
        "--eval-size",
        "60",
        "--epochs",
        "1",
    ]
    args += ["--hidden", "16", "--z-dim", "5", "--iwae-samples", "3", "--alpha", "10", "--no-progress"]
    record = decomposition.main([*args, "--out", str(tmp_path)])
    assert 0 <= record["hoyer_sparsity"] <= 1 and record["num_test"] == 60
    assert math.isfinite(record["test_log_likelihood_bound"])
    assert (tmp_path / "class_bars.png").is_file() and (tmp_path / "traversals.png").is_file()


def test_parse_dataset_and_metric_options():
    args = decomposition.parse(["sparsity", "--dataset", "fashion-mnist", "--alpha", "100"])
    assert args.image_size == 32 and str(args.out).endswith(
        "sparsity-fashion-mnist_sparse_beta1_alpha100_seed0"
    )
    assert decomposition.parse(["sparsity"]).image_size == 28
    args = decomposition.parse(["dsprites", "--metric-option", "factor_vae.group_size=1000"])
    assert parse_metric_options(args.metric_option, args.metrics) == {"factor_vae": {"group_size": 1000}}
    for bad in (
        ["--metric-option", "group_size=1000"],
        ["--metric-option", "mig.group_size=1000"],
        ["--metric-option", "factor_vae.points=1000"],
        ["--metric-option", "factor_vae.group_size=many"],
    ):
        with pytest.raises(SystemExit):
            decomposition.parse(["dsprites", *bad])
    with pytest.raises(SystemExit):
        decomposition.parse(["sparsity", "--image-size", "0"])


def test_fashion_mnist_sparsity_smoke_on_idx_files(tmp_path, single_thread):
    """The experiment reads Fashion-MNIST's IDX files from <--data>/FashionMNIST/raw and trains on 32x32
    images; without the files it names the paths it looked for."""
    rng = np.random.default_rng(0)
    _write_idx(
        tmp_path / "data" / "FashionMNIST" / "raw",
        rng.integers(0, 256, (30, 28, 28)),
        np.arange(30) % 10,
        True,
    )
    args = ["sparsity", "--dataset", "fashion-mnist", "--data", str(tmp_path / "data"), "--train-size", "20"]
    args += ["--eval-size", "10", "--epochs", "1", "--hidden", "8", "--z-dim", "3", "--iwae-samples", "2"]
    record = decomposition.main([*args, "--alpha", "10", "--no-progress", "--out", str(tmp_path / "run")])
    assert record["arguments"]["image_size"] == 32 and record["num_test"] == 10
    assert math.isfinite(record["test_log_likelihood_bound"]) and 0 <= record["hoyer_sparsity"] <= 1
    args[4] = str(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="FashionMNIST/raw.*Here the data root is --data"):
        decomposition.main([*args, "--no-progress", "--out", str(tmp_path / "run2")])
