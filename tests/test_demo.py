"""projects/AdaAnchor/demo.py: DefaultPredictor on images, drawings and COCO-format predictions written,
unreadable images reported with the reason and skipped (exit status 1)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("detectron2")

from adaanchor.data.synthetic import PERSON_CATEGORY_ID  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_demo_writes_drawings_and_predictions_and_reports_bad_files(tmp_path):
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "street.jpg"), image)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    proc = subprocess.run(
        [sys.executable, "projects/AdaAnchor/demo.py", "--config-file", "configs/synthetic_dekr_adaanchor.yaml",
         "--input", str(tmp_path / "street.jpg"), str(tmp_path / "broken.jpg"), "--output", str(tmp_path / "vis"),
         "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]  # one image could not be read
    log = proc.stdout + proc.stderr
    assert (
        "Cannot read image" in log
        and "broken.jpg: not an image (not in an image format Pillow recognises): skipped" in log
    )
    drawing = cv2.imread(str(tmp_path / "vis" / "street.jpg"))
    assert drawing is not None and drawing.shape == image.shape
    predictions = json.loads((tmp_path / "vis" / "street.json").read_text())
    assert predictions and all(len(p["keypoints"]) == 14 * 3 and p["image_id"] == "street" for p in predictions)
    assert all(p["category_id"] == PERSON_CATEGORY_ID for p in predictions)  # the synthetic dataset's category
    assert not (tmp_path / "vis" / "broken.json").exists()
