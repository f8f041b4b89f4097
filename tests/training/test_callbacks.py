"""The engine's callbacks: the linear schedule of an objective's weight (the checkpoint and exact-resume
callbacks are tested through whole runs, ``test_kill_and_resume.py`` and ``test_runner.py``)."""

from types import SimpleNamespace

import pytest

from pyro_partial.training import LinearSchedule


def test_linear_schedule_ramps_from_start_to_end_then_holds():
    target = SimpleNamespace(alpha=0.0)
    schedule = LinearSchedule(target, "alpha", start=500.0, end=50.0, epochs=4)
    assert [schedule.value(epoch) for epoch in range(6)] == [500.0, 387.5, 275.0, 162.5, 50.0, 50.0]
    for epoch in (0, 3, 9):
        schedule.on_train_epoch_start(SimpleNamespace(current_epoch=epoch), None)
        assert target.alpha == schedule.value(epoch)
    warm_up = LinearSchedule(target, "alpha", start=0.0, end=10.0, epochs=1)
    assert [warm_up.value(epoch) for epoch in range(3)] == [0.0, 10.0, 10.0]


@pytest.mark.parametrize(
    "attribute, options, message",
    [
        ("beta", {"start": 1.0, "end": 0.0, "epochs": 2}, "SimpleNamespace has no attribute 'beta'"),
        ("alpha", {"start": float("nan"), "end": 0.0, "epochs": 2}, "start must be finite, got nan"),
        ("alpha", {"start": 1.0, "end": float("inf"), "epochs": 2}, "end must be finite, got inf"),
        ("alpha", {"start": 1.0, "end": 0.0, "epochs": 0}, "epochs must be at least 1, got 0"),
    ],
)
def test_linear_schedule_refuses_bad_arguments(attribute, options, message):
    with pytest.raises((AttributeError, ValueError), match=message):
        LinearSchedule(SimpleNamespace(alpha=0.0), attribute, **options)
