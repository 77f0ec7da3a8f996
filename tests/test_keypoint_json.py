"""The validated keypoint-json loader: Detectron2's conventions, and clear errors for bad input."""

import json
import logging

import numpy as np
import pytest

from adaanchor.data.keypoint_json import KeypointJsonError, load_keypoint_json


def _write(tmp_path, data, images=("a.jpg",)):
    for name in images:
        (tmp_path / name).write_bytes(b"not decoded by the loader")
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return str(path)


def _dataset(keypoints=None, **image_extra):
    kpts = keypoints if keypoints is not None else [10, 20, 2, 0, 0, 0, 30, 40, 1]
    return {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 48, **image_extra}],
        "annotations": [
            {"id": 70, "image_id": 7, "bbox": [1, 2, 30, 40], "keypoints": kpts, "num_keypoints": 2, "iscrowd": 0},
            {
                "id": 71,
                "image_id": 7,
                "bbox": [0, 0, 5, 5],
                "iscrowd": 1,
                "segmentation": {"size": [48, 64], "counts": "0"},
            },
        ],
    }


def test_loads_with_detectron2_half_pixel_convention(tmp_path):
    path = _write(tmp_path, _dataset(crowdIndex=0.4))
    (record,) = load_keypoint_json(path, str(tmp_path), 3)
    assert record["image_id"] == 7 and (record["height"], record["width"]) == (48, 64)
    assert record["crowd_index"] == pytest.approx(0.4)
    person, crowd = record["annotations"]
    # +0.5 on every x, y (v=0 ones too, as Detectron2's load_coco_json does); v unchanged
    np.testing.assert_allclose(person["keypoints"], [10.5, 20.5, 2, 0.5, 0.5, 0, 30.5, 40.5, 1])
    assert person["num_keypoints"] == 2 and person["bbox"] == [1, 2, 30, 40] and person["category_id"] == 0
    assert crowd["iscrowd"] == 1 and "keypoints" not in crowd and "segmentation" in crowd


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("annotations"), "no 'annotations' field"),
        (lambda d: d.update(images=[]), "the dataset is empty"),
        (
            lambda d: d["annotations"][0].update(keypoints=[1, 2, 2] * 2),
            "annotation id 70 (image id 7): 'keypoints' has 6 numbers, expected 3 x 3 = 9",
        ),
        (
            lambda d: d["annotations"][0].update(keypoints=[1, 2, 2, 0, 0, 0, -65, 4, 2]),
            "annotation id 70 (image id 7): keypoint 2 at (-65, 4) lies more than 1 image width/height outside the 64 x 48 image",
        ),
        (
            lambda d: d["annotations"][0].update(keypoints=[float("nan"), 2, 2, 0, 0, 0, 3, 4, 2]),
            "annotation id 70 (image id 7): keypoint 0 is not finite",
        ),
        (lambda d: d["annotations"][0].update(keypoints=[1, 2, 3, 0, 0, 0, 3, 4, 2]), "visibility 3"),
        (
            lambda d: d["annotations"][0].update(image_id=8),
            "annotation id 70 (image id 8): refers to an unknown image id",
        ),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "bbox must be 4 finite numbers"),
        (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 7"),
    ],
)
def test_bad_annotations_name_file_and_id(tmp_path, mutate, message):
    data = _dataset()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(KeypointJsonError) as info:
        load_keypoint_json(path, str(tmp_path), 3)
    assert path in str(info.value) and message in str(info.value)


def test_missing_image_error_or_skip(tmp_path):
    data = _dataset()
    data["images"].append({"id": 8, "file_name": "gone.jpg", "width": 10, "height": 10})
    path = _write(tmp_path, data)
    with pytest.raises(KeypointJsonError, match=r"1 image file\(s\) missing \(id 8: .*gone.jpg"):
        load_keypoint_json(path, str(tmp_path), 3)
    records = load_keypoint_json(path, str(tmp_path), 3, missing_images="skip")
    assert [r["image_id"] for r in records] == [7]


def test_all_images_missing_is_an_empty_dataset(tmp_path):
    path = _write(tmp_path, _dataset(), images=())
    with pytest.raises(KeypointJsonError, match="empty"):
        load_keypoint_json(path, str(tmp_path), 3, missing_images="skip")


def test_unreadable_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KeypointJsonError, match="bad.json: not valid JSON"):
        load_keypoint_json(str(bad), str(tmp_path), 3)
    with pytest.raises(KeypointJsonError, match="nope.json: annotation file not found"):
        load_keypoint_json(str(tmp_path / "nope.json"), str(tmp_path), 3)


@pytest.mark.parametrize(
    "folder, json_name, k",
    [
        ("coco", "test_coco.json", 17),
        ("crowdpose", "test_crowdpose.json", 14),
        ("ochuman", "test_ochuman.json", 17),
    ],
)
def test_real_samples_load(shared_data, folder, json_name, k):
    records = load_keypoint_json(str(shared_data / folder / json_name), str(shared_data / folder), k)
    raw = json.loads((shared_data / folder / json_name).read_text())
    assert len(records) == len(raw["images"])
    assert sum(len(r["annotations"]) for r in records) == len(raw["annotations"])
    for r in records:
        for a in r["annotations"]:
            if not a["iscrowd"]:
                assert len(a["keypoints"]) == 3 * k
    if folder == "crowdpose":
        assert all("crowd_index" in r for r in records)


def test_first_pixel_left_half_is_inside_and_beyond_it_is_a_counted_target(tmp_path, caplog):
    # pixel-index x = -0.3 is continuous x = 0.2: on the first pixel, a labelled position inside the image
    path = _write(tmp_path, _dataset(keypoints=[-0.3, 2, 2, 0, 0, 0, 3, -0.5, 1]))
    with caplog.at_level(logging.INFO, logger="adaanchor.data.keypoint_json"):
        (record,) = load_keypoint_json(path, str(tmp_path), 3)
    assert record["annotations"][0]["keypoints"][0] == pytest.approx(0.2)
    assert not any("outside their image" in r.getMessage() for r in caplog.records)
    # x = -0.51 is just outside: kept as a labelled target (continuous -0.01), counted in the summary
    caplog.clear()
    path = _write(tmp_path, _dataset(keypoints=[-0.51, 2, 2, 0, 0, 0, 3, 4, 1]))
    with caplog.at_level(logging.INFO, logger="adaanchor.data.keypoint_json"):
        (record,) = load_keypoint_json(path, str(tmp_path), 3)
    np.testing.assert_allclose(record["annotations"][0]["keypoints"][:3], [-0.01, 2.5, 2])
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{path}: 1 labelled keypoint outside their image in 1 annotation" in warning.getMessage()
