"""SemiSupervisedELBO against independent computations.

The exact tests record the standard-normal noise ε the guide used for each reparameterised draw
(z = loc + scale·ε), then recompute the paper's objective by hand from closed-form densities as a
function of the parameters: values and gradients must agree to round-off.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam
from torch.distributions import Normal

from pyro_partial.infer import SemiSupervisedELBO

K, D, X = 3, 2, 4  # classes, style dims, data dims


pytestmark = pytest.mark.usefixtures("float64")  # objectives are checked in float64


class LinearGaussian:
    """p(y) = Cat(π), p(z) = N(0, I), p(x|y, z) = N(W_y + zA, σ²I); guides in both factorisations."""

    def __init__(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.log_pi = torch.randn(K, generator=g).log_softmax(-1)
        self.W = torch.randn(K, X, generator=g)
        self.A = torch.randn(D, X, generator=g)
        self.sigma = 0.7
        self.noise = []  # ε of every reparameterised guide draw, in call order
        self.init = {
            "C": 0.5 * torch.randn(X, K, generator=g),
            "E": 0.5 * torch.randn(X, D, generator=g),
            "F": 0.5 * torch.randn(K, D, generator=g),
            "G": 0.5 * torch.randn(D, K, generator=g),
            "s": 0.3 * torch.randn(D, generator=g),
        }

    def params(self):
        return {name: pyro.param(name, value.clone()) for name, value in self.init.items()}

    def model(self, x, y=None, mask=None):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=self.log_pi), obs=y, obs_mask=mask)
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([D]).to_event(1))
            pyro.sample("x", dist.Normal(self.W[y] + z @ self.A, self.sigma).to_event(1), obs=x)

    def _z(self, loc, scale):
        z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
        self.noise.append(((z - loc) / scale).detach())
        return z

    def guide_m2(self, x, y=None, mask=None):
        """q(y|x) q(z|x, y): Kingma et al.'s M2 factorisation."""
        p = self.params()
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=x @ p["C"]), obs=y, obs_mask=mask)
            self._z(x @ p["E"] + p["F"][y], torch.nn.functional.softplus(p["s"]))

    def guide_paper(self, x, y=None, mask=None):
        """q(z|x) q(y|x, z): the factorisation where log q(y|x) needs importance sampling."""
        p = self.params()
        with pyro.plate("data", x.shape[0]):
            z = self._z(x @ p["E"], torch.nn.functional.softplus(p["s"]))
            pyro.sample("y", dist.Categorical(logits=x @ p["C"] + z @ p["G"]), obs=y, obs_mask=mask)

    # ---- hand computations from closed-form densities ----
    def log_joint(self, x, k, z):
        """log p(x, y=k, z) for z (..., D)."""
        lp = self.log_pi[k] + Normal(0.0, 1.0).log_prob(z).sum(-1)
        return lp + Normal(self.W[k] + z @ self.A, self.sigma).log_prob(x).sum(-1)

    def m2_objective(self, x, y, mask, eps_unl, eps_lab, alpha, gamma):
        p = {n: pyro.param(n) for n in self.init}
        scale = torch.nn.functional.softplus(p["s"])
        log_qy = (x @ p["C"]).log_softmax(-1)  # (B, K)
        total = 0.0
        for b in range(x.shape[0]):
            if not mask[b]:
                for k in range(K):
                    loc = x[b] @ p["E"] + p["F"][k]
                    z = loc + scale * eps_unl[k, b]
                    inner = self.log_joint(x[b], k, z) - Normal(loc, scale).log_prob(z).sum() - log_qy[b, k]
                    total = total + log_qy[b, k].exp() * inner
            else:
                k = int(y[b])
                loc = x[b] @ p["E"] + p["F"][k]
                z = loc + scale * eps_lab[:, b]  # (S, D)
                inner = self.log_joint(x[b], k, z) - Normal(loc, scale).log_prob(z).sum(-1) - log_qy[b, k]
                total = total + gamma * (inner.mean() + (1 + alpha) * log_qy[b, k])
        return total

    def paper_objective(self, x, y, mask, eps_unl, eps_lab, alpha, gamma, estimator):
        p = {n: pyro.param(n) for n in self.init}
        scale = torch.nn.functional.softplus(p["s"])
        total = 0.0
        for b in range(x.shape[0]):
            loc = x[b] @ p["E"]
            if not mask[b]:
                z = loc + scale * eps_unl[b]
                log_qy = (x[b] @ p["C"] + z @ p["G"]).log_softmax(-1)
                expectation = sum(
                    log_qy[k].exp() * (self.log_joint(x[b], k, z) - log_qy[k]) for k in range(K)
                )
                total = total + expectation - Normal(loc, scale).log_prob(z).sum()
            else:
                k = int(y[b])
                z = loc + scale * eps_lab[:, b]  # (S, D)
                log_w = (x[b] @ p["C"] + z @ p["G"]).log_softmax(-1)[:, k]
                log_r = Normal(loc, scale).log_prob(z).sum(-1)
                log_p = self.log_joint(x[b], k, z)
                log_mean_w = log_w.logsumexp(0) - math.log(len(log_w))
                if estimator == "weighted":
                    term = (log_w.softmax(0) * (log_p - log_w - log_r)).sum() + (1 + alpha) * log_mean_w
                else:
                    term = (log_p - log_r).logsumexp(0) - math.log(len(log_w)) + alpha * log_mean_w
                total = total + gamma * term
        return total


