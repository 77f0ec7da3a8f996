"""Load and validate a COCO-format keypoint json into Detectron2-style dataset dicts (framework-free).

Why not Detectron2's ``load_coco_json``: it trusts its input. A keypoint list of the wrong length, a NaN
or a wildly wrong coordinate would surface as a shape error or a silent NaN loss hours into training. Here
every such problem raises :class:`KeypointJsonError` naming the file and the image or annotation id.

Annotation noise that the reference tools (pycocotools, xtcocotools) accept and that occurs in the official
COCO / CrowdPose / OCHuman files is accepted as it is and counted in one summary line per file
(:class:`AnnotationWarts`): labelled keypoints a little outside their image (CrowdPose has x = -1 and
x = width), persons with ``num_keypoints`` 0, crowd regions, images without annotations, ``num_keypoints``
that differs from the labelled count (CrowdPose counts its 12 body joints only; never corrected), and
persons with labelled keypoints whose bbox has zero width or height. For training, a labelled keypoint
outside the image is a target like any truncated one (the model keeps targets within
``MODEL.ADAANCHOR.TARGET_MARGIN``); the loader passes it through unchanged. Only a labelled keypoint more
than one image width / height beyond the image's border (:data:`MAX_OUTSIDE_IMAGE_SIZES`) is an error.
A json without ``categories`` is accepted for training (every annotation becomes category 0).

Coordinates follow Detectron2's convention (as its ``load_coco_json``): the json stores pixel indices and the
dicts returned here hold continuous coordinates, x + 0.5 and y + 0.5, for every keypoint (the
evaluators subtract 0.5 once when writing results). Boxes stay as in the json (XYWH_ABS).
"""

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from adaanchor.utils.json_values import is_finite_number
from adaanchor.utils.json_values import read_json as read_json_file

logger = logging.getLogger(__name__)

BOX_MODE_XYWH_ABS = 1  # detectron2.structures.BoxMode.XYWH_ABS, without importing Detectron2

# A labelled keypoint farther than this many image widths (x) or heights (y) beyond the image's border is
# an error, not annotation noise (the official files' outside keypoints are about a pixel out).
MAX_OUTSIDE_IMAGE_SIZES = 1.0

# What the loader does with the counted annotation noise (the end of its summary line).
TRAINING_TREATMENT = "kept as they are: outside keypoints stay labelled targets, num_keypoints is not corrected"


class KeypointJsonError(ValueError):
    """A keypoint annotation file that cannot be used as it is; the message names file and id."""


