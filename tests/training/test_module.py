"""SVIModule's arguments and its learning rate by step."""

import pytest
import torch

from pyro_partial.training import SVIModule


def module(**kwargs):
    return SVIModule(torch.nn.Linear(1, 1), batches=None, **kwargs)


def test_the_learning_rate_grows_linearly_over_the_warm_up_then_holds():
    warm = module(lr=0.2, warmup_steps=4)
    assert [warm.learning_rate(t) for t in range(6)] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])
    assert [module(lr=0.2).learning_rate(t) for t in range(3)] == [0.2, 0.2, 0.2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0.0}, "lr must be a positive finite number, got 0.0"),
        ({"lr": 0.1, "warmup_steps": -1}, "warmup_steps must be a number of steps, 0 or more, got -1"),
    ],
)
def test_bad_arguments_are_named_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        module(**kwargs)