def batch(seed=1, B=6, labelled=(0, 2, 3)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, X, generator=g)
    y = torch.randint(0, K, (B,), generator=g)
    mask = torch.zeros(B, dtype=torch.bool)
    mask[list(labelled)] = True
    return x, y, mask


def grads(names):
    """Gradients of the named params (zeros for params the computation did not touch)."""
    params = {n: pyro.param(n).unconstrained() for n in names}
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in params.items()}


def check_against_hand(lg, guide, hand, elbo, x, y, mask):
    loss = elbo.loss_and_grads(lg.model, guide, x, y, mask)
    ours = grads(lg.init)
    assert len(lg.noise) == 2, "expected one unsupervised and one supervised guide pass"
    eps_unl, eps_lab = lg.noise
    for name in lg.init:
        pyro.param(name).unconstrained().grad = None
    expected = hand(x, y, mask, eps_unl, eps_lab.reshape(elbo.num_importance_samples, x.shape[0], D))
    (-expected).backward()
    assert loss == pytest.approx(-expected.item(), rel=1e-10, abs=1e-10)
    for name, value in grads(lg.init).items():
        assert torch.allclose(ours[name], value, rtol=1e-8, atol=1e-10), name


@pytest.mark.parametrize("num_samples", [1, 5])
def test_m2_guide_matches_hand_computation(num_samples):
    lg = LinearGaussian()
    x, y, mask = batch()
    elbo = SemiSupervisedELBO(alpha=0.3, gamma=2.0, num_importance_samples=num_samples, max_plate_nesting=1)

    def hand(x, y, mask, eps_unl, eps_lab):
        return lg.m2_objective(x, y, mask, eps_unl.reshape(K, -1, D), eps_lab, alpha=0.3, gamma=2.0)

    check_against_hand(lg, lg.guide_m2, hand, elbo, x, y, mask)


@pytest.mark.parametrize("estimator", ["weighted", "importance_weighted"])
@pytest.mark.parametrize("num_samples", [1, 4])
def test_paper_guide_matches_hand_computation(estimator, num_samples):
    lg = LinearGaussian(seed=3)
    x, y, mask = batch(seed=4)
    elbo = SemiSupervisedELBO(
        alpha=0.5, gamma=1.5, num_importance_samples=num_samples, estimator=estimator, max_plate_nesting=1
    )

    def hand(x, y, mask, eps_unl, eps_lab):
        return lg.paper_objective(x, y, mask, eps_unl, eps_lab, alpha=0.5, gamma=1.5, estimator=estimator)

    check_against_hand(lg, lg.guide_paper, hand, elbo, x, y, mask)


def test_split_on_matches_hand_computation():
    """With split_on each pass sees only its own rows; the objective is unchanged."""
    lg = LinearGaussian()
    x, y, mask = batch()
    elbo = SemiSupervisedELBO(
        alpha=0.3, gamma=2.0, num_importance_samples=3, max_plate_nesting=1, split_on="mask"
    )

    def hand(x, y, mask, eps_unl, eps_lab):
        eps_unl_full = torch.zeros(K, len(y), D)
        eps_unl_full[:, ~mask] = eps_unl.reshape(K, -1, D)
        eps_lab_full = torch.zeros(3, len(y), D)
        eps_lab_full[:, mask] = eps_lab.reshape(3, -1, D)
        return lg.m2_objective(x, y, mask, eps_unl_full, eps_lab_full, alpha=0.3, gamma=2.0)

    loss = elbo.loss_and_grads(lg.model, lg.guide_m2, x, y, mask)
    ours = grads(lg.init)
    eps_unl, eps_lab = lg.noise
    assert eps_unl.shape == (K, int((~mask).sum()), D) and eps_lab.shape[-2:] == (int(mask.sum()), D)
    for name in lg.init:
        pyro.param(name).unconstrained().grad = None
    expected = hand(x, y, mask, eps_unl, eps_lab)
    (-expected).backward()
    assert loss == pytest.approx(-expected.item(), rel=1e-10)
    for name, value in grads(lg.init).items():
        assert torch.allclose(ours[name], value, rtol=1e-8, atol=1e-10), name


