"""Real-data warts, as the reference tools take them (issue 9, item 1).

Each wart of the official COCO / CrowdPose / OCHuman files that pycocotools and xtcocotools accept — labelled
keypoints at x = -1, x = width, y = height; a person with num_keypoints 0; a crowd region (COCO RLE); an image
without annotations; CrowdPose's num_keypoints counting 12 of its 14 joints; a zero-area bbox — is (a) scored
by our evaluator exactly as pycocotools (COCO protocol) and xtcocotools' 'keypoints_crowd' (CrowdPose) score
it, (b) loaded for training with the outside keypoints kept as labelled targets, and reported by both in one
summary line with the counts. (c) What is not noise still raises, naming the file and the ids.
Framework-free, except the last test (the mapper, which needs Detectron2).
"""

import json
import logging
import shutil

import numpy as np
import pytest

from adaanchor.data.keypoint_json import TRAINING_TREATMENT, KeypointJsonError, load_keypoint_json
from adaanchor.data.keypoints import COCO_OKS_SIGMAS
from adaanchor.evaluation import evaluate_keypoints
from adaanchor.evaluation.inputs import EVALUATION_TREATMENT

# Helpers of the reference comparison (tests/ is on sys.path under pytest's default import mode).
from test_evaluation_reference import (
    COCO_NAMES,
    CROWDPOSE_NAMES,
    perturbed_predictions,
    pycocotools_keypoint_stats,
    xtcocotools_crowdpose_stats,
)

WIDTH, HEIGHT = 640, 480  # image px, every image of the wart files
# Annotation id -> (keypoint index, pixel-index x, y) of the labelled keypoint placed outside the image.
OUTSIDE = {1: (0, -1, 200), 2: (1, WIDTH, 150), 3: (2, 300, HEIGHT)}
UNLABELLED_ID, ZERO_AREA_ID, CROWD_ID, HEAD_NECK_ONLY_ID = 4, 5, 6, 7
EMPTY_IMAGE_ID = 2


def _person(rng, ann_id, image_id, box, k, crowdpose):
    """A person with labelled keypoints (integer pixel indices) inside ``box``, about 20 % unlabelled (0, 0, 0)."""
    x, y, w, h = box
    kpts = np.zeros((k, 3))
    kpts[:, 0] = np.round(rng.uniform(x, x + w, k))
    kpts[:, 1] = np.round(rng.uniform(y, y + h, k))
    kpts[:, 2] = rng.choice([1, 2], k)
    kpts[rng.random(k) < 0.2, 2] = 0
    if crowdpose:
        kpts[12:, 2] = 2  # head and neck labelled: num_keypoints (12 body joints) differs from the labelled count
    if ann_id in OUTSIDE:
        j, kx, ky = OUTSIDE[ann_id]
        kpts[j] = (kx, ky, 2)
    if ann_id == UNLABELLED_ID:
        kpts[:, 2] = 0
    if ann_id == HEAD_NECK_ONLY_ID:
        kpts[:12, 2] = 0
    kpts[kpts[:, 2] == 0, :2] = 0
    counted = kpts[:12, 2] if crowdpose else kpts[:, 2]
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [float(v) for v in box],
        "keypoints": kpts.ravel().tolist(),
        "num_keypoints": int((counted > 0).sum()),
    }
    if not crowdpose:
        ann["area"] = float(w * h)
    return ann


def wart_ground_truth(protocol):
    """A COCO (17 keypoints, ``area``, a crowd RLE) or CrowdPose (14, ``crowdIndex``) json with every wart.

    Image 1 holds the warts (persons 1-3 with a keypoint at x = -1, x = width, y = height; 4 with num_keypoints
    0; 5 with a zero-area bbox [x, y, 0, h]; 6 a crowd region; CrowdPose: 7 with only head and neck labelled,
    so num_keypoints 0), image 2 no annotation, image 3 five ordinary persons.
    """
    crowdpose = protocol == "crowdpose"
    k = 14 if crowdpose else 17
    rng = np.random.default_rng(0)
    images = [{"id": i, "file_name": f"{i}.jpg", "width": WIDTH, "height": HEIGHT} for i in (1, 2, 3)]
    if crowdpose:
        for image, crowd_index in zip(images, (0.9, 0.5, 0.1)):
            image["crowdIndex"] = crowd_index
    boxes = {1: [0, 100, 120, 250], 2: [500, 50, 130, 250], 3: [250, 220, 100, 250], 4: [300, 20, 80, 160]}
    boxes[ZERO_AREA_ID] = [420, 60, 0, 120]
    annotations = [_person(rng, i, 1, box, k, crowdpose) for i, box in boxes.items()]
    crowd = {"id": CROWD_ID, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [10, 10, 100, 60]}
    crowd.update(keypoints=[0] * (3 * k), num_keypoints=0)
    if not crowdpose:  # COCO's crowd regions: uncompressed RLE (column-major counts), area = mask area
        crowd.update(area=6000.0, segmentation={"size": [HEIGHT, WIDTH], "counts": _box_rle_counts(10, 10, 100, 60)})
    annotations.append(crowd)
    if crowdpose:
        annotations.append(_person(rng, HEAD_NECK_ONLY_ID, 1, [200, 300, 60, 150], k, crowdpose))
    for i in range(5):
        annotations.append(_person(rng, 10 + i, 3, [20 + 120 * i, 80, 100, 300], k, crowdpose))
    names = [f"kp{j}" for j in range(k)]
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": names}],
    }


