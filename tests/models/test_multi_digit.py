"""The multi-digit model: its log joint against a hand computation over the present steps, the experiment
contract (model and guide PyroModules holding every weight), a training step on a mixed batch for both
digit-guide factorisations, and nesting a frozen or fine-tuned digit model."""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI
from pyro.nn import PyroModule
from pyro.optim import Adam
from torch.distributions import Normal

from pyro_partial.data.multi_mnist import make_multi_mnist
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.nn import write_patch
from pyro_partial_models import multi_digit
from pyro_partial_models.multi_digit import (
    MultiDigitVAE,
    coords_from_where,
    digit_sites,
    jitter_windows,
    where_from_coords,
)
from pyro_partial_models.ss_vae import SSVAE

K, Z, S = 3, 4, 50
SMALL = {"digit_hidden": (8,), "z_dim": Z, "canvas_channels": (4, 4), "canvas_features": 16, "state_dim": 6}
AROUND = {k: v for k, v in SMALL.items() if k not in ("digit_hidden", "z_dim")}  # besides a digit model


def canvases(num=8, seed=0):
    """Multi-MNIST canvases of random 'digit' images and their label arguments."""
    g = torch.Generator().manual_seed(seed)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, num, seed=seed)
    digits = torch.nn.functional.one_hot(data.digits.clamp(min=0), 10).float()
    return data, (data.canvases, data.counts, digits, coords_from_where(data.wheres))


def test_coords_round_trip_and_padding_placeholder():
    where = torch.tensor([[0.4, -0.3, 0.2], [0.0, 0.0, 0.0]])
    coords = coords_from_where(where)
    assert torch.allclose(where_from_coords(coords)[0], where[0])
    assert torch.allclose(coords[1], torch.tensor([math.log(0.48), 0.0, 0.0]))


def test_log_joint_sums_the_present_steps_only(single_thread):
    """log p(x, n, y, z, w) = log p(n) + Σ_{k<n} [log p(y_k) + log p(z_k) + log p(w_k)]
    + Σ_pixels log Bernoulli(x | clamp(Σ_{k<n} write(patch(y_k, z_k), w_k))); slots k ≥ n hold garbage."""
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    data, (x, counts, digits, coords) = canvases()
    absent = torch.arange(K) >= counts[:, None]
    digits = torch.where(absent[..., None], torch.eye(10)[7], digits)
    coords = torch.where(absent[..., None], torch.tensor([-0.2, 0.5, -0.5]), coords)
    z = torch.randn(len(x), K, Z)
    conditioned = poutine.condition(vae.model, data={f"z_{k}": z[:, k] for k in range(K)})
    trace = poutine.trace(conditioned).get_trace(
        x, counts, digits, coords, torch.ones(len(x), dtype=torch.bool)
    )

    expected = 0.0
    where_prior = Normal(torch.tensor([math.log(0.48), 0.0, 0.0]), torch.tensor([0.1, 0.3, 0.3]))
    for b in range(len(x)):
        n = int(counts[b])
        canvas = torch.zeros(S, S)
        expected += math.log(1 / (K + 1))
        for k in range(n):
            expected += math.log(0.1) + Normal(0.0, 1.0).log_prob(z[b, k]).sum()
            expected += where_prior.log_prob(coords[b, k]).sum()
            patch = torch.sigmoid(vae.model.digit.logits(z[b, k], digits[b, k])).reshape(28, 28)
            canvas = canvas + write_patch(patch, where_from_coords(coords[b, k]), S)
        p = canvas.clamp(1e-3, 1 - 1e-3)
        expected += (x[b] * p.log() + (1 - x[b]) * (1 - p).log()).sum()
    assert trace.log_prob_sum().item() == pytest.approx(expected.item(), rel=1e-5)
    steps = {name for name in trace.nodes if name.startswith("z_")}
    assert steps == {f"z_{k}" for k in range(int(counts.max()))}  # the loop ran to the largest count


