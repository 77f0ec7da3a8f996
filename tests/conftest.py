"""Shared test fixtures.

The real COCO / CrowdPose / OCHuman samples live outside the repository (never committed), in
``../shared/data`` beside the checkout, or wherever ``ADAANCHOR_SHARED_DATA`` points.
Tests that need them use the ``shared_data`` fixture, which skips with the reason when they are absent.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("ADAANCHOR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The folder of real samples (coco/, crowdpose/, ochuman/, xtcocoapi_examples/); skips if absent."""
    root = shared_data_dir()
    if not (root / "coco" / "test_coco.json").is_file():
        pytest.skip(f"real keypoint samples not found at {root} (set ADAANCHOR_SHARED_DATA)")
    return root