def _box_rle_counts(x, y, w, h):
    """Uncompressed RLE counts of the box [x, x + w) x [y, y + h) in a HEIGHT x WIDTH mask (column-major)."""
    counts, position = [], 0
    for column in range(x, x + w):
        start = column * HEIGHT + y
        counts += [start - position, h]
        position = start + h
    return counts + [WIDTH * HEIGHT - position]


def write_ground_truth(tmp_path, protocol, data=None):
    """Write ``data`` (default: the wart json of ``protocol``) and a placeholder file per image; the json path."""
    data = data or wart_ground_truth(protocol)
    path = tmp_path / f"warts_{protocol}.json"
    path.write_text(json.dumps(data))
    for image in data["images"]:
        (tmp_path / image["file_name"]).write_bytes(b"not decoded by the loader")
    return path


def expected_summary(path, protocol, treatment):
    differs = (
        "; 10 annotations whose num_keypoints differs from their count of labelled keypoints"
        if protocol == "crowdpose"
        else ""
    )
    unlabelled = 2 if protocol == "crowdpose" else 1
    return (
        f"{path}: 3 labelled keypoints outside their image in 3 annotations; 1 person with labelled keypoints "
        f"and a zero-area bbox; {unlabelled} person{'s' if unlabelled > 1 else ''} with num_keypoints 0; "
        f"1 crowd region; 1 image without annotations{differs} ({treatment})"
    )


def _warnings(caplog, logger_name):
    return [r.getMessage() for r in caplog.records if r.name == logger_name and r.levelno >= logging.WARNING]


# --- (a) evaluation: the reference tools' numbers on the same files and predictions ------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_warts_score_as_pycocotools(tmp_path, seed, caplog):
    path = write_ground_truth(tmp_path, "coco")
    preds = perturbed_predictions(wart_ground_truth("coco"), seed, 17)
    with caplog.at_level(logging.INFO):
        ours = evaluate_keypoints(str(path), preds, dataset="coco", per_keypoint=False)
    reference = pycocotools_keypoint_stats(path, preds, COCO_OKS_SIGMAS)
    assert [ours[n] for n in COCO_NAMES] == pytest.approx(reference, abs=1e-12)
    assert 0 < ours["AP"] < 1
    assert _warnings(caplog, "adaanchor.evaluation.inputs") == [expected_summary(path, "coco", EVALUATION_TREATMENT)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crowdpose_warts_score_as_xtcocotools(tmp_path, seed, caplog):
    pytest.importorskip("xtcocotools")
    path = write_ground_truth(tmp_path, "crowdpose")
    preds = perturbed_predictions(wart_ground_truth("crowdpose"), seed, 14)
    with caplog.at_level(logging.INFO):
        ours = evaluate_keypoints(str(path), preds, dataset="crowdpose", per_keypoint=False)
    reference = xtcocotools_crowdpose_stats(path, preds, tmp_path)
    assert [ours[n] for n in CROWDPOSE_NAMES] == pytest.approx(reference, abs=1e-9)
    assert 0 < ours["AP"] < 1
    expected = expected_summary(path, "crowdpose", EVALUATION_TREATMENT)
    assert _warnings(caplog, "adaanchor.evaluation.inputs") == [expected]


@pytest.mark.parametrize("protocol", ["coco", "crowdpose"])
def test_ground_truth_with_warts_as_predictions_scores_one(tmp_path, protocol):
    # Scored where they are: exact predictions of the outside keypoints have error 0 (moved inside, they would
    # not); the zero-area person matches too (OKS 1 at distance 0, as in pycocotools).
    gt = wart_ground_truth(protocol)
    preds = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
        if not a["iscrowd"] and a["num_keypoints"] > 0
    ]
    for pred in preds:
        pred["keypoints"] = [1.0 if i % 3 == 2 else v for i, v in enumerate(pred["keypoints"])]
    metrics = evaluate_keypoints(str(write_ground_truth(tmp_path, protocol)), preds, dataset=protocol)
    for name in ("AP", "AR", "recall"):
        assert metrics[name] == pytest.approx(1.0, abs=1e-12), name
    assert metrics["vis_error"] == 0.0


