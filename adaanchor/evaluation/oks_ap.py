"""OKS-based keypoint AP / AR with pycocotools: the COCO protocol and the official CrowdPose protocol.

COCO (also OCHuman and COCO-style synthetic data): pycocotools' ``COCOeval(iouType="keypoints")`` with the
dataset's sigmas, unchanged.

CrowdPose: the official CrowdPose tools (Jeff-sjtu/CrowdPose, crowdpose-api/PythonAPI/crowdposetools) are a
fork of pycocotools' COCOeval that differs in exactly these points, which :class:`CrowdPoseCOCOeval`
reproduces as a thin subclass:

- the OKS object scale (and the scale tested against area ranges) is 0.53 x bbox w x h, not ``area``;
- only the area range "all" is reported (AP, AP50, AP75, AR, AR50, AR75 at maxDets 20, as pycocotools'
  keypoint parameters already have it); persons with ``num_keypoints == 0`` (which counts the 12 body
  joints only) and crowd regions are ignored, as in pycocotools;
- AP easy / medium / hard: images split by their ``crowdIndex`` (easy < 0.2 <= medium < 0.8 <= hard),
  each split evaluated on its own, and its AP = the mean of the whole precision array at area "all",
  rounded to 4 decimals (``round(np.mean(precision[:, :, :, 0, :]), 4)``); -1 for a split without images
  or without evaluated persons.

Where xtcocotools' ``keypoints_crowd`` (which mmpose uses) differs from the official tools, we follow the
official tools: xtcocotools also drops every prediction whose keypoint scores are all <= 0 before
matching; pycocotools and crowdposetools keep it.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from adaanchor.data.crowd_index import CROWD_LEVELS, crowd_level

from .inputs import quiet_pycocotools

CROWDPOSE_SCALE_FACTOR = 0.53  # CrowdPose's OKS object scale = 0.53 x bbox width x height
CROWDPOSE_SPLIT_NAMES = tuple(f"AP_{level}" for level in CROWD_LEVELS)  # AP_easy, AP_medium, AP_hard

# pycocotools' keypoint summary (COCOeval.stats order) and the subset the CrowdPose tools report.
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
CROWDPOSE_STAT_NAMES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75")


def crowdpose_object_scale(annotation: Dict) -> float:
    """CrowdPose's OKS object scale (original-image px^2): 0.53 x bbox width x height."""
    _, _, w, h = annotation["bbox"]
    return h * w * CROWDPOSE_SCALE_FACTOR


class _AllAreaKeypointEval(COCOeval):
    """pycocotools' keypoint COCOeval with the given sigmas and the area range "all" only."""

    def __init__(self, coco_gt: COCO, coco_dt: COCO, sigmas: Sequence[float]):
        with quiet_pycocotools():
            super().__init__(coco_gt, coco_dt, iouType="keypoints")
        self.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        self.params.areaRng = self.params.areaRng[:1]
        self.params.areaRngLbl = self.params.areaRngLbl[:1]


class CrowdPoseCOCOeval(_AllAreaKeypointEval):
    """pycocotools' keypoint COCOeval with the official CrowdPose object scale and area range "all" only.

    The scale replaces ``area`` on private shallow copies of the ground-truth annotations, so the caller's
    COCO index keeps its ``area`` (CrowdPose has none) and repeated evaluations do not interact.
    """

    def _prepare(self):
        super()._prepare()
        for key, annotations in self._gts.items():
            self._gts[key] = [dict(a, area=crowdpose_object_scale(a)) for a in annotations]


def make_oks_eval(protocol: str, coco_gt: COCO, coco_dt: COCO, sigmas: Sequence[float]) -> COCOeval:
    """A keypoint COCOeval for ``protocol``: pycocotools' own ("coco") or CrowdPoseCOCOeval ("crowdpose")."""
    if protocol == "crowdpose":
        return CrowdPoseCOCOeval(coco_gt, coco_dt, sigmas)
    with quiet_pycocotools():
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    return coco_eval


