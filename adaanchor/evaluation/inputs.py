"""Loading and validating keypoint ground truth and predictions (COCO json formats), framework-free.

Everything the evaluators read goes through here, so that a malformed file fails with the file and the
image or annotation id named, instead of deep inside pycocotools or, worse, with a silently biased result.
Inputs are copied: pycocotools writes into the annotation dicts it evaluates, and the caller's data must
not change (nor may a result depend on what was evaluated before).

The ground truth is scored exactly as pycocotools / xtcocotools score it, never altered: annotation noise
that they accept and that occurs in the official COCO / CrowdPose / OCHuman files (labelled keypoints a
little outside their image, persons with ``num_keypoints`` 0, crowd regions, images without annotations,
CrowdPose's ``num_keypoints`` counting 12 of its 14 joints, zero-area boxes) is accepted and counted in one
summary line per load (adaanchor.data.keypoint_json.AnnotationWarts). What stays an error: what would make
pycocotools fail or a result meaningless (missing fields, unknown ids, non-finite numbers, wrong keypoint
list lengths, visibility outside {0, 1, 2}, a labelled keypoint more than one image width / height
beyond its image's border).

Coordinates are original-image px in COCO's convention (pixel indices, as in the annotation files; not
Detectron2's +0.5 continuous convention).
"""

import contextlib
import copy
import io
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools.coco import COCO

from adaanchor.data.keypoint_json import AnnotationWarts, check_ground_truth_keypoints
from adaanchor.utils.json_values import is_finite_number, is_id, is_number, read_json

logger = logging.getLogger(__name__)

# How each supported dataset is evaluated: COCO's protocol (pycocotools, object scale = annotation area)
# or CrowdPose's (object scale = 0.53 x bbox area, AP easy / medium / hard by crowd index).
PROTOCOLS = {"coco": "coco", "ochuman": "coco", "crowdpose": "crowdpose"}

PathLike = Union[str, os.PathLike]

# What the evaluator does with the counted annotation noise (the end of its summary line).
EVALUATION_TREATMENT = "scored as they are, as pycocotools / xtcocotools score them"


