"""The Sphinx documentation builds with every warning an error (missing docstrings included)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None, reason="sphinx is not installed (pip install -e '.[docs]')"
)
def test_the_documentation_builds_without_warnings(tmp_path):
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-j", "1", "-q", "-b", "html"]
    command += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"sphinx-build failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "html" / "index.html").is_file()
    for page in ("api/infer.html", "api/models.html", "design.html", "results.html"):
        assert (tmp_path / "html" / page).is_file(), f"{page} was not built"
    tutorials = sorted(path.stem for path in (DOCS / "tutorials").glob("*.ipynb"))
    assert tutorials, "docs/tutorials holds no notebook"
    for name in tutorials:
        assert (tmp_path / "html" / "tutorials" / f"{name}.html").is_file(), f"tutorial {name} was not built"
