"""``benchmark.py roi`` end to end on a small head: its last line is the JSON with the ratios the README quotes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("detectron2")

REPO = Path(__file__).resolve().parents[1]


def test_roi_benchmark_prints_the_ratios_as_json():
    proc = subprocess.run(
        [sys.executable, "projects/AdaAnchor/tools/benchmark.py", "roi", "--rois", "6", "--repeats", "1",
         "--warmup", "0", "MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS", "(16,)"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["rois"] == 6 and figures["config"] == "coco_krcnn_adaanchor.yaml"
    for key in ("ratio", "decode_ratio", "training_ratio"):
        assert figures[key] > 0
    for head in ("adaanchor", "heatmap"):
        assert all(figures[f"{head}_{m}_ms"] > 0 for m in ("inference", "decode", "training"))
