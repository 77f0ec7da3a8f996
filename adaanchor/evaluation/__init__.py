"""Keypoint evaluation: OKS AP / AR (COCO, OCHuman; CrowdPose with AP easy / medium / hard), keypoint
recall, per-keypoint AP, localisation error and confidence by visibility.

Framework-free (numpy + pycocotools). The Detectron2 ``DatasetEvaluator`` lives in
``adaanchor.evaluation.detectron2_evaluator`` (imported explicitly; it needs Detectron2).
Command line: ``python -m adaanchor.evaluation --gt GT.json --dt DT.json --dataset {coco,crowdpose,ochuman}``.
"""

from .evaluate import evaluate_keypoints, format_metrics_table, to_detectron2_metrics
from .inputs import PROTOCOLS, GroundTruth, load_ground_truth, load_predictions
from .keypoint_metrics import keypoint_recall, visibility_metrics
from .oks_ap import CrowdPoseCOCOeval, crowd_index_ap, per_keypoint_ap

__all__ = [
    "evaluate_keypoints",
    "format_metrics_table",
    "to_detectron2_metrics",
    "PROTOCOLS",
    "GroundTruth",
    "load_ground_truth",
    "load_predictions",
    "keypoint_recall",
    "visibility_metrics",
    "CrowdPoseCOCOeval",
    "crowd_index_ap",
    "per_keypoint_ap",
]
