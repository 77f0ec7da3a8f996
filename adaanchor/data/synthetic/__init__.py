"""The synthetic crowded-people dataset, AdaAnchor's embedded default (framework-free: numpy, OpenCV, tqdm).

``python -m adaanchor.data.synthetic --out DIR --num-images N --seed S --keypoints {crowdpose,coco}``
writes ``DIR/images/*.jpg`` and ``DIR/annotations.json`` in COCO keypoint format (see dataset.py for the
fields), deterministically: the same arguments give byte-identical files, whatever ``--workers``.

Each image shows a group of articulated people (2D kinematic tree, joint-angle limits, 15-90% of the image
height) in depth order over a textured background, with occluder objects in front of some of them and
truncation at the image borders. Left/right is shown by each person's facing (a face from the front, hair
from behind), never by colour, so horizontal flips stay consistent.

Coordinate convention: keypoints are in COCO's pixel-index convention. A joint rendered at the continuous
image position X (pixel i covers [i, i + 1)) is written as X - 0.5; Detectron2 adds the 0.5 back when it
loads the json. Boxes are continuous coordinates, as in COCO.

Visibility is computed from the rendering (an owner buffer): v = 2 visible; v = 1 inside the image but
covered by another person or an occluder in front; v = 0 outside the image, stored as (0, 0, 0).
Self-occlusion does not count, except that the nose and eyes of a person seen from behind are v = 1.
"""

from .cache import default_cache_dir, ensure_synthetic_dataset, is_complete_copy, read_dataset_record
from .dataset import (
    GENERATOR_VERSION,
    KEYPOINT_CHOICES,
    PERSON_CATEGORY_ID,
    format_summary,
    generate_synthetic_dataset,
)
from .scene import RenderedImage, RenderedPerson, render_image

__all__ = [
    "GENERATOR_VERSION",
    "KEYPOINT_CHOICES",
    "PERSON_CATEGORY_ID",
    "RenderedImage",
    "RenderedPerson",
    "default_cache_dir",
    "ensure_synthetic_dataset",
    "format_summary",
    "generate_synthetic_dataset",
    "is_complete_copy",
    "read_dataset_record",
    "render_image",
]
