"""The bottom-up mapper (needs Detectron2): keypoints follow the image, labels survive, flips swap sides."""

import logging

import cv2
import numpy as np
import pytest

pytest.importorskip("detectron2")

from detectron2.data import transforms as T  # noqa: E402
from detectron2.structures import BoxMode  # noqa: E402

from adaanchor.data.bottom_up_mapper import BottomUpDatasetMapper  # noqa: E402

# 3 keypoints: left_hand, right_hand, nose -> flip swaps 0 and 1
FLIP = [1, 0, 2]


def _image_and_record(tmp_path, keypoints, extra_annotations=()):
    """A black 60x80 image with a bright 1-px dot under every labelled keypoint (continuous coords)."""
    h, w = 60, 80
    img = np.zeros((h, w, 3), np.uint8)
    for x, y, v in keypoints:
        if v > 0 and 0 <= x < w and 0 <= y < h:
            img[int(y), int(x)] = (0, 0, 255) if x < 40 else (255, 0, 0)
    path = str(tmp_path / "img.png")
    cv2.imwrite(path, img)
    flat = [c for kp in keypoints for c in kp]
    ann = {
        "bbox": [5, 5, 50, 40],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "iscrowd": 0,
        "keypoints": flat,
        "num_keypoints": 3,
        "area": 1000.0,
    }
    return {"file_name": path, "image_id": 1, "height": h, "width": w, "annotations": [ann, *extra_annotations]}


def _mapper(**kw):
    args = dict(
        image_format="BGR",
        input_size=64,
        scale_range=(1.0, 1.0),
        max_rotation_deg=0.0,
        max_translation=0.0,
        flip_prob=0.0,
        flip_indices=FLIP,
        num_keypoints=3,
        test_resize=T.ResizeShortestEdge(32, 1000),
    )
    args.update(kw)
    return BottomUpDatasetMapper(True, **args)


def test_keypoints_follow_the_pixels(tmp_path):
    rec = _image_and_record(tmp_path, [(25.5, 20.5, 2), (50.5, 35.5, 1), (0.0, 0.0, 0)])
    out = _mapper(scale_range=(1.2, 1.2), max_rotation_deg=25.0, max_translation=5.0)(rec)
    img = out["image"].numpy().transpose(1, 2, 0).astype(np.float32).sum(axis=2)
    kpts = out["instances"].gt_keypoints.tensor.numpy()[0]
    for x, y, v in kpts[:2]:  # each labelled keypoint sits on (or next to) its bright pixel
        assert 1 <= x < 63 and 1 <= y < 63
        xi, yi = int(np.floor(x)), int(np.floor(y))
        assert img[max(yi - 1, 0) : yi + 2, max(xi - 1, 0) : xi + 2].max() > 0
    assert kpts[2].tolist() == [0.0, 0.0, 0.0]  # unlabelled stays (0, 0, 0)
    assert out["instances"].gt_areas[0].item() == pytest.approx(1000.0 * (1.2 * 64 / 60) ** 2, rel=1e-5)


def test_flip_swaps_left_and_right_indices(tmp_path):
    rec = _image_and_record(tmp_path, [(10.5, 20.5, 2), (60.5, 30.5, 1), (40.5, 10.5, 2)])
    out = _mapper(flip_prob=1.0)(rec)
    kpts = out["instances"].gt_keypoints.tensor.numpy()[0]
    s = 64 / 60  # zoom: the short side (60) spans the input; the image is centred
    # original keypoint 1 (x=60.5) is now index 0, mirrored: x' = 64 - (32 + (60.5 - 40) * s)
    assert kpts[0, 0] == pytest.approx(64 - (32 + (60.5 - 40) * s))
    assert kpts[0, 2] == 1 and kpts[1, 2] == 2  # visibilities travel with their keypoints
    assert kpts[1, 0] == pytest.approx(64 - (32 + (10.5 - 40) * s))


def test_keypoints_outside_the_input_keep_their_labels(tmp_path):
    rec = _image_and_record(tmp_path, [(2.5, 30.5, 2), (77.5, 30.5, 2), (40.5, 30.5, 2)])
    out = _mapper(scale_range=(1.5, 1.5))(rec)  # zoom in: the far left/right points leave the 64 px input
    kpts = out["instances"].gt_keypoints.tensor.numpy()[0]
    assert kpts[0, 0] < 0 and kpts[1, 0] > 64
    assert kpts[:, 2].tolist() == [2, 2, 2]