@pytest.mark.parametrize("labelled", [(), (0, 1, 2, 3, 4, 5), (1, 5)])
def test_split_on_equals_masking_exactly_on_a_discrete_model(labelled):
    x, y, mask = batch(B=6, labelled=labelled)
    x = x[:, :2]
    masked = SemiSupervisedELBO(alpha=0.9, gamma=3.0, max_plate_nesting=1)
    split = SemiSupervisedELBO(alpha=0.9, gamma=3.0, max_plate_nesting=1, split_on="mask")
    masked_loss = masked.loss(discrete_model, discrete_guide, x, y, mask)
    expected = -discrete_objective(x, y, mask, alpha=0.9, gamma=3.0).item()
    assert masked_loss == pytest.approx(expected, rel=1e-12)
    assert split.loss(discrete_model, discrete_guide, x, y, mask) == pytest.approx(expected, rel=1e-12)


def test_split_on_without_the_mask_argument_falls_back_to_masking():
    lg = LinearGaussian()
    x, _, _ = batch()
    values = []
    for split_on in (None, "mask"):
        pyro.set_rng_seed(4)
        values.append(
            SemiSupervisedELBO(max_plate_nesting=1, split_on=split_on).loss(lg.model, lg.guide_m2, x)
        )
    assert values[0] == pytest.approx(values[1], rel=1e-12)


def test_split_on_errors():
    x, y, mask = batch(B=4)
    x = x[:, :2]
    with pytest.raises(
        ValueError, match=r"site 'y': obs_mask has dtype torch.float64 and shape \(4,\), expected a bool"
    ):
        SemiSupervisedELBO(split_on="mask", max_plate_nesting=1).loss(
            discrete_model, discrete_guide, x, y, mask.double()
        )

    def raw_guide(x, y, mask):
        weight = pyro.param("weight", torch.zeros(2, 3))
        with pyro.plate("data", x.shape[0]), poutine.mask(mask=~mask):
            pyro.sample("y_unobserved", dist.Categorical(logits=x @ weight), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match=r"site 'y': the labels for the supervised pass come from the guide"):
        SemiSupervisedELBO(split_on="mask", max_plate_nesting=1).loss(discrete_model, raw_guide, x, y, mask)


def test_constant_weights_give_the_m2_objective_for_either_estimator_form():
    """With q(y|x) q(z|x,y) and S = 1 both estimators equal E[log p − log q(z|x,y)] + α log q(y|x)."""
    lg = LinearGaussian()
    x, y, _ = batch()
    mask = torch.ones(len(y), dtype=torch.bool)
    values = []
    for estimator in ("weighted", "importance_weighted"):
        pyro.set_rng_seed(5)
        elbo = SemiSupervisedELBO(alpha=0.7, estimator=estimator, max_plate_nesting=1)
        values.append(elbo.loss(lg.model, lg.guide_m2, x, y, mask))
    assert values[0] == pytest.approx(values[1], rel=1e-12)


def test_no_labels_and_zero_alpha_equals_trace_enum_elbo():
    """Pyro's own convention for the guide: sample ``y_unobserved`` masked to unlabelled rows."""
    lg = LinearGaussian()
    x, y, _ = batch()
    mask = torch.zeros(len(y), dtype=torch.bool)

    @config_enumerate
    def guide(x, y, mask):
        p = lg.params()
        data = pyro.plate("data", x.shape[0])
        with data, poutine.mask(mask=~mask):
            y_unobs = pyro.sample("y_unobserved", dist.Categorical(logits=x @ p["C"]))
        y_all = torch.where(mask, y, y_unobs)
        with data:
            pyro.sample(
                "z", dist.Normal(x @ p["E"] + p["F"][y_all], torch.nn.functional.softplus(p["s"])).to_event(1)
            )

    results = []
    for elbo in (TraceEnum_ELBO(max_plate_nesting=1), SemiSupervisedELBO(alpha=0.0, max_plate_nesting=1)):
        pyro.set_rng_seed(11)
        for name in lg.init:
            if name in pyro.get_param_store():
                pyro.param(name).unconstrained().grad = None
        loss = elbo.loss_and_grads(lg.model, guide, x, y, mask)
        results.append((loss, grads(["C", "E", "F", "s"])))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    for name in results[0][1]:
        assert torch.allclose(results[0][1][name], results[1][1][name], rtol=1e-10), name


