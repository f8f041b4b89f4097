import functools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_partial.infer.log_evidence import class_log_posterior, row_log_evidence

PRIOR_SCALE, NOISE = 1.5, 0.7


def gaussian_model(xs, prior_loc):
    """z_i ~ N(prior_loc, 1.5²), x_i ~ N(z_i, 0.7²): log p(x_i) = log N(x_i; prior_loc, 1.5² + 0.7²)."""
    with pyro.plate("data", len(xs)):
        z = pyro.sample("z", dist.Normal(prior_loc, PRIOR_SCALE))
        pyro.sample("x", dist.Normal(z, NOISE), obs=xs)


def exact_posterior(xs, prior_loc):
    precision = PRIOR_SCALE**-2 + NOISE**-2
    return (prior_loc * PRIOR_SCALE**-2 + xs * NOISE**-2) / precision, precision**-0.5


def gaussian_guide(xs, prior_loc, shift=0.0, widen=1.0):
    """The exact posterior, or (``shift``, ``widen``) a wrong one."""
    loc, scale = exact_posterior(xs, prior_loc)
    with pyro.plate("data", len(xs)):
        pyro.sample("z", dist.Normal(loc + shift, scale * widen))


def closed_form_log_evidence(xs, prior_loc):
    return dist.Normal(prior_loc, math.hypot(PRIOR_SCALE, NOISE)).log_prob(xs)


@pytest.mark.parametrize("vectorize", [False, True])
@pytest.mark.parametrize("num_particles", [1, 7])
def test_exact_guide_gives_the_exact_evidence_and_its_gradient(num_particles, vectorize):
    xs = torch.tensor([-2.0, 0.3, 1.1, 4.0], dtype=torch.float64)
    prior_loc = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    estimate = row_log_evidence(
        gaussian_model,
        gaussian_guide,
        xs,
        prior_loc,
        num_particles=num_particles,
        vectorize_particles=vectorize,
    )
    expected = closed_form_log_evidence(xs, prior_loc)
    assert estimate.shape == (4,) and estimate.dtype == torch.float64
    torch.testing.assert_close(estimate, expected, rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(estimate.sum(), prior_loc)
    (expected_grad,) = torch.autograd.grad(expected.sum(), prior_loc)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12)


def test_one_particle_is_the_elbo_in_expectation_and_many_approach_the_evidence():
    x, prior_loc, shift, widen = 1.2, torch.tensor(0.0, dtype=torch.float64), 0.8, 1.6
    rows = 20_000
    xs = torch.full((rows,), x, dtype=torch.float64)
    wrong_guide = functools.partial(gaussian_guide, shift=shift, widen=widen)
    one = row_log_evidence(gaussian_model, wrong_guide, xs, prior_loc)
    # the ELBO in closed form: E_q[log p(z) + log p(x|z)] + H[q], q = N(m, s²)
    loc, scale = exact_posterior(torch.tensor(x), 0.0)
    m, s = loc + shift, scale * widen
    expected_log_prior = -0.5 * math.log(2 * math.pi * PRIOR_SCALE**2) - (m**2 + s**2) / (2 * PRIOR_SCALE**2)
    expected_log_lik = -0.5 * math.log(2 * math.pi * NOISE**2) - ((x - m) ** 2 + s**2) / (2 * NOISE**2)
    entropy = 0.5 * math.log(2 * math.pi * math.e * s**2)
    elbo = float(expected_log_prior + expected_log_lik + entropy)
    assert abs(one.mean().item() - elbo) < 4 * one.std().item() / math.sqrt(rows)
    evidence = closed_form_log_evidence(torch.tensor(x, dtype=torch.float64), prior_loc).item()
    assert elbo < evidence - 0.1  # the guide is wrong enough for the test to tell the two apart
    many = row_log_evidence(gaussian_model, wrong_guide, xs[:50], prior_loc, num_particles=1000)
    assert abs(many.mean().item() - evidence) < 0.01
    assert many.mean().item() > one.mean().item() + 0.1
    at_once = row_log_evidence(
        gaussian_model, wrong_guide, xs[:50], prior_loc, num_particles=1000, vectorize_particles=True
    )
    assert abs(at_once.mean().item() - evidence) < 0.01


