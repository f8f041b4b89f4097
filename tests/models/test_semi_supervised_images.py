import pytest
import torch

from pyro_partial_models.adgm import ADGM
from pyro_partial_models.semi_supervised_images import model_posterior_predict, predict
from pyro_partial_models.ss_vae import SSVAE
from tests.models.particles import assert_broadcasts_over_particles


class TemplateDecoder(torch.nn.Module):
    """Bernoulli logits ±8 of a binary template per class, whatever the style."""

    def __init__(self, templates):
        super().__init__()
        self.templates = templates  # (C, D) in {0, 1}

    def forward(self, z, y):
        return 16 * (y @ self.templates - 0.5) + 0 * z.sum(-1, keepdim=True)


def noisy_templates(num_classes=10, size=36, repeats=3):
    templates = (torch.rand(num_classes, size, dtype=torch.float64) < 0.5).double()
    classes = torch.arange(num_classes).repeat(repeats)
    flips = torch.rand(len(classes), size, dtype=torch.float64) < 0.05
    return templates, classes, torch.where(flips, 1 - templates[classes], templates[classes])


@pytest.mark.parametrize("vectorize", [True, False])
def test_the_models_posterior_is_the_class_whose_template_fits_best(vectorize):
    """Images drawn as noisy templates: the model's posterior recovers each class whatever the untrained
    classifier q(y|x) says, chunk by chunk, and follows the templates when they are permuted."""
    torch.manual_seed(0)
    vae = SSVAE(image_shape=(1, 6, 6), z_dim=2, hidden=(8,)).double()
    templates, classes, x = noisy_templates()
    vae.model.decoder = TemplateDecoder(templates)
    predicted = model_posterior_predict(vae, x, num_particles=2, batch_size=7, vectorize_particles=vectorize)
    assert torch.equal(predicted, classes)
    permutation = torch.randperm(10)
    vae.model.decoder = TemplateDecoder(templates[permutation])
    predicted = model_posterior_predict(vae, x, num_particles=2, vectorize_particles=vectorize)
    assert torch.equal(permutation[predicted], classes)
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        model_posterior_predict(vae, x, batch_size=0)


@pytest.mark.parametrize("vectorize", [True, False])
def test_the_adgms_posterior_integrates_the_auxiliary_variable(vectorize):
    torch.manual_seed(0)
    vae = ADGM(image_shape=(1, 6, 6), z_dim=2, aux_dim=3, hidden=(8,)).double()
    templates, classes, x = noisy_templates()
    vae.model.decoder = TemplateDecoder(templates)
    predicted = model_posterior_predict(vae, x, num_particles=2, vectorize_particles=vectorize)
    assert torch.equal(predicted, classes)


@pytest.mark.parametrize("name", ["m2", "m2 conv", "adgm"])
def test_the_image_models_broadcast_over_vectorised_particles(name):
    torch.manual_seed(0)
    num_particles, rows, image_shape = 3, 4, (1, 8, 8)
    if name == "adgm":
        vae = ADGM(image_shape=image_shape, z_dim=2, aux_dim=3, hidden=(8,)).double()
    else:
        network = "conv" if name == "m2 conv" else "mlp"
        vae = SSVAE(image_shape=image_shape, z_dim=2, hidden=(8,), network=network).double()
    x = torch.rand(rows, 64, dtype=torch.float64).round()
    latents = {
        "y": torch.nn.functional.one_hot(torch.randint(10, (num_particles, rows)), 10).double(),
        "z": torch.randn(num_particles, rows, 2, dtype=torch.float64),
    }
    if name == "adgm":
        latents["a"] = torch.randn(num_particles, rows, 3, dtype=torch.float64)
    assert_broadcasts_over_particles(vae.model, vae.guide, x, latents)


@pytest.mark.parametrize("name", ["adgm", "paper"])
def test_q_y_given_x_scores_a_checkpoint_the_same_every_time_and_leaves_the_global_random_state(name):
    """Where q(y|x) is a Monte Carlo mixture, predict draws from its own seeded generator: the same seed
    gives the same classes whatever the global random state, chunk by chunk as in one pass with that
    generator, and training's random stream is not advanced by evaluation."""
    torch.manual_seed(0)
    if name == "adgm":
        vae = ADGM(image_shape=(1, 6, 6), z_dim=2, aux_dim=2, hidden=(8,)).double()
    else:
        vae = SSVAE(image_shape=(1, 6, 6), z_dim=2, hidden=(8,), guide_type="paper").double()
    x = torch.rand(30, 36, dtype=torch.float64)
    state = torch.get_rng_state()
    first = predict(vae, x, batch_size=7, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    assert torch.equal(predict(vae, x, batch_size=7, seed=5), first)
    generator = torch.Generator().manual_seed(5)
    by_hand = torch.cat([vae.classify(x[i : i + 7], generator=generator) for i in range(0, 30, 7)])
    assert torch.equal(first, by_hand)
