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
