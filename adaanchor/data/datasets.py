"""Register keypoint datasets in Detectron2's catalogs.

Importing this module registers (lazily: nothing is read until a dataset is used):

- CrowdPose ``crowdpose_{train,val,trainval,test}`` under ``$DETECTRON2_DATASETS/crowdpose/``
  (``json/crowdpose_<split>.json``, ``images/``);
- OCHuman ``ochuman_{val,test}`` under ``$DETECTRON2_DATASETS/ochuman/``
  (``ochuman_coco_format_<split>_range_0.00_1.00.json``, ``images/``);
- COCO keypoints 2017: Detectron2 registers ``keypoints_coco_2017_*`` itself; we reuse its metadata and add
  the OKS sigmas our evaluator reads;
- the embedded synthetic crowd dataset ``synthetic_{crowdpose,coco}_{train,val}``, generated on first use
  into a cache directory (``DATASETS.SYNTHETIC.CACHE_DIR``, default ``$ADAANCHOR_CACHE`` or
  ``~/.cache/adaanchor``).

A custom keypoint dataset is one call: :func:`register_keypoint_dataset`.
"""

import os
from typing import Optional, Union

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.data.datasets")

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

from adaanchor.data.keypoint_json import load_keypoint_json  # noqa: E402
from adaanchor.data.keypoints import KeypointSpec, get_keypoint_spec  # noqa: E402

EVALUATOR_TYPES = ("coco", "crowdpose")

CROWDPOSE_SPLITS = ("train", "val", "trainval", "test")
OCHUMAN_SPLITS = ("val", "test")
COCO_KEYPOINT_DATASETS = ("keypoints_coco_2017_train", "keypoints_coco_2017_val", "keypoints_coco_2017_val_100")

# The synthetic splits: (skeleton, number of images, seed). Train and val use different seeds, so
# they share no image. Sized for the CPU main job (generation takes well under a minute).
SYNTHETIC_SPLITS = {
    "synthetic_crowdpose_train": ("crowdpose", 1000, 0),
    "synthetic_crowdpose_val": ("crowdpose", 200, 1),
    "synthetic_coco_train": ("coco", 1000, 2),
    "synthetic_coco_val": ("coco", 200, 3),
}
SYNTHETIC_MAX_SIZE = 512  # longest image side of the synthetic images, image px


def register_keypoint_dataset(
    name: str,
    json_file: str,
    image_root: str,
    keypoints: Union[str, KeypointSpec],
    *,
    evaluator_type: Optional[str] = None,
    missing_images: Optional[str] = None,
    **extra_metadata,
) -> None:
    """Register a COCO-format keypoint dataset under ``name``, with validated keypoint metadata.

    Args:
        name: the dataset name used in ``DATASETS.TRAIN`` / ``DATASETS.TEST``.
        json_file: COCO-format keypoint annotations (one person category).
        image_root: folder that the json's ``file_name`` entries are relative to.
        keypoints: "coco", "crowdpose", "ochuman", or a :class:`KeypointSpec` for a custom skeleton
            (names, flip map, skeleton and OKS sigmas are validated when the spec is built).
        evaluator_type: "crowdpose" (CrowdPose protocol, needs ``crowdIndex``) or "coco" (COCO-style
            OKS AP with the spec's sigmas); default: "crowdpose" for the CrowdPose skeleton, else "coco".
        missing_images: "error" or "skip" for image files that do not exist; default "skip" for names
            containing "train", else "error" (skipping evaluation images would bias the results).
        extra_metadata: further metadata fields.
    """
    spec = get_keypoint_spec(keypoints) if isinstance(keypoints, str) else keypoints
    if evaluator_type is None:
        evaluator_type = "crowdpose" if spec.keypoint_names == get_keypoint_spec("crowdpose").keypoint_names else "coco"
    if evaluator_type not in EVALUATOR_TYPES:
        raise ValueError(f"dataset '{name}': evaluator_type must be one of {EVALUATOR_TYPES}, got {evaluator_type!r}")
    if missing_images is None:
        missing_images = "skip" if "train" in name else "error"
    num_keypoints = spec.num_keypoints

    def load():
        return load_keypoint_json(
            json_file, image_root, num_keypoints, dataset_name=name, missing_images=missing_images
        )

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(
        json_file=json_file,
        image_root=image_root,
        evaluator_type=evaluator_type,
        thing_classes=["person"],
        **keypoint_metadata(spec),
        **extra_metadata,
    )


