"""Keypoint-level metrics beyond OKS AP: keypoint recall (the paper's appendix A.2) and localisation
error / confidence split by visibility (the paper's Table 1 and 2). Framework-free (numpy + pycocotools).

Keypoint recall, precisely (our reading of appendix A.2, which follows cocoapi's matching):

- Ground truth: every labelled keypoint (v > 0) of every evaluated person (not a crowd region,
  ``num_keypoints > 0``, the persons the AP evaluation does not ignore); n = their number.
- Predictions: every keypoint of the poses the AP evaluation sees (per image and category, the
  ``max_dets`` = 20 highest-scoring poses), with the keypoint's own confidence.
- Matching, per image, category and keypoint type: predictions in order of decreasing keypoint confidence
  (stable order for ties); each takes the closest (Euclidean distance, original-image px) still unmatched
  ground-truth keypoint of its type, and the pair is accepted if their single-keypoint OKS
  ``exp(-d^2 / (2 s (2 sigma_k)^2))`` is >= ``oks_threshold`` (default 0.5; s = the ground-truth person's
  object scale: ``area`` for COCO, 0.53 x bbox area for CrowdPose; sigma_k = the dataset's sigma). A
  rejected prediction does not try farther ground truths. recall = q / n with q matched ground truths,
  per keypoint type and over all types (-1 where n = 0).

Error and confidence by visibility: over the pose pairs that the standard AP evaluation matches at
OKS 0.5 (area "all", maxDets 20; predictions matched to crowd regions or ignored persons excluded), for
each ground-truth keypoint with v = 2 (visible) or v = 1 (labelled, occluded): the Euclidean distance
between predicted and ground-truth position (original-image px) and the predicted keypoint's confidence,
averaged separately over the visible and the invisible keypoints (NaN where there are none: a
confidence can be a negative logit, so -1 would not mark "undefined").
"""

import math
from collections import defaultdict
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

VISIBILITY_METRIC_NAMES = ("vis_error", "vis_score", "inv_error", "inv_score")


def keypoint_recall(
    coco_gt: COCO,
    coco_dt: COCO,
    sigmas: Sequence[float],
    object_scale: Callable[[Dict], float],
    oks_threshold: float = 0.5,
    max_dets: int = 20,
) -> Tuple[float, List[float]]:
    """Keypoint recall as defined in the module docstring.

    Args:
        coco_gt: the ground truth index; coco_dt: the predictions index (``COCO.loadRes``).
        sigmas: K OKS sigmas.
        object_scale: annotation dict -> object scale s (original-image px^2).
        oks_threshold: minimum single-keypoint OKS of an accepted match.
        max_dets: poses per image and category taken, highest score first.

    Returns:
        (overall recall, K per-keypoint recalls), each in [0, 1] or -1 where there is no ground truth.
    """
    num_keypoints = len(sigmas)
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    matched = np.zeros(num_keypoints, dtype=np.int64)
    total = np.zeros(num_keypoints, dtype=np.int64)

    gt_groups = defaultdict(list)
    for ann in coco_gt.dataset["annotations"]:
        if not ann["iscrowd"] and ann["num_keypoints"] > 0:
            gt_groups[ann["image_id"], ann["category_id"]].append(ann)
    dt_groups = defaultdict(list)
    for ann in coco_dt.dataset["annotations"]:
        dt_groups[ann["image_id"], ann["category_id"]].append(ann)

    for key, gts in gt_groups.items():
        gt_kpts = np.array([g["keypoints"] for g in gts], dtype=np.float64).reshape(len(gts), num_keypoints, 3)
        gt_scales = np.array([object_scale(g) for g in gts], dtype=np.float64)
        labelled = gt_kpts[:, :, 2] > 0  # (G, K)
        total += labelled.sum(axis=0)
        dts = dt_groups.get(key, [])
        if not dts:
            continue
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[:max_dets]
        dt_kpts = np.array([dts[i]["keypoints"] for i in order], dtype=np.float64).reshape(-1, num_keypoints, 3)
        for k in range(num_keypoints):
            gt_index = np.flatnonzero(labelled[:, k])
            if gt_index.size:
                matched[k] += _greedy_matches(
                    dt_kpts[:, k],
                    gt_kpts[gt_index, k, :2],
                    gt_scales[gt_index],
                    variances[k],
                    oks_threshold,
                )
    recalls = [float(m / t) if t else -1.0 for m, t in zip(matched, total)]
    overall = float(matched.sum() / total.sum()) if total.sum() else -1.0
    return overall, recalls


def _greedy_matches(
    predictions: np.ndarray,
    gt_xy: np.ndarray,
    gt_scales: np.ndarray,
    variance: float,
    oks_threshold: float,
) -> int:
    """Number of ground truths matched by the greedy rule; predictions (D, 3) x, y, confidence; gt_xy (G, 2)."""
    order = np.argsort(-predictions[:, 2], kind="mergesort")
    dist2 = ((predictions[order, None, :2] - gt_xy[None]) ** 2).sum(axis=-1)  # (D, G), px^2
    # pycocotools' OKS term, same operation order: d^2 / (2 sigma)^2 / (s + eps) / 2
    oks = np.exp(-(dist2 / variance / (gt_scales[None] + np.spacing(1)) / 2))
    unmatched = np.ones(len(gt_xy), dtype=bool)
    for row in range(len(order)):
        candidates = np.where(unmatched, dist2[row], np.inf)
        nearest = int(np.argmin(candidates))
        if oks[row, nearest] >= oks_threshold:
            unmatched[nearest] = False
            if not unmatched.any():
                break
    return int((~unmatched).sum())


def visibility_metrics(coco_eval: COCOeval, coco_gt: COCO, coco_dt: COCO) -> Dict[str, float]:
    """Mean localisation error (original-image px) and confidence of matched keypoints, by visibility.

    ``coco_eval`` must have been evaluated (its ``evalImgs`` hold the matching). Returns vis_error,
    vis_score (ground truth v = 2), inv_error, inv_score (v = 1); NaN where no such keypoint was matched.
    """
    threshold_index = int(np.flatnonzero(np.isclose(coco_eval.params.iouThrs, 0.5))[0])
    all_areas = list(coco_eval.params.areaRng[0])
    sums = defaultdict(float)
    counts = defaultdict(int)
    for result in coco_eval.evalImgs:
        if result is None or list(result["aRng"]) != all_areas:
            continue
        for dt_id, gt_id, ignored in zip(
            result["dtIds"],
            result["dtMatches"][threshold_index],
            result["dtIgnore"][threshold_index],
        ):
            if gt_id == 0 or ignored:  # pycocotools: 0 = unmatched
                continue
            gt = np.asarray(coco_gt.anns[int(gt_id)]["keypoints"], dtype=np.float64).reshape(-1, 3)
            dt = np.asarray(coco_dt.anns[dt_id]["keypoints"], dtype=np.float64).reshape(-1, 3)
            error = np.hypot(dt[:, 0] - gt[:, 0], dt[:, 1] - gt[:, 1])
            for prefix, visibility in (("vis", 2), ("inv", 1)):
                mask = gt[:, 2] == visibility
                sums[prefix + "_error"] += float(error[mask].sum())
                sums[prefix + "_score"] += float(dt[mask, 2].sum())
                counts[prefix] += int(mask.sum())
    return {
        name: sums[name] / counts[name.split("_")[0]] if counts[name.split("_")[0]] else math.nan
        for name in VISIBILITY_METRIC_NAMES
    }
