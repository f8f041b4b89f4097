"""Fixtures of the benchmark grids' tests."""

import subprocess

import pytest


@pytest.fixture
def commands(monkeypatch):
    """The command lines ``benchmarks.grid.train_once`` would run; nothing is trained."""
    issued = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: issued.append(command))
    return issued