def test_obs_mask_guide_equals_raw_unobserved_guide():
    lg = LinearGaussian()
    x, y, mask = batch()

    def raw_guide(x, y, mask):
        p = lg.params()
        with pyro.plate("data", x.shape[0]):
            with poutine.mask(mask=~mask):
                y_unobs = pyro.sample(
                    "y_unobserved", dist.Categorical(logits=x @ p["C"]), infer={"enumerate": "parallel"}
                )
            y_all = torch.where(mask, y, y_unobs)
            pyro.sample(
                "z", dist.Normal(x @ p["E"] + p["F"][y_all], torch.nn.functional.softplus(p["s"])).to_event(1)
            )

    losses = []
    for guide in (lg.guide_m2, raw_guide):
        pyro.set_rng_seed(2)
        losses.append(SemiSupervisedELBO(alpha=0.4, max_plate_nesting=1).loss(lg.model, guide, x, y, mask))
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)


# ---------------------------------------------------------------- models without style: exact values


def discrete_model(x, y=None, mask=None):
    logits = pyro.param("prior_logits", torch.tensor([0.2, -0.1, 0.4]))
    means = pyro.param("means", torch.tensor([[-1.0, 0.5], [0.3, 0.2], [1.2, -0.7]]))
    with pyro.plate("data", x.shape[0]):
        y = pyro.sample("y", dist.Categorical(logits=logits), obs=y, obs_mask=mask)
        pyro.sample("x", dist.Normal(means[y], 0.8).to_event(1), obs=x)


def discrete_guide(x, y=None, mask=None):
    weight = pyro.param("weight", torch.tensor([[0.5, -0.3, 0.1], [0.2, 0.4, -0.6]]))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Categorical(logits=x @ weight), obs=y, obs_mask=mask)


def discrete_objective(x, y, mask, alpha, gamma):
    """Σ_unl Σ_k q(k|x)[log p(x, k) − log q(k|x)] + γ Σ_lab [log p(x, y) + α log q(y|x)]."""
    log_prior = pyro.param("prior_logits").log_softmax(-1)
    log_lik = Normal(pyro.param("means"), 0.8).log_prob(x[:, None, :]).sum(-1)  # (B, K)
    log_joint = log_prior + log_lik
    log_q = (x @ pyro.param("weight")).log_softmax(-1)
    unsup = (log_q.exp() * (log_joint - log_q)).sum(-1)
    sup = log_joint.gather(-1, y[:, None])[:, 0] + alpha * log_q.gather(-1, y[:, None])[:, 0]
    return torch.where(mask, gamma * sup, unsup).sum()


def test_discrete_model_exact_value_and_gradient():
    x, y, mask = batch(B=7, labelled=(1, 4, 5))
    x = x[:, :2]
    elbo = SemiSupervisedELBO(alpha=0.9, gamma=3.0, max_plate_nesting=1)
    loss = elbo.loss_and_grads(discrete_model, discrete_guide, x, y, mask)
    names = ["prior_logits", "means", "weight"]
    ours = grads(names)
    for n in names:
        pyro.param(n).grad = None
    expected = discrete_objective(x, y, mask, alpha=0.9, gamma=3.0)
    (-expected).backward()
    assert loss == pytest.approx(-expected.item(), rel=1e-12)
    for n, g in grads(names).items():
        assert torch.allclose(ours[n], g, rtol=1e-10, atol=1e-12), n


def test_mixed_batch_is_the_sum_of_its_labelled_and_unlabelled_parts():
    x, y, mask = batch(B=8, labelled=(0, 3, 6, 7))
    x = x[:, :2]
    elbo = SemiSupervisedELBO(alpha=0.2, gamma=1.7, max_plate_nesting=1)
    mixed = elbo.loss(discrete_model, discrete_guide, x, y, mask)
    labelled = elbo.loss(discrete_model, discrete_guide, x[mask], y[mask], mask[mask])
    unlabelled = elbo.loss(discrete_model, discrete_guide, x[~mask], y[~mask], mask[~mask])
    assert mixed == pytest.approx(labelled + unlabelled, rel=1e-12)


