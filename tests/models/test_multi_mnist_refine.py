"""Test-time window refinement, the glimpse search and the per-term supervised weights of the Multi-MNIST
experiment: a known window offset removed by refinement under a model whose patch is a fixed blob, and by
the search under a reader whose confidence peaks at known centres, the mean patch against a hand
computation, argument errors, and the three weights reaching the objective term by term."""

import argparse

import pyro
import pytest
import torch
from pyro import poutine

from pyro_partial.data.multi_mnist import make_multi_mnist
from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.nn import write_patch
from pyro_partial.training import runner
from pyro_partial_models.multi_digit import (
    NUM_CLASSES,
    MultiDigitVAE,
    Reading,
    coords_from_where,
    digit_sites,
    where_from_coords,
)
from pyro_partial_models.multi_mnist import Canvases, MultiMNISTExperiment, site_alphas, term_alphas
from pyro_partial_models.multi_mnist_refine import (
    mean_patches,
    refine_reading,
    refine_windows,
    search_reading,
    search_windows,
    window_objective,
)
from pyro_partial_models.ss_vae import SSVAE

SMALL = {"canvas_channels": (4,), "canvas_features": 8, "state_dim": 4, "digit_hidden": (8,), "z_dim": 4}
# two digits placed away from the prior mean window, the third slot absent
TRUE = torch.tensor([[[-0.7, 0.2, -0.1], [-0.8, -0.4, 0.3], [-0.73, 0.0, 0.0]]])
OFFSET = torch.tensor([0.0, 0.16, -0.12])  # 5 pixels off in x and y together


def blob_model() -> tuple[MultiDigitVAE, torch.Tensor]:
    """A model whose every patch is the same disc whatever the digit and style (the decoder's last layer
    zero but for its bias), and a canvas of two such discs at the windows ``TRUE[:, :2]``."""
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    u = torch.linspace(-1, 1, 28)
    blob = ((u[:, None] ** 2 + u[None] ** 2) < 0.6).float() * 0.9 + 0.05
    last = list(vae.model.digit.decoder)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.logit(blob).flatten())
    steps = write_patch(blob.expand(1, 3, 28, 28), where_from_coords(TRUE), 50)
    return vae, steps[:, :2].sum(1).clamp(0, 1)


def centre_error_px(coords: torch.Tensor) -> torch.Tensor:
    return ((coords - TRUE)[..., 1:] * 25).norm(dim=-1)


def test_refinement_removes_a_known_window_offset(single_thread):
    vae, canvas = blob_model()
    start = TRUE + OFFSET
    counts = torch.tensor([2])
    refined = refine_windows(vae, canvas, start, counts, steps=60, lr=0.02)
    assert centre_error_px(start)[0].tolist() == pytest.approx([5.0, 5.0, 5.0], rel=1e-5)
    errors = centre_error_px(refined)[0]
    assert (errors[:2] < 0.5).all(), errors  # both present windows found within half a pixel
    assert torch.equal(refined[0, 2], start[0, 2])  # the absent step is left alone
    assert torch.allclose(refined[0, :2, 0], TRUE[0, :2, 0], atol=0.02)  # and the scales
    before, after = (window_objective(vae, canvas, c, counts) for c in (start, refined))
    assert after > before + 100
    assert torch.equal(refine_windows(vae, canvas, start, counts, steps=0, lr=0.02), start)
    assert all(p.grad is None for p in vae.parameters())  # only the windows were optimised


def test_refined_reading_rereads_through_the_refined_windows(single_thread):
    vae, canvas = blob_model()
    start = TRUE + OFFSET
    canvases = canvas.expand(2, -1, -1)
    count_probs = torch.tensor([[0.0, 0.1, 0.9, 0.0], [1.0, 0.0, 0.0, 0.0]])  # 2 digits, then none
    wheres = where_from_coords(start.expand(2, -1, -1))
    probs, styles, glimpses = vae.guide.read_windows(canvases, start.expand(2, -1, -1))
    reading = Reading(count_probs, wheres, probs, styles, glimpses)
    refined = refine_reading(vae, canvases, reading, steps=60, lr=0.02, batch_size=1)
    coords = coords_from_where(refined.wheres)
    assert (centre_error_px(coords[:1])[0, :2] < 0.5).all()
    assert torch.allclose(refined.wheres[1], wheres[1])  # a canvas read as empty keeps its windows
    assert torch.equal(refined.count_probs, count_probs)
    again = vae.guide.read_windows(canvases, coords)
    for name, value in zip(("digit_probs", "styles", "glimpses"), again, strict=True):
        assert torch.allclose(getattr(refined, name), value, atol=1e-6), name


