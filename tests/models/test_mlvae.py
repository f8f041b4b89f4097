import csv
import json

import matplotlib.image
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from models import mlvae
from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups
from pyro_partial.grouped import GroupBatches, mlp_grouped_vae
from pyro_partial.training import fit

SMALL = ["--group-size", "4", "--hidden", "16", "--no-progress"]


def _digits(num_classes=3, per_class=40, x_dim=64):
    """Synthetic 'digits': one random binary prototype per class with 5% of the pixels flipped."""
    prototypes = (torch.rand(num_classes, x_dim) < 0.3).float()
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    flips = (torch.rand(len(labels), x_dim) < 0.05).float()
    return (prototypes[labels] - flips).abs(), labels


def test_architecture_and_site_shapes(single_thread):
    vae = mlp_grouped_vae(784)
    linears = [m for m in vae.encoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 500), (500, 40)]
    assert any(isinstance(m, nn.Tanh) for m in vae.decoder.modules())
    images, labels = _digits(x_dim=784)
    index, mask = pad_groups([[0, 1, 2], [40, 41], [80]])
    guide_trace = poutine.trace(vae.guide).get_trace(images[index], mask)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(images[index], mask)
    assert model_trace.nodes["content"]["value"].shape == (3, 1, 10)
    assert model_trace.nodes["style"]["value"].shape == (3, 3, 10)
    assert model_trace.nodes["x"]["fn"].batch_shape == (3, 3)
    assert model_trace.nodes["x"]["fn"].event_shape == (784,)


def test_training_reduces_the_loss_and_groups_the_content_by_class(tmp_path, single_thread):
    images, labels = _digits()
    vae = mlp_grouped_vae(64, hidden=(32,))
    sampler = GroupedBatchSampler(labels, groups_per_batch=3, group_size=5, min_group_size=2, seed=0)
    elbo = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=2)
    index, mask = pad_groups(next(iter(GroupedBatchSampler(labels, 3, 8, seed=1))))
    before = elbo.loss(vae.model, vae.guide, images[index], mask)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 3e-3}), Trace_ELBO(max_plate_nesting=2))

    def epoch_batches(epoch):
        sampler.set_epoch(epoch)
        return GroupBatches(sampler, images)

    modules = {"encoder": vae.encoder, "decoder": vae.decoder}
    history = fit(svi, epoch_batches, epochs=10, modules=modules, run_dir=tmp_path, progress=False)
    after = elbo.loss(vae.model, vae.guide, images[index], mask)
    assert history[-1]["loss"] < history[0]["loss"]
    assert after < 0.5 * before
    # Within-class variation of the pixels is only noise: the trained content code of single images is
    # nearly constant within each class (class explains > 95% of its variance; about 80% at initialisation).
    content_loc = vae.encoder(images)[0].detach()
    class_means = torch.stack([content_loc[labels == k].mean(0) for k in range(3)])
    within = (content_loc - class_means[labels]).square().sum()
    total = (content_loc - content_loc.mean(0)).square().sum()
    assert 1 - within / total > 0.95


@pytest.fixture
def synthetic_digits(monkeypatch):
    """Ten synthetic 784-pixel 'digits' (20 per class) for both splits, in place of MNIST."""
    data = mlvae.GroupedImages(*_digits(10, 20, 784), *_digits(10, 20, 784), (28, 28), 10)
    monkeypatch.setattr(mlvae, "load_dataset", lambda name, root, size, seed: data)


