"""CrowdPose's crowd index of an image, and its easy / medium / hard levels.

CrowdPose (Li et al., CVPR 2019) defines the crowd index of an image with n persons as

    CI = (1/n) * sum_i N_b(i) / N_a(i),

N_a(i) = the number of joints of person i, N_b(i) = the number of joints of OTHER persons lying inside
person i's bounding box. The paper leaves the counting rules implicit; the ones below reproduce, to the two
decimals stored there, the ``crowdIndex`` of every real CrowdPose image in this project's samples
(``shared/data/crowdpose`` and ``shared/data/xtcocoapi_examples``; see tests/test_crowd_index.py):

- a joint counts when it is labelled (v > 0, visible or occluded), whatever its kind: all K keypoints,
  head and neck included for CrowdPose (unlike ``num_keypoints``, which excludes them);
- "inside" includes the box edges: x <= px <= x + w and y <= py <= y + h;
- persons without any labelled joint are left out of the mean (n counts the others) and their
  box collects nothing; an image without labelled persons has CI = 0.

CrowdPose's evaluation splits images into easy (CI < 0.2), medium (0.2 <= CI < 0.8) and hard (CI >= 0.8);
values above 1 occur.
"""

from typing import Sequence

import numpy as np

CROWD_LEVELS = ("easy", "medium", "hard")
# Upper bounds (exclusive) of easy and medium, as in CrowdPose's evaluation (xtcocotools 'keypoints_crowd');
# the one definition, also behind the AP easy / medium / hard splits of adaanchor.evaluation.oks_ap.
CROWD_LEVEL_THRESHOLDS = (0.2, 0.8)


def crowd_index(keypoints: np.ndarray, bboxes: np.ndarray) -> float:
    """The crowd index of one image.

    Args:
        keypoints: (P, K, 3) or (P, K*3) float, each joint's (x, y, v) in image px; v > 0 marks a
            labelled joint (coordinates of v = 0 joints are ignored).
        bboxes: (P, 4) float, each person's box (x, y, w, h) in image px, in the same frame as the keypoints.

    Returns:
        CI >= 0 (unrounded); 0.0 for an image without persons or without labelled joints.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    boxes = np.asarray(bboxes, dtype=np.float64)
    num_persons = boxes.shape[0] if boxes.ndim == 2 else 0
    if num_persons == 0:
        return 0.0
    kpts = kpts.reshape(num_persons, -1, 3)
    if boxes.shape != (num_persons, 4):
        raise ValueError(f"crowd_index: bboxes must be ({num_persons}, 4), got {boxes.shape}")
    labelled = kpts[:, :, 2] > 0  # (P, K)
    x, y = kpts[:, :, 0], kpts[:, :, 1]  # (P, K)
    x0, y0 = boxes[:, 0, None, None], boxes[:, 1, None, None]  # (P, 1, 1): the box owner i
    x1, y1 = x0 + boxes[:, 2, None, None], y0 + boxes[:, 3, None, None]
    # inside[i, j, k]: joint k of person j lies inside person i's box and is labelled.
    inside = (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1) & labelled[None]
    inside[np.arange(num_persons), np.arange(num_persons)] = False  # own joints are not interference
    n_a = labelled.sum(axis=1)  # (P,)
    n_b = inside.sum(axis=(1, 2))  # (P,)
    counted = n_a > 0
    if not counted.any():
        return 0.0
    return float(np.mean(n_b[counted] / n_a[counted]))


def crowd_level(ci: float) -> str:
    """The CrowdPose level of a crowd index: "easy" (CI < 0.2), "medium" (0.2 <= CI < 0.8) or "hard"."""
    easy_max, medium_max = CROWD_LEVEL_THRESHOLDS
    if ci < easy_max:
        return "easy"
    if ci < medium_max:
        return "medium"
    return "hard"


def crowd_index_of_annotations(annotations: Sequence[dict]) -> float:
    """The crowd index of one image from its COCO-format annotation dicts ("keypoints", "bbox")."""
    if not annotations:
        return 0.0
    kpts = np.array([a["keypoints"] for a in annotations], dtype=np.float64)
    boxes = np.array([a["bbox"] for a in annotations], dtype=np.float64)
    return crowd_index(kpts, boxes)
