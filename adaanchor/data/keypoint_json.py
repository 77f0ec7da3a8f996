"""Load and validate a COCO-format keypoint json into Detectron2-style dataset dicts (framework-free).

Why not Detectron2's ``load_coco_json``: it trusts its input. A keypoint list of the wrong length, a NaN
or a negative coordinate would surface as a shape error or a silent NaN loss hours into training. Here
every problem raises :class:`KeypointJsonError` naming the file and the image or annotation id.

Coordinates follow Detectron2's convention (DESIGN.md section 3): the json stores pixel indices and the
dicts returned here hold continuous coordinates, x + 0.5 and y + 0.5, for every keypoint (the
evaluators subtract 0.5 once when writing results). Boxes stay as in the json (XYWH_ABS).
"""

import json
import logging
import math
import os
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

BOX_MODE_XYWH_ABS = 1  # detectron2.structures.BoxMode.XYWH_ABS, without importing Detectron2


class KeypointJsonError(ValueError):
    """A keypoint annotation file that cannot be used as it is; the message names file and id."""


def read_json(json_file: str) -> Dict[str, Any]:
    """Read a COCO-format json; a missing, unreadable or non-object file raises KeypointJsonError."""
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise KeypointJsonError(f"{json_file}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KeypointJsonError(f"{json_file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise KeypointJsonError(f"{json_file}: expected a JSON object with 'images' and 'annotations'")
    return data


def validate_keypoint_json(data: Dict[str, Any], json_file: str, num_keypoints: int) -> None:
    """Check the structure a keypoint dataset needs; raise KeypointJsonError naming file and id.

    Checks: 'images' and 'annotations' lists present; at least one image; unique image ids with
    positive width/height; every annotation refers to a known image, has a 4-number bbox, and — unless it
    is a crowd region — a keypoint list of exactly 3 x ``num_keypoints`` finite numbers with visibility in
    {0, 1, 2} and, where labelled (v > 0), coordinates inside the image's left/top edge: pixel-index
    coordinates down to -0.5 are the first pixel's left half (continuous 0 to 0.5) and are valid.
    """
    for key in ("images", "annotations"):
        if key not in data:
            raise KeypointJsonError(f"{json_file}: no '{key}' field (keys: {sorted(data)})")
        if not isinstance(data[key], list):
            raise KeypointJsonError(f"{json_file}: '{key}' must be a list")
    if not data["images"]:
        raise KeypointJsonError(f"{json_file}: the dataset is empty (no images)")
    sizes = {}
    for img in data["images"]:
        img_id = img.get("id")
        if img_id is None or "file_name" not in img:
            raise KeypointJsonError(f"{json_file}: image entry without 'id' or 'file_name': {img}")
        if img_id in sizes:
            raise KeypointJsonError(f"{json_file}: duplicate image id {img_id}")
        w, h = img.get("width"), img.get("height")
        if not (isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0):
            raise KeypointJsonError(f"{json_file}: image id {img_id}: invalid width/height {w!r}/{h!r}")
        sizes[img_id] = (w, h)
    for ann in data["annotations"]:
        ann_id, img_id = ann.get("id"), ann.get("image_id")
        where = f"{json_file}: annotation id {ann_id} (image id {img_id})"
        if img_id not in sizes:
            raise KeypointJsonError(f"{where}: refers to an unknown image id")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_finite(v) for v in bbox)):
            raise KeypointJsonError(f"{where}: bbox must be 4 finite numbers, got {bbox!r}")
        if ann.get("iscrowd", 0):
            continue  # crowd regions carry a mask, not keypoints
        check_ground_truth_keypoints(ann.get("keypoints"), num_keypoints, where)


def check_ground_truth_keypoints(keypoints: Any, num_keypoints: int, where: str) -> None:
    """Check one annotation's keypoint list; raise KeypointJsonError prefixed with ``where``.

    Rules: exactly 3 x ``num_keypoints`` finite numbers; visibility in {0, 1, 2}; a labelled keypoint
    (v > 0) not left of or above the image. Coordinates are pixel indices, so down to -0.5 is the first
    pixel's left/top half (continuous 0 to 0.5) and valid; below that is outside the image.
    Shared by the dataset loader and the evaluator's ground-truth validation.
    """
    expected = 3 * num_keypoints
    if not isinstance(keypoints, (list, tuple)) or len(keypoints) != expected:
        n = len(keypoints) if isinstance(keypoints, (list, tuple)) else repr(keypoints)[:50]
        raise KeypointJsonError(
            f"{where}: 'keypoints' has {n} numbers, expected 3 x {num_keypoints} = {expected} (x, y, visibility)"
        )
    for k in range(num_keypoints):
        x, y, v = keypoints[3 * k : 3 * k + 3]
        if not (_finite(x) and _finite(y) and _finite(v)):
            raise KeypointJsonError(f"{where}: keypoint {k} is not finite: ({x}, {y}, {v})")
        if v not in (0, 1, 2):
            raise KeypointJsonError(f"{where}: keypoint {k} has visibility {v}, expected 0, 1 or 2")
        if v > 0 and (x < -0.5 or y < -0.5):
            raise KeypointJsonError(f"{where}: keypoint {k} has a negative coordinate ({x}, {y}) outside the image")


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

    Returns:
        One dict per image: ``file_name``, ``image_id``, ``height``, ``width``, optional ``crowd_index``
        and ``annotations``: dicts with ``id``, ``bbox`` (XYWH, image px), ``bbox_mode``, ``category_id``
        (0), ``iscrowd``, ``keypoints`` (3K floats, x/y + 0.5, continuous image px), ``num_keypoints``,
        ``area`` and ``segmentation`` when present.
    """
    if missing_images not in ("error", "skip"):
        raise ValueError(f"missing_images must be 'error' or 'skip', got {missing_images!r}")
    data = read_json(json_file)
    validate_keypoint_json(data, json_file, num_keypoints)
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


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