def test_main_writes_the_evaluation_and_resumes_exactly(synthetic_digits, tmp_path, single_thread):
    straight = mlvae.main([*SMALL, "--epochs", "2", "--out", str(tmp_path / "straight")])
    mlvae.main([*SMALL, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    resumed = mlvae.main([*SMALL, "--epochs", "2", "--resume", "--out", str(tmp_path / "resumed")])

    keys = (
        "final_loss",
        "classification",
        "classification_seen",
        "classification_unseen",
        "identification_seen",
    )
    assert {k: resumed[k] for k in keys} == {k: straight[k] for k in keys}
    assert resumed["identification_unseen"] == straight["identification_unseen"]
    assert list(straight["identification_unseen"]) == ["1", "2", "5", "10"]
    assert straight["classification"]["chance"] == pytest.approx(0.1)
    assert straight["classification_unseen"]["chance"] == pytest.approx(0.5)
    assert straight["classification_seen"]["chance"] == pytest.approx(0.125)  # 8 training digits
    record = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert record["seed"] == 0 and record["holdout_classes"] == [8, 9] and record["command"]
    assert record["environment"]["torch"] == torch.__version__
    with open(tmp_path / "resumed" / "metrics.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    grid = matplotlib.image.imread(tmp_path / "straight" / "swap_grid.png")
    assert grid.ndim == 3 and grid.shape[0] < grid.shape[1]  # 9 rows (8 styles) by 11 columns (10 digits)


def test_main_trains_without_held_out_classes(synthetic_digits, tmp_path, single_thread):
    results = mlvae.main([*SMALL, "--epochs", "1", "--holdout-classes", "--out", str(tmp_path)])
    assert results["holdout_classes"] == [] and "identification_unseen" not in results
    assert "classification_unseen" not in results and "classification_seen" not in results
    assert set(results["identification_seen"]) == {
        "1",
        "2",
        "5",
        "10",
    }


def test_main_rejects_bad_held_out_classes(synthetic_digits, tmp_path):
    message = r"--holdout-classes must be at most 8 distinct labels in 0..9 \(two must remain for training\)"
    with pytest.raises(ValueError, match=message + r", got \[3, 10\]"):
        mlvae.main(["--holdout-classes", "3", "10", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=message):
        mlvae.main(["--holdout-classes", *map(str, range(9)), "--out", str(tmp_path)])


def test_defaults_depend_on_the_dataset_and_yield_to_flags():
    mnist = mlvae.parse_args([])
    assert (mnist.style_dim, mnist.content_dim, mnist.lr) == (5, 10, 3e-3)
    assert (mnist.epochs, mnist.batches_per_epoch) == (20, None)
    yaleb = mlvae.parse_args(["--dataset", "yaleb"])
    assert (yaleb.epochs, yaleb.batches_per_epoch, yaleb.style_dim, yaleb.lr) == (40, 50, 5, 1e-3)
    flags = ["--epochs", "3", "--batches-per-epoch", "7", "--lr", "0.5", "--style-dim", "2"]
    explicit = mlvae.parse_args(["--dataset", "yaleb", *flags])
    assert (explicit.epochs, explicit.batches_per_epoch, explicit.lr, explicit.style_dim) == (3, 7, 0.5, 2)


def test_main_builds_the_style_latent_of_the_given_size(synthetic_digits, tmp_path, single_thread):
    results = mlvae.main([*SMALL, "--epochs", "1", "--holdout-classes", "--out", str(tmp_path)])
    assert results["arguments"]["style_dim"] == 5
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    decoder_input = next(v for k, v in checkpoint["modules"]["decoder"].items() if k.endswith("weight"))
    assert decoder_input.shape == (16, 10 + 5)  # hidden 16 from SMALL, content 10 + style 5


def test_main_on_a_slice_of_real_mnist(real_data_root, tmp_path, single_thread):
    argv = ["--data", str(real_data_root), "--train-size", "1000", "--eval-size", "1000", "--epochs", "1"]
    results = mlvae.main([*argv, *SMALL, "--out", str(tmp_path)])
    assert 0.0 <= results["classification"]["content"] <= 1.0
    assert (tmp_path / "swap_grid.png").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_main_on_yale_b_faces(real_data_root, tmp_path, single_thread):
    argv = ["--dataset", "yaleb", "--yaleb-size", "24", "21", "--epochs", "1", "--batches-per-epoch", "2"]
    results = mlvae.main([*argv, *SMALL, "--data", str(real_data_root), "--out", str(tmp_path)])
    assert results["holdout_classes"] == [33, 34, 35, 36, 37]
    assert results["classification"]["chance"] < 0.05  # 38 subjects
    assert list(results["identification_unseen"]) == ["1", "2", "5", "10"]
    assert results["swap_grid_columns"] == [0, 1, 2, 3, 4, 33, 34, 35, 36, 37]
