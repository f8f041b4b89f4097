"""Decomposition (Mathieu et al.'s β and α·D) composed with SemiSupervisedELBO, against hand computations.

The guides record the standard-normal noise of every draw of z (see ``LinearGaussian``), the prior records
its draws, so the terms can be recomputed by hand from the parameters: values and gradients must agree.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI
from pyro.optim import Adam
from torch.distributions import Normal
from torch.nn.functional import softplus

from pyro_partial.infer import Decomposition, SemiSupervisedELBO, decomposition_penalty, mmd_imq
from tests.infer import test_decomposition as single_pass
from tests.infer.test_semi_supervised import D, K, LinearGaussian, batch, check_against_hand

NAMES = ("C", "E", "F", "G", "s")


pytestmark = pytest.mark.usefixtures("float64")  # objectives are checked in float64


def recording_normal(record):
    """``dist.Normal`` whose reparameterised draws are appended to ``record`` (the prior draws of D)."""

    class RecordingNormal(dist.Normal):
        def rsample(self, sample_shape=()):
            value = super().rsample(sample_shape)
            record.append(value.detach())
            return value

    return RecordingNormal


class WithPrior(LinearGaussian):
    """LinearGaussian with another prior p(z) (event shape (D,))."""

    def __init__(self, prior, seed=0):
        super().__init__(seed)
        self.prior = prior

    def model(self, x, y=None, mask=None):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=self.log_pi), obs=y, obs_mask=mask)
            z = pyro.sample("z", self.prior)
            pyro.sample("x", dist.Normal(self.W[y] + z @ self.A, self.sigma).to_event(1), obs=x)


def run(elbo, lg, guide, x, y, mask, seed=3):
    """Loss and gradients of every parameter (zeros for those the loss does not touch), from ``seed``."""
    pyro.set_rng_seed(seed)
    lg.noise.clear()
    lg.params()
    for name in NAMES:
        pyro.param(name).unconstrained().grad = None
    loss = elbo.loss_and_grads(lg.model, getattr(lg, guide), x, y, mask)
    params = [pyro.param(name).unconstrained() for name in NAMES]
    return loss, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


def hand_grads(value):
    params = [pyro.param(name).unconstrained() for name in NAMES]
    return torch.autograd.grad(value, params, allow_unused=True, materialize_grads=True)


def gaussian_kl(loc, scale):
    """KL(N(loc, diag scale²) ‖ N(0, I)) over the last dim."""
    return 0.5 * (scale.square() + loc.square() - 1 - 2 * scale.log()).sum(-1)


# ---------------------------------------------------------------- β = 1, α = 0


@pytest.mark.parametrize("guide", ["guide_m2", "guide_paper"])
@pytest.mark.parametrize("split_on", [None, "mask"])
@pytest.mark.parametrize("num_particles, vectorize", [(1, False), (2, False), (3, True)])
def test_beta_one_alpha_zero_is_exactly_the_plain_objective(guide, split_on, num_particles, vectorize):
    lg = LinearGaussian()
    x, y, mask = batch()
    options = dict(
        alpha=0.3,
        gamma=1.7,
        num_importance_samples=2,
        num_particles=num_particles,
        vectorize_particles=vectorize,
        split_on=split_on,
        max_plate_nesting=1,
    )
    plain = run(SemiSupervisedELBO(**options), lg, guide, x, y, mask)
    composed = run(SemiSupervisedELBO(**options, decomposition=Decomposition()), lg, guide, x, y, mask)
    assert composed[0] == plain[0]
    for ours, expected in zip(composed[1], plain[1], strict=True):
        assert torch.equal(ours, expected)


# ---------------------------------------------------------------- β


@pytest.mark.parametrize("num_samples", [1, 4])
def test_beta_scales_the_m2_kl_against_a_hand_computation(num_samples):
    """−(β − 1)[Σ_unl Σ_k q(k|x) KL(q(z|x, k) ‖ p) + γ Σ_lab KL(q(z|x, y) ‖ p)] added to the paper's objective
    recomputed from the recorded noise."""
    lg = LinearGaussian()
    x, y, mask = batch()
    beta, gamma = 3.5, 2.0
    elbo = SemiSupervisedELBO(
        alpha=0.3,
        gamma=gamma,
        num_importance_samples=num_samples,
        max_plate_nesting=1,
        decomposition=Decomposition(beta=beta),
    )

    def hand(x, y, mask, eps_unl, eps_lab):
        p = {n: pyro.param(n) for n in lg.init}
        scale = softplus(p["s"])
        loc = (x @ p["E"])[:, None, :] + p["F"]  # (B, K, D)
        kl = gaussian_kl(loc, scale)  # (B, K)
        q_y = (x @ p["C"]).softmax(-1)
        unlabelled = (q_y * kl).sum(-1)
        labelled = gamma * kl.gather(-1, y[:, None])[:, 0]
        correction = -(beta - 1) * torch.where(mask, labelled, unlabelled).sum()
        objective = lg.m2_objective(x, y, mask, eps_unl.reshape(K, -1, D), eps_lab, alpha=0.3, gamma=gamma)
        return objective + correction

    check_against_hand(lg, lg.guide_m2, hand, elbo, x, y, mask)


def test_beta_scales_the_kl_of_the_sites_own_distribution_for_the_paper_guide():
    """q(z|x) q(y|x, z): the site's KL is KL(q(z|x) ‖ p) on every row, labelled or not."""
    lg = LinearGaussian(seed=3)
    x, y, mask = batch(seed=4)
    beta, gamma = 0.25, 1.5
    elbo = SemiSupervisedELBO(
        alpha=0.5,
        gamma=gamma,
        num_importance_samples=3,
        max_plate_nesting=1,
        decomposition=Decomposition(beta=beta),
    )

    def hand(x, y, mask, eps_unl, eps_lab):
        p = {n: pyro.param(n) for n in lg.init}
        kl = gaussian_kl(x @ p["E"], softplus(p["s"]))
        correction = -(beta - 1) * torch.where(mask, gamma * kl, kl).sum()
        objective = lg.paper_objective(x, y, mask, eps_unl, eps_lab, 0.5, gamma, "weighted")
        return objective + correction

    check_against_hand(lg, lg.guide_paper, hand, elbo, x, y, mask)


