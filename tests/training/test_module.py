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


def test_the_learning_rate_decays_by_its_factor_each_epoch_on_top_of_the_warm_up():
    decayed = module(lr=0.2, warmup_steps=4, lr_decay=0.5)
    assert [decayed.learning_rate(t, epoch=t // 2) for t in range(6)] == pytest.approx(
        [0.05, 0.1, 0.075, 0.1, 0.05, 0.05]
    )
    assert module(lr=0.2).learning_rate(10, epoch=7) == 0.2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0.0}, "lr must be a positive finite number, got 0.0"),
        ({"lr": 0.1, "warmup_steps": -1}, "warmup_steps must be a number of steps, 0 or more, got -1"),
        ({"lr": 0.1, "lr_decay": 0.0}, "lr_decay must be a factor in \\(0, 1\\], got 0.0"),
        ({"lr": 0.1, "lr_decay": 1.5}, "lr_decay must be a factor in \\(0, 1\\], got 1.5"),
    ],
)
def test_bad_arguments_are_named_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        module(**kwargs)