@dataclass
class AnnotationWarts:
    """Counts of the annotation noise that the reference tools accept, reported in one line per file.

    Attributes:
        outside_keypoints: labelled (v > 0) keypoints outside their image (continuous x + 0.5 outside
            [0, width] or y + 0.5 outside [0, height], image px).
        outside_annotations: annotations holding at least one of them.
        zero_area_boxes: non-crowd annotations with labelled keypoints whose bbox has width or height 0.
        unlabelled_persons: non-crowd annotations with ``num_keypoints`` 0 (the evaluators ignore them).
        crowd_regions: annotations with ``iscrowd`` 1.
        images_without_annotations: images that no annotation refers to.
        num_keypoints_differs: non-crowd annotations whose ``num_keypoints`` is not their number of
            labelled keypoints (CrowdPose counts its 12 body joints only).
    """

    outside_keypoints: int = 0
    outside_annotations: int = 0
    zero_area_boxes: int = 0
    unlabelled_persons: int = 0
    crowd_regions: int = 0
    images_without_annotations: int = 0
    num_keypoints_differs: int = 0

    def add_annotation(self, ann: Dict[str, Any], outside: int) -> None:
        """Count one validated annotation holding ``outside`` labelled keypoints outside its image."""
        self.outside_keypoints += outside
        self.outside_annotations += outside > 0
        if ann.get("iscrowd", 0):
            self.crowd_regions += 1
            return
        labelled = sum(1 for v in ann["keypoints"][2::3] if v > 0)
        declared = ann.get("num_keypoints", labelled)
        self.unlabelled_persons += declared == 0
        self.num_keypoints_differs += declared != labelled
        self.zero_area_boxes += labelled > 0 and (ann["bbox"][2] == 0 or ann["bbox"][3] == 0)

    def summary(self, source: str, treatment: str) -> Optional[str]:
        """One line naming ``source`` with every non-zero count and ``treatment``; None if nothing counted."""
        parts = []
        if self.outside_keypoints:
            parts.append(
                f"{_count(self.outside_keypoints, 'labelled keypoint')} outside their image in "
                f"{_count(self.outside_annotations, 'annotation')}"
            )
        if self.zero_area_boxes:
            parts.append(f"{_count(self.zero_area_boxes, 'person')} with labelled keypoints and a zero-area bbox")
        if self.unlabelled_persons:
            parts.append(f"{_count(self.unlabelled_persons, 'person')} with num_keypoints 0")
        if self.crowd_regions:
            parts.append(_count(self.crowd_regions, "crowd region"))
        if self.images_without_annotations:
            parts.append(f"{_count(self.images_without_annotations, 'image')} without annotations")
        if self.num_keypoints_differs:
            parts.append(
                f"{_count(self.num_keypoints_differs, 'annotation')} whose num_keypoints differs from "
                "their count of labelled keypoints"
            )
        return f"{source}: {'; '.join(parts)} ({treatment})" if parts else None

    def log(self, source: str, treatment: str, log: logging.Logger) -> None:
        """Log the summary once: a warning if keypoints lie outside or boxes have zero area, else info."""
        line = self.summary(source, treatment)
        if line is not None:
            log.log(logging.WARNING if self.outside_keypoints or self.zero_area_boxes else logging.INFO, line)


def read_json(json_file: str) -> Dict[str, Any]:
    """Read a COCO-format json; a missing, unreadable or non-object file raises KeypointJsonError."""
    try:
        data = read_json_file(json_file, "annotation")
    except (FileNotFoundError, ValueError) as e:
        raise KeypointJsonError(str(e)) from None
    if not isinstance(data, dict):
        raise KeypointJsonError(f"{json_file}: expected a JSON object with 'images' and 'annotations'")
    return data


