"""Run records: per-epoch metrics as CSV and a final JSON naming the command, versions and seed."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import pyro
import torch

from pyro_partial.data.files import atomic_write


def environment() -> dict[str, str]:
    """Versions that determine a result."""
    import pyro_partial

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "pyro_partial": pyro_partial.__version__,
        "platform": platform.platform(),
        "threads": str(torch.get_num_threads()),
    }


def command_line() -> str:
    """The command that started this process, as ``python -m package.module args`` when run with ``-m``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    program = ["-m", spec.name] if spec is not None and spec.name != "__main__" else sys.argv[:1]
    return " ".join(shlex.quote(arg) for arg in ["python", *program, *sys.argv[1:]])


class MetricsCSV:
    """Appends one row per epoch to a CSV file, rewriting it atomically so a crash never truncates it.

    Rows from a resumed run continue the same file; rows at or after the resume epoch are dropped first,
    so a run resumed from epoch k holds exactly one row per epoch.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                self.rows = list(csv.DictReader(f))

    def truncate(self, epoch: int) -> None:
        """Forget rows of epochs ``>= epoch``."""
        self.rows = [row for row in self.rows if int(row["epoch"]) < epoch]

    def append(self, row: dict[str, Any]) -> None:
        """Add ``row`` (which must have an ``epoch`` field) and rewrite the file, its columns the union of
        every row's fields in order of appearance."""
        if "epoch" not in row:
            raise ValueError(f"a metrics row needs an 'epoch' field, got {sorted(row)}")
        self.rows.append(row)
        fields = list(dict.fromkeys(key for r in self.rows for key in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, lambda f: f.write(buffer.getvalue().encode()))


def write_results(path: str | os.PathLike, results: dict[str, Any], seed: int) -> dict[str, Any]:
    """Write ``results`` with the command, seed and versions as JSON (atomically); return the record."""
    record = {"command": command_line(), "seed": seed, "environment": environment(), **results}
    write_json(path, record)
    return record


def write_json(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write ``record`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
