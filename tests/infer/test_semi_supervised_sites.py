"""Several partially observed sites with masks of their own, and α per site, against exact enumeration.

The model p(y) p(t) p(x | y, t), y ∈ {0, 1, 2} and t ∈ {0, 1} both partially observed with their own
masks; the guide q(y|x) q(t|x, y). A row's supervised term clamps the sites labelled on it and sums the
others out under the guide (S = 1):

    L_row = Σ_u q(u|x, ·) [log p(x, y, t) − log q(u|x, ·) + Σ_k α_k log q(k|x, ·)],

u running over the values of the unlabelled sites, k over the labelled ones,
weighted by γ on rows with any label; rows without labels carry the plain enumerated ELBO.
"""

import itertools

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import Normal

from pyro_partial.infer import SemiSupervisedELBO

INIT = {
    "log_py": [0.2, -0.1, 0.4],
    "log_pt": [0.3, -0.3],
    "means": [[-1.0, 0.5], [0.3, 0.2], [1.2, -0.7]],
    "shift": [[0.4, -0.6], [-0.5, 0.3]],
    "Wy": [[0.5, -0.3, 0.1], [0.2, 0.4, -0.6]],
    "Wt": [[0.3, -0.2], [-0.4, 0.1]],
    "Ft": [[0.2, -0.1], [-0.3, 0.4], [0.1, 0.2]],
}


pytestmark = pytest.mark.usefixtures("float64")  # objectives are checked in float64


def params():
    return {name: pyro.param(name, torch.tensor(value)) for name, value in INIT.items()}


def model(x, y, t, mask_y, mask_t):
    p = params()
    with pyro.plate("data", x.shape[0]):
        y = pyro.sample("y", dist.Categorical(logits=p["log_py"]), obs=y, obs_mask=mask_y)
        t = pyro.sample("t", dist.Categorical(logits=p["log_pt"]), obs=t, obs_mask=mask_t)
        pyro.sample("x", dist.Normal(p["means"][y] + p["shift"][t], 0.8).to_event(1), obs=x)


def guide(x, y, t, mask_y, mask_t):
    p = params()
    with pyro.plate("data", x.shape[0]):
        y = pyro.sample("y", dist.Categorical(logits=x @ p["Wy"]), obs=y, obs_mask=mask_y)
        pyro.sample("t", dist.Categorical(logits=x @ p["Wt"] + p["Ft"][y]), obs=t, obs_mask=mask_t)


def exact_objective(x, y, t, mask_y, mask_t, alpha, gamma):
    p = {name: pyro.param(name) for name in INIT}
    log_py, log_pt = p["log_py"].log_softmax(-1), p["log_pt"].log_softmax(-1)
    log_qy = (x @ p["Wy"]).log_softmax(-1)  # (B, 3)
    log_qt = (x[:, None, :] @ p["Wt"] + p["Ft"]).log_softmax(-1)  # (B, 3, 2)
    total = 0.0
    for b in range(x.shape[0]):
        ys = [int(y[b])] if mask_y[b] else range(3)
        ts = [int(t[b])] if mask_t[b] else range(2)
        row = 0.0
        for k, j in itertools.product(ys, ts):
            log_joint = (
                log_py[k] + log_pt[j] + Normal(p["means"][k] + p["shift"][j], 0.8).log_prob(x[b]).sum()
            )
            weight, inner = 1.0, log_joint
            if mask_y[b]:
                inner = inner + alpha["y"] * log_qy[b, k]
            else:
                weight, inner = weight * log_qy[b, k].exp(), inner - log_qy[b, k]
            if mask_t[b]:
                inner = inner + alpha["t"] * log_qt[b, k, j]
            else:
                weight, inner = weight * log_qt[b, k, j].exp(), inner - log_qt[b, k, j]
            row = row + weight * inner
        total = total + (gamma * row if (mask_y[b] or mask_t[b]) else row)
    return total


def data():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 2, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    t = torch.randint(0, 2, (8,), generator=g)
    # rows 0-1 label both, 2-3 y only, 4-5 t only, 6-7 none
    mask_y = torch.tensor([True, True, True, True, False, False, False, False])
    mask_t = torch.tensor([True, True, False, False, True, True, False, False])
    return x, y, t, mask_y, mask_t


def grads():
    result = {}
    for name in INIT:
        param = pyro.param(name).unconstrained()
        result[name] = torch.zeros_like(param) if param.grad is None else param.grad.clone()
        param.grad = None
    return result


@pytest.mark.parametrize("split_on", [None, True])
@pytest.mark.parametrize(
    "rows", [slice(None), slice(2, 6), slice(0, 4), slice(4, 8)], ids=["all", "one-site", "y", "t"]
)
def test_sites_with_masks_of_their_own_match_exact_enumeration(split_on, rows):
    x, y, t, mask_y, mask_t = (a[rows] for a in data())
    alpha, gamma = {"y": 0.7, "t": 1.3}, 2.5
    elbo = SemiSupervisedELBO(alpha=alpha, gamma=gamma, split_on=split_on, max_plate_nesting=1)
    loss = elbo.loss_and_grads(model, guide, x, y, t, mask_y, mask_t)
    ours = grads()
    expected = exact_objective(x, y, t, mask_y, mask_t, alpha, gamma)
    (-expected).backward()
    assert loss == pytest.approx(-expected.item(), rel=1e-12)
    for name, value in grads().items():
        assert torch.allclose(ours[name], value, rtol=1e-10, atol=1e-12), name


def test_one_alpha_for_all_sites_equals_the_same_alpha_per_site():
    x, y, t, mask_y, mask_t = data()
    values = [
        SemiSupervisedELBO(alpha=alpha, gamma=1.5, max_plate_nesting=1).loss(
            model, guide, x, y, t, mask_y, mask_t
        )
        for alpha in (0.8, {"y": 0.8, "t": 0.8})
    ]
    assert values[0] == pytest.approx(values[1], rel=1e-14)
