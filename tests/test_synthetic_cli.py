"""``python -m adaanchor.data.synthetic`` as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "adaanchor.data.synthetic", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_generates_a_dataset_and_prints_the_summary(tmp_path):
    out = tmp_path / "ds"
    result = _run("--out", str(out), "--num-images", "3", "--seed", "4", "--keypoints", "coco", "--max-size", "128")
    assert result.returncode == 0, result.stderr
    for line in (
        "images                 3",
        "persons",
        "keypoints v=0/v=1/v=2",
        "persons truncated",
        "crowd easy/medium/hard",
    ):
        assert line in result.stdout
    assert "synthetic images" in result.stderr  # the tqdm bar
    data = json.loads((out / "annotations.json").read_text())
    assert len(data["images"]) == 3 and len(data["categories"][0]["keypoints"]) == 17
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000001.jpg", "000002.jpg", "000003.jpg"]


def test_cli_rejects_bad_arguments(tmp_path):
    result = _run("--out", str(tmp_path / "ds"), "--num-images", "0", "--no-progress")
    assert result.returncode == 2 and "num_images must be an integer >= 1" in result.stderr
    result = _run("--out", str(tmp_path / "ds"), "--num-images", "2", "--keypoints", "mpii")
    assert result.returncode == 2 and "invalid choice: 'mpii'" in result.stderr
    (tmp_path / "file").write_text("x")
    result = _run("--out", str(tmp_path / "file" / "ds"), "--num-images", "1", "--no-progress")
    assert result.returncode == 2 and "cannot write into" in result.stderr
    assert not (tmp_path / "ds").exists()