def test_crowd_and_unlabelled_people_become_the_ignore_mask(tmp_path):
    crowd = {
        "bbox": [0, 0, 10, 10],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "iscrowd": 1,
        "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]],
    }
    nobody = {
        "bbox": [60, 40, 10, 10],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "iscrowd": 0,
        "keypoints": [0] * 9,
        "num_keypoints": 0,
        "segmentation": [[60, 40, 70, 40, 70, 50, 60, 50]],
    }
    rec = _image_and_record(tmp_path, [(30.5, 30.5, 2)] * 3, [crowd, nobody])
    out = _mapper(input_size=60)(rec)  # zoom 1; the 80 px wide image is centred: x' = x - 10, y' = y
    assert len(out["instances"]) == 1
    mask = out["ignore_mask"].numpy()
    assert mask.dtype == bool and mask.shape == (60, 60)
    assert mask[10, 15 - 10] and mask[45, 65 - 10] and not mask[30, 30 - 10]


def test_corrupt_image_skipped_in_training_rejected_in_test(tmp_path, caplog):
    rec = _image_and_record(tmp_path, [(10.5, 20.5, 2)] * 3)
    (tmp_path / "img.png").write_bytes(b"\x89PNG broken")
    assert _mapper()(rec) is None
    assert "image id 1" in caplog.text and "img.png" in caplog.text
    test_mapper = BottomUpDatasetMapper(
        False, image_format="BGR", input_size=64, test_resize=T.ResizeShortestEdge(32, 1000)
    )
    with pytest.raises(RuntimeError, match="image id 1 .*img.png"):
        test_mapper(rec)


def test_test_mode_resizes_short_side(tmp_path):
    rec = _image_and_record(tmp_path, [(10.5, 20.5, 2)] * 3)
    test_mapper = BottomUpDatasetMapper(
        False, image_format="BGR", input_size=64, test_resize=T.ResizeShortestEdge(30, 1000)
    )
    out = test_mapper(rec)
    assert tuple(out["image"].shape) == (3, 30, 40) and (out["height"], out["width"]) == (60, 80)
    assert "annotations" not in out and "instances" not in out


def test_test_mode_keeps_the_people_resized_with_the_image_for_ground_truth_tags(tmp_path):
    crowd = {"bbox": [0, 0, 5, 5], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "iscrowd": 1,
             "keypoints": [1.0, 1.0, 2] * 3, "area": 25.0}  # fmt: skip
    rec = _image_and_record(tmp_path, [(10.5, 20.5, 2), (0, 0, 0), (41.0, 30.0, 1)], [crowd])
    test_mapper = BottomUpDatasetMapper(
        False, image_format="BGR", input_size=64, num_keypoints=3, test_resize=T.ResizeShortestEdge(30, 1000),
        test_keypoints=True,
    )  # fmt: skip
    out = test_mapper(dict(rec))
    assert out["instances"].image_size == (30, 40)
    keypoints = out["instances"].gt_keypoints.tensor
    assert keypoints.shape == (1, 3, 3)  # the crowd region is no person
    np.testing.assert_allclose(keypoints[0].numpy(), [[5.25, 10.25, 2], [0, 0, 0], [20.5, 15.0, 1]])
    nobody = test_mapper(dict(rec, annotations=[crowd]))  # an image without people: no person, no error
    assert nobody["instances"].gt_keypoints.tensor.shape == (0, 3, 3)


def test_json_size_that_disagrees_with_the_image_uses_the_decoded_size(tmp_path, caplog):
    # The original CrowdPose json gives sizes that differ from some image files: use the pixels' size, warn once.
    rec = _image_and_record(tmp_path, [(10.5, 20.5, 2)] * 3)
    rec["height"], rec["width"] = 80, 60
    mapper = _mapper()
    with caplog.at_level(logging.WARNING, logger="adaanchor.data.bottom_up_mapper"):
        outs = [mapper(rec), mapper(rec)]
    assert all(out is not None and (out["height"], out["width"]) == (60, 80) for out in outs)
    (warning,) = [r.getMessage() for r in caplog.records if "decoded image" in r.getMessage()]
    assert "image id 1" in warning and "img.png" in warning
    assert "the json gives 60 x 80 (width x height), the decoded image is 80 x 60" in warning
    test_mapper = BottomUpDatasetMapper(
        False, image_format="BGR", input_size=64, test_resize=T.ResizeShortestEdge(30, 1000)
    )
    out = test_mapper(rec)
    assert (out["height"], out["width"]) == (60, 80) and tuple(out["image"].shape) == (3, 30, 40)
