"""Bad input to adaanchor.evaluation fails with the file and the image / annotation id named."""

import copy
import json
import subprocess
import sys

import pytest

from adaanchor.evaluation import evaluate_keypoints
from adaanchor.evaluation.__main__ import main

K = 2
SIGMAS = [0.1, 0.1]


def ground_truth():
    return {
        "images": [{"id": 7, "width": 100, "height": 100, "crowdIndex": 0.3}],
        "annotations": [
            {
                "id": 11,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [10, 10, 50, 60],
                "area": 2500.0,
                "num_keypoints": 2,
                "keypoints": [20, 20, 2, 30, 40, 1],
            }
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b"]}],
    }


def predictions():
    return [{"image_id": 7, "category_id": 1, "keypoints": [21, 19, 0.9, 31, 42, 0.5], "score": 0.8}]


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return str(path)


def evaluate(gt, preds, dataset="coco"):
    return evaluate_keypoints(gt, preds, dataset=dataset, sigmas=SIGMAS)


def test_valid_input_evaluates():
    assert evaluate(ground_truth(), predictions())["AP"] > 0.9


def test_ground_truth_without_annotations_names_the_file(tmp_path):
    gt = ground_truth()
    del gt["annotations"]
    path = write(tmp_path, "no_annotations.json", gt)
    with pytest.raises(ValueError, match=r"no_annotations\.json has no 'annotations'"):
        evaluate(path, predictions())


def test_missing_file_and_invalid_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        evaluate(str(tmp_path / "missing.json"), predictions())
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        evaluate(str(bad), predictions())


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "keypoints",
            [20, 20, 2, 30, 40],
            r"annotation id 11 \(image id 7\): 'keypoints' has 5 numbers, expected 3 x 2",
        ),
        (
            "keypoints",
            [20, -101, 2, 30, 40, 1],  # y = -1 is accepted noise (test_real_data_warts.py)
            r"annotation id 11 \(image id 7\): keypoint 0 at \(20, -101\) lies more than 1 image "
            r"width/height outside the 100 x 100 image",
        ),
        (
            "keypoints",
            [20, 20, 2, float("nan"), 40, 1],
            r"annotation id 11 \(image id 7\): keypoint 1 is not finite",
        ),
        (
            "keypoints",
            [20, 20, 3, 30, 40, 1],
            r"annotation id 11 \(image id 7\): keypoint 0 has visibility 3",
        ),
        (
            "num_keypoints",
            None,
            r"annotation id 11 \(image id 7\): 'num_keypoints' must be a non-negative integer",
        ),
        (
            "area",
            None,
            r"annotation id 11 \(image id 7\): 'area' must be a finite non-negative number",
        ),
        (
            "bbox",
            [10, 10, -5, 60],
            r"annotation id 11 \(image id 7\): 'bbox' must be 4 finite numbers",
        ),
        (
            "image_id",
            8,
            r"annotation id 11 \(image id 8\): image id not among the ground truth's images",
        ),
        ("id", 0, r"annotation 0 on image 7 needs a positive integer 'id'"),
    ],
)
def test_bad_ground_truth_annotation_is_named(tmp_path, field, value, message):
    gt = ground_truth()
    if value is None:
        del gt["annotations"][0][field]
    else:
        gt["annotations"][0][field] = value
    path = write(tmp_path, "gt.json", gt)
    with pytest.raises(ValueError, match=message) as error:
        evaluate(path, predictions())
    assert "gt.json" in str(error.value)


def test_duplicate_annotation_id_is_rejected():
    gt = ground_truth()
    gt["annotations"].append(copy.deepcopy(gt["annotations"][0]))
    with pytest.raises(ValueError, match="annotation id 11 .* appears twice"):
        evaluate(gt, predictions())


def test_empty_dataset_is_rejected(tmp_path):
    gt = ground_truth()
    gt["images"], gt["annotations"] = [], []
    with pytest.raises(ValueError, match=r"empty.json is empty: it has no images"):
        evaluate(write(tmp_path, "empty.json", gt), predictions())
    gt = ground_truth()
    gt["annotations"][0]["num_keypoints"] = 0
    with pytest.raises(ValueError, match="has no person to evaluate"):
        evaluate(gt, predictions())


