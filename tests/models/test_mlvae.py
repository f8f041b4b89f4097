"""The Multi-Level VAE experiment: the MNIST architecture, training on synthetic digits through the runner
(outputs, exact resumption, figures, arguments) and short runs on real MNIST and Yale B."""

import csv
import json

import matplotlib.image
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups
from pyro_partial.grouped import group_batches, mlp_grouped_vae
from pyro_partial.training import load_checkpoint_file, runner
from pyro_partial_models import mlvae
from pyro_partial_models.mlvae_data import GroupedImages
from pyro_partial_models.mlvae_evaluation import swap_grid_labels

SMALL = ["--group-size", "4", "--hidden", "16", "--no-progress"]


def train(argv):
    return runner.train(mlvae.MLVAE(), argv, prog="pyro-partial train mlvae")


def _digits(num_classes=3, per_class=40, x_dim=64):
    """Synthetic 'digits': one random binary prototype per class with 5% of the pixels flipped."""
    prototypes = (torch.rand(num_classes, x_dim) < 0.3).float()
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    flips = (torch.rand(len(labels), x_dim) < 0.05).float()
    return (prototypes[labels] - flips).abs(), labels


def test_architecture_and_site_shapes(single_thread):
    vae = mlp_grouped_vae(784)
    linears = [m for m in vae.guide.encoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 500), (500, 40)]
    assert any(isinstance(m, nn.Tanh) for m in vae.model.decoder.modules())
    images, labels = _digits(x_dim=784)
    index, mask = pad_groups([[0, 1, 2], [40, 41], [80]])
    guide_trace = poutine.trace(vae.guide).get_trace(images[index], mask)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(images[index], mask)
    assert model_trace.nodes["content"]["value"].shape == (3, 1, 10)
    assert model_trace.nodes["style"]["value"].shape == (3, 3, 10)
    assert model_trace.nodes["x"]["fn"].batch_shape == (3, 3)
    assert model_trace.nodes["x"]["fn"].event_shape == (784,)


def test_svi_training_reduces_the_loss_and_groups_the_content_by_class(single_thread):
    # the model and guide train with a plain SVI loop over the device batches, outside the runner
    images, labels = _digits()
    vae = mlp_grouped_vae(64, hidden=(32,))
    sampler = GroupedBatchSampler(labels, 3, 5, min_group_size=2, seed=0, padded=True)
    batches = group_batches(sampler, images)
    elbo = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=2)
    index, mask = pad_groups(next(iter(GroupedBatchSampler(labels, 3, 8, seed=1))))
    before = elbo.loss(vae.model, vae.guide, images[index], mask)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 3e-3}), Trace_ELBO(max_plate_nesting=2))
    epoch_losses = []
    for _ in range(10):
        losses = [svi.step(*batches.gather(item)) for item in batches.sampler]
        epoch_losses.append(sum(losses) / len(losses))
    after = elbo.loss(vae.model, vae.guide, images[index], mask)
    assert epoch_losses[-1] < epoch_losses[0]
    assert after < 0.5 * before
    # Within-class variation of the pixels is only noise: the trained content code of single images is
    # nearly constant within each class (class explains > 95% of its variance; about 80% at initialisation).
    content_loc = vae.guide.encoder(images)[0].detach()
    class_means = torch.stack([content_loc[labels == k].mean(0) for k in range(3)])
    within = (content_loc - class_means[labels]).square().sum()
    total = (content_loc - content_loc.mean(0)).square().sum()
    assert 1 - within / total > 0.95


@pytest.fixture
def synthetic_digits(monkeypatch):
    """Ten synthetic 784-pixel 'digits' (20 per class) for both splits, in place of MNIST."""
    data = GroupedImages(*_digits(10, 20, 784), *_digits(10, 20, 784), (28, 28), 10)
    monkeypatch.setattr(mlvae, "load_grouped_images", lambda name, root, size, seed, download: data)