def test_vectorised_particles_are_the_same_estimator():
    """K = 5 draws of a wrong guide, at once or one after another: the same bound, which lies between the
    ELBO and log p(x), in distribution (means within 4 standard errors over 20,000 rows)."""
    pyro.set_rng_seed(0)
    rows, prior_loc = 20_000, torch.tensor(0.0, dtype=torch.float64)
    xs = torch.full((rows,), 1.2, dtype=torch.float64)
    wrong_guide = functools.partial(gaussian_guide, shift=0.8, widen=1.6)
    one_by_one = row_log_evidence(gaussian_model, wrong_guide, xs, prior_loc, num_particles=5)
    at_once = row_log_evidence(
        gaussian_model, wrong_guide, xs, prior_loc, num_particles=5, vectorize_particles=True
    )
    standard_error = math.hypot(one_by_one.std().item(), at_once.std().item()) / math.sqrt(rows)
    assert abs(one_by_one.mean().item() - at_once.mean().item()) < 4 * standard_error
    elbo = row_log_evidence(gaussian_model, wrong_guide, xs, prior_loc).mean().item()
    evidence = closed_form_log_evidence(xs[0], prior_loc).item()
    assert elbo + 0.05 < at_once.mean().item() < evidence - 0.05  # K = 5 is tighter, and still a bound


def nested_model(xs, prior_loc):
    """The Gaussian model on a (rows, features) table: z_ij ~ N(prior_loc, 1.5²), x_ij ~ N(z_ij, 0.7²), in
    a plate of features inside the plate of rows; log p(x_i) is a sum over the features."""
    with pyro.plate("data", xs.shape[0], dim=-2), pyro.plate("features", xs.shape[1], dim=-1):
        z = pyro.sample("z", dist.Normal(prior_loc, PRIOR_SCALE))
        pyro.sample("x", dist.Normal(z, NOISE), obs=xs)


def nested_guide(xs, prior_loc):
    loc, scale = exact_posterior(xs, prior_loc)
    with pyro.plate("data", xs.shape[0], dim=-2), pyro.plate("features", xs.shape[1], dim=-1):
        pyro.sample("z", dist.Normal(loc, scale))


def test_vectorised_particles_go_left_of_every_plate_and_consume_no_extra_random_numbers():
    """Two nested plates: the guessed nesting puts the particles left of both (the exact guide then gives
    the exact evidence of each row), guessing it draws no random numbers (the same seed gives the same
    estimate as the nesting given, or a deeper one), and a negative or too small nesting is refused by
    name."""
    xs = torch.tensor([[-2.0, 0.3, 1.1], [4.0, 0.0, -0.5]], dtype=torch.float64)
    prior_loc = torch.tensor(0.4, dtype=torch.float64)
    arguments = (nested_model, nested_guide, xs, prior_loc)
    estimate = row_log_evidence(*arguments, num_particles=4, vectorize_particles=True)
    expected = closed_form_log_evidence(xs, prior_loc).sum(-1)
    torch.testing.assert_close(estimate, expected, rtol=0, atol=1e-12)

    def estimate_of(guide_scale, **nesting):
        guide = functools.partial(gaussian_guide, widen=guide_scale)
        pyro.set_rng_seed(3)
        return row_log_evidence(
            gaussian_model, guide, xs[:, 0], prior_loc, num_particles=4, vectorize_particles=True, **nesting
        )

    guessed, given = estimate_of(2.0), estimate_of(2.0, max_plate_nesting=1)
    assert torch.equal(guessed, given)
    assert torch.equal(given, estimate_of(2.0, max_plate_nesting=3))  # any nesting deep enough will do
    assert not torch.equal(given, estimate_of(1.5, max_plate_nesting=1))
    with pytest.raises(ValueError, match="max_plate_nesting must be non-negative, got -1"):
        estimate_of(2.0, max_plate_nesting=-1)
    with pytest.raises(ValueError, match=r"max_plate_nesting=0: is it at least the number of plates"):
        estimate_of(2.0, max_plate_nesting=0)  # Pyro's own shape error, with the hint
    with pytest.raises(ValueError, match=r"max_plate_nesting=1: is it at least the number of plates"):
        row_log_evidence(*arguments, num_particles=4, vectorize_particles=True, max_plate_nesting=1)

    # as many particles as rows: every shape broadcasts, and without the check the swap would pass silently
    def prior_guide(xs, prior_loc):
        with pyro.plate("data", len(xs)):
            pyro.sample("z", dist.Normal(prior_loc, PRIOR_SCALE))

    with pytest.raises(ValueError, match="too small: plate 'data' sits at dim -2, not right of the particle"):
        row_log_evidence(
            gaussian_model,
            prior_guide,
            xs[:, 0],
            prior_loc,
            num_particles=2,
            vectorize_particles=True,
            max_plate_nesting=0,
        )