def test_model_and_guide_are_pyro_modules_holding_every_weight():
    """The experiment contract: the state dict is exactly the model's and the guide's, the digit model's
    decoder in the model and its encoders in the guide, nothing in both."""
    digit_model = SSVAE(z_dim=Z, hidden=(8,))
    vae = MultiDigitVAE(digit_model, **AROUND)
    assert isinstance(vae.model, PyroModule) and isinstance(vae.guide, PyroModule)
    assert {name.split(".")[0] for name in vae.state_dict()} == {"model", "guide"}
    model_weights = {id(p) for p in vae.model.parameters()}
    guide_weights = {id(p) for p in vae.guide.parameters()}
    assert not model_weights & guide_weights
    assert model_weights | guide_weights == {id(p) for p in vae.parameters()}
    assert {id(p) for p in digit_model.model.parameters()} <= model_weights
    assert {id(p) for p in digit_model.guide.parameters()} <= guide_weights

    rebuilt = MultiDigitVAE(**SMALL)
    rebuilt.load_state_dict(vae.state_dict())
    for name, value in vae.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], value), name


@pytest.mark.parametrize("guide_type", ["m2", "paper"])
@pytest.mark.parametrize("split_on", [None, "mask"])
@pytest.mark.parametrize("glimpse_jitter", [0.0, 1.5])
def test_training_step_on_a_mixed_batch(guide_type, split_on, glimpse_jitter, single_thread):
    """Every network gets a finite, non-zero gradient from one mixed batch, through the ELBO module the
    runner trains (``elbo(model, guide)`` under ``module_local_params``), masking or splitting the rows,
    with and without jittered classifier glimpses."""
    torch.manual_seed(0)
    _, batch = canvases()
    mask = torch.tensor([True, False, False, True, False, False, True, False])
    elbo = SemiSupervisedELBO(alpha=2.0, relax=digit_sites(K, 0.5), max_plate_nesting=1, split_on=split_on)
    with pyro.settings.context(module_local_params=True):  # PyroModules built and run under it
        digit_model = SSVAE(z_dim=Z, hidden=(8,), guide_type=guide_type)
        vae = MultiDigitVAE(digit_model, glimpse_jitter=glimpse_jitter, **AROUND)
        loss = elbo(vae.model, vae.guide)(*batch, mask)
        loss.backward()
    assert math.isfinite(loss.item())
    parts = {
        "model.digit": vae.model.digit,
        "guide.digit": vae.guide.digit,
        **{
            f"guide.{name}": getattr(vae.guide, name)
            for name in ("encoder", "count_head", "step", "where_head")
        },
    }
    for name, part in parts.items():
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name


def test_jittered_windows_move_the_centres_uniformly_within_the_radius():
    torch.manual_seed(0)
    coords = torch.randn(20_000, 3, dtype=torch.float64)
    moved = jitter_windows(coords, pixels=2.5, canvas_size=S)
    assert moved.dtype == torch.float64
    assert torch.equal(moved[:, 0], coords[:, 0])  # the scales are kept
    offsets = (moved[:, 1:] - coords[:, 1:]) * S / 2  # in pixels
    assert offsets.abs().max() <= 2.5 + 1e-9
    # uniform on [-2.5, 2.5]: mean 0, standard deviation 5 / sqrt(12), independent in x and y
    assert offsets.mean(0).abs().max() < 0.05
    assert torch.allclose(offsets.std(0), torch.full((2,), 5 / math.sqrt(12), dtype=torch.float64), atol=0.03)
    assert torch.corrcoef(offsets.T)[0, 1].abs() < 0.03