def test_run_writes_the_evaluation_and_resumes_exactly(synthetic_digits, tmp_path, single_thread):
    straight = train([*SMALL, "--epochs", "2", "--out", str(tmp_path / "straight")])
    train([*SMALL, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = train([*SMALL, "--epochs", "2", "--resume", "--out", str(tmp_path / "resumed")])

    weights = [
        load_checkpoint_file(tmp_path / run / "checkpoint.ckpt")["state_dict"]
        for run in ("straight", "resumed")
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    keys = (
        "final_loss",
        "classification",
        "classification_seen",
        "classification_unseen",
        "identification_seen",
        "identification_unseen",
    )
    assert {k: resumed[k] for k in keys} == {k: straight[k] for k in keys}
    assert list(straight["identification_unseen"]) == ["1", "2", "5", "10"]
    assert straight["classification"]["chance"] == pytest.approx(0.1)
    assert straight["classification_unseen"]["chance"] == pytest.approx(0.5)
    assert straight["classification_seen"]["chance"] == pytest.approx(0.125)  # 8 training digits
    assert straight["groups_per_batch"] == 8  # --batch-size 10 groups, capped at the 8 training digits
    assert straight["batches_per_epoch"] == 160 // (8 * 4)
    record = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert record["seed"] == 0 and record["holdout_classes"] == [8, 9] and record["dataset"] == "mnist"
    assert record["command"].startswith("pyro-partial train mlvae --group-size 4 ")
    assert record["environment"]["torch"] == torch.__version__
    for run in ("straight", "resumed"):
        with open(tmp_path / run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [row["epoch"] for row in rows] == ["0", "1"]
        assert float(rows[-1]["loss"]) == pytest.approx(straight["final_loss"])


def test_plot_writes_the_swap_grid(synthetic_digits, tmp_path, single_thread, capsys):
    run = tmp_path / "run"
    train([*SMALL, "--epochs", "1", "--out", str(run)])
    paths = runner.plot(mlvae.MLVAE(), ["--run", str(run)])
    assert list(paths) == ["swap_grid"] and paths["swap_grid"] == run / "figures" / "swap_grid.png"
    grid = matplotlib.image.imread(paths["swap_grid"])
    assert grid.ndim == 3 and grid.shape[0] < grid.shape[1]  # 9 rows (8 styles) by 11 columns (10 digits)
    assert "swap grid columns (content labels): [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in capsys.readouterr().out
    with pytest.raises(
        ValueError,
        match=r"label 0 has 18 evaluation images after the 8 style rows; a content group needs group_size=30",
    ):
        runner.plot(mlvae.MLVAE(), ["--run", str(run), "--content-group-size", "30"])


def test_swap_grid_columns_take_up_to_half_held_out_labels():
    assert swap_grid_labels(list(range(38)), [33, 34, 35, 36, 37], 10) == [0, 1, 2, 3, 4, 33, 34, 35, 36, 37]
    assert swap_grid_labels(list(range(10)), [9, 8], 4) == [0, 1, 8, 9]
    assert swap_grid_labels(list(range(10)), [8, 9], 3) == [0, 1, 8]
    assert swap_grid_labels(list(range(10)), [], 3) == [0, 1, 2]


def test_trains_without_held_out_classes(synthetic_digits, tmp_path, single_thread):
    results = train([*SMALL, "--epochs", "1", "--holdout-classes", "--out", str(tmp_path)])
    assert results["holdout_classes"] == [] and "identification_unseen" not in results
    assert "classification_unseen" not in results and "classification_seen" not in results
    assert set(results["identification_seen"]) == {"1", "2", "5", "10"}
    assert results["arguments"]["style_dim"] == 5
    state = load_checkpoint_file(tmp_path / "checkpoint.ckpt")["state_dict"]
    decoder_input = next(v for k, v in state.items() if ".decoder." in k and k.endswith("weight"))
    assert decoder_input.shape == (16, 10 + 5)  # hidden 16 from SMALL, content 10 + style 5
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == {
        "x_dim": 784,
        "content_dim": 10,
        "style_dim": 5,
        "hidden": [16],
        "evidence": "product",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--holdout-classes", "3", "10"],
            r"--holdout-classes must be at most 8 distinct labels in 0..9 (two must remain for training), "
            r"got [3, 10]",
        ),
        (["--holdout-classes", *map(str, range(9))], "--holdout-classes must be at most 8 distinct labels"),
        (["--dataset", "yaleb", "--holdout-classes", "38"], "at most 36 distinct labels in 0..37"),
        (["--group-size", "0"], "--group-size must be positive, got 0"),
        (
            ["--min-group-size", "5", "--group-size", "4"],
            "--min-group-size must lie in [1, --group-size=4], got 5",
        ),
        (["--style-dim", "0"], "--style-dim must be positive, got 0"),
        (["--hidden", "16", "0"], "--hidden sizes must be positive, got [16, 0]"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        train(["--data", str(tmp_path / "no-data"), "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_defaults_are_mnists_and_yield_to_flags():
    parser = runner.build_parser(mlvae.MLVAE())
    args = parser.parse_args([])
    assert (args.style_dim, args.content_dim, args.lr, args.epochs, args.batch_size) == (5, 10, 3e-3, 20, 10)
    assert (args.dataset, args.batches_per_epoch, args.group_size, args.hidden) == ("mnist", None, 25, [500])
    flags = ["--epochs", "3", "--batches-per-epoch", "7", "--lr", "0.5", "--style-dim", "2"]
    explicit = parser.parse_args(["--dataset", "yaleb", *flags])
    assert (explicit.epochs, explicit.batches_per_epoch, explicit.lr, explicit.style_dim) == (3, 7, 0.5, 2)
    assert mlvae.MLVAE().run_name(args) == "mnist_holdout8-9_product_seed0"


def test_on_a_slice_of_real_mnist(real_data_root, tmp_path, single_thread):
    argv = ["--data", str(real_data_root), "--train-size", "1000", "--eval-size", "1000", "--epochs", "1"]
    results = train([*argv, *SMALL, "--out", str(tmp_path)])
    assert 0.0 <= results["classification"]["content"] <= 1.0
    assert (tmp_path / "checkpoint.ckpt").is_file()
    paths = runner.plot(mlvae.MLVAE(), ["--run", str(tmp_path), "--data", str(real_data_root)])
    assert paths["swap_grid"].is_file()


def test_on_yale_b_faces(real_data_root, tmp_path, single_thread, capsys):
    argv = ["--dataset", "yaleb", "--yaleb-size", "24", "21", "--epochs", "1", "--batches-per-epoch", "2"]
    results = train([*argv, *SMALL, "--data", str(real_data_root), "--out", str(tmp_path)])
    assert results["holdout_classes"] == [33, 34, 35, 36, 37] and results["groups_per_batch"] == 10
    assert results["classification"]["chance"] < 0.05  # 38 subjects
    assert list(results["identification_unseen"]) == ["1", "2", "5", "10"]
    paths = runner.plot(mlvae.MLVAE(), ["--run", str(tmp_path), "--data", str(real_data_root)])
    assert (
        "swap grid columns (content labels): [0, 1, 2, 3, 4, 33, 34, 35, 36, 37]" in capsys.readouterr().out
    )
    # 9 rows by 11 columns of 24x21 faces
    assert matplotlib.image.imread(paths["swap_grid"]).shape[:2] == (720, 880)