def run_oks_eval(coco_eval: COCOeval, summarize: bool = True) -> COCOeval:
    """evaluate(), accumulate() and (optionally) summarize(), with pycocotools' printing sent to the log."""
    with quiet_pycocotools():
        coco_eval.evaluate()
        coco_eval.accumulate()
        if summarize:
            coco_eval.summarize()
    return coco_eval


def summary_metrics(protocol: str, coco_eval: COCOeval) -> Dict[str, float]:
    """The summarized stats of a run COCOeval by name: COCO_STAT_NAMES, or CROWDPOSE_STAT_NAMES for CrowdPose.

    Values in [0, 1], -1 where undefined (pycocotools' convention).
    """
    stats = dict(zip(COCO_STAT_NAMES, (float(s) for s in coco_eval.stats)))
    names = CROWDPOSE_STAT_NAMES if protocol == "crowdpose" else COCO_STAT_NAMES
    return {name: stats[name] for name in names}


def crowd_index_splits(coco_gt: COCO) -> Tuple[List[int], List[int], List[int]]:
    """Image ids by the CrowdPose level of their ``crowdIndex`` (:func:`adaanchor.data.crowd_index.crowd_level`):
    easy (< 0.2), medium ([0.2, 0.8)) and hard (>= 0.8)."""
    splits = {level: [] for level in CROWD_LEVELS}
    for image in coco_gt.dataset["images"]:
        splits[crowd_level(image["crowdIndex"])].append(image["id"])
    return tuple(splits[level] for level in CROWD_LEVELS)


def crowd_index_ap(coco_gt: COCO, coco_dt: COCO, sigmas: Sequence[float]) -> Dict[str, float]:
    """AP_easy, AP_medium, AP_hard as the official CrowdPose tools compute them (see the module docstring)."""
    results = {}
    for name, image_ids in zip(CROWDPOSE_SPLIT_NAMES, crowd_index_splits(coco_gt)):
        if not image_ids:
            results[name] = -1.0
            continue
        coco_eval = CrowdPoseCOCOeval(coco_gt, coco_dt, sigmas)
        coco_eval.params.imgIds = sorted(image_ids)
        run_oks_eval(coco_eval, summarize=False)
        # The official definition: mean over the whole array at area "all", -1 entries included (with one
        # category they occur only when the split has no evaluated person, and then everywhere), rounded.
        results[name] = float(round(np.mean(coco_eval.eval["precision"][:, :, :, 0, :]), 4))
    return results


