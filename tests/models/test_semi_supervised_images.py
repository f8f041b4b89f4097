import pytest
import torch

from pyro_partial_models.adgm import ADGM
from pyro_partial_models.semi_supervised_images import model_posterior_predict
from pyro_partial_models.ss_vae import SSVAE


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


def test_the_models_posterior_is_the_class_whose_template_fits_best():
    """Images drawn as noisy templates: the model's posterior recovers each class whatever the untrained
    classifier q(y|x) says, chunk by chunk, and follows the templates when they are permuted."""
    torch.manual_seed(0)
    vae = SSVAE(image_shape=(1, 6, 6), z_dim=2, hidden=(8,)).double()
    templates, classes, x = noisy_templates()
    vae.model.decoder = TemplateDecoder(templates)
    assert torch.equal(model_posterior_predict(vae, x, num_particles=2, batch_size=7), classes)
    permutation = torch.randperm(10)
    vae.model.decoder = TemplateDecoder(templates[permutation])
    assert torch.equal(permutation[model_posterior_predict(vae, x, num_particles=2)], classes)
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        model_posterior_predict(vae, x, batch_size=0)


def test_the_adgms_posterior_integrates_the_auxiliary_variable():
    torch.manual_seed(0)
    vae = ADGM(image_shape=(1, 6, 6), z_dim=2, aux_dim=3, hidden=(8,)).double()
    templates, classes, x = noisy_templates()
    vae.model.decoder = TemplateDecoder(templates)
    assert torch.equal(model_posterior_predict(vae, x, num_particles=2), classes)
