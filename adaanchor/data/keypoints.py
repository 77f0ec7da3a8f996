"""Keypoint metadata (names, flip map, skeleton, OKS sigmas) for the supported skeletons.

Framework-free: the synthetic dataset, the evaluators and the Detectron2 dataset registration all read
these. A :class:`KeypointSpec` is validated when it is built, so a broken custom skeleton fails at
registration with the dataset and field named, not deep inside training.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

COCO_KEYPOINT_NAMES = (
    "nose",
    "left_eye", "right_eye",
    "left_ear", "right_ear",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)  # fmt: skip

# COCO's OKS sigmas (cocoapi), in the order of COCO_KEYPOINT_NAMES.
COCO_OKS_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip

# COCO's skeleton (the "skeleton" field of its json, 1-based there), as name pairs.
COCO_SKELETON = (
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"),
    ("right_ankle", "right_knee"), ("right_knee", "right_hip"),
    ("left_hip", "right_hip"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
    ("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"),
    ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
)  # fmt: skip

CROWDPOSE_KEYPOINT_NAMES = (
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
    "head", "neck",
)  # fmt: skip

# CrowdPose's sigmas (its official cocoapi fork): COCO's body sigmas, and 0.079 for head and neck.
CROWDPOSE_OKS_SIGMAS = (
    0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089, 0.079, 0.079,
)  # fmt: skip

# CrowdPose's own 15-link skeleton. The "skeleton" field of CrowdPose's json is a copy of COCO's
# 17-keypoint skeleton and indexes past 14 keypoints: never read it.
CROWDPOSE_SKELETON = (
    ("head", "neck"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
)  # fmt: skip

# CrowdPose's `num_keypoints` counts the 12 body joints only (head and neck excluded).
CROWDPOSE_NUM_KEYPOINTS_EXCLUDES = ("head", "neck")

# Colours for drawing links (R, G, B): left side warm, right side cool, the centre line grey.
_LEFT, _RIGHT, _CENTRE = (255, 128, 0), (0, 160, 255), (160, 160, 160)


def _side_colour(a: str, b: str) -> Tuple[int, int, int]:
    if a.startswith("left") and b.startswith("left"):
        return _LEFT
    if a.startswith("right") and b.startswith("right"):
        return _RIGHT
    return _CENTRE


def flip_map_from_names(names: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    """Pairs ("left_x", "right_x") for every name that has a left/right twin in ``names``."""
    pairs = []
    for name in names:
        if name.startswith("left_"):
            twin = "right_" + name[len("left_") :]
            if twin in names:
                pairs.append((name, twin))
    return tuple(pairs)


@dataclass(frozen=True)
class KeypointSpec:
    """The keypoint metadata of one skeleton.

    Attributes:
        name: the skeleton's (or dataset's) name, used in error messages.
        keypoint_names: K names, in the order of the annotation's keypoint list.
        flip_map: pairs of names swapped by a horizontal flip; every name appears at most once and
            names without a twin (nose, head, neck) map to themselves implicitly.
        skeleton: links between keypoints, as pairs of names or of 0-based indices.
        oks_sigmas: K per-keypoint OKS sigmas (unitless, relative to the object scale).
        num_keypoints_excludes: names not counted in an annotation's ``num_keypoints`` (CrowdPose).
    """

    name: str
    keypoint_names: Tuple[str, ...]
    flip_map: Tuple[Tuple[str, str], ...]
    skeleton: Tuple[Tuple[str, str], ...]
    oks_sigmas: Tuple[float, ...]
    num_keypoints_excludes: Tuple[str, ...] = ()

    def __post_init__(self):
        validate_keypoint_metadata(self.name, self.keypoint_names, self.flip_map, self.skeleton, self.oks_sigmas)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_indices(self) -> List[int]:
        """K indices: keypoint i of a flipped image is keypoint ``flip_indices[i]`` of the original."""
        index = {n: i for i, n in enumerate(self.keypoint_names)}
        out = list(range(self.num_keypoints))
        for a, b in self.flip_map:
            out[index[a]], out[index[b]] = index[b], index[a]
        return out

    @property
    def skeleton_indices(self) -> List[Tuple[int, int]]:
        """The skeleton as 0-based index pairs (links may be given as names or as indices)."""
        index = {n: i for i, n in enumerate(self.keypoint_names)}
        return [
            tuple(end if isinstance(end, (int, np.integer)) else index[end] for end in link[:2])
            for link in self.skeleton
        ]

    @property
    def skeleton_names(self) -> List[Tuple[str, str]]:
        """The skeleton as pairs of keypoint names."""
        return [(self.keypoint_names[a], self.keypoint_names[b]) for a, b in self.skeleton_indices]

    @property
    def counted_mask(self) -> np.ndarray:
        """(K,) bool: which keypoints count towards ``num_keypoints``."""
        return np.array([n not in self.num_keypoints_excludes for n in self.keypoint_names])

    def connection_rules(self) -> List[Tuple[str, str, Tuple[int, int, int]]]:
        """Detectron2's ``keypoint_connection_rules``: (name_a, name_b, (R, G, B)) per link."""
        return [(a, b, _side_colour(a, b)) for a, b in self.skeleton_names]