def average_precision(coco_eval: COCOeval) -> float:
    """AP over OKS 0.50:0.95 at area "all" and the largest maxDets of a run COCOeval; -1 if undefined."""
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]
    defined = precision[precision > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def per_keypoint_ap(protocol: str, coco_gt: COCO, coco_dt: COCO, sigmas: Sequence[float]) -> List[float]:
    """AP of each keypoint type alone: OKS restricted to keypoint k, one COCOeval per type.

    For type k the ground truth keeps only keypoint k (``num_keypoints`` = 1 if it is labelled, else 0,
    so persons without it are ignored like persons without keypoints in the full evaluation, crowd
    regions stay crowd regions, the object scale is unchanged) and each prediction only its keypoint k
    (pose score, id and area unchanged). Matching is pycocotools' (area range "all", maxDets 20); the
    OKS matrix comes from :func:`oks_matrix` (vectorised, the same formula as pycocotools).
    Returns K values in [0, 1], -1 where no person has keypoint k.
    """
    gt_annotations = coco_gt.dataset["annotations"]
    dt_annotations = coco_dt.dataset["annotations"]
    eval_class = _VectorizedCrowdPoseCOCOeval if protocol == "crowdpose" else _VectorizedCOCOeval
    results = []
    progress = tqdm(list(enumerate(sigmas)), desc="per-keypoint AP", unit="keypoint", disable=None)
    for k, sigma in progress:
        gt_k = _with_one_keypoint(coco_gt.dataset, gt_annotations, k, ground_truth=True)
        dt_k = _with_one_keypoint(coco_dt.dataset, dt_annotations, k, ground_truth=False)
        coco_eval = eval_class(gt_k, dt_k, [sigma])
        results.append(average_precision(run_oks_eval(coco_eval, summarize=False)))
    return results


def oks_matrix(gts: List[Dict], dts: List[Dict], sigmas: Sequence[float]) -> np.ndarray:
    """pycocotools' OKS between detections and ground truths, vectorised over pairs and keypoints.

    Args:
        gts: G ground-truth annotations (``keypoints`` 3K, ``bbox``, ``area`` = object scale in px^2).
        dts: D detections (``keypoints`` 3K), in the order of the returned rows.
        sigmas: K sigmas.

    Returns:
        (D, G) float64. As in pycocotools' ``computeOks``: for a ground truth with labelled keypoints,
        the mean of exp(-d^2 / (2 sigma)^2 / (s + eps) / 2) over its labelled keypoints; for one without,
        d is the distance outside its bbox enlarged by one bbox size on each side, over all K keypoints.
    """
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    num_keypoints = len(variances)
    g = np.array([a["keypoints"] for a in gts], dtype=np.float64).reshape(len(gts), num_keypoints, 3)
    d = np.array([a["keypoints"] for a in dts], dtype=np.float64).reshape(len(dts), num_keypoints, 3)
    boxes = np.array([a["bbox"] for a in gts], dtype=np.float64).reshape(len(gts), 4)
    scales = np.array([a["area"] for a in gts], dtype=np.float64)
    labelled = g[:, :, 2] > 0  # (G, K)
    has_labels = labelled.any(axis=1)  # (G,)
    offsets = []
    for axis in (0, 1):  # x, y: (D, G, K)
        to_keypoint = d[:, None, :, axis] - g[None, :, :, axis]
        low = (boxes[:, axis] - boxes[:, axis + 2])[None, :, None]
        high = (boxes[:, axis] + 2 * boxes[:, axis + 2])[None, :, None]
        pred = d[:, None, :, axis]
        outside_box = np.maximum(0, low - pred) + np.maximum(0, pred - high)
        offsets.append(np.where(has_labels[None, :, None], to_keypoint, outside_box))
    e = (offsets[0] ** 2 + offsets[1] ** 2) / variances / (scales[None, :, None] + np.spacing(1)) / 2
    weights = np.where(has_labels[:, None], labelled, True)  # (G, K): which keypoints count
    return (np.exp(-e) * weights[None]).sum(axis=-1) / weights.sum(axis=-1)[None]


class _VectorizedOksMixin:
    """``computeOks`` through :func:`oks_matrix`: same result, without pycocotools' Python loop over pairs."""

    def computeOks(self, imgId, catId):
        gts = self._gts[imgId, catId]
        dts = self._dts[imgId, catId]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[: self.params.maxDets[-1]]
        if len(gts) == 0 or len(order) == 0:
            return []
        return oks_matrix(gts, [dts[i] for i in order], self.params.kpt_oks_sigmas)


class _VectorizedCOCOeval(_VectorizedOksMixin, _AllAreaKeypointEval):
    """COCO-protocol keypoint COCOeval, area range "all" only, vectorised OKS (for per-keypoint AP)."""


class _VectorizedCrowdPoseCOCOeval(_VectorizedOksMixin, CrowdPoseCOCOeval):
    """CrowdPose-protocol keypoint COCOeval with vectorised OKS (for per-keypoint AP)."""


def _with_one_keypoint(dataset: Dict, annotations: List[Dict], k: int, ground_truth: bool) -> COCO:
    restricted = []
    for ann in annotations:
        triple = ann["keypoints"][3 * k : 3 * k + 3]
        fields = {"keypoints": triple}
        if ground_truth:
            fields["num_keypoints"] = int(triple[2] > 0)
        restricted.append(dict(ann, **fields))
    coco = COCO()
    coco.dataset = {
        "images": dataset["images"],
        "categories": dataset["categories"],
        "annotations": restricted,
    }
    with quiet_pycocotools():
        coco.createIndex()
    return coco
