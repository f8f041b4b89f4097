"""The faces metrics against predictions whose errors are known: the identity error and the light's angular
error."""

import pytest
import torch

from pyro_partial.distributions.lighting import direction_from_angles
from pyro_partial_models.faces_evaluation import evaluate, generative_identity, predict
from pyro_partial_models.faces_vae import FacesVAE
from tests.models.particles import assert_broadcasts_over_particles


class Fixed(torch.nn.Module):
    """Predicts subject ``(k + shift) % 38`` for a face whose pixels all equal ``k``, lit from azimuth
    ``offset(k)`` at elevation 0, and records the size of every chunk it is given."""

    def __init__(self, wrong: set[int], offsets: dict[int, float]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device
        self.wrong, self.offsets, self.chunks = wrong, offsets, []

    def predict(self, xs):
        self.chunks.append(len(xs))
        k = xs.flatten(1)[:, 0].long()
        identity = torch.where(torch.isin(k, torch.tensor(sorted(self.wrong))), (k + 1) % 38, k)
        azimuth = torch.tensor([self.offsets.get(int(i), 0.0) for i in k], dtype=xs.dtype)
        return identity, direction_from_angles(torch.stack([azimuth, torch.zeros_like(azimuth)], -1))


def faces(n):
    k = torch.arange(n, dtype=torch.float32)
    x = k.view(n, 1, 1, 1).expand(n, 1, 2, 2)
    light = direction_from_angles(torch.zeros(n, 2))  # every true light at the camera
    return x, k.long() % 38, light


def test_identity_and_angular_errors_are_the_known_ones():
    x, subject, light = faces(5)
    predictor = Fixed(wrong={1, 3}, offsets={0: 10.0, 1: 20.0, 2: 30.0, 3: 40.0, 4: 80.0})
    scores = evaluate(predictor, x, subject, light, batch_size=2)
    assert scores["identity_error"] == pytest.approx(2 / 5)
    assert scores["light_error_deg"] == pytest.approx((10 + 20 + 30 + 40 + 80) / 5)
    assert scores["light_error_median_deg"] == pytest.approx(30.0)
    assert predictor.chunks == [2, 2, 1]
    assert evaluate(predictor, x, subject, light) == pytest.approx(scores)  # chunking changes nothing


def test_predictions_come_back_on_the_inputs_device_in_order():
    x, subject, _ = faces(7)
    identity, light = predict(Fixed(wrong=set(), offsets={}), x, batch_size=3)
    assert torch.equal(identity, subject) and light.shape == (7, 3) and identity.device == x.device


def test_mismatched_inputs_are_clear_errors():
    x, subject, light = faces(4)
    predictor = Fixed(wrong=set(), offsets={})
    with pytest.raises(ValueError, match=r"subject \(3,\) and light \(4, 3\)"):
        evaluate(predictor, x, subject[:3], light)
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        predict(predictor, x, batch_size=0)


class TemplateDecoder(torch.nn.Module):
    """Bernoulli logits ±8 of a binary template per identity, whatever the light and style."""

    def __init__(self, templates):
        super().__init__()
        self.templates = templates  # (38, 1, H, W) in {0, 1}

    def forward(self, identity, light, z):
        images = torch.einsum("...k,khw->...hw", identity, self.templates[:, 0])
        return 16 * (images - 0.5).unsqueeze(-3)  # broadcast over the batch of lights and styles


@pytest.mark.parametrize("vectorize", [True, False])
def test_the_decoders_guess_is_the_subject_whose_template_fits_best(vectorize):
    """Faces drawn as noisy templates of known subjects: the decoder's guess recovers each subject whatever
    the (untrained) guide says, and follows the templates when they are permuted."""
    torch.manual_seed(0)
    vae = FacesVAE(image_shape=(1, 8, 8), z_dim=2, hidden=(8,), channels=(2, 4)).double()
    templates = (torch.rand(38, 1, 8, 8, dtype=torch.float64) < 0.5).double()
    vae.model.decoder = TemplateDecoder(templates)
    subject = torch.arange(38).repeat(2)
    flips = torch.rand(76, 1, 8, 8, dtype=torch.float64) < 0.05  # 5% of the pixels flipped
    x = torch.where(flips, 1 - templates[subject], templates[subject])
    options = {"vectorize_particles": vectorize}
    assert torch.equal(generative_identity(vae, x, num_particles=2, batch_size=30, **options), subject)
    permutation = torch.randperm(38)
    vae.model.decoder = TemplateDecoder(templates[permutation])
    assert torch.equal(permutation[generative_identity(vae, x, **options)], subject)
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        generative_identity(vae, x, batch_size=0)
    with pytest.raises(ValueError, match="num_particles must be positive, got 0"):
        generative_identity(vae, x, num_particles=0)


def test_the_faces_model_broadcasts_over_vectorised_particles():
    torch.manual_seed(0)
    num_particles, rows = 3, 4
    vae = FacesVAE(image_shape=(1, 8, 8), z_dim=2, hidden=(8,), channels=(2, 4)).double()
    x = torch.rand(rows, 1, 8, 8, dtype=torch.float64)
    light = torch.nn.functional.normalize(torch.randn(num_particles, rows, 3, dtype=torch.float64), dim=-1)
    latents = {
        "identity": torch.nn.functional.one_hot(torch.randint(38, (num_particles, rows)), 38).double(),
        "light": light,
        "z": torch.randn(num_particles, rows, 2, dtype=torch.float64),
    }
    assert_broadcasts_over_particles(vae.model, vae.guide, x, latents)
