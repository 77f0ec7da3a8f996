"""projects/AdaAnchor/tools/confidence_sweep.py: one inference pass per model, re-thresholded per gamma, gives
the metrics of evaluating the model at that gamma (DEKR; Associative Embedding, whose gamma is both its criterion's
and its grouping's threshold); the CSV has a row per (model, gamma), the PNG is drawn; the ROI host is refused."""

import csv
import sys
from pathlib import Path

import numpy as np
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
    """A model whose anchor confidences (DEKR: the centre's; AE: the keypoints') spread over (0, 1), so that gamma
    matters."""
    from detectron2.modeling import build_model

    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        if cfg.MODEL.META_ARCHITECTURE == "DEKR":
            model.heatmap_head.predictor.weight.normal_(0, 0.01)
            model.heatmap_head.predictor.bias[cfg.MODEL.DEKR.NUM_KEYPOINTS] -= 0.5  # centre confidence / heatmap
        else:
            model.head.predictor.weight.normal_(0, 0.01)
            if cfg.MODEL.ADAANCHOR.ENABLED:
                model.head.predictor.bias[: cfg.MODEL.AE.NUM_KEYPOINTS] += 3.0  # logits from the 0.01 prior
    return model.eval()


def _evaluate(model, cfg, dataset):
    """(metrics, the Instances of every image) of the model's own inference on ``dataset``."""
    from adaanchor.engine import AdaAnchorTrainer
    from adaanchor.evaluation.detectron2_evaluator import KeypointEvaluator

    evaluator = KeypointEvaluator(dataset, distributed=False, per_keypoint=False)
    predictions = []
    with torch.no_grad():
        for batch in AdaAnchorTrainer.build_test_loader(cfg, dataset):
            outputs = model(batch)
            predictions.append(outputs[0]["instances"])
            evaluator.process(batch, outputs)
    return evaluator.evaluate()["keypoints"], predictions


@pytest.mark.parametrize("config", ["synthetic_dekr_adaanchor.yaml", "synthetic_dekr_heatmap.yaml"])
def test_one_pass_equals_evaluating_at_each_gamma(tiny_val, config):
    from adaanchor.engine import build_cfg

    cfg = build_cfg(str(REPO / "configs" / config), _opts(tiny_val))
    model = _spread_model(cfg, seed=0)
    candidates = confidence_sweep.candidate_poses(model, cfg, 0.0)
    anchor_scores = torch.cat([c.anchor_scores for c in candidates])
    gammas = [round(float(torch.quantile(anchor_scores, q)), 4) for q in (0.1, 0.5, 0.9)]  # where it matters
    rows = confidence_sweep.sweep("m", cfg, candidates, gammas)
    assert [r["gamma"] for r in rows] == gammas
    for row in rows:  # the model's own inference with its threshold at gamma
        model.center_criterion = confidence_sweep.at_threshold(model.center_criterion, row["gamma"])
        direct, predictions = _evaluate(model, cfg, tiny_val)
        assert row["poses"] == sum(len(p) for p in predictions)
        for key in ("AP", "AR", "recall"):
            assert row[key] == pytest.approx(direct[key], abs=1e-9), (row["gamma"], key)
    assert rows[0]["poses"] > rows[-1]["poses"]  # gamma matters here


AE_CRITERION_KEYS = {True: "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", False: "MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD"}


