"""Write a synthetic dataset: ``DIR/images/*.jpg`` and ``DIR/annotations.json`` (COCO keypoint format).

The json is valid for pycocotools and for xtcocotools' CrowdPose evaluation:
- images: id, file_name, width, height, crowdIndex (CrowdPose's definition, adaanchor.data.crowd_index);
- annotations: id, image_id, category_id = 1, bbox [x, y, w, h] (continuous px) and area (pixel count) of the
  person's whole silhouette inside the image, parts hidden by others included,
  num_keypoints (labelled joints; CrowdPose counts only its 12 body joints), iscrowd = 0, keypoints
  (K * 3 flat, pixel-index coordinates, v = 0 joints stored as 0, 0, 0);
- categories: one "person" category with the skeleton's keypoint names and its 1-based ``skeleton``.
``DIR/synthetic_dataset.json`` records the generator version, the parameters and the summary. It is
written last and the whole directory is built under a temporary sibling name, then renamed: a directory
named DIR is always complete.

Output is a function of (num_images, seed, keypoints, max_size) only: byte-identical for any number of
workers (each image is seeded from (seed, image index); json floats are rounded, keys in a fixed order).
"""

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from adaanchor.data.crowd_index import CROWD_LEVELS, crowd_index, crowd_level
from adaanchor.data.keypoints import KeypointSpec, get_keypoint_spec

from .body import BODY_JOINT_NAMES
from .scene import RenderedPerson, render_image

# Bump whenever the output for given parameters changes: cached copies with another version are regenerated.
GENERATOR_VERSION = "1"
KEYPOINT_CHOICES = ("crowdpose", "coco")
ANNOTATIONS_NAME = "annotations.json"
IMAGES_DIRNAME = "images"
RECORD_NAME = "synthetic_dataset.json"
JPEG_QUALITY = 92
PERSON_CATEGORY_ID = 1  # the one category of every generated json


