"""A short training + evaluation on the real CrowdPose samples of ../shared/data, through train_net.py and the
CrowdPose configs of every host (DEKR, Associative Embedding, Keypoint R-CNN), laid out as the builtin
``crowdpose_trainval`` / ``crowdpose_test`` splits under a $DETECTRON2_DATASETS root (slow; needs Detectron2)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("detectron2")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL_HRNET = ["MODEL.HRNET.WIDTH", "16", "MODEL.HRNET.NUM_MODULES", "[1, 1, 1]", "MODEL.HRNET.NUM_BLOCKS", "[2, 2, 2]"]
# every candidate kept at test time (an untrained model's confidence sits at the prior), so that poses come out
BOTTOM_UP = [*SMALL_HRNET, "INPUT.BOTTOM_UP.SIZE", "128", "INPUT.MIN_SIZE_TEST", "128",
             "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0"]  # fmt: skip
HOSTS = {
    "dekr": ("configs/crowdpose_dekr_adaanchor.yaml", BOTTOM_UP),
    "ae": ("configs/crowdpose_ae_adaanchor.yaml", [*BOTTOM_UP, "MODEL.AE.TEST.DETECTION_THRESHOLD", "0.0"]),
    "krcnn": ("configs/crowdpose_krcnn_adaanchor.yaml",
              ["INPUT.MIN_SIZE_TRAIN", "(160,)", "INPUT.MIN_SIZE_TEST", "160", "MODEL.RESNETS.DEPTH", "18",
               "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "MODEL.RESNETS.NORM", "BN",
               "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
               "SOLVER.BASE_LR", "0.0001"]),  # SGD 0.02 from scratch collapses the RPN's boxes in 3 steps
}  # fmt: skip


@pytest.fixture
def datasets_root(tmp_path, shared_data):
    """The two real CrowdPose images and their annotations as crowdpose_trainval and crowdpose_test."""
    root = tmp_path / "datasets"
    (root / "crowdpose" / "json").mkdir(parents=True)
    shutil.copytree(shared_data / "crowdpose", root / "crowdpose" / "images", ignore=shutil.ignore_patterns("*.json"))
    for split in ("trainval", "test"):
        shutil.copy(
            shared_data / "crowdpose" / "test_crowdpose.json", root / "crowdpose" / "json" / f"crowdpose_{split}.json"
        )
    return root


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_a_short_training_on_the_real_samples_runs_end_to_end(host, datasets_root, tmp_path):
    config, small = HOSTS[host]
    proc = subprocess.run(
        [sys.executable, "train_net.py", "--config-file", config, "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER",
         "3", "SOLVER.WARMUP_ITERS", "0", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path / "out"), *small],
        cwd=REPO, env={**os.environ, "DETECTRON2_DATASETS": str(datasets_root)},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "Starting training from iteration 0" in log and (tmp_path / "out" / "model_final.pth").is_file()
    assert re.search(r"copypaste: AP,AP50", log)  # evaluated on crowdpose_test with the CrowdPose protocol
    results = json.loads((tmp_path / "out" / "inference" / "crowdpose_test" / "keypoint_results.json").read_text())
    images = {
        i["id"]
        for i in json.loads((datasets_root / "crowdpose" / "json" / "crowdpose_test.json").read_text())["images"]
    }
    assert results and {r["image_id"] for r in results} <= images
    assert all(len(r["keypoints"]) == 14 * 3 for r in results)