@pytest.mark.parametrize(
    "config,extra",
    [
        ("synthetic_ae_adaanchor.yaml", ()),
        ("synthetic_ae_heatmap.yaml", ()),
        ("synthetic_ae_adaanchor.yaml", ("MODEL.AE.TEST.REFINE", "True", "MODEL.AE.TEST.FLIP", "True")),
        ("synthetic_ae_heatmap.yaml", ("MODEL.AE.TEST.GROUND_TRUTH_TAGS", "True")),
    ],
)
def test_ae_one_pass_equals_evaluating_with_both_thresholds_at_each_gamma(tiny_val, config, extra):
    """AE: gamma is the criterion's decoding threshold and MODEL.AE.TEST.DETECTION_THRESHOLD; per gamma the stored
    candidates are grouped again, which equals a model built with both keys at gamma (refinement and flip test
    included)."""
    from detectron2.modeling import build_model

    from adaanchor.engine import build_cfg

    cfg = build_cfg(str(REPO / "configs" / config), _opts(tiny_val, *extra))
    keys = (AE_CRITERION_KEYS[cfg.MODEL.ADAANCHOR.ENABLED], "MODEL.AE.TEST.DETECTION_THRESHOLD")
    assert confidence_sweep.gamma_keys(cfg) == keys
    model = _spread_model(cfg, seed=0)
    candidates = confidence_sweep.candidate_poses(model, cfg, 0.0)
    assert len(candidates) == 4 and all(
        c.candidates.positions.shape[0] == cfg.MODEL.AE.NUM_KEYPOINTS for c in candidates
    )
    scores = torch.cat([torch.as_tensor(c.candidates.scores[c.candidates.scores > 0]) for c in candidates])
    # where it matters; the first below the config's detection threshold (0.1), where the criterion's gamma alone
    # would not filter the grouping's candidates
    gammas = [0.02] + [round(float(torch.quantile(scores, q)), 4) for q in (0.5, 0.95)]
    assert ((scores >= gammas[0]) & (scores <= cfg.MODEL.AE.TEST.DETECTION_THRESHOLD)).any()
    rows = confidence_sweep.sweep("m", cfg, candidates, gammas)
    assert [r["gamma"] for r in rows] == gammas
    for row in rows:
        thresholds = [value for key in keys for value in (key, row["gamma"])]
        at_gamma = build_cfg(str(REPO / "configs" / config), _opts(tiny_val, *extra, *thresholds))
        direct_model = build_model(at_gamma).eval()
        direct_model.load_state_dict(model.state_dict())
        direct, predictions = _evaluate(direct_model, at_gamma, tiny_val)
        assert row["poses"] == sum(len(p) for p in predictions), row["gamma"]
        for image, predicted in zip(candidates, predictions):  # the same poses, bit for bit
            poses, person_scores = image.poses_at(row["gamma"])
            assert torch.equal(poses, predicted.pred_keypoints) and torch.equal(person_scores, predicted.scores)
        for key in ("AP", "AR", "recall"):
            assert row[key] == pytest.approx(direct[key], abs=1e-9), (row["gamma"], key)
    assert rows[0]["poses"] > rows[-1]["poses"] or rows[0]["recall"] != rows[-1]["recall"]  # gamma matters here


def test_keypoint_rcnn_has_no_gamma_and_is_refused_before_any_inference(tmp_path):
    with pytest.raises(SystemExit, match="top-down ROI host.* no confidence threshold to sweep.*m = 1"):
        confidence_sweep.main([
            "--config-file", str(REPO / "configs" / "synthetic_krcnn_gtbox_adaanchor.yaml"),
            "--weights", str(tmp_path / "missing.pth"), "--output", str(tmp_path / "out"),
        ])  # fmt: skip
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("host", ["dekr", "ae"])
def test_command_line_writes_one_row_per_model_and_gamma_and_a_plot(tiny_val, tmp_path, host):
    from PIL import Image

    from adaanchor.engine import build_cfg

    weights = {}
    for name in ("adaanchor", "heatmap"):
        cfg = build_cfg(str(REPO / "configs" / f"synthetic_{host}_{name}.yaml"), _opts(tiny_val))
        weights[name] = tmp_path / f"{name}.pth"
        torch.save({"model": _spread_model(cfg, seed=1).state_dict()}, weights[name])
    configs = {name: str(REPO / "configs" / f"synthetic_{host}_{name}.yaml") for name in weights}
    rc = confidence_sweep.main([
        "--config-file", configs["adaanchor"], "--weights", str(weights["adaanchor"]),
        "--baseline-config", configs["heatmap"], "--baseline-weights", str(weights["heatmap"]),
        "--gammas", "0.05", "0.2", "0.5", "--output", str(tmp_path / "out"), *_opts(tiny_val),
    ])  # fmt: skip
    assert rc == 0
    with open(tmp_path / "out" / "confidence_sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], float(r["gamma"])) for r in rows] == [
        (m, g) for m in ("adaanchor", "heatmap") for g in (0.05, 0.2, 0.5)
    ]
    image = Image.open(tmp_path / "out" / "confidence_sweep.png")
    assert image.size == (900, 360)
    assert len(np.unique(np.asarray(image.convert("L")))) > 10  # not blank