@contextlib.contextmanager
def quiet_pycocotools():
    """Capture what pycocotools prints (progress lines) and log it at DEBUG level instead."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    if buffer.getvalue().strip():
        logger.debug(buffer.getvalue().rstrip())


def protocol_of(dataset: str) -> str:
    """ "coco" or "crowdpose" for a dataset name in PROTOCOLS; ValueError listing the known names."""
    try:
        return PROTOCOLS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset '{dataset}' for evaluation; known: {sorted(PROTOCOLS)}") from None


# Why pycocotools needs a top-level list, where the reason is not obvious.
_WHY_NEEDED = {
    "categories": " (pycocotools copies it into the results and evaluates per category; add e.g. "
    '[{"id": 1, "name": "person"}] with the annotations\' category_id)'
}


class GroundTruth:
    """Validated keypoint ground truth.

    Attributes:
        coco: a pycocotools COCO index over a private copy of the annotations.
        source: where it came from (the file path, or a description), for error messages.
        num_keypoints: K, the length of every annotation's keypoint list divided by 3.
        protocol: "coco" or "crowdpose" (what was validated: "area" for COCO, image "crowdIndex" for CrowdPose).
    """

    def __init__(self, coco: COCO, source: str, num_keypoints: int, protocol: str):
        self.coco = coco
        self.source = source
        self.num_keypoints = num_keypoints
        self.protocol = protocol

    def category_keypoint_names(self) -> Optional[List[str]]:
        """The ``keypoints`` names of the first category when there are K of them, else None."""
        for cat in self.coco.dataset["categories"]:
            names = cat.get("keypoints")
            if isinstance(names, list) and len(names) == self.num_keypoints:
                return [str(n) for n in names]
        return None


def load_ground_truth(gt: Union[PathLike, Dict, COCO, GroundTruth], num_keypoints: int, protocol: str) -> GroundTruth:
    """Read and validate keypoint ground truth.

    Args:
        gt: a COCO-format json path, its loaded dict, a pycocotools COCO object, or a GroundTruth
            (returned as it is after checking K and protocol agree).
        num_keypoints: K, the number of keypoints every annotation must carry (3K numbers).
        protocol: "coco" (each annotation needs ``area``) or "crowdpose" (each image needs ``crowdIndex``).

    Checks (ValueError naming the source and the image / annotation id): top-level ``images``,
    ``annotations`` and ``categories`` lists; at least one image; unique positive integer image and
    annotation ids (pycocotools' matching uses id 0 for "unmatched"); every annotation on a known image
    and category, with ``iscrowd``, ``num_keypoints`` (a non-negative integer), a finite ``bbox`` of 4
    with non-negative size, 3K keypoint numbers that are finite with visibility in {0, 1, 2} and, on an
    image with a positive ``width`` and ``height`` (pycocotools needs none), labelled keypoints at most one
    image width / height beyond the image's border; and at least one person that is evaluated (not
    crowd, num_keypoints > 0). Accepted noise is counted and logged once (see the module docstring).
    """
    if protocol not in ("coco", "crowdpose"):
        raise ValueError(f"unknown evaluation protocol '{protocol}'; known: coco, crowdpose")
    if isinstance(gt, GroundTruth):
        if gt.num_keypoints != num_keypoints or gt.protocol != protocol:
            raise ValueError(
                f"ground truth {gt.source} was validated for {gt.num_keypoints} keypoints and the "
                f"'{gt.protocol}' protocol, not {num_keypoints} keypoints and '{protocol}'"
            )
        return gt
    if isinstance(gt, COCO):
        source, dataset = "<pycocotools COCO object>", copy.deepcopy(gt.dataset)
    elif isinstance(gt, dict):
        source, dataset = "<ground-truth dict>", copy.deepcopy(gt)
    elif isinstance(gt, (str, os.PathLike)):
        source, dataset = os.fspath(gt), read_json(gt, "ground-truth")
    else:
        raise TypeError(f"ground truth must be a json path, a dict or a pycocotools COCO, got {type(gt)}")
    warts = _validate_ground_truth(dataset, source, num_keypoints, protocol)
    warts.log(source, EVALUATION_TREATMENT, logger)
    coco = COCO()
    coco.dataset = dataset
    with quiet_pycocotools():
        coco.createIndex()
    return GroundTruth(coco, source, num_keypoints, protocol)


def _validate_ground_truth(dataset: Any, source: str, num_keypoints: int, protocol: str) -> AnnotationWarts:
    if not isinstance(dataset, dict):
        raise ValueError(f"ground truth {source}: expected a json object, got {type(dataset).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"ground truth {source} has no '{key}' list{_WHY_NEEDED.get(key, '')}")
        if not isinstance(dataset[key], list):
            raise ValueError(f"ground truth {source}: '{key}' must be a list")
    if not dataset["images"]:
        raise ValueError(f"ground truth {source} is empty: it has no images")

    image_sizes = {}
    for image in dataset["images"]:
        image_id = image.get("id") if isinstance(image, dict) else None
        if not is_id(image_id) or image_id <= 0:
            raise ValueError(f"ground truth {source}: image {image!r:.200} has no positive integer 'id'")
        if image_id in image_sizes:
            raise ValueError(f"ground truth {source}: image id {image_id} appears twice")
        image_sizes[image_id] = _image_size(image)
        if protocol == "crowdpose" and not is_finite_number(image.get("crowdIndex")):
            raise ValueError(
                f"ground truth {source}: image id {image_id} has no finite 'crowdIndex' "
                "(CrowdPose evaluation splits images into easy / medium / hard by it)"
            )
    category_ids = {c.get("id") for c in dataset["categories"] if isinstance(c, dict)}
    if not category_ids:
        raise ValueError(f"ground truth {source} has no categories")

    annotation_ids = set()
    evaluated_persons = 0
    warts = AnnotationWarts()
    for ann in dataset["annotations"]:
        if not isinstance(ann, dict):
            raise ValueError(f"ground truth {source}: annotation {ann!r:.200} is not an object")
        ann_id = ann.get("id")
        if not is_id(ann_id) or ann_id <= 0:
            raise ValueError(
                f"ground truth {source}: annotation {ann_id!r} on image {ann.get('image_id')!r} needs a "
                "positive integer 'id' (pycocotools' matching uses id 0 for 'unmatched')"
            )
        where = f"ground truth {source}: annotation id {ann_id} (image id {ann.get('image_id')!r})"
        if ann_id in annotation_ids:
            raise ValueError(f"{where}: the annotation id appears twice")
        annotation_ids.add(ann_id)
        if ann.get("image_id") not in image_sizes:
            raise ValueError(f"{where}: image id not among the ground truth's images")
        if ann.get("category_id") not in category_ids:
            raise ValueError(f"{where}: category_id {ann.get('category_id')!r} not among the categories")
        if ann.get("iscrowd") not in (0, 1, False, True):
            raise ValueError(f"{where}: 'iscrowd' must be 0 or 1, got {ann.get('iscrowd')!r}")
        num_labelled = ann.get("num_keypoints")
        if not is_id(num_labelled) or num_labelled < 0:
            raise ValueError(f"{where}: 'num_keypoints' must be a non-negative integer, got {num_labelled!r}")
        bbox = ann.get("bbox")
        if not (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(is_finite_number(b) for b in bbox)
            and bbox[2] >= 0
            and bbox[3] >= 0
        ):
            raise ValueError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], w, h >= 0, got {bbox!r}")
        if protocol == "coco" and not (is_finite_number(ann.get("area")) and ann["area"] >= 0):
            raise ValueError(
                f"{where}: 'area' must be a finite non-negative number (the OKS object scale), "
                f"got {ann.get('area')!r}"
            )
        outside = check_ground_truth_keypoints(ann.get("keypoints"), num_keypoints, where, image_sizes[ann["image_id"]])
        warts.add_annotation(ann, outside)
        if not ann["iscrowd"] and num_labelled > 0:
            evaluated_persons += 1
    if evaluated_persons == 0:
        raise ValueError(
            f"ground truth {source} has no person to evaluate (every annotation is a crowd region or "
            "has num_keypoints == 0): AP would be undefined"
        )
    annotated = {ann["image_id"] for ann in dataset["annotations"]}
    warts.images_without_annotations = len(image_sizes.keys() - annotated)
    return warts


def _image_size(image: Dict) -> Optional[Tuple[float, float]]:
    """(width, height) in image px if the image entry has positive finite ones, else None."""
    width, height = image.get("width"), image.get("height")
    if is_finite_number(width) and is_finite_number(height) and width > 0 and height > 0:
        return width, height
    return None


def _validate_prediction_keypoints(keypoints: Any, num_keypoints: int, where: str) -> None:
    """3K finite numbers (x, y, confidence per keypoint); any position, inside the image or not."""
    if not isinstance(keypoints, (list, tuple)):
        raise ValueError(f"{where}: 'keypoints' must be a list of 3 x {num_keypoints} numbers, got {keypoints!r:.100}")
    if len(keypoints) != 3 * num_keypoints:
        raise ValueError(
            f"{where}: 'keypoints' has {len(keypoints)} numbers, expected 3 x {num_keypoints} = "
            f"{3 * num_keypoints} (x, y, score per keypoint)"
        )
    if not all(is_number(v) for v in keypoints):
        raise ValueError(f"{where}: 'keypoints' must hold numbers only")
    values = np.asarray(keypoints, dtype=np.float64).reshape(num_keypoints, 3)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise ValueError(f"{where}: keypoint {int(bad[0])} is not finite: {values[bad[0]].tolist()}")


def load_predictions(predictions: Union[PathLike, Sequence[Dict]], gt: GroundTruth) -> List[Dict]:
    """Read and validate COCO keypoint results against the ground truth; return fresh dicts.

    Args:
        predictions: a json path, or a list of dicts, each with ``image_id`` (of an image in ``gt``),
            ``category_id`` (of a category in ``gt``), ``keypoints`` (3K finite numbers: x, y in
            original-image px, pixel-index convention, then the keypoint's confidence) and ``score``
            (the pose's finite confidence); ``bbox`` [x, y, w, h] either on every prediction or on none
            (pycocotools then takes the detection's area from it, else from the keypoints' extent).
        gt: the validated ground truth.

    Returns:
        new dicts with only those keys (nothing else is copied, the input is not modified).
        Predicted coordinates may be negative (a joint predicted just outside the image is a legitimate
        output and OKS is defined for it); NaN or infinite values are rejected.
    """
    if isinstance(predictions, (str, os.PathLike)):
        source = os.fspath(predictions)
        predictions = read_json(predictions, "predictions")
    else:
        source = "<predictions list>"
    if not isinstance(predictions, list):
        raise ValueError(f"predictions {source}: expected a json list of results, got {type(predictions).__name__}")
    image_ids = set(gt.coco.getImgIds())
    category_ids = set(gt.coco.getCatIds())
    with_bbox = None
    results = []
    for index, pred in enumerate(predictions):
        if not isinstance(pred, dict):
            raise ValueError(f"predictions {source}: entry {index} is not an object")
        where = f"predictions {source}: entry {index} (image id {pred.get('image_id')!r})"
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in pred:
                raise ValueError(f"{where} has no '{key}'")
        if pred["image_id"] not in image_ids:
            raise ValueError(f"{where}: image id {pred['image_id']!r} is not in the ground truth {gt.source}")
        if pred["category_id"] not in category_ids:
            raise ValueError(
                f"{where}: category_id {pred['category_id']!r} is not in the ground truth {gt.source} "
                f"(categories {sorted(category_ids)})"
            )
        if not is_finite_number(pred["score"]):
            raise ValueError(f"{where}: 'score' must be a finite number, got {pred['score']!r}")
        _validate_prediction_keypoints(pred["keypoints"], gt.num_keypoints, where)
        result = {
            "image_id": pred["image_id"],
            "category_id": pred["category_id"],
            "keypoints": [float(v) for v in pred["keypoints"]],
            "score": float(pred["score"]),
        }
        has_bbox = "bbox" in pred
        if with_bbox is None:
            with_bbox = has_bbox
        elif has_bbox != with_bbox:
            raise ValueError(f"{where}: 'bbox' must be on every prediction or on none (entry 0 differs)")
        if has_bbox:
            bbox = pred["bbox"]
            if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(is_finite_number(b) for b in bbox)):
                raise ValueError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
            result["bbox"] = [float(b) for b in bbox]
        results.append(result)
    return results


def load_results_index(predictions: List[Dict], gt: GroundTruth) -> COCO:
    """A pycocotools results index (``COCO.loadRes``) over the output of :func:`load_predictions`.

    Takes ownership of the dicts (loadRes adds ``id``, ``area`` and, without boxes, ``bbox`` to them).
    An empty list gives an index without results (loadRes itself fails on one).
    """
    if not predictions:
        res = COCO()
        res.dataset = {
            "images": list(gt.coco.dataset["images"]),
            "categories": copy.deepcopy(gt.coco.dataset["categories"]),
            "annotations": [],
        }
        with quiet_pycocotools():
            res.createIndex()
        return res
    with quiet_pycocotools():
        return gt.coco.loadRes(predictions)
