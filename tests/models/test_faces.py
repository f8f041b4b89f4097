import functools
import json

import matplotlib.image
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from models import faces
from models.faces import FacesVAE, ShuffledBatchSampler, identity_grid, lighting_grid, placeholders
from pyro_partial import cli
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.lighting import direction_from_angles

SHAPE = (1, 16, 16)
TINY = {"image_shape": SHAPE, "z_dim": 2, "hidden": (8,), "channels": (4, 8)}
# Decoding and resizing the archive once per test session: the experiments load through faces.load_faces.
cached_load_faces = functools.cache(faces.load_faces)
TINY_ARGS = ["--size", "16", "--z-dim", "2", "--hidden", "8", "--channels", "4", "8", "--batch-size", "256"]


def batch(size=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(size, *SHAPE, generator=generator)
    identity = torch.nn.functional.one_hot(torch.randint(38, (size,), generator=generator), 38).float()
    light = torch.nn.functional.normalize(torch.randn(size, 3, generator=generator), dim=-1)
    mask = torch.arange(size) % 3 == 0
    return x, identity, light, mask


@pytest.mark.parametrize("relax", [{"identity": 0.5}, None], ids=["relaxed", "enumerated"])
def test_one_training_step_with_mixed_labels(single_thread, relax):
    vae = FacesVAE(**TINY)
    elbo = SemiSupervisedELBO(alpha=1.0, relax=relax, max_plate_nesting=1, split_on="mask")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    before = [p.detach().clone() for p in vae.parameters()]
    loss = svi.step(*batch())
    assert torch.isfinite(torch.tensor(loss))
    changed = [not torch.equal(b, p) for b, p in zip(before, vae.parameters(), strict=True)]
    assert all(changed), "every parameter (encoder heads and decoder) gets a gradient on a mixed batch"


def test_capped_identity_logits_keep_the_relaxed_loss_finite(single_thread):
    vae = FacesVAE(**TINY)
    readout = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # a q(y|x) far more confident than float32's Gumbel-softmax can sample
        readout.bias[:38] = torch.linspace(-500.0, 500.0, 38)
    x = batch()[0]
    logits = vae.encode(x).identity_logits
    assert logits.abs().max() <= 12.0 and (logits[:, -1] > logits[:, 0] + 23.0).all()
    elbo = SemiSupervisedELBO(alpha=1.0, relax={"identity": 0.5}, max_plate_nesting=1, split_on="mask")
    losses = torch.tensor([elbo.loss(vae.model, vae.guide, x) for _ in range(20)])
    assert torch.isfinite(losses).all()
    uncapped = dist.RelaxedOneHotCategorical(torch.tensor(0.5), logits=torch.linspace(-500.0, 500.0, 38))
    assert not torch.isfinite(uncapped.log_prob(uncapped.rsample((20,)))).all(), "the guard is needed"


def test_unlabelled_rows_ignore_their_label_values(single_thread):
    vae = FacesVAE(**TINY)
    elbo = SemiSupervisedELBO(alpha=1.0, relax={"identity": 0.5}, max_plate_nesting=1, split_on="mask")
    x, identity, light, mask = batch()
    other_identity = torch.where(mask.unsqueeze(-1), identity, identity.roll(1, dims=-1))
    other_light = torch.where(mask.unsqueeze(-1), light, -light)
    losses = []
    for labels in ((identity, light), (other_identity, other_light)):
        pyro.set_rng_seed(3)
        losses.append(elbo.loss(vae.model, vae.guide, x, *labels, mask))
    assert losses[0] == losses[1]
    pyro.set_rng_seed(3)  # whereas changing a labelled row's light changes the loss
    assert elbo.loss(vae.model, vae.guide, x, identity, -light, mask) != losses[0]


def test_baseline_loss_is_the_supervised_cnn_loss():
    vae = FacesVAE(**TINY)
    x, identity, light, mask = batch()
    loss = Trace_ELBO().loss(vae.discriminative_model, faces._empty_guide, x, identity, light, mask)
    posterior = vae.encode(x)
    log_q = dist.OneHotCategorical(logits=posterior.identity_logits).log_prob(identity)
    log_q = log_q + dist.ProjectedNormal(posterior.light_concentration).log_prob(light)
    assert loss == pytest.approx(-log_q[mask].sum().item(), rel=1e-5)


def test_argument_errors_name_the_argument():
    vae = FacesVAE(**TINY)
    x, identity, light, mask = batch()
    with pytest.raises(ValueError, match=r"identity must be one-hot of shape \(6, 38\)"):
        vae.model(x, identity[:, :10], light, mask)
    with pytest.raises(ValueError, match=r"light must be unit vectors of shape \(6, 3\)"):
        vae.model(x, identity, light[:, :2], mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        vae.model(x, identity, light, mask.float())
    with pytest.raises(ValueError, match=r"xs must be images of shape \(batch, 1, 16, 16\)"):
        vae.guide(x.flatten(1))
    with pytest.raises(ValueError, match="both identity and light"):
        vae.model(x, identity)


def test_predictions_and_figure_grids():
    vae = FacesVAE(**TINY).eval()
    x = batch(3)[0]
    identity, light = vae.predict(x)
    assert identity.shape == (3,) and identity.dtype == torch.int64
    torch.testing.assert_close(light.norm(dim=-1), torch.ones(3))
    lights = direction_from_angles(torch.tensor([[-90.0, 0.0], [0.0, 0.0], [90.0, 0.0]]))
    grid = lighting_grid(vae, x, lights)
    assert grid.shape == (3, 4, *SHAPE)
    torch.testing.assert_close(grid[:, 0], x)
    assert not torch.allclose(grid[:, 1], grid[:, 3]), "the light must reach the decoder"
    grid = identity_grid(vae, x, [0, 5])
    assert grid.shape == (3, 3, *SHAPE)
    assert not torch.allclose(grid[:, 1], grid[:, 2]), "the identity must reach the decoder"


def test_batches_hide_unlabelled_rows_labels():
    subject = torch.arange(10) % 38
    light = direction_from_angles(torch.rand(10, 2) * 60).float()
    x = torch.rand(10, *SHAPE)

    class Fixed:
        def __len__(self):
            return 1

        def __iter__(self):
            yield torch.arange(10), torch.arange(10) < 4

    (xs, identity, lights, mask), *rest = list(faces.Batches(Fixed(), x, subject, light))
    assert not rest and torch.equal(xs, x) and torch.equal(mask, torch.arange(10) < 4)
    assert torch.equal(identity[:4].argmax(-1), subject[:4]) and torch.equal(lights[:4], light[:4])
    hidden_identity, hidden_light = placeholders(6)
    assert torch.equal(identity[4:], hidden_identity) and torch.equal(lights[4:], hidden_light)


def test_shuffled_sampler_visits_every_row_and_resumes():
    rows = torch.arange(100, 150)
    sampler = ShuffledBatchSampler(rows, batch_size=16, seed=1)
    epoch = list(sampler)
    assert len(epoch) == len(sampler) == 4
    assert torch.equal(torch.cat([index for index, _ in epoch]).sort().values, rows)
    assert all(bool(labelled.all()) for _, labelled in epoch)
    assert not torch.equal(torch.cat([i for i, _ in sampler]), torch.cat([i for i, _ in epoch]))  # reshuffled
    sampler.set_epoch(5)
    first = next(iter(sampler))
    resumed = ShuffledBatchSampler(rows, batch_size=16, seed=1)
    resumed.load_state_dict(sampler.state_dict())
    fresh = ShuffledBatchSampler(rows, batch_size=16, seed=1)
    fresh.set_epoch(5)
    assert torch.equal(next(iter(resumed))[0], list(fresh)[1][0])
    assert torch.equal(first[0], list(ShuffledBatchSampler(rows, 16, seed=1)._epoch_batches(5))[0][0])


def test_labelled_subset_is_subject_balanced():
    subject = torch.arange(38).repeat_interleave(50)
    split = faces.labelled_rows(subject, 0.1, seed=0)
    assert split.num_labelled == 190
    assert torch.equal(subject[split.labelled].bincount(), torch.full((38,), 5))
    assert faces.labelled_rows(subject, 1.0, seed=0) is None
    assert faces.labelled_rows(subject, 0.001, seed=0).num_labelled == 38  # at least one per subject


@pytest.mark.data
def test_experiment_trains_resumes_and_plots(real_data_root, tmp_path, single_thread, monkeypatch):
    monkeypatch.setattr(faces, "load_faces", cached_load_faces)
    run = tmp_path / "semi"
    common = [*TINY_ARGS, "--data", str(real_data_root), "--labels-fraction", "0.1", "--no-progress"]
    cli.main(["train", "faces", *common, "--epochs", "1", "--out", str(run)])
    result = faces.main([*common, "--epochs", "2", "--out", str(run), "--resume"])
    assert result["num_labelled"] == 190 and result["num_test"] == 490
    assert result["num_labelled"] + result["num_unlabelled"] + result["num_test"] == 2414
    assert 0 <= result["test_identity_error"] <= 1 and 0 <= result["test_light_error_deg"] <= 180
    record = json.loads((run / "results.json").read_text())
    assert record["seed"] == 0 and record["test_light_error_deg"] == result["test_light_error_deg"]
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header and one row per epoch

    straight = faces.main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")])
    assert straight["test_identity_error"] == result["test_identity_error"]
    assert straight["test_light_error_deg"] == pytest.approx(result["test_light_error_deg"], abs=1e-9)

    paths = faces.plot(["--run", str(run), "--data", str(real_data_root), "--num-images", "2"])
    assert matplotlib.image.imread(paths["lighting"]).shape[:2] == (2 * (2 * 18 + 2), 2 * (8 * 18 + 2))
    assert matplotlib.image.imread(paths["identity"]).shape[:2] == (2 * (2 * 18 + 2), 2 * (9 * 18 + 2))


@pytest.mark.data
def test_baseline_and_fully_supervised_runs(real_data_root, tmp_path, single_thread, monkeypatch):
    monkeypatch.setattr(faces, "load_faces", cached_load_faces)
    common = [*TINY_ARGS, "--data", str(real_data_root), "--epochs", "1", "--no-progress"]
    baseline = faces.main([*common, "--labels-fraction", "0.1", "--baseline", "--out", str(tmp_path / "b")])
    assert baseline["baseline"] and baseline["num_labelled"] == 190 and baseline["alpha"] is None
    full = faces.main([*common, "--labels-fraction", "1.0", "--out", str(tmp_path / "f")])
    assert full["num_labelled"] == 1924 and full["num_unlabelled"] == 0 and full["rho"] == 1.0
    with pytest.raises(SystemExit):
        faces.plot(["--run", str(tmp_path / "b"), "--data", str(real_data_root)])