def test_crowdpose_needs_crowd_index_per_image():
    gt = ground_truth()
    del gt["images"][0]["crowdIndex"]
    with pytest.raises(ValueError, match="image id 7 has no finite 'crowdIndex'"):
        evaluate(gt, predictions(), dataset="crowdpose")
    del gt["annotations"][0]["area"]
    gt["images"][0]["crowdIndex"] = 0.5
    assert evaluate(gt, predictions(), dataset="crowdpose")["AP"] > 0.9  # CrowdPose needs no area


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image_id": 99}, r"entry 0 \(image id 99\): image id 99 is not in the ground truth"),
        (
            {"keypoints": [21, 19, 0.9]},
            r"entry 0 \(image id 7\): 'keypoints' has 3 numbers, expected 3 x 2",
        ),
        (
            {"keypoints": [21, float("nan"), 0.9, 31, 42, 0.5]},
            r"entry 0 \(image id 7\): keypoint 0 is not finite",
        ),
        ({"score": float("inf")}, r"entry 0 \(image id 7\): 'score' must be a finite number"),
        ({"category_id": 2}, r"entry 0 \(image id 7\): category_id 2 is not in the ground truth"),
    ],
)
def test_bad_prediction_is_named(tmp_path, change, message):
    preds = predictions() + [dict(predictions()[0], **change)]
    path = write(tmp_path, "dt.json", preds)
    with pytest.raises(ValueError, match=message.replace("entry 0", "entry 1")) as error:
        evaluate(ground_truth(), path)
    assert "dt.json" in str(error.value)


def test_prediction_without_score_or_with_partial_bboxes():
    preds = predictions()
    del preds[0]["score"]
    with pytest.raises(ValueError, match="entry 0 .* has no 'score'"):
        evaluate(ground_truth(), preds)
    preds = [dict(predictions()[0], bbox=[10, 10, 50, 60]), predictions()[0]]
    with pytest.raises(ValueError, match="'bbox' must be on every prediction or on none"):
        evaluate(ground_truth(), preds)


def test_negative_predicted_coordinates_are_legitimate():
    # A joint predicted just outside the image (e.g. after Detectron2's -0.5) is a valid prediction.
    gt = ground_truth()
    gt["annotations"][0]["keypoints"][0] = 0  # a joint on the image's left edge
    preds = [dict(predictions()[0], keypoints=[-0.3, 19, 0.9, 31, 42, 0.5])]
    assert evaluate(gt, preds)["AP"] > 0.9


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="unknown dataset 'mpii'"):
        evaluate_keypoints(ground_truth(), predictions(), dataset="mpii")


def test_command_line_reports_bad_input_with_exit_status_1(tmp_path, capsys):
    gt = ground_truth()
    gt["annotations"][0]["keypoints"] = [20, 20, 2]
    status = main(
        [
            "--gt",
            write(tmp_path, "gt.json", gt),
            "--dt",
            write(tmp_path, "dt.json", predictions()),
            "--dataset",
            "coco",
        ]
    )
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ""
    assert "gt.json: annotation id 11" in captured.err and "expected 3 x 17" in captured.err


def test_command_line_entry_point_runs_as_a_module(tmp_path):
    gt = ground_truth()
    gt["annotations"][0]["keypoints"] = [20, 20, 2] * 17
    gt["annotations"][0]["num_keypoints"] = 17
    preds = [dict(predictions()[0], keypoints=[20, 20, 1.0] * 17)]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaanchor.evaluation",
            "--gt",
            write(tmp_path, "gt.json", gt),
            "--dt",
            write(tmp_path, "dt.json", preds),
            "--dataset",
            "ochuman",
            "--no-per-keypoint",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(metrics)[:10] == [
        "AP",
        "AP50",
        "AP75",
        "APm",
        "APl",
        "AR",
        "AR50",
        "AR75",
        "ARm",
        "ARl",
    ]
    assert metrics["AP"] == pytest.approx(1.0) and metrics["inv_error"] is None  # no v = 1: NaN -> null


def test_core_imports_without_torch_or_detectron2():
    code = (
        "import sys, adaanchor.evaluation, adaanchor.evaluation.__main__; "
        "print(sorted(m for m in ('torch', 'torchvision', 'detectron2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
