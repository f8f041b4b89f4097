"""random_steps: the loop runs to the largest count and masks each step to the rows that have it."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_partial.poutine import random_steps


def test_steps_and_masks():
    count = torch.tensor([0, 2, 1, 3])
    steps = [(k, present.clone()) for k, present in random_steps(count)]
    assert [k for k, _ in steps] == [0, 1, 2]
    for k, present in steps:
        assert torch.equal(present, count > k)


def test_enumerated_count_runs_to_the_largest_value():
    """A count enumerated along a dimension on the left gives masks with that dimension."""
    count = torch.arange(4)[:, None].expand(4, 5)  # (values, rows)
    masks = [present for _, present in random_steps(count)]
    assert len(masks) == 3 and all(m.shape == (4, 5) for m in masks)
    assert torch.equal(torch.stack(masks).sum(0), count)


def test_sites_are_masked_to_the_present_rows():
    """Each row's log-density holds exactly its own steps: log p = Σ_{k<n} log N(z_k; 0, 1)."""
    count = torch.tensor([0, 2, 1])
    z = torch.full((3,), 0.5)

    def model():
        with pyro.plate("rows", 3):
            for k, _ in random_steps(count):
                pyro.sample(f"z_{k}", dist.Normal(0.0, 1.0), obs=z)

    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    per_row = sum(site["log_prob"] for site in trace.nodes.values() if site["type"] == "sample")
    expected = count * dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.5))
    assert torch.allclose(per_row, expected)


def test_no_steps():
    assert list(random_steps(torch.zeros(3, dtype=torch.long))) == []
    assert list(random_steps(torch.zeros(0, dtype=torch.long))) == []


@pytest.mark.parametrize(
    "count, kwargs, match",
    [
        (torch.tensor([1.0, 2.0]), {}, "count must be an integer tensor"),
        (torch.tensor([1, -1]), {}, r"count must be non-negative, got values in \[-1, 1\]"),
        (torch.tensor([1, 4]), {"max_steps": 3}, r"at most max_steps=3, got values in \[1, 4\]"),
    ],
)
def test_bad_counts(count, kwargs, match):
    with pytest.raises(ValueError, match=match):
        list(random_steps(count, **kwargs))
