#!/usr/bin/env python
"""The paper's Figure 5: AP and keypoint recall as a function of the confidence threshold gamma, for an AdaAnchor
DEKR model and its heatmap-anchor baseline, from one inference pass per model.

    python projects/AdaAnchor/tools/confidence_sweep.py \\
        --config-file configs/synthetic_dekr_adaanchor.yaml --weights output/synthetic_dekr_adaanchor/model_final.pth \\
        --baseline-config configs/synthetic_dekr_heatmap.yaml --baseline-weights output/synthetic_dekr_heatmap/model_final.pth \\
        --output sweep/

Writes ``sweep/confidence_sweep.csv`` (one row per model and gamma: AP, AP50, AR, recall, ...) and
``sweep/confidence_sweep.png``. Why one pass suffices (exact, not an approximation): the network runs once
per image; its person anchors are decoded once at the lowest gamma, keeping each pose's anchor score. Decoding
at a higher gamma keeps exactly the anchors scoring >= gamma among those (the merge is greedy in confidence
order, so a candidate's fate depends only on more confident ones, and the top-m cut keeps a confidence-ordered
prefix); pose NMS, whose order is the pose score, is re-run per gamma on the remaining poses. gamma is the
AdaAnchor centre confidence threshold (MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD) or the centre heatmap
threshold of the baseline (MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD). Evaluation: the dataset's protocol on
DATASETS.TEST[0] (KeypointEvaluator), values x100.
"""

import argparse
import csv
import dataclasses
import logging
import os
import sys

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from adaanchor.anchor import AdaAnchor  # noqa: E402
from adaanchor.bottom_up import keypoint_boxes  # noqa: E402
from adaanchor.engine import AdaAnchorTrainer, build_cfg  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402
from adaanchor.evaluation.detectron2_evaluator import KeypointEvaluator  # noqa: E402

DEFAULT_GAMMAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
COLUMNS = ("model", "gamma", "AP", "AP50", "AP75", "AR", "recall", "vis_error", "inv_error", "poses")
logger = logging.getLogger("adaanchor.confidence_sweep")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the AdaAnchor DEKR config")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--baseline-config", help="its heatmap-anchor twin (optional)")
    parser.add_argument("--baseline-weights")
    parser.add_argument("--gammas", type=float, nargs="+", default=list(DEFAULT_GAMMAS))
    parser.add_argument("--output", required=True, help="folder for confidence_sweep.csv and .png")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for both models: KEY VALUE ...")
    args = parser.parse_args(argv)
    if bool(args.baseline_config) != bool(args.baseline_weights):
        parser.error("--baseline-config and --baseline-weights go together")
    if not args.gammas or min(args.gammas) < 0 or max(args.gammas) > 1:
        parser.error("--gammas must be numbers in [0, 1]")
    return args


def _decode_once(model, gamma: float):
    """The model's centre criterion with its decoding threshold at ``gamma``."""
    criterion = model.center_criterion
    if isinstance(criterion, AdaAnchor):
        return dataclasses.replace(criterion, confidence_threshold=gamma)
    return dataclasses.replace(criterion, threshold=gamma)


def candidate_poses(model, cfg, gamma: float):
    """One inference pass: per image, every pose decoded at ``gamma`` (before pose NMS) with its anchor score.

    Returns a list of (input dict, poses (N, K, 3) original px, pose scores (N,), anchor scores (N,)).
    """
    dataset = cfg.DATASETS.TEST[0]
    loader = AdaAnchorTrainer.build_test_loader(cfg, dataset)
    criterion = _decode_once(model, gamma)
    settings = model.inference_settings
    out = []
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"inference on {dataset}"):
            (x,) = batch
            images = model.preprocess_image(batch)
            input_h, input_w = images.image_sizes[0]
            scaled = settings.test_time.maps(
                model.predict_maps,
                images.tensor[:1],
                (input_h, input_w),
                stride=model.stride,
                size_divisibility=model.backbone.size_divisibility,
            )
            found = settings.candidates(criterion, scaled, model.stride, (input_h, input_w))
            poses = found.poses.cpu()
            poses[..., :2] *= poses.new_tensor([x["width"] / input_w, x["height"] / input_h])
            out.append((x, poses, found.scores.cpu(), found.anchor_scores.cpu()))
    return out


def sweep(model_name: str, cfg, candidates, gammas, settings):
    """Metrics at each gamma: filter by anchor score, pose NMS, evaluate."""
    evaluator = KeypointEvaluator(cfg.DATASETS.TEST[0], distributed=False, per_keypoint=False)
    rows = []
    for gamma in sorted(gammas):
        evaluator.reset()
        count = 0
        for x, poses, scores, anchor_scores in candidates:
            keep = anchor_scores >= gamma
            p, s = poses[keep], scores[keep]
            order = settings.select(p, s)
            instances = Instances((x["height"], x["width"]))
            instances.pred_keypoints, instances.scores = p[order], s[order]
            instances.pred_boxes = Boxes(keypoint_boxes(p[order][..., :2]))
            instances.pred_classes = torch.zeros(len(order), dtype=torch.long)
            evaluator.process([x], [{"instances": instances}])
            count += len(order)
        metrics = evaluator.evaluate().get("keypoints", {})
        rows.append({"model": model_name, "gamma": gamma, "poses": count, **{c: metrics.get(c) for c in COLUMNS[2:-1]}})
        logger.info(f"{model_name} gamma {gamma}: AP {metrics.get('AP')}, recall {metrics.get('recall')}")
    return rows


def plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        for ax, key in zip(axes, ("AP", "recall")):
            ax.plot([r["gamma"] for r in mine], [r[key] for r in mine], marker="o", label=name)
    for ax, key in zip(axes, ("AP (x100)", "keypoint recall (x100)")):
        ax.set_xlabel("confidence threshold gamma")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("AP and recall vs the confidence threshold (paper Fig. 5)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    models = [("adaanchor", args.config_file, args.weights)]
    if args.baseline_config:
        models.append(("heatmap", args.baseline_config, args.baseline_weights))
    rows = []
    for name, config, weights in models:
        cfg = build_cfg(config, args.opts)
        if not cfg.DATASETS.TEST:
            raise SystemExit(f"{config}: DATASETS.TEST is empty: nothing to evaluate")
        model = build_model(cfg)
        AdaAnchorCheckpointer(model).load(weights)
        model.eval()
        candidates = candidate_poses(model, cfg, min(args.gammas))
        rows += sweep(name, cfg, candidates, args.gammas, model.inference_settings)
    os.makedirs(args.output, exist_ok=True)
    csv_path = os.path.join(args.output, "confidence_sweep.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, os.path.join(args.output, "confidence_sweep.png"))
    logger.info(f"wrote {csv_path} and confidence_sweep.png ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    setup_logger(name="adaanchor")  # here, not in main(): it stops the logger's records propagating to the root
    sys.exit(main())