def validate_keypoint_metadata(
    dataset: str,
    keypoint_names: Sequence[str],
    flip_map: Sequence[Tuple[str, str]],
    skeleton: Sequence[Tuple],
    oks_sigmas: Sequence[float],
) -> None:
    """Check keypoint metadata for consistency; raise ValueError naming ``dataset`` and the field.

    Checks: names unique and non-empty; flip map pairs of known, distinct names, each name in at most
    one pair (so the map is symmetric) and every left_/right_ name paired with its twin (complete);
    skeleton links of known names or in-range 0-based indices; one positive finite sigma per keypoint.
    """
    names = list(keypoint_names)
    k = len(names)
    if k == 0:
        raise ValueError(f"dataset '{dataset}': keypoint_names is empty")
    if len(set(names)) != k:
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"dataset '{dataset}': keypoint_names has duplicates {dup}")
    seen: Dict[str, str] = {}
    for pair in flip_map:
        if len(pair) != 2:
            raise ValueError(f"dataset '{dataset}': keypoint_flip_map entry {pair!r} is not a pair")
        a, b = pair
        for n in (a, b):
            if n not in names:
                raise ValueError(f"dataset '{dataset}': keypoint_flip_map names unknown keypoint '{n}'")
        if a == b:
            raise ValueError(f"dataset '{dataset}': keypoint_flip_map pairs '{a}' with itself")
        for n, other in ((a, b), (b, a)):
            if n in seen and seen[n] != other:
                raise ValueError(
                    f"dataset '{dataset}': keypoint_flip_map is not symmetric: '{n}' maps to both "
                    f"'{seen[n]}' and '{other}'"
                )
            seen[n] = other
    for a, b in flip_map_from_names(names):
        if seen.get(a) != b:
            raise ValueError(f"dataset '{dataset}': keypoint_flip_map is incomplete: '{a}' and '{b}' are not paired")
    for link in skeleton:
        if len(link) < 2:
            raise ValueError(f"dataset '{dataset}': skeleton link {link!r} has fewer than 2 ends")
        for end in link[:2]:
            if isinstance(end, str):
                if end not in names:
                    raise ValueError(f"dataset '{dataset}': skeleton names unknown keypoint '{end}'")
            elif not (isinstance(end, (int, np.integer)) and 0 <= int(end) < k):
                raise ValueError(f"dataset '{dataset}': skeleton index {end!r} out of range for {k} keypoints")
    sig = np.asarray(oks_sigmas, dtype=np.float64)
    if sig.shape != (k,):
        raise ValueError(f"dataset '{dataset}': oks_sigmas has {sig.size} values for {k} keypoints")
    if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(f"dataset '{dataset}': oks_sigmas must be positive and finite, got {list(sig)}")


COCO_SPEC = KeypointSpec(
    name="coco",
    keypoint_names=COCO_KEYPOINT_NAMES,
    flip_map=flip_map_from_names(COCO_KEYPOINT_NAMES),
    skeleton=COCO_SKELETON,
    oks_sigmas=COCO_OKS_SIGMAS,
)

CROWDPOSE_SPEC = KeypointSpec(
    name="crowdpose",
    keypoint_names=CROWDPOSE_KEYPOINT_NAMES,
    flip_map=flip_map_from_names(CROWDPOSE_KEYPOINT_NAMES),
    skeleton=CROWDPOSE_SKELETON,
    oks_sigmas=CROWDPOSE_OKS_SIGMAS,
    num_keypoints_excludes=CROWDPOSE_NUM_KEYPOINTS_EXCLUDES,
)

# OCHuman is annotated with COCO's 17 keypoints and evaluated with COCO's sigmas.
KEYPOINT_SPECS = {"coco": COCO_SPEC, "crowdpose": CROWDPOSE_SPEC, "ochuman": COCO_SPEC}


def get_keypoint_spec(name: str) -> KeypointSpec:
    """The spec for "coco", "crowdpose" or "ochuman"; KeyError listing the known names otherwise."""
    try:
        return KEYPOINT_SPECS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint skeleton '{name}'; known: {sorted(KEYPOINT_SPECS)}") from None
