"""Shared test fixtures.

The real COCO / CrowdPose / OCHuman samples live outside the repository (never committed), in
``../shared/data`` beside the checkout, or wherever ``ADAANCHOR_SHARED_DATA`` points.
Tests that need them use the ``shared_data`` fixture, which skips with the reason when they are absent.
"""

import os
from pathlib import Path

import pytest
import torch
from torch import nn

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


def _randomise(module: nn.Module, seed: int = 0, std: float = 0.2) -> nn.Module:
    """Random weights everywhere (including the adaptive transform / translation convs) and random BN
    running statistics, so that every path and every keypoint group matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module


@pytest.fixture
def randomise():
    """:func:`_randomise`: ``randomise(module, seed=0, std=0.2)`` sets random weights and BN statistics."""
    return _randomise