def validate_keypoint_json(data: Dict[str, Any], json_file: str, num_keypoints: int) -> AnnotationWarts:
    """Check the structure a keypoint dataset needs; raise KeypointJsonError naming file and id.

    Checks: 'images' and 'annotations' lists present; at least one image; unique image ids with
    positive width/height; every annotation refers to a known image, has a bbox of 4 finite numbers with
    width, height >= 0, an optional ``num_keypoints`` that is a non-negative integer and, unless it is a
    crowd region, a keypoint list that passes :func:`check_ground_truth_keypoints` for its image's size.

    Returns:
        the counts of accepted annotation noise (:class:`AnnotationWarts`).
    """
    for key in ("images", "annotations"):
        if key not in data:
            raise KeypointJsonError(f"{json_file}: no '{key}' field (keys: {sorted(data)})")
        if not isinstance(data[key], list):
            raise KeypointJsonError(f"{json_file}: '{key}' must be a list")
    if not data["images"]:
        raise KeypointJsonError(f"{json_file}: the dataset is empty (no images)")
    sizes = _image_sizes(data["images"], json_file)
    warts = AnnotationWarts()
    annotated = set()
    for ann in data["annotations"]:
        ann_id, img_id = ann.get("id"), ann.get("image_id")
        where = f"{json_file}: annotation id {ann_id} (image id {img_id})"
        if img_id not in sizes:
            raise KeypointJsonError(f"{where}: refers to an unknown image id")
        annotated.add(img_id)
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(is_finite_number(v) for v in bbox)):
            raise KeypointJsonError(f"{where}: bbox must be 4 finite numbers, got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise KeypointJsonError(f"{where}: bbox [x, y, w, h] has a negative width or height: {bbox!r}")
        num_labelled = ann.get("num_keypoints", 0)
        if not (isinstance(num_labelled, int) and not isinstance(num_labelled, bool) and num_labelled >= 0):
            raise KeypointJsonError(f"{where}: 'num_keypoints' must be a non-negative integer, got {num_labelled!r}")
        outside = 0
        if not ann.get("iscrowd", 0):  # crowd regions carry a mask, not keypoints
            outside = check_ground_truth_keypoints(ann.get("keypoints"), num_keypoints, where, sizes[img_id])
        warts.add_annotation(ann, outside)
    warts.images_without_annotations = len(sizes) - len(annotated)
    return warts


def _image_sizes(images: List[Any], json_file: str) -> Dict[Any, Tuple[float, float]]:
    """Image id -> (width, height) in image px; KeypointJsonError for a missing id, file name or size."""
    sizes = {}
    for img in images:
        img_id = img.get("id")
        if img_id is None or "file_name" not in img:
            raise KeypointJsonError(f"{json_file}: image entry without 'id' or 'file_name': {img}")
        if img_id in sizes:
            raise KeypointJsonError(f"{json_file}: duplicate image id {img_id}")
        w, h = img.get("width"), img.get("height")
        if not (is_finite_number(w) and is_finite_number(h) and w > 0 and h > 0):
            raise KeypointJsonError(f"{json_file}: image id {img_id}: invalid width/height {w!r}/{h!r}")
        sizes[img_id] = (w, h)
    return sizes


def check_ground_truth_keypoints(
    keypoints: Any, num_keypoints: int, where: str, image_size: Optional[Tuple[float, float]] = None
) -> int:
    """Check one annotation's keypoint list; return how many labelled keypoints lie outside the image.

    Rules (KeypointJsonError prefixed with ``where``): exactly 3 x ``num_keypoints`` finite numbers;
    visibility in {0, 1, 2}; with ``image_size`` (width, height, image px), a labelled keypoint (v > 0) at
    most MAX_OUTSIDE_IMAGE_SIZES image widths / heights beyond the image's border. Coordinates are pixel
    indices, so the image spans -0.5 to width - 0.5 (continuous 0 to width); a labelled keypoint outside
    that but within the bound is counted, not refused (pycocotools and xtcocotools score it as it is).
    Shared by the dataset loader and the evaluator's ground-truth validation.
    """
    expected = 3 * num_keypoints
    if not isinstance(keypoints, (list, tuple)) or len(keypoints) != expected:
        n = len(keypoints) if isinstance(keypoints, (list, tuple)) else repr(keypoints)[:50]
        raise KeypointJsonError(
            f"{where}: 'keypoints' has {n} numbers, expected 3 x {num_keypoints} = {expected} (x, y, visibility)"
        )
    outside = 0
    for k in range(num_keypoints):
        x, y, v = keypoints[3 * k : 3 * k + 3]
        if not (is_finite_number(x) and is_finite_number(y) and is_finite_number(v)):
            raise KeypointJsonError(f"{where}: keypoint {k} is not finite: ({x}, {y}, {v})")
        if v not in (0, 1, 2):
            raise KeypointJsonError(f"{where}: keypoint {k} has visibility {v}, expected 0, 1 or 2")
        if v > 0 and image_size is not None:
            outside += _is_outside_image(x, y, image_size, f"{where}: keypoint {k}")
    return outside


def _is_outside_image(x: float, y: float, image_size: Tuple[float, float], where: str) -> bool:
    """Whether pixel-index (x, y) lies outside the image; KeypointJsonError if beyond the bound."""
    width, height = image_size
    cx, cy = x + 0.5, y + 0.5  # continuous image px
    margin_x, margin_y = MAX_OUTSIDE_IMAGE_SIZES * width, MAX_OUTSIDE_IMAGE_SIZES * height
    if not (-margin_x <= cx <= width + margin_x and -margin_y <= cy <= height + margin_y):
        raise KeypointJsonError(
            f"{where} at ({x}, {y}) lies more than {MAX_OUTSIDE_IMAGE_SIZES:g} image width/height outside "
            f"the {width} x {height} image (annotation noise is a few pixels)"
        )
    return not (0 <= cx <= width and 0 <= cy <= height)


def load_keypoint_json(
    json_file: str,
    image_root: str,
    num_keypoints: int,
    *,
    dataset_name: Optional[str] = None,
    missing_images: str = "error",
) -> List[Dict[str, Any]]:
    """Load a validated keypoint json as a list of Detectron2 dataset dicts.

    Args:
        json_file: COCO-format keypoint annotations.
        image_root: folder the images' ``file_name`` is relative to.
        num_keypoints: K, the number of keypoints every non-crowd annotation must carry.
        dataset_name: used in messages only.
        missing_images: "error" (evaluation splits: skipping would bias the results) or "skip"
            (training splits: the images are reported in one warning and left out).

    Annotation noise that the reference tools accept is kept as it is and logged in one summary line
    (see the module docstring); labelled keypoints outside the image stay labelled targets.

    Returns:
        One dict per image: ``file_name``, ``image_id``, ``height``, ``width``, optional ``crowd_index``
        and ``annotations``: dicts with ``id``, ``bbox`` (XYWH, image px), ``bbox_mode``, ``category_id``
        (0), ``iscrowd``, ``keypoints`` (3K floats, x/y + 0.5, continuous image px), ``num_keypoints``,
        ``area`` and ``segmentation`` when present.
    """
    if missing_images not in ("error", "skip"):
        raise ValueError(f"missing_images must be 'error' or 'skip', got {missing_images!r}")
    data = read_json(json_file)
    warts = validate_keypoint_json(data, json_file, num_keypoints)
    warts.log(json_file, TRAINING_TREATMENT, logger)
    anns_by_image: Dict[Any, List[Dict[str, Any]]] = {}
    for ann in data["annotations"]:
        anns_by_image.setdefault(ann["image_id"], []).append(_to_detectron2_annotation(ann))

    dataset_dicts, missing = [], []
    for img in data["images"]:
        file_name = os.path.join(image_root, img["file_name"])
        if not os.path.isfile(file_name):
            missing.append((img["id"], file_name))
            continue
        record = {
            "file_name": file_name,
            "image_id": img["id"],
            "height": int(img["height"]),
            "width": int(img["width"]),
            "annotations": anns_by_image.get(img["id"], []),
        }
        if "crowdIndex" in img:
            record["crowd_index"] = float(img["crowdIndex"])
        dataset_dicts.append(record)

    name = dataset_name or json_file
    if missing:
        listed = ", ".join(f"id {i}: {f}" for i, f in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        if missing_images == "error":
            raise KeypointJsonError(f"{json_file}: {len(missing)} image file(s) missing ({listed}{more})")
        logger.warning(f"Dataset '{name}': skipping {len(missing)} image(s) whose file is missing ({listed}{more})")
    if not dataset_dicts:
        raise KeypointJsonError(f"{json_file}: the dataset is empty (no image file found under {image_root})")
    num_instances = sum(len(r["annotations"]) for r in dataset_dicts)
    logger.info(f"Loaded {len(dataset_dicts)} images with {num_instances} annotations from {json_file}")
    return dataset_dicts


def _to_detectron2_annotation(ann: Dict[str, Any]) -> Dict[str, Any]:
    out = {
        "id": ann.get("id"),
        "bbox": [float(v) for v in ann["bbox"]],
        "bbox_mode": BOX_MODE_XYWH_ABS,
        "category_id": 0,
        "iscrowd": int(ann.get("iscrowd", 0)),
    }
    kpts = ann.get("keypoints")
    if kpts is not None and not out["iscrowd"]:
        shifted = [float(v) for v in kpts]
        shifted[0::3] = [x + 0.5 for x in shifted[0::3]]
        shifted[1::3] = [y + 0.5 for y in shifted[1::3]]
        out["keypoints"] = shifted
        out["num_keypoints"] = int(ann.get("num_keypoints", sum(1 for v in kpts[2::3] if v > 0)))
    for key in ("area", "segmentation"):
        if key in ann:
            out[key] = ann[key]
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
