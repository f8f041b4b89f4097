import pytest
import torch

from pyro_partial_models.adgm import ADGM
from pyro_partial_models.semi_supervised_images import model_posterior_predict
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
