"""projects/AdaAnchor/tools/confidence_sweep.py: one inference pass per model, re-thresholded per gamma, gives
the metrics of evaluating the model at that gamma; the CSV has a row per (model, gamma), the PNG is drawn."""

import csv
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("detectron2")

from faults_support import make_tiny_source  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "projects" / "AdaAnchor" / "tools"))

import confidence_sweep  # noqa: E402


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from adaanchor.data.datasets import register_keypoint_dataset

    source = make_tiny_source(tmp_path_factory.mktemp("sweep_source"), num_images=4)
    name = "sweep_tiny_val"
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_keypoint_dataset(name, str(source / "annotations.json"), str(source / "images"), "crowdpose")
    return name


def _opts(dataset, *extra):
    return ["DATASETS.TEST", f'("{dataset}",)', "DATASETS.TRAIN", f'("{dataset}",)', "INPUT.MIN_SIZE_TEST", "128",
            "MODEL.DEVICE", "cpu", *extra]  # fmt: skip


def _spread_model(cfg, seed):
    """A model whose centre confidences spread over (0, 1), so that gamma matters."""
    from detectron2.modeling import build_model

    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        model.heatmap_head.predictor.weight.normal_(0, 0.01)
        model.heatmap_head.predictor.bias[cfg.MODEL.DEKR.NUM_KEYPOINTS] -= 0.5  # centre confidence / heatmap
    return model.eval()


@pytest.mark.parametrize("config", ["synthetic_dekr_adaanchor.yaml", "synthetic_dekr_heatmap.yaml"])
def test_one_pass_equals_evaluating_at_each_gamma(tiny_val, config):
    from adaanchor.engine import build_cfg
    from adaanchor.evaluation.detectron2_evaluator import KeypointEvaluator

    cfg = build_cfg(str(REPO / "configs" / config), _opts(tiny_val))
    model = _spread_model(cfg, seed=0)
    candidates = confidence_sweep.candidate_poses(model, cfg, 0.0)
    anchor_scores = torch.cat([c[3] for c in candidates])
    gammas = [round(float(torch.quantile(anchor_scores, q)), 4) for q in (0.1, 0.5, 0.9)]  # where it matters
    rows = confidence_sweep.sweep("m", cfg, candidates, gammas, model.inference_settings)
    assert [r["gamma"] for r in rows] == gammas
    from adaanchor.engine import AdaAnchorTrainer

    for row in rows:  # the model's own inference with its threshold at gamma
        model.center_criterion = confidence_sweep._decode_once(model, row["gamma"])
        evaluator = KeypointEvaluator(tiny_val, distributed=False, per_keypoint=False)
        count = 0
        with torch.no_grad():
            for batch in AdaAnchorTrainer.build_test_loader(cfg, tiny_val):
                outputs = model(batch)
                count += len(outputs[0]["instances"])
                evaluator.process(batch, outputs)
        direct = evaluator.evaluate()["keypoints"]
        assert row["poses"] == count
        for key in ("AP", "AR", "recall"):
            assert row[key] == pytest.approx(direct[key], abs=1e-9), (row["gamma"], key)
    assert rows[0]["poses"] > rows[-1]["poses"]  # gamma matters here


def test_command_line_writes_one_row_per_model_and_gamma_and_a_plot(tiny_val, tmp_path):
    from PIL import Image

    from adaanchor.engine import build_cfg

    weights = {}
    for name in ("adaanchor", "heatmap"):
        cfg = build_cfg(str(REPO / "configs" / f"synthetic_dekr_{name}.yaml"), _opts(tiny_val))
        weights[name] = tmp_path / f"{name}.pth"
        torch.save({"model": _spread_model(cfg, seed=1).state_dict()}, weights[name])
    rc = confidence_sweep.main([
        "--config-file", str(REPO / "configs" / "synthetic_dekr_adaanchor.yaml"), "--weights", str(weights["adaanchor"]),
        "--baseline-config", str(REPO / "configs" / "synthetic_dekr_heatmap.yaml"),
        "--baseline-weights", str(weights["heatmap"]), "--gammas", "0.05", "0.2", "0.5", "--output", str(tmp_path / "out"),
        *_opts(tiny_val),
    ])  # fmt: skip
    assert rc == 0
    with open(tmp_path / "out" / "confidence_sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], float(r["gamma"])) for r in rows] == [
        (m, g) for m in ("adaanchor", "heatmap") for g in (0.05, 0.2, 0.5)
    ]
    image = Image.open(tmp_path / "out" / "confidence_sweep.png")
    assert image.size == (900, 360)
    assert len(set(image.convert("L").getdata())) > 10  # not blank