def test_json_without_categories_is_named_with_the_reason(tmp_path):
    data = wart_ground_truth("coco")
    del data["categories"]
    path = write_ground_truth(tmp_path, "coco", data)
    with pytest.raises(ValueError, match=r"warts_coco\.json has no 'categories' list \(pycocotools copies it"):
        evaluate_keypoints(str(path), [], dataset="coco")
    # Training needs no categories: every annotation is category 0.
    records = load_keypoint_json(str(path), str(tmp_path), 17)
    assert {a["category_id"] for r in records for a in r["annotations"]} == {0}


# --- (b) training: loaded, outside keypoints kept as labelled targets, one summary line ---------------


@pytest.mark.parametrize("protocol, k", [("coco", 17), ("crowdpose", 14)])
def test_training_loader_keeps_the_warts_and_reports_them_once(tmp_path, caplog, protocol, k):
    path = write_ground_truth(tmp_path, protocol)
    raw = {a["id"]: a for a in wart_ground_truth(protocol)["annotations"]}
    with caplog.at_level(logging.INFO):
        records = load_keypoint_json(str(path), str(tmp_path), k)
    assert [r["image_id"] for r in records] == [1, 2, 3] and records[1]["annotations"] == []
    loaded = {a["id"]: a for r in records for a in r["annotations"]}
    assert sorted(loaded) == sorted(raw)
    for ann_id, ann in loaded.items():
        if ann["iscrowd"]:
            assert "keypoints" not in ann and ann.get("segmentation") == raw[ann_id].get("segmentation")
            continue
        expected = np.asarray(raw[ann_id]["keypoints"], dtype=np.float64).reshape(k, 3)
        expected[:, :2] += 0.5  # Detectron2's convention, and nothing else: no clamping, no dropping
        np.testing.assert_array_equal(np.asarray(ann["keypoints"]).reshape(k, 3), expected)
        assert ann["num_keypoints"] == raw[ann_id]["num_keypoints"]  # CrowdPose's 12-joint count, uncorrected
        assert ann["bbox"] == raw[ann_id]["bbox"]
    for ann_id, (j, x, y) in OUTSIDE.items():
        assert loaded[ann_id]["keypoints"][3 * j : 3 * j + 3] == [x + 0.5, y + 0.5, 2.0]
    assert _warnings(caplog, "adaanchor.data.keypoint_json") == [expected_summary(path, protocol, TRAINING_TREATMENT)]


def test_bound_is_one_image_size_beyond_the_border(tmp_path, caplog):
    # Continuous x + 0.5 in [-width, 2 width] (y likewise) is accepted and counted; beyond is an error.
    data = wart_ground_truth("coco")
    person = next(a for a in data["annotations"] if a["id"] == 1)
    person["keypoints"][0:2] = [-WIDTH - 0.5, 2 * HEIGHT - 0.5]
    path = write_ground_truth(tmp_path, "coco", data)
    record, *_ = load_keypoint_json(str(path), str(tmp_path), 17)
    assert record["annotations"][0]["keypoints"][0:2] == [-WIDTH, 2 * HEIGHT]
    evaluate_keypoints(str(path), [], dataset="coco")
    for x, y in ((-WIDTH - 0.6, 10), (10, 2 * HEIGHT - 0.4)):
        person["keypoints"][0:2] = [x, y]
        path = write_ground_truth(tmp_path, "coco", data)
        for load in (
            lambda: load_keypoint_json(str(path), str(tmp_path), 17),
            lambda: evaluate_keypoints(str(path), []),
        ):
            with pytest.raises(ValueError, match=r"annotation id 1 \(image id 1\): keypoint 0 at .* lies more than 1 "):
                load()


# --- (c) what is not noise still raises, naming the file and the ids ----------------------------------


def _set_keypoint(index, values):
    def mutate(ann):
        ann["keypoints"][3 * index : 3 * index + 3] = values

    return mutate