@pytest.mark.parametrize("guide_type", ["m2", "paper"])
def test_glimpse_jitter_moves_only_the_labelled_classifier_glimpses_in_training(guide_type, monkeypatch):
    """The digit classifier's input at step k is the glimpse through the labelled window shifted by
    ``jitter_windows`` on labelled canvases in training; the unlabelled canvases, the style encoder and an
    evaluation pass (or no jitter) read through the unshifted windows."""
    monkeypatch.setattr(multi_digit, "jitter_windows", lambda coords, pixels, size: coords + SHIFT)
    torch.manual_seed(0)
    _, batch = canvases()
    mask = torch.tensor([True, False, False, True, False, False, True, False])
    vae = MultiDigitVAE(SSVAE(z_dim=Z, hidden=(8,), guide_type=guide_type), glimpse_jitter=2.0, **AROUND)
    inputs = {"classifier": [], "styles": []}
    for part, network in (("classifier", vae.guide.digit.encoder_y), ("styles", vae.guide.digit.encoder_z)):
        network.register_forward_hook(lambda _, args, __, part=part: inputs[part].append(args[0]))

    def glimpses(trace, shift):  # through the windows of the steps run (up to the largest count drawn)
        windows = [trace.nodes[f"where_{k}"]["value"] for k in range(len(inputs["classifier"]))]
        return [vae.guide.digit.images.network_input(vae.guide.read(batch[0], w + shift)) for w in windows]

    for training, expected_shift in ((True, SHIFT), (False, torch.zeros(3))):
        vae.train(training)
        inputs["classifier"].clear(), inputs["styles"].clear()
        trace = poutine.trace(vae.guide).get_trace(*batch, mask)
        plain, shifted = glimpses(trace, torch.zeros(3)), glimpses(trace, expected_shift)
        assert len(plain) == len(inputs["styles"]) >= 1
        for k in range(len(plain)):
            classified = torch.where(mask[:, None], shifted[k], plain[k])
            assert torch.allclose(inputs["classifier"][k], classified), (training, k)
            assert torch.allclose(inputs["styles"][k], plain[k]), (training, k)
        if training:
            assert not torch.allclose(shifted[0][mask], plain[0][mask])  # the shift moved the glimpses


SHIFT = torch.tensor([0.0, 3 * 2 / S, -2 * 2 / S])  # 3 pixels right, 2 up


def test_unlabelled_batch_without_labels(single_thread):
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    data, _ = canvases(4)
    elbo = SemiSupervisedELBO(relax=digit_sites(K, 0.5), max_plate_nesting=1)
    assert math.isfinite(elbo.loss(vae.model, vae.guide, data.canvases))


