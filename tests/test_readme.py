"""README.md's quick start runs as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_quick_start_runs_and_learns_the_clusters(tmp_path):
    block = re.search(r"<!-- readme:quickstart -->\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert block, "README.md has no python block after <!-- readme:quickstart -->"
    script = tmp_path / "quickstart.py"
    script.write_text(block.group(1))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"all 400 points: ([\d.]+)%", done.stdout).group(1))
    assert accuracy > 90.0, done.stdout


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_points_at_a_file_and_heading_that_exist():
    root = README.parent
    links = re.findall(r"\]\((?!https?://)([^)#\s]+)(?:#([^)\s]+))?\)", README.read_text())
    assert links, "README.md has no relative links"
    for path, anchor in links:
        target = root / path
        assert target.exists(), f"README.md links to {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.MULTILINE)
            anchors = {github_anchor(h) for h in headings}
            assert anchor in anchors, f"README.md links to {path}#{anchor}; its headings: {sorted(anchors)}"