def test_fully_labelled_batch_classifier_gradient_is_exact():
    """No score-function noise reaches q(y|x): its gradient is exactly α ∇ Σ log q(y|x) for the M2 guide."""
    lg = LinearGaussian()
    x, y, _ = batch(B=16)
    mask = torch.ones(len(y), dtype=torch.bool)
    alpha = 0.25
    for seed in range(3):
        pyro.set_rng_seed(seed)
        pyro.clear_param_store()
        SemiSupervisedELBO(alpha=alpha, max_plate_nesting=1).loss_and_grads(lg.model, lg.guide_m2, x, y, mask)
        ours = pyro.param("C").grad.clone()
        pyro.param("C").grad = None
        exact = -alpha * (x @ pyro.param("C")).log_softmax(-1).gather(-1, y[:, None]).sum()
        exact.backward()
        assert torch.allclose(ours, pyro.param("C").grad, rtol=1e-10, atol=1e-12)


def test_partially_labelled_continuous_site_closed_form():
    """Lighting-like regression target: y ~ N(0, 1), x ~ N(a·y, 1), q(y|x) = N(b·x, s)."""

    def model(x, y=None, mask=None):
        a = pyro.param("a", torch.tensor(1.3))
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Normal(0.0, 1.0), obs=y, obs_mask=mask)
            pyro.sample("x", dist.Normal(a * y, 1.0), obs=x)

    def guide(x, y=None, mask=None):
        b = pyro.param("b", torch.tensor(0.4))
        s = pyro.param("s", torch.tensor(0.6), constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(b * x, s), obs=y, obs_mask=mask)

    x = torch.tensor([0.5, -1.0, 2.0, 0.1, -0.3])
    y = torch.tensor([0.0, -0.8, 0.0, 0.0, 0.2])
    mask = torch.tensor([False, True, False, False, True])
    alpha, gamma = 0.6, 2.5
    elbo = SemiSupervisedELBO(
        alpha=alpha, gamma=gamma, num_particles=200_000, vectorize_particles=True, max_plate_nesting=1
    )
    loss = elbo.loss(model, guide, x, y, mask)
    a, b, s = pyro.param("a"), pyro.param("b"), pyro.param("s")
    # unlabelled: E_q[log N(y;0,1) + log N(x; a y, 1)] + H[q], closed form
    m = b * x
    e_log_prior = -0.5 * math.log(2 * math.pi) - 0.5 * (m**2 + s**2)
    e_log_lik = -0.5 * math.log(2 * math.pi) - 0.5 * ((x - a * m) ** 2 + a**2 * s**2)
    entropy = 0.5 * math.log(2 * math.pi * math.e) + torch.log(s)
    unsup = e_log_prior + e_log_lik + entropy
    sup = Normal(0.0, 1.0).log_prob(y) + Normal(a * y, 1.0).log_prob(x) + alpha * Normal(b * x, s).log_prob(y)
    expected = -torch.where(mask, gamma * sup, unsup).sum().item()
    assert loss == pytest.approx(expected, abs=0.02)
    # the labelled part alone is deterministic and exact
    only = SemiSupervisedELBO(alpha=alpha, gamma=gamma, max_plate_nesting=1).loss(
        model, guide, x[mask], y[mask], mask[mask]
    )
    assert only == pytest.approx(-(gamma * sup[mask]).sum().item(), rel=1e-12)


def test_m2_unbiased_against_closed_form_with_many_particles():
    """The Monte Carlo estimate converges to the closed-form objective (z integrated analytically)."""
    lg = LinearGaussian()
    x, y, mask = batch()
    alpha, gamma = 0.3, 1.4
    elbo = SemiSupervisedELBO(
        alpha=alpha, gamma=gamma, num_particles=20_000, vectorize_particles=True, max_plate_nesting=1
    )
    loss = elbo.loss(lg.model, lg.guide_m2, x, y, mask)
    p = {n: pyro.param(n) for n in lg.init}
    scale = torch.nn.functional.softplus(p["s"])
    log_qy = (x @ p["C"]).log_softmax(-1)

    def closed_form_elbo(b, k):  # E_q(z|x,k)[log p(x, k, z) − log q(z|x, k)]
        loc = x[b] @ p["E"] + p["F"][k]
        mean_x = lg.W[k] + loc @ lg.A
        var_x = (lg.A**2 * scale[:, None] ** 2).sum(0)
        e_lik = (
            -0.5 * math.log(2 * math.pi * lg.sigma**2) - ((x[b] - mean_x) ** 2 + var_x) / (2 * lg.sigma**2)
        ).sum()
        kl = torch.distributions.kl_divergence(Normal(loc, scale), Normal(0.0, 1.0)).sum()
        return lg.log_pi[k] + e_lik - kl

    total = 0.0
    for b in range(len(y)):
        if mask[b]:
            total += gamma * (closed_form_elbo(b, int(y[b])) + alpha * log_qy[b, y[b]])
        else:
            total += sum(log_qy[b, k].exp() * (closed_form_elbo(b, k) - log_qy[b, k]) for k in range(K))
    assert loss == pytest.approx(-total.item(), rel=2e-3)