def test_beta_without_an_analytic_kl_weighs_the_draws_like_the_guide():
    """Student-t prior: one-sample log q(z) − log p(z), on labelled rows averaged over the S draws with the
    guide's normalised weights q(y|x, z_s) / Σ_s' q(y|x, z_s')."""
    prior = dist.StudentT(4.0, torch.zeros(D), 1.0).to_event(1)
    lg = WithPrior(prior, seed=3)
    x, y, mask = batch(seed=4)
    beta, gamma, samples = 2.5, 1.5, 4
    options = dict(alpha=0.5, gamma=gamma, num_importance_samples=samples, max_plate_nesting=1)
    plain = run(SemiSupervisedELBO(**options), lg, "guide_paper", x, y, mask)
    composed = run(
        SemiSupervisedELBO(**options, decomposition=Decomposition(beta=beta)), lg, "guide_paper", x, y, mask
    )
    eps_unl, eps_lab = (eps.reshape(-1, x.shape[0], D) for eps in lg.noise)
    p = {n: pyro.param(n) for n in NAMES}
    loc, scale = x @ p["E"], softplus(p["s"])
    z_unl, z_lab = loc + scale * eps_unl[0], loc + scale * eps_lab  # (B, D), (S, B, D)

    def log_ratio(z):
        return Normal(loc, scale).log_prob(z).sum(-1) - prior.log_prob(z)

    log_w = (x @ p["C"] + z_lab @ p["G"]).log_softmax(-1).gather(-1, y.expand(samples, -1)[..., None])[..., 0]
    labelled = gamma * (log_w.softmax(0) * log_ratio(z_lab)).sum(0)
    difference = (beta - 1) * torch.where(mask, labelled, log_ratio(z_unl)).sum()  # in the loss
    assert composed[0] - plain[0] == pytest.approx(difference.item(), rel=1e-10)
    for ours, base, expected in zip(composed[1], plain[1], hand_grads(difference), strict=True):
        assert torch.allclose(ours - base, expected, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- α


def hand_mmd_penalty(lg, guide, x, y, mask, noise, prior_draws, alpha, samples, particles, split):
    """α N (1/P) Σ_r MMD²_r, the MMD pooling every row's draws: unlabelled rows q(z|x) (M2: the draws under
    each k weighted by q(k|x)), labelled rows q(z|x, y) (the S draws weighted by normalised q(y|x, z_s))."""
    p = {n: pyro.param(n) for n in NAMES}
    scale = softplus(p["s"])
    if split:
        xu, xl, yl = x[~mask], x[mask], y[mask]
        u, lab = torch.ones(len(xu)), torch.ones(len(xl))
    else:
        xu, xl, yl = x, x, y
        u, lab = (~mask).double(), mask.double()
    eps_unl, eps_lab = noise
    eps_lab = eps_lab.reshape(particles, samples, len(xl), D)
    if guide == "guide_m2":
        eps_unl = eps_unl.reshape(K, particles, len(xu), D)
        z_unl = (xu @ p["E"] + p["F"][:, None, None, :] + scale * eps_unl).movedim(1, 0)  # (P, K, Bu, D)
        w_unl = ((xu @ p["C"]).softmax(-1).T * u).expand(particles, K, len(xu))
        z_lab = xl @ p["E"] + p["F"][yl] + scale * eps_lab  # (P, S, Bl, D)
        w_lab = (lab / samples).expand(particles, samples, len(xl))
    else:
        z_unl = xu @ p["E"] + scale * eps_unl.reshape(particles, len(xu), D)
        w_unl = u.expand(particles, len(xu))
        z_lab = xl @ p["E"] + scale * eps_lab
        logits = xl @ p["C"] + z_lab @ p["G"]
        log_w = logits.log_softmax(-1).gather(-1, yl.expand(particles, samples, -1)[..., None])[..., 0]
        w_lab = log_w.softmax(1) * lab
    zeta_unl, zeta_lab = prior_draws
    zeta_unl = zeta_unl.reshape(particles, len(xu), D)  # one prior draw per unlabelled row
    zeta_lab = zeta_lab.reshape(particles, samples, len(xl), D)  # one per importance draw
    z = torch.cat([z_unl.reshape(particles, -1, D), z_lab.reshape(particles, -1, D)], 1)
    w = torch.cat([w_unl.reshape(particles, -1), w_lab.reshape(particles, -1)], 1)
    zeta = torch.cat([zeta_unl, zeta_lab.reshape(particles, -1, D)], 1)
    v = torch.cat([u.expand(particles, -1), w_lab.reshape(particles, -1)], 1)
    return alpha * x.shape[0] * mmd_imq(z, zeta, q_weights=w, p_weights=v).mean()


@pytest.mark.parametrize("guide", ["guide_m2", "guide_paper"])
@pytest.mark.parametrize(
    "split_on, num_particles, vectorize",
    [(None, 1, False), ("mask", 1, False), (None, 3, True), ("mask", 2, True)],
)
def test_mmd_term_pools_labelled_and_unlabelled_rows(guide, split_on, num_particles, vectorize):
    """The α term equals −α N MMD² computed independently on the recorded draws of z and of the prior, and
    its gradient (including the classifier's, through the enumeration weights q(k|x)) is exact."""
    draws = []
    prior = recording_normal(draws)(torch.zeros(D), 1.0).to_event(1)
    lg = WithPrior(prior, seed=1)
    x, y, mask = batch(B=7, labelled=(0, 2, 3))
    alpha, samples = 40.0, 3
    options = dict(
        alpha=0.3,
        gamma=2.0,
        num_importance_samples=samples,
        num_particles=num_particles,
        vectorize_particles=vectorize,
        split_on=split_on,
        max_plate_nesting=1,
    )
    plain = run(SemiSupervisedELBO(**options), lg, guide, x, y, mask)
    plain_noise = [eps.clone() for eps in lg.noise]
    decomposition = Decomposition(alpha=alpha)
    composed = run(SemiSupervisedELBO(**options, decomposition=decomposition), lg, guide, x, y, mask)
    assert all(torch.equal(a, b) for a, b in zip(plain_noise, lg.noise, strict=True)), "same z draws"
    passes = 1 if vectorize else num_particles
    particles = num_particles if vectorize else 1
    difference = 0.0
    for i in range(passes):
        noise = [lg.noise[i], lg.noise[passes + i]] if split_on else lg.noise[2 * i : 2 * i + 2]
        difference = difference + hand_mmd_penalty(
            lg, guide, x, y, mask, noise, draws[2 * i : 2 * i + 2], alpha, samples, particles, split_on
        )
    difference = difference / passes
    assert len(draws) == 2 * passes
    assert composed[0] - plain[0] == pytest.approx(difference.item(), rel=1e-9)
    expected_grads = hand_grads(difference)
    for ours, base, expected in zip(composed[1], plain[1], expected_grads, strict=True):
        assert torch.isfinite(ours).all()
        assert torch.allclose(ours - base, expected, rtol=1e-7, atol=1e-9)
    if guide == "guide_m2":
        assert expected_grads[0].abs().max() > 1e-3, "D reaches the classifier q(y|x)"


def test_a_single_pass_equals_decomposition_penalty():
    """On one unenumerated trace pair (masked rows, scaled batch) the terms are decomposition_penalty's:
    −(β − 1) KL − α N MMD², with the same prior draws."""
    x = torch.randn(6, 3)
    mask = torch.tensor([True, False, True, True, False, True])
    model = poutine.scale(single_pass.make_model(), scale=2.5)
    model_trace, guide_trace = single_pass.traces(model, x, mask)
    terms = Decomposition(beta=3.0, alpha=7.0, num_prior_samples=2)

    def penalty():
        return terms.penalty([terms.collect(model_trace, guide_trace)])

    ours = single_pass.seeded(4, penalty)
    args = (model_trace, guide_trace, ["z"])
    expected = single_pass.seeded(
        4, decomposition_penalty, *args, beta=3.0, alpha=7.0, num_prior_samples=2
    ) - decomposition_penalty(*args, beta=1.0, alpha=0.0)
    assert torch.allclose(ours, expected, rtol=1e-12)


# ---------------------------------------------------------------- training and errors


@pytest.mark.parametrize("split_on", [None, "mask"])
def test_svi_steps_have_finite_gradients(split_on):
    lg = LinearGaussian()
    x, y, mask = batch(B=8, labelled=(1, 4, 6))
    elbo = SemiSupervisedELBO(
        alpha=1.0,
        num_particles=2,
        vectorize_particles=True,
        num_importance_samples=2,
        split_on=split_on,
        max_plate_nesting=1,
        decomposition=Decomposition(beta=4.0, alpha=100.0),
    )
    svi = SVI(lg.model, lg.guide_m2, Adam({"lr": 0.01}), elbo)
    for _ in range(3):
        assert torch.isfinite(torch.tensor(svi.step(x, y, mask)))
    for name in ("C", "E", "F", "s"):
        assert torch.isfinite(pyro.param(name)).all()


def test_errors_name_the_site_and_option():
    lg = LinearGaussian()
    x, y, mask = batch(B=4)
    with pytest.raises(ValueError, match="latent site 'w' not found in the model"):
        SemiSupervisedELBO(max_plate_nesting=1, decomposition=Decomposition(latent_sites=["w"])).loss(
            lg.model, lg.guide_m2, x, y, mask
        )
    one_row = SemiSupervisedELBO(max_plate_nesting=1, gamma=0.0, decomposition=Decomposition(alpha=1.0))
    with pytest.raises(ValueError, match="site 'z': D\\(q\\(z\\), p\\(z\\)\\) needs at least two draws"):
        one_row.loss(lg.model, lg.guide_paper, x[:1], y[:1], mask[:1])
    for kwargs, message in [
        ({"beta": -1.0}, "beta"),
        ({"alpha": -1.0}, "alpha"),
        ({"num_prior_samples": 0}, "num_prior_samples"),
        ({"latent_sites": "z"}, "latent_sites"),
    ]:
        with pytest.raises(ValueError, match=message):
            Decomposition(**kwargs)
