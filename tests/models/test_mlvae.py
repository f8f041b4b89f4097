import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch import nn

from models import mlvae
from pyro_partial.data.grouped_sampler import GroupedBatchSampler, pad_groups


@pytest.fixture
def single_thread():
    # Tiny networks: one thread is several times faster than two on a shared, loaded CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _digits(num_classes=3, per_class=40, x_dim=64):
    """Synthetic 'digits': one random binary prototype per class with 5% of the pixels flipped."""
    prototypes = (torch.rand(num_classes, x_dim) < 0.3).float()
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    flips = (torch.rand(len(labels), x_dim) < 0.05).float()
    return (prototypes[labels] - flips).abs(), labels


def test_architecture_and_site_shapes(single_thread):
    vae = mlvae.build_mnist_mlvae()
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


def test_training_reduces_the_loss_and_groups_the_content_by_class(single_thread):
    images, labels = _digits()
    vae = mlvae.build_mnist_mlvae(hidden=(32,), x_dim=64)
    sampler = GroupedBatchSampler(labels, groups_per_batch=3, group_size=5, min_group_size=2, seed=0)
    elbo = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=2)
    index, mask = pad_groups(next(iter(GroupedBatchSampler(labels, 3, 8, seed=1))))
    before = elbo.loss(vae.model, vae.guide, images[index], mask)
    history = mlvae.train(vae, images, labels, sampler, epochs=10, lr=3e-3)
    after = elbo.loss(vae.model, vae.guide, images[index], mask)
    assert len(history) == 10 and history[-1] < history[0]
    assert after < 0.5 * before
    # Within-class variation of the pixels is only noise: the trained content code of single images is
    # nearly constant within each class (class explains > 95% of its variance; about 80% at initialisation).
    content_loc = vae.encoder(images)[0].detach()
    class_means = torch.stack([content_loc[labels == k].mean(0) for k in range(3)])
    within = (content_loc - class_means[labels]).square().sum()
    total = (content_loc - content_loc.mean(0)).square().sum()
    assert 1 - within / total > 0.95


def test_main_trains_on_the_loaded_data(monkeypatch, capsys, single_thread):
    monkeypatch.setattr(mlvae, "load_mnist", lambda data_root: _digits(x_dim=784))
    argv = ["--seed", "1", "--epochs", "2", "--groups-per-batch", "2", "--group-size", "4", "--hidden", "16"]
    history = mlvae.main(argv)
    assert len(history) == 2
    assert "epoch 1: loss" in capsys.readouterr().out
    pyro.set_rng_seed(0)
    assert mlvae.main(argv) == history  # deterministic given --seed


def test_train_rejects_mismatched_data():
    images, labels = _digits()
    sampler = GroupedBatchSampler(labels, 2, 3)
    with pytest.raises(ValueError, match="images must have shape"):
        mlvae.train(mlvae.build_mnist_mlvae(hidden=(8,), x_dim=64), images, labels[:-1], sampler, epochs=1)
