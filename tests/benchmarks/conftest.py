"""Fixtures of the benchmark grids' tests."""

import subprocess

import pytest


@pytest.fixture
def commands(monkeypatch):
    """The command lines ``benchmarks.grid.train_once`` would run; nothing is trained. Their order is the
    grid's only with ``--jobs 1`` (several jobs issue them from threads)."""
    issued = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: issued.append(command))
    return issued