def keypoint_metadata(spec: KeypointSpec) -> dict:
    """Detectron2's keypoint metadata fields for ``spec``, plus ``keypoint_oks_sigmas``."""
    return dict(
        keypoint_names=list(spec.keypoint_names),
        keypoint_flip_map=[tuple(p) for p in spec.flip_map],
        keypoint_connection_rules=spec.connection_rules(),
        keypoint_oks_sigmas=list(spec.oks_sigmas),
    )


def register_synthetic_datasets(cache_dir: Optional[str] = None) -> None:
    """(Re-)register the synthetic splits with their cached copies under ``cache_dir``.

    ``cache_dir`` None or "" means the default cache (``$ADAANCHOR_CACHE`` or ``~/.cache/adaanchor``).
    A split is generated the first time it is loaded; a complete cached copy with the same parameters is
    reused, a partial one never is. The training script calls this with ``DATASETS.SYNTHETIC.CACHE_DIR``.
    """
    from adaanchor.data.synthetic import PERSON_CATEGORY_ID, default_cache_dir, ensure_synthetic_dataset

    root = cache_dir or str(default_cache_dir())
    for name, (skeleton, num_images, seed) in SYNTHETIC_SPLITS.items():
        spec = get_keypoint_spec(skeleton)
        split_dir = os.path.join(root, name)

        def load(name=name, skeleton=skeleton, num_images=num_images, seed=seed, spec=spec):
            path = ensure_synthetic_dataset(
                root, name, num_images=num_images, seed=seed, keypoints=skeleton, max_size=SYNTHETIC_MAX_SIZE
            )
            return load_keypoint_json(
                os.path.join(path, "annotations.json"),
                os.path.join(path, "images"),
                spec.num_keypoints,
                dataset_name=name,
            )

        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, load)
        MetadataCatalog.get(name).set(
            json_file=os.path.join(split_dir, "annotations.json"),
            image_root=os.path.join(split_dir, "images"),
            evaluator_type="crowdpose" if skeleton == "crowdpose" else "coco",
            thing_classes=["person"],
            # known before the json is generated: the demo writes results without reading it
            thing_dataset_id_to_contiguous_id={PERSON_CATEGORY_ID: 0},
            synthetic=True,
            **keypoint_metadata(spec),
        )


def register_builtin_datasets(root: str) -> None:
    """Register CrowdPose, OCHuman, COCO-keypoint metadata and the synthetic splits under ``root``."""
    for split in CROWDPOSE_SPLITS:
        base = os.path.join(root, "crowdpose")
        register_keypoint_dataset(
            f"crowdpose_{split}",
            os.path.join(base, "json", f"crowdpose_{split}.json"),
            os.path.join(base, "images"),
            "crowdpose",
        )
    for split in OCHUMAN_SPLITS:
        base = os.path.join(root, "ochuman")
        register_keypoint_dataset(
            f"ochuman_{split}",
            os.path.join(base, f"ochuman_coco_format_{split}_range_0.00_1.00.json"),
            os.path.join(base, "images"),
            "ochuman",
        )
    coco = get_keypoint_spec("coco")
    for name in COCO_KEYPOINT_DATASETS:
        if name not in DatasetCatalog.list():  # registered by Detectron2 when detectron2.data is imported
            continue
        # Keep Detectron2's metadata (paths, names, flip map, colours); add the sigmas our evaluator reads,
        # and load through our validated loader, which also keeps `num_keypoints` and `area` (Detectron2's
        # loader drops them, and the bottom-up targets need them).
        meta = MetadataCatalog.get(name)
        meta.set(keypoint_oks_sigmas=list(coco.oks_sigmas))
        DatasetCatalog.remove(name)
        DatasetCatalog.register(
            name,
            lambda meta=meta, name=name: load_keypoint_json(
                meta.json_file,
                meta.image_root,
                coco.num_keypoints,
                dataset_name=name,
                missing_images="skip" if "train" in name else "error",
            ),
        )
    register_synthetic_datasets()


# Register at import (Detectron2's launcher re-imports modules in its worker processes).
register_builtin_datasets(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))