@pytest.mark.parametrize("guide_type", ["m2", "paper"])
def test_mean_patch_marginalises_the_digit(guide_type):
    r"""p̄ = Σ_y q(y | g) sigmoid(decoder(y, z̄(y))), by hand for one step of one canvas."""
    torch.manual_seed(0)
    vae = MultiDigitVAE(SSVAE(z_dim=4, hidden=(8,), guide_type=guide_type), **{"canvas_channels": (4,)})
    g = torch.Generator().manual_seed(0)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, 2, seed=0)
    coords = coords_from_where(data.wheres)
    patches = mean_patches(vae, data.canvases, coords)
    digit = vae.guide.digit
    glimpse = vae.guide.read(data.canvases[1], coords[1, 0])
    expected = torch.zeros(28 * 28)
    for y in torch.eye(NUM_CLASSES):
        if guide_type == "m2":
            q_y = digit.encoder_y(glimpse).softmax(-1)
            style = digit.encoder_z(glimpse, y)[0]
        else:
            style = digit.encoder_z(glimpse)[0]
            q_y = digit.encoder_y(glimpse, style).softmax(-1)
        expected += q_y[y.argmax()] * torch.sigmoid(vae.model.digit.logits(style, y))
    assert patches.shape == (2, 3, 28, 28)
    assert torch.allclose(patches[1, 0].flatten(), expected, atol=1e-6)