def validate_arguments(num_images, seed, keypoints, max_size) -> None:
    """ValueError naming the argument when one is out of range."""
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
        raise ValueError(f"synthetic dataset: num_images must be an integer >= 1, got {num_images!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"synthetic dataset: seed must be an integer >= 0, got {seed!r}")
    if keypoints not in KEYPOINT_CHOICES:
        raise ValueError(f"synthetic dataset: unknown keypoints {keypoints!r}; choose one of {list(KEYPOINT_CHOICES)}")
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 64:
        raise ValueError(f"synthetic dataset: max_size must be an integer >= 64 (px), got {max_size!r}")


def dataset_params(num_images: int, seed: int, keypoints: str, max_size: int) -> Dict:
    """The parameters that determine a dataset's content, as recorded in its RECORD_NAME."""
    return {"num_images": int(num_images), "seed": int(seed), "keypoints": keypoints, "max_size": int(max_size)}


def file_name(index: int) -> str:
    return f"{index + 1:06d}.jpg"


def _round(value: float) -> float:
    return round(float(value), 2)


def person_annotation(person: RenderedPerson, spec: KeypointSpec) -> Dict:
    """The COCO annotation fields of one rendered person: bbox, area, num_keypoints, keypoints (no ids)."""
    spec_joints = [BODY_JOINT_NAMES.index(n) for n in spec.keypoint_names]
    joints = person.joints[spec_joints]
    visibility = person.visibility[spec_joints]
    keypoints: List = []
    for (x, y), v in zip(joints, visibility):
        keypoints += [_round(x), _round(y), int(v)] if v > 0 else [0, 0, 0]
    num_keypoints = int(np.sum((visibility > 0) & spec.counted_mask))
    return {
        "bbox": [_round(c) for c in person.bbox],
        "area": float(person.area),
        "num_keypoints": num_keypoints,
        "keypoints": keypoints,
    }


def _render_task(task: Tuple[int, int, str, int, str]) -> Tuple[Dict, List[Dict], Dict]:
    """Render, save and label one image. Returns (image entry without id, annotations without ids, stats)."""
    seed, index, keypoints, max_size, images_dir = task
    spec = get_keypoint_spec(keypoints)
    rendered = render_image(seed, index, max_size)
    path = os.path.join(images_dir, file_name(index))
    ok, encoded = cv2.imencode(".jpg", rendered.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"synthetic dataset: could not encode image {index} as JPEG")
    with open(path, "wb") as f:
        f.write(encoded.tobytes())
    annotations = [person_annotation(p, spec) for p in rendered.persons]
    kpts = np.array([a["keypoints"] for a in annotations], dtype=np.float64).reshape(len(annotations), -1, 3)
    boxes = np.array([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4)
    ci = round(crowd_index(kpts, boxes), 4)
    h, w = rendered.image.shape[:2]
    image = {"file_name": file_name(index), "width": int(w), "height": int(h), "crowdIndex": ci}
    counts = np.bincount(kpts[:, :, 2].astype(np.int64).ravel(), minlength=3) if annotations else np.zeros(3, int)
    stats = {
        "keypoints": [int(c) for c in counts[:3]],
        "truncated": sum(p.truncated for p in rendered.persons),
        "level": crowd_level(ci),
    }
    return image, annotations, stats


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _default_workers(num_images: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    # Starting a worker costs about a second: not worth it for a handful of images.
    return max(1, min(cpus, num_images // 32))


def _render_all(tasks: List[Tuple], workers: int, progress: bool):
    bar = dict(total=len(tasks), desc="synthetic images", unit="img", disable=not progress, smoothing=0.1)
    if workers <= 1:
        return [_render_task(t) for t in tqdm(tasks, **bar)]
    # "spawn": safe where the caller holds threads or CUDA (Detectron2 workers); the tasks are pure numpy/OpenCV.
    context = multiprocessing.get_context("spawn")
    chunk = max(1, min(16, len(tasks) // (4 * workers)))
    with context.Pool(workers, initializer=_init_worker) as pool:
        return list(tqdm(pool.imap(_render_task, tasks, chunksize=chunk), **bar))


def _categories(spec: KeypointSpec) -> List[Dict]:
    return [
        {
            "id": PERSON_CATEGORY_ID,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(spec.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in spec.skeleton_indices],
        }
    ]


def _make_temp_sibling(out_dir: Path) -> Path:
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    except OSError as e:
        error = PermissionError if isinstance(e, PermissionError) else OSError
        raise error(f"synthetic dataset: cannot write into {out_dir.parent}: {e}") from e


def generate_synthetic_dataset(
    out_dir,
    *,
    num_images: int,
    seed: int,
    keypoints: str,
    max_size: int = 512,
    workers: Optional[int] = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Dict:
    """Generate a synthetic crowd dataset into ``out_dir`` (atomically) and return its summary.

    Args:
        out_dir: the dataset directory to create; it must not exist unless ``overwrite`` (then the old one is
            replaced once the new one is complete).
        num_images: >= 1. seed: >= 0. keypoints: "crowdpose" (14 keypoints) or "coco" (17).
        max_size: the long side of every image, px (the short side is 60-100% of it).
        workers: processes rendering images; None picks from the CPUs available and ``num_images``. With more
            than one, worker processes are started with "spawn": as with any spawn-based multiprocessing, a
            script calling this at import time needs the ``if __name__ == "__main__":`` guard.
        progress: show a tqdm progress bar.
        overwrite: replace an existing ``out_dir``.

    Returns:
        The summary: images, persons, keypoints by visibility ("v0", "v1", "v2"), persons_truncated,
        crowd_levels ("easy", "medium", "hard"), seconds (wall time of this call).
    """
    validate_arguments(num_images, seed, keypoints, max_size)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(
            f"synthetic dataset: {out_dir} already exists (remove it, or pass overwrite=True / --overwrite)"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(f"synthetic dataset: workers must be None or an integer >= 1, got {workers!r}")
    workers = _default_workers(num_images) if workers is None else min(int(workers), num_images)
    start = time.perf_counter()
    spec = get_keypoint_spec(keypoints)
    tmp = _make_temp_sibling(out_dir)
    try:
        images_dir = tmp / IMAGES_DIRNAME
        images_dir.mkdir()
        tasks = [(int(seed), i, keypoints, int(max_size), str(images_dir)) for i in range(num_images)]
        results = _render_all(tasks, workers, progress)

        images, annotations = [], []
        visibility_counts = np.zeros(3, np.int64)
        truncated = 0
        levels = {level: 0 for level in CROWD_LEVELS}
        for index, (image, anns, stats) in enumerate(results):
            image_id = index + 1
            images.append({"id": image_id, **image})
            for ann in anns:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": PERSON_CATEGORY_ID,
                        "iscrowd": 0,
                        **ann,
                    }
                )
            visibility_counts += stats["keypoints"]
            truncated += stats["truncated"]
            levels[stats["level"]] += 1
        params = dataset_params(num_images, seed, keypoints, max_size)
        data = {
            "info": {"description": "AdaAnchor synthetic crowd dataset", "generator_version": GENERATOR_VERSION,
                     **params},
            "images": images,
            "annotations": annotations,
            "categories": _categories(spec),
        }  # fmt: skip
        (tmp / ANNOTATIONS_NAME).write_text(json.dumps(data, separators=(",", ":")))
        summary = {
            "images": num_images,
            "persons": len(annotations),
            "keypoints": {f"v{v}": int(c) for v, c in enumerate(visibility_counts)},
            "persons_truncated": int(truncated),
            "crowd_levels": levels,
        }
        record = {"generator_version": GENERATOR_VERSION, "params": params, "summary": summary}
        (tmp / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n")
        _replace_dir(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "seconds": round(time.perf_counter() - start, 3)}


def _replace_dir(new: Path, target: Path, overwrite: bool) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first (only if ``overwrite``)."""
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"synthetic dataset: {target} appeared while generating; not replacing it")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / target.name)
        os.rename(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, target)


def format_summary(summary: Dict, out_dir=None) -> str:
    """The summary as a small human-readable table."""
    kp = summary["keypoints"]
    labelled = max(1, kp["v1"] + kp["v2"])
    levels = summary["crowd_levels"]
    lines = [f"synthetic dataset{f' at {out_dir}' if out_dir is not None else ''}:"]
    lines.append(f"  images                 {summary['images']}")
    lines.append(f"  persons                {summary['persons']}")
    lines.append(
        f"  keypoints v=0/v=1/v=2  {kp['v0']} / {kp['v1']} / {kp['v2']}"
        f"  (v=1 is {100.0 * kp['v1'] / labelled:.1f}% of labelled)"
    )
    lines.append(
        f"  persons truncated      {summary['persons_truncated']}"
        f"  ({100.0 * summary['persons_truncated'] / max(1, summary['persons']):.1f}%)"
    )
    lines.append(f"  crowd easy/medium/hard {levels['easy']} / {levels['medium']} / {levels['hard']}")
    if "seconds" in summary:
        lines.append(f"  seconds                {summary['seconds']:.1f}")
    return "\n".join(lines)
