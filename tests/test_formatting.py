"""The tree is black-clean under the repository's configuration (pyproject.toml: line length 120).

Formatted with black 26.10.1; other major versions may format some constructs differently."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("black")

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["adaanchor", "projects", "tests", "train_net.py", "setup.py"]


def test_sources_are_black_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "black", "--check", *SOURCES], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"run `python -m black {' '.join(SOURCES)}`:\n{proc.stderr}"
