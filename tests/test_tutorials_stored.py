"""The tutorials are committed executed: outputs, figures, and a first cell saying what the stored run did."""

import json
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.ipynb"))


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 8, [path.name for path in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_is_stored_executed_with_figures_and_its_budget(path):
    notebook = json.loads(path.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(cell["execution_count"] for cell in code), f"{path.name}: a code cell was not executed"
    counts = [cell["execution_count"] for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: cells executed out of order: {counts}"
    outputs = [output for cell in code for output in cell["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"], f"{path.name}: stored with an error"
    assert any("image/png" in output.get("data", {}) for output in outputs), f"{path.name}: no figure"
    first = "".join(notebook["cells"][0]["source"])
    assert "**Stored outputs.**" in first and " s on " in first, (
        f"{path.name}: the first cell should say what the stored run trained and how long it took"
    )