def test_importance_weighted_estimator_approaches_log_marginal():
    """L̂^IW with many samples → log p(x, y) + α log q(y|x) (with y fixed, z integrated out)."""

    def model(x, y=None, mask=None):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=torch.zeros(2)), obs=y, obs_mask=mask)
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z + 2.0 * y, 0.5), obs=x)

    def guide(x, y=None, mask=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(0.5 * x, 1.0))
            pyro.sample("y", dist.Categorical(logits=torch.zeros(x.shape + (2,))), obs=y, obs_mask=mask)

    x, y = torch.tensor([0.3, 2.5]), torch.tensor([0, 1])
    mask = torch.ones(2, dtype=torch.bool)
    elbo = SemiSupervisedELBO(
        alpha=0.0, estimator="importance_weighted", num_importance_samples=100_000, max_plate_nesting=1
    )
    exact = (math.log(0.5) + Normal(2.0 * y, math.sqrt(1.25)).log_prob(x)).sum().item()
    assert elbo.loss(model, guide, x, y, mask) == pytest.approx(-exact, abs=5e-3)


# ---------------------------------------------------------------- relaxation


def onehot_model(x, y=None, mask=None):
    with pyro.plate("data", x.shape[0]):
        y = pyro.sample(
            "y", dist.OneHotCategorical(logits=torch.tensor([0.1, 0.3, -0.2])), obs=y, obs_mask=mask
        )
        pyro.sample(
            "x", dist.Normal(y @ torch.tensor([[-1.0, 0.0], [0.5, 1.0], [1.5, -1.0]]), 0.8).to_event(1), obs=x
        )


def make_onehot_guide(record):
    def guide(x, y=None, mask=None):
        weight = pyro.param("weight", torch.tensor([[0.5, -0.3, 0.1], [0.2, 0.4, -0.6]]))
        with pyro.plate("data", x.shape[0]):
            value = pyro.sample("y", dist.OneHotCategorical(logits=x @ weight), obs=y, obs_mask=mask)
            record.append(value.detach())

    return guide


def test_relaxed_site_matches_hand_computation():
    x, labels, mask = batch(B=6, labelled=(0, 4))
    x, y = x[:, :2], torch.nn.functional.one_hot(labels, 3).double()
    record = []
    elbo = SemiSupervisedELBO(alpha=0.5, relax={"y": 0.4}, max_plate_nesting=1)
    loss = elbo.loss(onehot_model, make_onehot_guide(record), x, y, mask)
    relaxed = record[0]  # merged value of the unsupervised pass: labels on labelled rows, relaxed elsewhere
    temperature = torch.tensor(0.4)
    logits_q = x @ pyro.param("weight")
    means = torch.tensor([[-1.0, 0.0], [0.5, 1.0], [1.5, -1.0]])
    prior = torch.tensor([0.1, 0.3, -0.2])
    unsup = (
        dist.RelaxedOneHotCategorical(temperature, logits=prior).log_prob(relaxed)
        + Normal(relaxed @ means, 0.8).log_prob(x).sum(-1)
        - dist.RelaxedOneHotCategorical(temperature, logits=logits_q).log_prob(relaxed)
    )
    log_q_label = (logits_q.log_softmax(-1) * y).sum(-1)
    sup = prior.log_softmax(-1) @ y.T + Normal(y @ means, 0.8).log_prob(x).sum(-1) + 0.5 * log_q_label
    sup = torch.diagonal(sup) if sup.dim() == 2 else sup
    expected = -torch.where(mask, sup, unsup).sum().item()
    assert loss == pytest.approx(expected, rel=1e-10)
    assert not torch.equal(relaxed[~mask], relaxed[~mask].round()), "unlabelled rows should be relaxed"


