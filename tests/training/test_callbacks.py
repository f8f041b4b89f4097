"""The engine's callbacks: the linear schedule of an objective's weight and subnormal flushing (the
checkpoint and exact-resume callbacks are tested through whole runs, ``test_kill_and_resume.py`` and
``test_runner.py``)."""

from types import SimpleNamespace

import pytest
import torch

from pyro_partial.training import FlushDenormals, LinearSchedule


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


def test_flush_denormals_zeroes_subnormal_results_between_setup_and_teardown():
    subnormal = torch.tensor([1e-310, 3e-320], dtype=torch.float64)  # below finfo(float64).tiny
    assert (subnormal < torch.finfo(torch.float64).tiny).all()
    callback = FlushDenormals()
    assert torch.equal(subnormal * 1.0, subnormal)
    callback.setup(None, None, "fit")
    try:
        assert torch.equal(subnormal * 1.0, torch.zeros(2, dtype=torch.float64))
        assert (torch.tensor([3e-300], dtype=torch.float64) * 1.0).item() == 3e-300  # normal values kept
    finally:
        callback.teardown(None, None, "fit")
    assert torch.equal(subnormal * 1.0, subnormal)


def test_flush_denormals_is_a_named_error_where_the_cpu_cannot_flush(monkeypatch):
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: False)
    with pytest.raises(RuntimeError, match="--flush-denormal: this CPU cannot flush subnormal floats"):
        FlushDenormals().setup(None, None, "fit")
