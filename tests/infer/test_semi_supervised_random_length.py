"""SemiSupervisedELBO on a model of random length, against an exact computation that enumerates the length
by hand.

The model draws a count n ∈ {0, 1, 2} (partially observed), then for each step k < n a per-step variable
u_k (partially observed: the "where" of a digit on a labelled canvas) and a latent z_k, and observes
x ~ N(m + Σ_{k<n} (u_k a_k + z_k b_k), σ² I). The loop runs to the largest count
(:func:`~pyro_partial.poutine.random_steps`): on unlabelled rows the guide enumerates n in parallel,
so the loop runs to 2 and masks select each branch's steps; on labelled rows n is clamped, so the loop runs
to the largest label. The guide records the standard-normal noise ε of every reparameterised draw; the
hand computation rebuilds every draw from it and sums the count out explicitly:

    unlabelled: Σ_n q(n|x) [log p(n) − log q(n|x) + Σ_{k<n} log p(u_k) p(z_k) / q(u_k|·) q(z_k|·)
                            + log p(x | n, u, z)]
    labelled:   γ (mean_s [log p(x, n, u, z^s) − log q(n, u|x) − log q(z^s|x, u)] + (1 + α) log q(n, u|x))

(the paper's weighted estimator with constant weights; the importance-weighted one replaces the mean by a
log-mean-exp). Values and gradients must agree to round-off.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import Normal

from pyro_partial.infer import SemiSupervisedELBO
from pyro_partial.poutine import random_steps

K, X, SIGMA = 2, 2, 0.7  # at most K steps; data dimension; observation noise
INIT = {
    # model
    "prior_logits": [0.1, -0.2, 0.3],
    "a": [[1.0, -0.5], [0.4, 0.9]],
    "b": [[0.3, 0.8], [-0.6, 0.2]],
    "m": [0.2, -0.1],
    # guide
    "C": [[0.2, 0.1, -0.3], [0.5, -0.4, 0.2]],
    "E": [[0.3, -0.2], [0.1, 0.4]],
    "F": [[-0.2, 0.3], [0.25, 0.1]],
    "r": [0.5],
    "g": [0.3],
    "s_u": [0.2],
    "s_z": [-0.3],
}


pytestmark = pytest.mark.usefixtures("float64")  # objectives are checked in float64


def params():
    return {name: pyro.param(name, torch.tensor(value)) for name, value in INIT.items()}


def model(x, counts, u, mask):
    p = params()
    with pyro.plate("data", x.shape[0]):
        n = pyro.sample("count", dist.Categorical(logits=p["prior_logits"]), obs=counts, obs_mask=mask)
        mean = p["m"].expand(x.shape)
        for k, present in random_steps(n, max_steps=K):
            u_k = pyro.sample(f"u_{k}", dist.Normal(0.0, 1.0), obs=u[:, k], obs_mask=mask)
            z_k = pyro.sample(f"z_{k}", dist.Normal(0.0, 1.0))
            step = u_k[..., None] * p["a"][k] + z_k[..., None] * p["b"][k]
            mean = mean + present[..., None] * step
        pyro.sample("x", dist.Normal(mean, SIGMA).to_event(1), obs=x)


class Guide:
    """q(n|x) Π_{k<n} q(u_k|x, u_{k−1}) q(z_k|x, u_k), recording the noise of each draw."""

    def __init__(self):
        self.unlabelled_noise, self.labelled_noise = {}, {}

    @staticmethod
    def scales(p):
        return torch.nn.functional.softplus(p["s_u"]), torch.nn.functional.softplus(p["s_z"])

    def __call__(self, x, counts, u, mask):
        p = params()
        scale_u, scale_z = self.scales(p)
        with pyro.plate("data", x.shape[0]):
            n = pyro.sample("count", dist.Categorical(logits=x @ p["C"]), obs=counts, obs_mask=mask)
            previous = torch.zeros(())
            for k, _ in random_steps(n, max_steps=K):
                loc_u = x @ p["E"][:, k] + p["r"] * previous
                u_k = pyro.sample(f"u_{k}", dist.Normal(loc_u, scale_u), obs=u[:, k], obs_mask=mask)
                loc_z = x @ p["F"][:, k] + p["g"] * u_k
                z_k = pyro.sample(f"z_{k}", dist.Normal(loc_z, scale_z))
                # the supervised pass adds particle and importance-sample dims: (1, S, rows)
                record = self.labelled_noise if z_k.dim() > 1 else self.unlabelled_noise
                for name, value, loc, scale in [("u", u_k, loc_u, scale_u), ("z", z_k, loc_z, scale_z)]:
                    noise = ((value - loc) / scale).detach()
                    record[f"{name}_{k}"] = noise if noise.dim() == 1 else noise.reshape(-1, noise.shape[-1])
                previous = u_k


def exact_objective(x, counts, u, mask, unlabelled_noise, labelled_noise, alpha, gamma, estimator, samples):
    """The objective by hand; noise is indexed by row: unlabelled draws ``(B,)``, labelled ``(S, B)``."""
    p = {name: pyro.param(name) for name in INIT}
    scale_u, scale_z = Guide.scales(p)
    log_prior = p["prior_logits"].log_softmax(-1)
    log_q_count = (x @ p["C"]).log_softmax(-1)
    std = Normal(0.0, 1.0)
    total = 0.0
    for row in range(x.shape[0]):
        if not mask[row]:
            log_ratios, means, previous = [0.0], [p["m"]], 0.0
            for k in range(K):  # one draw per step, shared by every branch n > k
                loc_u = x[row] @ p["E"][:, k] + p["r"] * previous
                u_k = loc_u + scale_u * unlabelled_noise[f"u_{k}"][row]
                loc_z = x[row] @ p["F"][:, k] + p["g"] * u_k
                z_k = loc_z + scale_z * unlabelled_noise[f"z_{k}"][row]
                log_ratio = (
                    std.log_prob(u_k)
                    + std.log_prob(z_k)
                    - Normal(loc_u, scale_u).log_prob(u_k)
                    - Normal(loc_z, scale_z).log_prob(z_k)
                )
                log_ratios.append(log_ratios[-1] + log_ratio.sum())
                means.append(means[-1] + u_k * p["a"][k] + z_k * p["b"][k])
                previous = u_k
            for n in range(K + 1):  # the length, summed out
                log_lik = Normal(means[n], SIGMA).log_prob(x[row]).sum()
                inner = log_prior[n] - log_q_count[row, n] + log_ratios[n] + log_lik
                total = total + log_q_count[row, n].exp() * inner
        else:
            n = int(counts[row])
            log_w = log_q_count[row, n]  # log q(n, u|x), constant over the importance samples
            log_p = log_prior[n] + torch.zeros(samples)
            log_r = torch.zeros(samples)
            mean = p["m"] + torch.zeros(samples, X)
            previous = 0.0
            for k in range(n):
                loc_u = x[row] @ p["E"][:, k] + p["r"] * previous
                log_w = log_w + Normal(loc_u, scale_u).log_prob(u[row, k]).sum()
                loc_z = x[row] @ p["F"][:, k] + p["g"] * u[row, k]
                z_k = loc_z + scale_z * labelled_noise[f"z_{k}"][:, row]  # (S,)
                log_p = log_p + std.log_prob(u[row, k]) + std.log_prob(z_k)
                log_r = log_r + Normal(loc_z, scale_z).log_prob(z_k)
                mean = mean + u[row, k] * p["a"][k] + z_k[:, None] * p["b"][k]
                previous = u[row, k]
            log_p = log_p + Normal(mean, SIGMA).log_prob(x[row]).sum(-1)
            if estimator == "weighted":
                term = (log_p - log_w - log_r).mean() + (1 + alpha) * log_w
            else:
                term = (log_p - log_r).logsumexp(0) - math.log(samples) + alpha * log_w
            total = total + gamma * term
    return total


def data(labelled, counts=(0, 1, 2, 2, 1, 0, 2)):
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor(counts)
    x = torch.randn(len(counts), X, generator=g)
    u = torch.randn(len(counts), K, generator=g)
    u[torch.arange(K) >= counts[:, None]] = 0.0  # absent steps: a placeholder
    mask = torch.zeros(len(counts), dtype=torch.bool)
    mask[list(labelled)] = True
    return x, torch.where(mask, counts, 0), u, mask


def full_rows(noise, rows, size):
    """Scatter noise recorded on a subset of rows (the last dim) to all ``size`` rows."""
    out = {}
    for name, value in noise.items():
        full = torch.zeros(*value.shape[:-1], size)
        full[..., rows] = value
        out[name] = full
    return out


def grads():
    result = {}
    for name in INIT:
        param = pyro.param(name).unconstrained()
        result[name] = torch.zeros_like(param) if param.grad is None else param.grad.clone()
        param.grad = None
    return result


@pytest.mark.parametrize("split_on", [None, "mask"])
@pytest.mark.parametrize("estimator, samples", [("weighted", 1), ("weighted", 3), ("importance_weighted", 4)])
@pytest.mark.parametrize(
    "labelled", [(), (0, 1, 2, 3, 4, 5, 6), (1, 3, 5)], ids=["unlabelled", "labelled", "mixed"]
)
def test_value_and_gradients_match_enumerating_the_length_by_hand(labelled, estimator, samples, split_on):
    x, counts, u, mask = data(labelled)
    alpha, gamma = 0.4, 1.7
    guide = Guide()
    elbo = SemiSupervisedELBO(
        alpha=alpha,
        gamma=gamma,
        num_importance_samples=samples,
        estimator=estimator,
        max_plate_nesting=1,
        split_on=split_on,
    )
    loss = elbo.loss_and_grads(model, guide, x, counts, u, mask)
    ours = grads()

    rows = torch.arange(len(mask))
    unlabelled_noise, labelled_noise = guide.unlabelled_noise, guide.labelled_noise
    if split_on is not None:
        unlabelled_noise = full_rows(unlabelled_noise, rows[~mask], len(mask))
        labelled_noise = full_rows(labelled_noise, rows[mask], len(mask))
    if (~mask).any():
        assert sorted(unlabelled_noise) == ["u_0", "u_1", "z_0", "z_1"]  # enumerated: the loop ran to K
    expected = exact_objective(
        x, counts, u, mask, unlabelled_noise, labelled_noise, alpha, gamma, estimator, samples
    )
    (-expected).backward()
    assert loss == pytest.approx(-expected.item(), rel=1e-10)
    for name, value in grads().items():
        assert torch.allclose(ours[name], value, rtol=1e-8, atol=1e-10), name


def test_labelled_loop_runs_to_the_largest_label():
    """A labelled batch of counts ≤ 1 never enters step 1; all zeros never enters the loop."""
    for counts, steps in [((1, 0, 1), ["u_0", "z_0"]), ((0, 0, 0), [])]:
        x, counts, u, mask = data(range(3), counts=counts)
        guide = Guide()
        elbo = SemiSupervisedELBO(alpha=0.4, max_plate_nesting=1, split_on="mask")
        loss = elbo.loss(model, guide, x, counts, u, mask)
        assert sorted(guide.labelled_noise) == steps
        expected = exact_objective(x, counts, u, mask, {}, guide.labelled_noise, 0.4, 1.0, "weighted", 1)
        assert loss == pytest.approx(-expected.item(), rel=1e-10)


def test_labels_of_absent_steps_are_ignored():
    """Placeholders at steps k ≥ n of a labelled row do not change the objective."""
    x, counts, u, mask = data((0, 1, 2, 4), counts=(0, 1, 2, 1, 1))
    values = []
    for fill in (0.0, 5.0):
        v = u.clone()
        v[torch.arange(K) >= counts[:, None]] = fill
        pyro.set_rng_seed(3)
        values.append(
            SemiSupervisedELBO(alpha=0.4, max_plate_nesting=1).loss(model, Guide(), x, counts, v, mask)
        )
    assert values[0] == pytest.approx(values[1], rel=1e-12)