MEANS = (-2.0, 0.5, 3.0)
PRIOR = (0.2, 0.5, 0.3)


def mixture_model(xs, ys, mask):
    """y ~ Cat(PRIOR) (partially observed), z ~ N(0, 1), x ~ N(MEANS[y] + z, 1)."""
    means = torch.tensor(MEANS, dtype=xs.dtype)
    with pyro.plate("data", len(xs)):
        y = pyro.sample("y", dist.Categorical(torch.tensor(PRIOR, dtype=xs.dtype)), obs=ys, obs_mask=mask)
        z = pyro.sample("z", dist.Normal(torch.zeros_like(xs), 1.0))
        pyro.sample("x", dist.Normal(means[y] + z, 1.0), obs=xs)


def mixture_guide(xs, ys, mask):
    """q(y|x) a tempered posterior (not the posterior); q(z|x, y) the exact posterior given y."""
    means = torch.tensor(MEANS, dtype=xs.dtype)
    with pyro.plate("data", len(xs)):
        logits = 0.8 * exact_joint(xs).log_softmax(-1)
        y = pyro.sample("y", dist.Categorical(logits=logits), obs=ys, obs_mask=mask)
        pyro.sample("z", dist.Normal((xs - means[y]) / 2, 0.5**0.5))


def exact_joint(xs):
    """log p(x, y=c) for every c, shape (B, 3): z integrated out, x | y ~ N(MEANS[y], 2)."""
    means, prior = torch.tensor(MEANS, dtype=xs.dtype), torch.tensor(PRIOR, dtype=xs.dtype)
    return prior.log() + dist.Normal(means, 2**0.5).log_prob(xs[:, None])


XS = torch.tensor([-3.0, -0.4, 0.9, 2.2, 5.0], dtype=torch.float64)


