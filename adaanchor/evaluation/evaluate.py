"""``evaluate_keypoints``: every keypoint metric of the project in one call (framework-free).

Used by the command line (``python -m adaanchor.evaluation``) and by the Detectron2 evaluator.
"""

import logging
import math
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

from pycocotools.coco import COCO

from ..data.keypoints import KEYPOINT_SPECS
from .inputs import (
    GroundTruth,
    load_ground_truth,
    load_predictions,
    load_results_index,
    protocol_of,
)
from .keypoint_metrics import keypoint_recall, visibility_metrics
from .oks_ap import (
    crowd_index_ap,
    crowdpose_object_scale,
    make_oks_eval,
    per_keypoint_ap,
    run_oks_eval,
    summary_metrics,
)

logger = logging.getLogger(__name__)

# Metrics that are fractions in [0, 1] (scaled x100 in Detectron2's convention); the others are
# original-image px (errors) or the model's own confidence units (scores).
FRACTION_PREFIXES = ("AP", "AR", "recall")


def evaluate_keypoints(
    gt: Union[str, os.PathLike, Dict, COCO, GroundTruth],
    predictions: Union[str, os.PathLike, List[Dict]],
    dataset: str = "coco",
    sigmas: Optional[Sequence[float]] = None,
    keypoint_names: Optional[Sequence[str]] = None,
    recall_oks_threshold: float = 0.5,
    per_keypoint: bool = True,
) -> "OrderedDict[str, float]":
    """Evaluate keypoint predictions against COCO-format ground truth.

    Args:
        gt: ground truth: a json path, its dict, a pycocotools COCO, or a :class:`GroundTruth`
            from :func:`load_ground_truth` (to validate a large file once and evaluate it many times).
        predictions: COCO keypoint results: a json path or a list of dicts (``image_id``,
            ``category_id``, ``keypoints`` = K x (x, y, confidence) with x, y in original-image px,
            pixel-index convention, ``score``, optional ``bbox``). An empty list is allowed.
        dataset: "coco" or "ochuman" (COCO protocol) or "crowdpose" (official CrowdPose protocol);
            also picks the default sigmas and keypoint names.
        sigmas: K OKS sigmas; default: the dataset's (adaanchor.data.keypoints).
        keypoint_names: K names used in the per-keypoint metric names; default: the dataset's when it has
            K keypoints, else the ground truth category's ``keypoints``, else "0", "1", ...
        recall_oks_threshold: single-keypoint OKS a keypoint match needs for the recall.
        per_keypoint: also compute AP and recall per keypoint type (K extra AP evaluations).

    Returns:
        An ordered dict of floats, fractions in [0, 1] and -1 where undefined:
        ``AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl`` (COCO protocol) or
        ``AP, AP50, AP75, AR, AR50, AR75, AP_easy, AP_medium, AP_hard`` (CrowdPose protocol; APm/APl/ARm/ARl
        are not part of it), then ``recall``, ``vis_error``, ``vis_score``, ``inv_error``, ``inv_score``
        (errors in original-image px, scores in the predictions' confidence units, which may be negative
        logits: these four are NaN, not -1, where undefined), then with
        ``per_keypoint`` ``AP-<name>`` and ``recall-<name>`` for each keypoint type (Detectron2's
        "AP-<category>" naming). See oks_ap.py and keypoint_metrics.py for the exact definitions.

    Raises:
        ValueError / FileNotFoundError naming the file and the image or annotation id on bad input.
    """
    protocol = protocol_of(dataset)
    if not 0 < recall_oks_threshold <= 1:
        raise ValueError(f"recall_oks_threshold must be in (0, 1], got {recall_oks_threshold}")
    spec = KEYPOINT_SPECS[dataset]
    if sigmas is None:
        sigmas = spec.oks_sigmas
    sigmas = [float(s) for s in sigmas]
    ground_truth = load_ground_truth(gt, num_keypoints=len(sigmas), protocol=protocol)
    names = _keypoint_names(keypoint_names, spec.keypoint_names, ground_truth, sigmas, dataset)
    results = load_predictions(predictions, ground_truth)
    if not results:
        logger.warning(
            "No predictions at all for %s: every AP, AR and recall below is 0 (an untrained model, a "
            "confidence threshold above every score, or an empty results file)",
            ground_truth.source,
        )
    coco_gt = ground_truth.coco
    coco_dt = load_results_index(results, ground_truth)
    logger.info(
        "Evaluating %d keypoint predictions on %s (%s protocol, %d keypoints)",
        len(results),
        ground_truth.source,
        protocol,
        len(sigmas),
    )

    metrics = OrderedDict()
    main_eval = run_oks_eval(make_oks_eval(protocol, coco_gt, coco_dt, sigmas))
    metrics.update(summary_metrics(protocol, main_eval))
    if protocol == "crowdpose":
        metrics.update(crowd_index_ap(coco_gt, coco_dt, sigmas))
    object_scale = crowdpose_object_scale if protocol == "crowdpose" else (lambda ann: ann["area"])
    recall, recall_per_keypoint = keypoint_recall(
        coco_gt,
        coco_dt,
        sigmas,
        object_scale,
        oks_threshold=recall_oks_threshold,
        max_dets=main_eval.params.maxDets[-1],
    )
    metrics["recall"] = recall
    metrics.update(visibility_metrics(main_eval, coco_gt, coco_dt))
    if per_keypoint:
        for name, ap in zip(names, per_keypoint_ap(protocol, coco_gt, coco_dt, sigmas)):
            metrics[f"AP-{name}"] = ap
        for name, value in zip(names, recall_per_keypoint):
            metrics[f"recall-{name}"] = value
    return metrics


def _keypoint_names(
    names: Optional[Sequence[str]],
    dataset_names: Sequence[str],
    ground_truth: GroundTruth,
    sigmas: Sequence[float],
    dataset: str,
) -> List[str]:
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(sigmas) or len(set(names)) != len(names):
            raise ValueError(
                f"dataset '{dataset}': keypoint_names must be {len(sigmas)} distinct names (one per sigma), "
                f"got {names}"
            )
        return names
    if len(dataset_names) == len(sigmas):
        return list(dataset_names)
    return ground_truth.category_keypoint_names() or [str(i) for i in range(len(sigmas))]


def to_detectron2_metrics(metrics: Dict[str, float]) -> "OrderedDict[str, float]":
    """Detectron2's convention: fractions (AP*, AR*, recall*) x100 and undefined (-1) -> NaN.

    Errors stay in original-image px and scores in confidence units (NaN where undefined already);
    the order is kept (AP first).
    """
    converted = OrderedDict()
    for name, value in metrics.items():
        if name.startswith(FRACTION_PREFIXES):
            converted[name] = value * 100.0 if value >= 0 else math.nan
        else:
            converted[name] = value
    return converted


def format_metrics_table(metrics: Dict[str, float]) -> str:
    """A plain two-column text table of the metrics (for the command line's human-readable part)."""
    width = max(len(name) for name in metrics)
    return "\n".join(f"{name:<{width}}  {value:.6f}" for name, value in metrics.items())