def test_relaxed_training_step_has_finite_gradients():
    x, labels, mask = batch(B=6, labelled=(0, 4))
    y = torch.nn.functional.one_hot(labels, 3).double()
    svi = SVI(
        onehot_model,
        make_onehot_guide([]),
        Adam({"lr": 0.01}),
        SemiSupervisedELBO(relax={"y": 0.5}, max_plate_nesting=1),
    )
    svi.step(x[:, :2], y, mask)
    assert torch.isfinite(pyro.param("weight").grad).all()


# ---------------------------------------------------------------- interfaces


def test_loss_differentiable_loss_and_loss_and_grads_agree():
    lg = LinearGaussian()
    x, y, mask = batch()
    elbo = SemiSupervisedELBO(alpha=0.3, num_importance_samples=3, max_plate_nesting=1)
    values = []
    for method in (elbo.loss, elbo.differentiable_loss, elbo.loss_and_grads):
        pyro.set_rng_seed(7)
        value = method(lg.model, lg.guide_paper, x, y, mask)
        values.append(value.item() if torch.is_tensor(value) else value)
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert values[0] == pytest.approx(values[2], rel=1e-12)


def test_elbo_module_for_plain_torch_loops():
    lg = LinearGaussian()
    x, y, mask = batch()
    elbo = SemiSupervisedELBO(alpha=0.3, max_plate_nesting=1)
    module = elbo(lg.model, lg.guide_m2)
    pyro.set_rng_seed(3)
    loss = module(x, y, mask)
    pyro.set_rng_seed(3)
    assert loss.item() == pytest.approx(elbo.loss(lg.model, lg.guide_m2, x, y, mask), rel=1e-12)
    loss.backward()
    assert pyro.param("C").grad is not None


@pytest.mark.parametrize("vectorize", [False, True])
def test_particles_average_estimates(vectorize):
    lg = LinearGaussian()
    x, y, mask = batch()
    elbo = SemiSupervisedELBO(
        alpha=0.3,
        num_particles=4,
        num_importance_samples=2,
        vectorize_particles=vectorize,
        max_plate_nesting=1,
    )
    loss = elbo.loss(lg.model, lg.guide_paper, x, y, mask)
    single = SemiSupervisedELBO(alpha=0.3, num_importance_samples=2, max_plate_nesting=1)
    reference = sum(single.loss(lg.model, lg.guide_paper, x, y, mask) for _ in range(400)) / 400
    assert loss == pytest.approx(reference, rel=0.1)


def test_max_plate_nesting_is_guessed():
    lg = LinearGaussian()
    x, y, mask = batch()
    elbo = SemiSupervisedELBO(alpha=0.3, num_importance_samples=2)
    assert math.isfinite(elbo.loss(lg.model, lg.guide_m2, x, y, mask))
    assert elbo.max_plate_nesting == 1


def test_trains_a_tiny_semi_supervised_classifier():
    """Three 2-D Gaussian clusters, 6 labels out of 600 points: the classifier reaches > 95% accuracy.

    With γ = 1 the six labels cannot break the mixture's label-switching symmetry; γ = 100 (supervision
    rate ρ ≈ 0.5) lets them, as Siddharth et al. argue for sparse labels.
    """
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    labels = torch.arange(3).repeat(200)
    x = centres[labels] + 0.8 * torch.randn(600, 2, generator=g)
    mask = torch.zeros(600, dtype=torch.bool)
    mask[:6] = True  # two labels per class

    def model(x, y, mask):
        means = pyro.param("means", torch.randn(3, 2, generator=g))
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=torch.zeros(3)), obs=y, obs_mask=mask)
            pyro.sample("x", dist.Normal(means[y], 0.8).to_event(1), obs=x)

    classifier = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()

    def guide(x, y, mask):
        pyro.module("classifier", classifier)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(logits=classifier(x)), obs=y, obs_mask=mask)

    svi = SVI(
        model, guide, Adam({"lr": 0.05}), SemiSupervisedELBO(alpha=1.0, gamma=100.0, max_plate_nesting=1)
    )
    for _ in range(150):
        svi.step(x, labels, mask)
    accuracy = (classifier(x).argmax(-1) == labels).double().mean().item()
    assert accuracy > 0.95


# ---------------------------------------------------------------- bad input


def run(model, guide, *args, **elbo_kwargs):
    elbo = SemiSupervisedELBO(max_plate_nesting=1, **elbo_kwargs)
    return elbo.loss(model, guide, *args)


def test_label_out_of_range_names_the_site():
    x, y, mask = batch(B=4, labelled=(0, 1))
    y[1] = 7
    with pytest.raises(ValueError, match=r"site 'y'.*outside the support.*integers in \[0, 2\]"):
        run(discrete_model, discrete_guide, x[:, :2], y, mask)