def test_nested_digit_model_is_frozen_and_reads_the_digits(single_thread):
    torch.manual_seed(0)
    digit_model = SSVAE(z_dim=Z, hidden=(8,)).eval()
    frozen = {name: value.clone() for name, value in digit_model.state_dict().items()}
    vae = MultiDigitVAE.nest(digit_model, **AROUND)
    assert vae.model.digit is digit_model.model and vae.guide.digit is digit_model.guide
    _, batch = canvases()
    mask = torch.arange(8) % 2 == 0
    elbo = SemiSupervisedELBO(alpha=2.0, relax=digit_sites(K, 0.5), max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    count_head = vae.guide.count_head.weight.clone()
    vae.eval()  # in training mode Pyro warns that it leaves the frozen weights out of its param store
    for _ in range(2):
        svi.step(*batch, mask)
    assert not torch.equal(vae.guide.count_head.weight, count_head)
    for name, value in digit_model.state_dict().items():
        assert torch.equal(value, frozen[name]), name
    assert all(p.grad is None for p in digit_model.parameters())
    stored = {id(value) for value in pyro.get_param_store().values()}
    assert stored and not stored & {id(p) for p in digit_model.parameters()}

    reading = vae.read_canvases(batch[0])
    expected = digit_model.guide.encoder_y(reading.glimpses.flatten(-2)).softmax(-1)
    assert torch.allclose(reading.digit_probs, expected)
    y = torch.nn.functional.one_hot(expected.argmax(-1), 10).float()
    assert torch.allclose(reading.styles, digit_model.guide.encoder_z(reading.glimpses.flatten(-2), y)[0])


def test_nested_digit_model_fine_tuned_learns_its_weights(single_thread):
    torch.manual_seed(0)
    digit_model = SSVAE(z_dim=Z, hidden=(8,)).eval()
    digit_model.requires_grad_(False)  # as a frozen model would leave it: fine-tuning turns learning back on
    trained = {name: value.clone() for name, value in digit_model.state_dict().items()}
    vae = MultiDigitVAE.nest(digit_model, freeze=False, **AROUND)
    _, batch = canvases()
    mask = torch.arange(8) % 2 == 0
    elbo = SemiSupervisedELBO(alpha=2.0, relax=digit_sites(K, 0.5), max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    for _ in range(2):
        svi.step(*batch, mask)
    learned = digit_model.state_dict()
    changed = [name for name, value in trained.items() if not torch.equal(learned[name], value)]
    assert {".".join(name.split(".")[:2]) for name in changed} >= {
        "guide.encoder_y",
        "guide.encoder_z",
        "model.decoder",
    }
    store = list(pyro.get_param_store())  # PyroModule registers the nested weights under their paths
    assert any(name.startswith("model.digit.decoder$$$") for name in store)
    assert any(name.startswith("guide.digit.encoder_y$$$") for name in store)


def test_paper_guide_reading_averages_the_classifier_over_styles():
    """For q(z | g) q(y | g, z) the digit probabilities are SSVAEGuide.class_probs (10 styles drawn from
    q(z | g)), and the styles the means of q(z | g)."""
    torch.manual_seed(0)
    digit_model = SSVAE(z_dim=Z, hidden=(8,), guide_type="paper")
    vae = MultiDigitVAE(digit_model, **AROUND)
    _, batch = canvases(4)
    pyro.set_rng_seed(3)
    reading = vae.read_canvases(batch[0])
    glimpses = reading.glimpses.flatten(-2)
    loc, scale = digit_model.guide.encoder_z(glimpses)
    assert torch.allclose(reading.styles, loc)
    pyro.set_rng_seed(3)
    expected = torch.stack([digit_model.guide.class_probs(glimpses[:, k]) for k in range(K)], 1)
    assert torch.allclose(reading.digit_probs, expected)
    assert torch.allclose(reading.digit_probs.sum(-1), torch.ones(4, K))


def test_render_writes_the_present_steps():
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    data, _ = canvases(4)
    reading = vae.read_canvases(data.canvases)
    counts = torch.tensor([0, 1, 2, 3])
    reconstruction, steps = vae.render(reading, counts)
    assert steps.shape == (4, K, S, S) and reconstruction.shape == (4, S, S)
    for b, n in enumerate(counts):
        assert (steps[b, n:] == 0).all() and (steps[b, :n].flatten(1).amax(-1) > 0).all()
    assert torch.allclose(reconstruction, steps.sum(1).clamp(0, 1))


def test_bad_arguments_are_clear_errors():
    vae = MultiDigitVAE(**SMALL)
    _, (x, counts, digits, coords) = canvases(4)
    with pytest.raises(ValueError, match=r"canvases must have shape \(batch, 50, 50\), got \(4, 2500\)"):
        vae.model(x.flatten(1))
    with pytest.raises(ValueError, match="pass counts, digits and wheres"):
        vae.guide(x, counts)
    with pytest.raises(ValueError, match=r"digits must have shape \(4, 3, 10\)"):
        vae.model(x, counts, digits[:, :2], coords)
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        vae.guide(x, counts, digits, coords, torch.ones(4))
    with pytest.raises(ValueError, match=r"digit model must model \(1, 28, 28\) images of 10 classes"):
        MultiDigitVAE(SSVAE(image_shape=(3, 32, 32), hidden=(8,)))
    with pytest.raises(ValueError, match=r"count must be non-negative and at most max_steps=3"):
        vae.model(x, counts + 1, digits, coords)
    with pytest.raises(ValueError, match="glimpse_jitter must be non-negative, got -1.0"):
        MultiDigitVAE(glimpse_jitter=-1.0, **SMALL)
