"""Start-up validation: what a run needs from its config and data, checked before the first iteration (and
before ``--eval-only``), so that a mistake stops the run at once with the key, dataset or file named instead
of failing inside the model, or after hours of training.

Checks:

- every dataset in DATASETS.TRAIN (training only) and DATASETS.TEST is registered and has keypoint metadata;
- the model's keypoint count (the key of :data:`KEYPOINT_COUNT_KEYS` for MODEL.META_ARCHITECTURE) equals the
  number of keypoint names of each of those datasets, and the training datasets share one skeleton;
- each dataset's keypoint flip map names only its keypoints, each at most once, never paired with itself;
- every dataset loads (its json is read and validated: a broken evaluation json stops the run before
  training), and every evaluation dataset's ground truth loads as the evaluator will read it.

The anchor keys (MODEL.ADAANCHOR.TOPK, KERNEL, FUSION, TEST.CONFIDENCE_THRESHOLD, ...) are validated where
the model is built (``adaanchor.anchor``), which also happens before the first iteration.
"""

import logging
from typing import Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

logger = logging.getLogger(__name__)

# The config key holding the model's keypoint count, per meta-architecture.
KEYPOINT_COUNT_KEYS = {
    "DEKR": "MODEL.DEKR.NUM_KEYPOINTS",
    "AssociativeEmbedding": "MODEL.AE.NUM_KEYPOINTS",
    "GeneralizedRCNN": "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS",
}


class StartupValidationError(ValueError):
    """The config or data of a run cannot work; the message names the key, the dataset or the file."""


def _cfg_value(cfg, key: str):
    node = cfg
    for part in key.split("."):
        if not hasattr(node, part):
            return None
        node = getattr(node, part)
    return node


def check_keypoint_metadata(cfg, dataset_names: Sequence[str], list_key: str) -> None:
    """Keypoint names, the model's keypoint count and the flip map of each dataset of ``list_key``."""
    count_key = KEYPOINT_COUNT_KEYS.get(cfg.MODEL.META_ARCHITECTURE)
    count = _cfg_value(cfg, count_key) if count_key else None
    for name in dataset_names:
        if name not in DatasetCatalog.list():
            raise StartupValidationError(f"{list_key}: dataset '{name}' is not registered")
        meta = MetadataCatalog.get(name)
        names = meta.get("keypoint_names", None)
        if not names:
            raise StartupValidationError(
                f"{list_key}: dataset '{name}' has no keypoint_names metadata (register it with "
                "adaanchor.data.datasets.register_keypoint_dataset)"
            )
        if count is not None and int(count) != len(names):
            raise StartupValidationError(
                f"{count_key} is {count} but {list_key} dataset '{name}' has {len(names)} keypoints "
                f"({', '.join(names[:3])}, ...): set {count_key} {len(names)}"
            )
        check_flip_map(name, names, meta.get("keypoint_flip_map", None), list_key)


def check_flip_map(dataset_name: str, names: Sequence[str], flip_map, list_key: str) -> None:
    if flip_map is None:
        return
    seen = set()
    for pair in flip_map:
        if len(pair) != 2:
            raise StartupValidationError(
                f"{list_key} dataset '{dataset_name}': keypoint_flip_map entry {pair!r} is not a pair of names"
            )
        if pair[0] == pair[1]:
            raise StartupValidationError(
                f"{list_key} dataset '{dataset_name}': keypoint_flip_map pairs {pair[0]!r} with itself"
            )
        for keypoint in pair:
            if keypoint not in names:
                raise StartupValidationError(
                    f"{list_key} dataset '{dataset_name}': keypoint_flip_map names {keypoint!r}, which is not "
                    f"one of its keypoint_names {list(names)} (used by INPUT.BOTTOM_UP.FLIP_PROB and "
                    "MODEL.DEKR.TEST.FLIP)"
                )
            if keypoint in seen:
                raise StartupValidationError(
                    f"{list_key} dataset '{dataset_name}': keypoint_flip_map names {keypoint!r} more than once"
                )
            seen.add(keypoint)


def load_datasets(dataset_names: Sequence[str], list_key: str, *, evaluation: bool) -> None:
    """Load (and so validate) each dataset; for evaluation datasets also the evaluator's ground truth."""
    from adaanchor.evaluation.detectron2_evaluator import KeypointEvaluator

    for name in dataset_names:
        try:
            dicts = DatasetCatalog.get(name)
            if evaluation and MetadataCatalog.get(name).get("evaluator_type", None) in ("coco", "crowdpose"):
                KeypointEvaluator(name, output_dir=None)  # reads the ground truth as the evaluation will
        except StartupValidationError:
            raise
        except Exception as e:
            raise StartupValidationError(f"{list_key} dataset '{name}' cannot be used: {e}") from e
        if not dicts:
            raise StartupValidationError(f"{list_key} dataset '{name}' is empty")


def validate_startup(cfg, *, training: bool = True) -> None:
    """Run every check of the module docstring; StartupValidationError naming the key / dataset / file."""
    train = list(cfg.DATASETS.TRAIN) if training else []
    test = list(cfg.DATASETS.TEST)
    if train:
        check_keypoint_metadata(cfg, train, "DATASETS.TRAIN")
        skeletons = {tuple(MetadataCatalog.get(n).keypoint_names) for n in train}
        if len(skeletons) > 1:
            raise StartupValidationError(f"DATASETS.TRAIN {train}: the datasets have different keypoint names")
    check_keypoint_metadata(cfg, test, "DATASETS.TEST")
    load_datasets(train, "DATASETS.TRAIN", evaluation=False)
    load_datasets(test, "DATASETS.TEST", evaluation=True)
    logger.info(f"Start-up checks passed: DATASETS.TRAIN {train}, DATASETS.TEST {test}")