def test_placeholder_labels_on_unlabelled_rows_are_accepted():
    x, y, mask = batch(B=4, labelled=(0, 1))
    y[2:] = 0
    assert math.isfinite(run(discrete_model, discrete_guide, x[:, :2], y, mask))


def test_mask_of_wrong_shape_names_the_site_and_expected_shape():
    x, y, _ = batch(B=4)
    with pytest.raises(ValueError, match=r"site 'y': obs_mask has shape \(5,\).*batch shape \(4,\)"):
        run(discrete_model, discrete_guide, x[:, :2], y, torch.ones(5, dtype=torch.bool))


def test_nan_data_names_the_site():
    x, y, mask = batch(B=4)
    x = x[:, :2].clone()
    x[2, 1] = float("nan")
    with pytest.raises(
        ValueError, match=r"argument 'x' holds 1 NaN value\(s\) in a tensor of shape \(4, 2\)"
    ):
        run(discrete_model, discrete_guide, x, y, mask)


def test_guide_missing_the_unobserved_site():
    x, y, mask = batch(B=4)

    def guide(x, y, mask):
        pyro.param("weight", torch.zeros(2, 3))

    with pytest.raises(ValueError, match=r"site 'y'.*guide has no site 'y_unobserved'"):
        run(discrete_model, guide, x[:, :2], y, mask)


def test_sequentially_enumerated_site_is_rejected():
    x, y, mask = batch(B=4)

    def guide(x, y, mask):
        weight = pyro.param("weight", torch.zeros(2, 3))
        with pyro.plate("data", x.shape[0]), poutine.mask(mask=~mask):
            pyro.sample(
                "y_unobserved", dist.Categorical(logits=x @ weight), infer={"enumerate": "sequential"}
            )

    with pytest.raises(NotImplementedError, match="'y_unobserved'.*sequential"):
        run(discrete_model, guide, x[:, :2], y, mask)


def test_model_side_enumeration_on_labelled_rows_is_rejected():
    """A latent summed out in the model (not in the guide) is fine for TraceEnum-style unlabelled rows
    but has no place in the importance-sampled supervised term."""
    x, y, mask = batch(B=4)

    def model(x, y, mask):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
            y = pyro.sample("y", dist.Categorical(logits=torch.zeros(3)), obs=y, obs_mask=mask)
            pyro.sample("x", dist.Normal(c[..., None] + y[..., None].double(), 1.0).to_event(1), obs=x)

    with pytest.raises(NotImplementedError, match="model site 'c' is latent but absent from the guide"):
        run(model, discrete_guide, x[:, :2], y, mask)
    assert math.isfinite(run(model, discrete_guide, x[:, :2], y, torch.zeros(4, dtype=torch.bool)))


def test_relaxing_a_categorical_site_is_rejected():
    x, y, mask = batch(B=4)
    with pytest.raises(ValueError, match="site 'y': relaxation needs a OneHotCategorical"):
        run(discrete_model, discrete_guide, x[:, :2], y, mask, relax={"y": 0.5})


def test_relaxing_an_enumerated_site_is_rejected():
    x, labels, mask = batch(B=4)
    y = torch.nn.functional.one_hot(labels, 3).double()

    def guide(x, y, mask):
        weight = pyro.param("weight", torch.zeros(2, 3))
        with pyro.plate("data", x.shape[0]), poutine.mask(mask=~mask):
            pyro.sample(
                "y_unobserved", dist.OneHotCategorical(logits=x @ weight), infer={"enumerate": "parallel"}
            )

    with pytest.raises(ValueError, match="site 'y' is both configured for enumeration and named in relax"):
        run(onehot_model, guide, x[:, :2], y, mask, relax={"y": 0.5})


def test_relax_naming_an_unknown_site_is_rejected():
    x, y, mask = batch(B=4)
    with pytest.raises(ValueError, match=r"relax= names \['label'\].*\['y'\]"):
        run(discrete_model, discrete_guide, x[:, :2], y, mask, relax={"label": 0.5})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"estimator": "mean"}, "estimator must be one of"),
        ({"gamma": -1.0}, "gamma must be non-negative"),
        ({"num_importance_samples": 0}, "num_importance_samples must be a positive integer"),
        ({"relax": {"y": 0.0}}, r"relax\['y'\]: the temperature must be positive"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SemiSupervisedELBO(**kwargs)