ERRORS = [
    (
        _set_keypoint(0, [-700, 200, 2]),
        r"keypoint 0 at \(-700, 200\) lies more than 1 image width/height outside the 640 x 480 image",
    ),
    (_set_keypoint(0, [300, 1000, 1]), r"keypoint 0 at \(300, 1000\) lies more than 1 image width/height outside"),
    (_set_keypoint(3, [float("nan"), 200, 2]), r"keypoint 3 is not finite"),
    (_set_keypoint(3, [10, float("inf"), 2]), r"keypoint 3 is not finite"),
    (lambda ann: ann["keypoints"].pop(), r"'keypoints' has 50 numbers, expected 3 x 17 = 51"),
    (_set_keypoint(4, [10, 20, 3]), r"keypoint 4 has visibility 3, expected 0, 1 or 2"),
    (_set_keypoint(4, [10, 20, -1]), r"keypoint 4 has visibility -1"),
]


@pytest.mark.parametrize("mutate, message", ERRORS)
@pytest.mark.parametrize("reader", ["loader", "evaluator"])
def test_bad_keypoints_still_raise_naming_file_and_ids(tmp_path, mutate, message, reader):
    data = wart_ground_truth("coco")
    mutate(next(a for a in data["annotations"] if a["id"] == 2))
    path = write_ground_truth(tmp_path, "coco", data)
    error = KeypointJsonError if reader == "loader" else ValueError
    with pytest.raises(error, match=r"annotation id 2 \(image id 1\): " + message) as info:
        if reader == "loader":
            load_keypoint_json(str(path), str(tmp_path), 17)
        else:
            evaluate_keypoints(str(path), [], dataset="coco")
    assert str(path) in str(info.value)


def test_unknown_image_id_still_raises(tmp_path):
    data = wart_ground_truth("coco")
    data["annotations"][0]["image_id"] = 99
    path = write_ground_truth(tmp_path, "coco", data)
    with pytest.raises(
        KeypointJsonError, match=r"annotation id 1 \(image id 99\): refers to an unknown image id"
    ) as info:
        load_keypoint_json(str(path), str(tmp_path), 17)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=r"annotation id 1 \(image id 99\): image id not among") as info:
        evaluate_keypoints(str(path), [], dataset="coco")
    assert str(path) in str(info.value)


# --- the real samples --------------------------------------------------------------------------------


def test_real_crowdpose_sample_summaries(shared_data, caplog):
    # CrowdPose's num_keypoints counts the 12 body joints: reported (info level, not noise), never corrected.
    path = shared_data / "crowdpose" / "test_crowdpose.json"
    with caplog.at_level(logging.INFO):
        records = load_keypoint_json(str(path), str(shared_data / "crowdpose"), 14)
        evaluate_keypoints(str(path), [], dataset="crowdpose")
    raw = {a["id"]: a["num_keypoints"] for a in json.loads(path.read_text())["annotations"]}
    assert {a["id"]: a["num_keypoints"] for r in records for a in r["annotations"]} == raw
    lines = [r for r in caplog.records if "whose num_keypoints differs" in r.getMessage()]
    assert len(lines) == 2 and all(r.levelno == logging.INFO for r in lines)
    assert all("1 person with num_keypoints 0; 4 annotations whose num_keypoints" in r.getMessage() for r in lines)


def test_mapper_uses_the_decoded_size_of_a_real_crowdpose_image(shared_data, tmp_path, caplog):
    # The original CrowdPose json has sizes that disagree with the image files: detected when the image is read.
    pytest.importorskip("detectron2")
    from detectron2.data import transforms as T

    from adaanchor.data.bottom_up_mapper import BottomUpDatasetMapper

    data = json.loads((shared_data / "crowdpose" / "test_crowdpose.json").read_text())
    real_size = {image["id"]: (image["width"], image["height"]) for image in data["images"]}
    data["images"][0]["width"], data["images"][0]["height"] = 480, 640  # as a wrong json would have it
    for image in data["images"]:
        shutil.copy(shared_data / "crowdpose" / image["file_name"], tmp_path / image["file_name"])
    path = tmp_path / "crowdpose_wrong_size.json"
    path.write_text(json.dumps(data))
    records = load_keypoint_json(str(path), str(tmp_path), 14)
    mapper = BottomUpDatasetMapper(
        True,
        image_format="BGR",
        input_size=128,
        flip_prob=0.0,
        num_keypoints=14,
        test_resize=T.ResizeShortestEdge(64, 1000),
    )
    with caplog.at_level(logging.WARNING, logger="adaanchor.data.bottom_up_mapper"):
        outs = [mapper(r) for r in records + records]
    assert all(o is not None and (o["width"], o["height"]) == real_size[o["image_id"]] for o in outs)
    (warning,) = [r.getMessage() for r in caplog.records if "decoded image" in r.getMessage()]
    width, height = real_size[data["images"][0]["id"]]
    assert data["images"][0]["file_name"] in warning
    assert f"the json gives 480 x 640 (width x height), the decoded image is {width} x {height}" in warning