@pytest.mark.parametrize("vectorize", [False, True])
def test_class_posterior_is_bayes_rule_on_the_joint(vectorize):
    unlabelled = torch.zeros(5, dtype=torch.bool)
    placeholder = torch.zeros(5, dtype=torch.long)
    options = {"num_particles": 3, "vectorize_particles": vectorize}
    posterior = class_log_posterior(
        mixture_model, mixture_guide, "y", torch.arange(3), XS, placeholder, unlabelled, **options
    )
    torch.testing.assert_close(posterior, exact_joint(XS).log_softmax(-1), rtol=0, atol=1e-12)
    # a labelled row keeps its label whatever the candidate: every candidate has the same evidence
    labelled = unlabelled.clone()
    labelled[0] = True
    posterior = class_log_posterior(
        mixture_model, mixture_guide, "y", torch.arange(3), XS, placeholder, labelled, **options
    )
    torch.testing.assert_close(posterior[0], torch.full((3,), -math.log(3), dtype=torch.float64))
    torch.testing.assert_close(posterior[1:], exact_joint(XS[1:]).log_softmax(-1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("vectorize", [False, True])
def test_labelled_rows_score_their_labels_and_unlabelled_rows_their_evidence(vectorize):
    ys = torch.tensor([0, 2, 1, 1, 0])
    mask = torch.tensor([True, True, False, True, False])
    estimate = row_log_evidence(
        mixture_model, mixture_guide, XS, ys, mask, num_particles=400, vectorize_particles=vectorize
    )
    joint = exact_joint(XS)
    labelled = joint.gather(-1, ys[:, None]).squeeze(-1)
    torch.testing.assert_close(estimate[mask], labelled[mask], rtol=0, atol=1e-12)  # z's guide is exact
    # unlabelled: the weights p(x, y) / q(y|x) vary with y alone; with 400 draws the bound stayed within
    # 0.02 of log p(x) over 20 seeds (leaving out log q(y|x) would cost about 1)
    evidence = joint.logsumexp(-1)
    torch.testing.assert_close(estimate[~mask], evidence[~mask], rtol=0, atol=0.04)


def test_bad_arguments_are_named():
    xs, prior_loc = XS, torch.tensor(0.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="num_particles must be positive"):
        row_log_evidence(gaussian_model, gaussian_guide, xs, prior_loc, num_particles=0)
    with pytest.raises(ValueError, match="plate 'rows'"):
        row_log_evidence(gaussian_model, gaussian_guide, xs, prior_loc, plate="rows")
    with pytest.raises(ValueError, match="C >= 2 candidate values of site 'y'"):
        class_log_posterior(mixture_model, mixture_guide, "y", torch.tensor([1]), xs, None, None)
    with pytest.raises(ValueError, match=r"site 'z': the value to observe has shape \(3,\)"):
        row_log_evidence(gaussian_model, gaussian_guide, xs, prior_loc, observe={"z": torch.zeros(3)})


def test_a_global_latent_is_refused_by_name():
    def model(xs):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(xs)):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=xs)

    def guide(xs):
        pyro.sample("loc", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="site 'loc' is outside the plate 'data'"):
        row_log_evidence(model, guide, XS)


def unused_label_model(xs, ys, mask):
    """y ~ Cat(PRIOR) never reaches x: p(y|x) is the prior."""
    with pyro.plate("data", len(xs)):
        pyro.sample("y", dist.Categorical(torch.tensor(PRIOR, dtype=xs.dtype)), obs=ys, obs_mask=mask)
        z = pyro.sample("z", dist.Normal(torch.zeros_like(xs), 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=xs)


def unused_label_guide(xs, ys, mask):
    """q(y|x) q(z|x) with q(z|x) far from the posterior, so that each draw's weight is noisy."""
    with pyro.plate("data", len(xs)):
        logits = torch.zeros(len(xs), 3, dtype=xs.dtype)
        pyro.sample("y", dist.Categorical(logits=logits), obs=ys, obs_mask=mask)
        pyro.sample("z", dist.Normal(torch.zeros_like(xs), 3.0))


@pytest.mark.parametrize("vectorize", [False, True])
def test_candidates_share_their_draws(vectorize):
    """The candidates are scored on the same draws of q(z|x): a label that does not reach x gets exactly its
    prior, whatever the noise of the evidence (independent draws would not), and the random state still
    moves on between calls."""
    unlabelled, placeholder = torch.zeros(5, dtype=torch.bool), torch.zeros(5, dtype=torch.long)
    arguments = (unused_label_model, unused_label_guide, "y", torch.arange(3), XS, placeholder, unlabelled)
    options = {"num_particles": 2, "vectorize_particles": vectorize}
    posterior = class_log_posterior(*arguments, **options)
    prior = torch.tensor(PRIOR, dtype=torch.float64).log().expand(5, 3)
    torch.testing.assert_close(posterior, prior, rtol=0, atol=1e-12)
    evidence = [row_log_evidence(*arguments[:2], *arguments[4:], **options) for _ in range(2)]
    assert not torch.equal(*evidence)