def test_refinement_argument_errors():
    vae, canvas = blob_model()
    with pytest.raises(ValueError, match="steps must be non-negative, got -1"):
        refine_windows(vae, canvas, TRUE, torch.tensor([2]), steps=-1, lr=0.02)
    with pytest.raises(ValueError, match="lr must be positive, got 0.0"):
        refine_windows(vae, canvas, TRUE, torch.tensor([2]), steps=5, lr=0.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--refine-steps", "-1"], "--refine-steps must be non-negative, got -1"),
        (["--refine-lr", "0"], "--refine-lr must be positive, got 0.0"),
        (["--search-radius", "-1"], "--search-radius must be non-negative, got -1"),
        (["--glimpse-jitter", "-0.5"], "--glimpse-jitter must be non-negative, got -0.5"),
        (["--alpha-where", "-1"], "--alpha-where must be a non-negative number, got -1.0"),
        (["--alpha-count", "nan"], "--alpha-count must be a non-negative number, got nan"),
    ],
)
def test_bad_refinement_and_weight_arguments_are_usage_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        runner.parse(MultiMNISTExperiment(), [*argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_term_weights_default_to_alpha_and_name_every_site(tmp_path):
    args = runner.parse(
        MultiMNISTExperiment(), ["--alpha", "3", "--alpha-where", "250", "--out", str(tmp_path)]
    )
    assert term_alphas(args) == {"count": 3.0, "digits": 3.0, "where": 250.0}
    assert site_alphas(args) == {
        "count": 3.0,
        **{f"digit_{k}": 3.0 for k in range(3)},
        **{f"where_{k}": 250.0 for k in range(3)},
    }


def fully_labelled_batch():
    g = torch.Generator().manual_seed(0)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, 8, seed=0)
    digits = torch.nn.functional.one_hot(data.digits.clamp(min=0), NUM_CLASSES).float()
    mask = torch.ones(8, dtype=torch.bool)
    return data, (data.canvases, data.counts, digits, coords_from_where(data.wheres), mask)


def test_term_weights_reach_the_objective(single_thread):
    """On a fully labelled batch the loss is L_0 − α_count log q(n|x) − α_digits Σ_{k<n} log q(y_k|g_k)
    − α_where Σ_{k<n} log q(w_k|x, w_{<k}): each weight scales its own term, computed from the guide."""
    torch.manual_seed(0)
    vae = MultiDigitVAE(**SMALL)
    _, batch = fully_labelled_batch()

    def loss(count: float, digits: float, where: float) -> float:
        args = argparse.Namespace(alpha=0.0, alpha_count=count, alpha_digits=digits, alpha_where=where)
        elbo = SemiSupervisedELBO(
            alpha=site_alphas(args), relax=digit_sites(3, 0.5), max_plate_nesting=1, split_on="mask"
        )
        pyro.set_rng_seed(1)
        with torch.no_grad():
            return elbo.loss(vae.model, vae.guide, *batch)

    pyro.set_rng_seed(1)
    trace = poutine.trace(vae.guide).get_trace(*batch)
    trace.compute_log_prob()
    terms = {"count": 0.0, "digits": 0.0, "where": 0.0}
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and name.endswith("_observed"):
            term = "count" if name.startswith("count") else "digits" if name.startswith("digit") else "where"
            terms[term] += site["log_prob"].sum().item()
    assert all(value < 0 for value in terms.values())
    base = loss(0.0, 0.0, 0.0)
    for term, weights in {"count": (2.0, 0, 0), "digits": (0, 2.0, 0), "where": (0, 0, 2.0)}.items():
        assert loss(*weights) - base == pytest.approx(-2.0 * terms[term], rel=1e-4), term
    assert loss(1.0, 2.0, 3.0) - base == pytest.approx(
        -(terms["count"] + 2 * terms["digits"] + 3 * terms["where"]), rel=1e-4
    )


def test_the_experiment_trains_on_the_per_term_weights(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = make_multi_mnist(torch.rand(40, 28, 28, generator=g), torch.arange(40) % 10, 40, seed=0)
    experiment = MultiMNISTExperiment()
    argv = ["--train-canvases", "40", "--labelled-canvases", "8", "--batch-size", "8", "--alpha-digits", "9"]
    args = runner.parse(experiment, [*argv, "--out", str(tmp_path)])
    setup = experiment.build(args, Canvases(data, data))
    assert setup.elbo.alpha == site_alphas(args)
    assert setup.elbo.alpha["digit_2"] == 9.0 and setup.elbo.alpha["where_0"] == 50.0


def confident_at_true_centres(vae: MultiDigitVAE) -> None:
    """Replace the reader by one whose confidence max_y q(y | g_k) falls with the distance of window k's
    centre from ``TRUE``'s (digit k's probability exp(-d²), the rest shared evenly)."""

    def read_windows(canvases, coords, generator=None):
        distance = (coords - TRUE.to(coords))[..., 1:].norm(dim=-1)  # (B, K)
        top = torch.exp(-((distance * 25) ** 2) / 8)
        rest = (1 - top[..., None]) / (NUM_CLASSES - 1)
        probs = torch.where(torch.eye(NUM_CLASSES, dtype=torch.bool)[: coords.shape[1]], top[..., None], rest)
        batch, steps = coords.shape[:2]
        return probs, coords.new_zeros(batch, steps, 4), coords.new_zeros(batch, steps, 28, 28)

    vae.guide.read_windows = read_windows


def test_the_glimpse_search_moves_each_present_window_to_the_readers_most_confident_shift():
    vae, canvas = blob_model()
    confident_at_true_centres(vae)
    pixel = 2 / 50
    start = TRUE + torch.tensor([0.0, 2 * pixel, -pixel])  # 2 px off in x, 1 in y
    counts = torch.tensor([2])
    found = search_windows(vae, canvas, start, counts, radius=2)
    assert torch.allclose(found[0, :2], TRUE[0, :2], atol=1e-6)  # both present windows on their centres
    assert torch.equal(found[0, 2], start[0, 2])  # the absent step is left alone
    one = search_windows(vae, canvas, start, counts, radius=1)  # one pixel towards the centre in x and y
    assert torch.allclose(one[0, :2], (TRUE + torch.tensor([0.0, pixel, 0.0]))[0, :2], atol=1e-6)
    assert torch.equal(search_windows(vae, canvas, start, counts, radius=0), start)
    assert torch.equal(search_windows(vae, canvas, TRUE, counts, radius=2), TRUE)  # ties: no move
    with pytest.raises(ValueError, match="radius must be non-negative, got -1"):
        search_windows(vae, canvas, start, counts, radius=-1)


def test_searched_reading_rereads_through_the_searched_windows():
    vae, canvas = blob_model()
    confident_at_true_centres(vae)
    start = (TRUE + torch.tensor([0.0, 0.04, 0.04])).expand(2, -1, -1)
    canvases = canvas.expand(2, -1, -1)
    count_probs = torch.tensor([[0.0, 0.1, 0.9, 0.0], [1.0, 0.0, 0.0, 0.0]])  # 2 digits, then none
    reading = Reading(count_probs, where_from_coords(start), *vae.guide.read_windows(canvases, start))
    searched = search_reading(vae, canvases, reading, radius=1, batch_size=1)
    coords = coords_from_where(searched.wheres)
    assert torch.allclose(coords[0, :2], TRUE[0, :2], atol=1e-6)
    assert torch.allclose(searched.wheres[1], reading.wheres[1])  # a canvas read as empty keeps its windows
    assert torch.equal(searched.count_probs, count_probs)
    assert torch.allclose(searched.digit_probs, vae.guide.read_windows(canvases, coords)[0])


def test_the_experiment_records_refined_then_searched_scores_and_adds_them_on_resuming(
    real_data_root, tmp_path, single_thread
):
    """A run refined and searched records both sets of scores; a finished run resumed with a wider search
    (``--override search-radius``) trains no further and records the new search."""
    tiny = [
        "--train-canvases", "120", "--test-canvases", "40", "--labelled-canvases", "20", "--batch-size", "40",
        "--canvas-channels", "4", "--canvas-features", "16", "--state-dim", "8", "--digit-hidden", "16",
        "--no-progress", "--data", str(real_data_root), "--epochs", "1", "--out", str(tmp_path),
    ]  # fmt: skip
    experiment = MultiMNISTExperiment()
    first = runner.train(experiment, [*tiny, "--refine-steps", "2", "--search-radius", "1"])
    for prefix in ("refined", "searched"):
        assert 0.0 <= first[f"test_{prefix}_matched_digit_accuracy"] <= 1.0
        assert first[f"test_{prefix}_matched_position_error_px"] > 0
    assert first["search_radius"] == 1 and first["test_search_seconds"] > 0
    again = runner.train(
        experiment,
        [*tiny, "--refine-steps", "2", "--search-radius", "3", "--resume", "--override", "search-radius"],
    )
    assert again["search_radius"] == 3 and again["epochs"] == 1
    assert again["test_refined_matched_digit_accuracy"] == first["test_refined_matched_digit_accuracy"]
