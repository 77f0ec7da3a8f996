"""Hand-computed checks of adaanchor.evaluation's metrics on tiny ground truths built here."""

import copy
import math

import pytest

from adaanchor.evaluation import evaluate_keypoints, load_ground_truth, to_detectron2_metrics

SIGMA = 0.1  # one sigma for every keypoint of these toy skeletons: (2 sigma)^2 = 0.04


def person(ann_id, image_id, keypoints, bbox, area=None, iscrowd=0, num_keypoints=None):
    """A ground-truth annotation; keypoints = [(x, y, v), ...]."""
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": iscrowd,
        "bbox": list(bbox),
        "keypoints": [float(c) for kp in keypoints for c in kp],
        "num_keypoints": (sum(1 for kp in keypoints if kp[2] > 0) if num_keypoints is None else num_keypoints),
    }
    if area is not None:
        ann["area"] = area
    return ann


def dataset(annotations, num_keypoints, crowd_indices=None, num_images=1):
    images = [{"id": i + 1, "width": 640, "height": 480, "file_name": f"{i + 1}.jpg"} for i in range(num_images)]
    if crowd_indices is not None:
        for image, crowd_index in zip(images, crowd_indices):
            image["crowdIndex"] = crowd_index
    names = [f"kp{k}" for k in range(num_keypoints)]
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}],
    }


def prediction(image_id, keypoints, score):
    return {
        "image_id": image_id,
        "category_id": 1,
        "keypoints": [float(c) for kp in keypoints for c in kp],
        "score": score,
    }


def offset_for_oks(oks, scale, sigma=SIGMA):
    """Distance (px) at which a keypoint's OKS equals ``oks`` for object scale ``scale`` (px^2)."""
    return math.sqrt(-math.log(oks) * 2 * scale * (2 * sigma) ** 2)


def evaluate(gt, preds, protocol="coco", num_keypoints=2, **kwargs):
    return evaluate_keypoints(gt, preds, dataset=protocol, sigmas=[SIGMA] * num_keypoints, **kwargs)


def test_coco_ap_from_hand_computed_oks():
    # OKS 0.72 passes the thresholds 0.50, 0.55, 0.60, 0.65, 0.70 (5 of 10): AP = AR = 0.5.
    d = offset_for_oks(0.72, scale=1000.0)
    gt = dataset([person(1, 1, [(10, 10, 2), (30, 30, 2)], bbox=(0, 0, 50, 50), area=1000.0)], 2)
    preds = [prediction(1, [(10 + d, 10, 0.9), (30, 30 + d, 0.9)], 0.8)]
    m = evaluate(gt, preds)
    assert m["AP"] == pytest.approx(0.5, abs=1e-12)
    assert (m["AP50"], m["AP75"], m["AR"], m["AR50"], m["AR75"]) == pytest.approx((1.0, 0.0, 0.5, 1.0, 0.0))
    # area 1000 < 32^2: a "small" person, outside the medium and large ranges -> undefined there.
    assert m["APm"] == m["APl"] == m["ARm"] == m["ARl"] == -1.0


def test_crowdpose_uses_053_bbox_area_as_object_scale():
    # bbox 40 x 50 -> scale 0.53 * 2000 = 1060 px^2; the same offset computed for scale 1060 gives OKS 0.72.
    scale = 0.53 * 40 * 50
    d = offset_for_oks(0.72, scale=scale)
    gt = dataset([person(1, 1, [(10, 10, 2), (30, 30, 1)], bbox=(0, 0, 40, 50))], 2, crowd_indices=[0.5])
    preds = [prediction(1, [(10 + d, 10, 0.9), (30, 30 - d, 0.9)], 0.8)]
    m = evaluate(gt, preds, protocol="crowdpose")
    assert list(m)[:9] == [
        "AP",
        "AP50",
        "AP75",
        "AR",
        "AR50",
        "AR75",
        "AP_easy",
        "AP_medium",
        "AP_hard",
    ]
    assert m["AP"] == pytest.approx(0.5, abs=1e-12)
    assert (m["AP50"], m["AP75"], m["AR"]) == pytest.approx((1.0, 0.0, 0.5))
    assert (m["AP_easy"], m["AP_medium"], m["AP_hard"]) == (-1.0, 0.5, -1.0)
    # With a COCO "area" of 2000 px^2 instead, the same prediction has OKS 0.72^(1060/2000) = 0.84.
    gt_coco = copy.deepcopy(gt)
    gt_coco["annotations"][0]["area"] = 2000.0
    # passes the 7 thresholds 0.50 ... 0.80: AP 0.7
    assert evaluate(gt_coco, preds)["AP"] == pytest.approx(0.7, abs=1e-12)


def test_crowd_index_split_boundaries_and_rounding():
    # One person per image; images with crowd index 0.1 (easy), 0.2 and 0.79 (medium), 0.8 and 1.3 (hard).
    crowd = [0.1, 0.2, 0.79, 0.8, 1.3]
    anns = [person(i + 1, i + 1, [(100, 100, 2), (120, 140, 2)], bbox=(80, 80, 60, 80)) for i in range(5)]
    gt = dataset(anns, 2, crowd_indices=crowd, num_images=5)
    perfect = [prediction(i, [(100, 100, 1.0), (120, 140, 1.0)], 1.0) for i in (1, 2)]  # images 0.1, 0.2
    m = evaluate(gt, perfect, protocol="crowdpose")
    assert m["AP_easy"] == 1.0
    # medium: 1 of 2 persons found with precision 1 -> precision 1 at recall thresholds 0.00..0.50
    # (51 of 101) and 0 above, at every OKS threshold; rounded to 4 decimals as the official tools do.
    assert m["AP_medium"] == round(51 / 101, 4) == 0.505
    assert m["AP_hard"] == 0.0
    no_hard = dataset(anns[:3], 2, crowd_indices=crowd[:3], num_images=3)
    assert evaluate(no_hard, perfect, protocol="crowdpose")["AP_hard"] == -1.0


def test_keypoint_recall_greedy_by_confidence_and_oks_threshold():
    # Keypoint 0: persons A (100, 100) and B (110, 100); keypoint 1: only A labelled (B has v = 0).
    # Scale 10000 px^2: OKS = exp(-d^2 / (2 * 10000 * 0.04)) = exp(-d^2 / 800).
    anns = [
        person(1, 1, [(100, 100, 2), (100, 150, 2)], bbox=(50, 50, 100, 100), area=10000.0),
        person(2, 1, [(110, 100, 2), (0, 0, 0)], bbox=(60, 50, 100, 100), area=10000.0),
        person(3, 1, [(300, 300, 2), (300, 320, 2)], bbox=(250, 250, 100, 100), area=10000.0, iscrowd=1),
    ]
    gt = dataset(anns, 2)
    preds = [
        # keypoint 0 at (104, 100), confidence 0.9: nearest unmatched is A (4 px) -> A matched.
        prediction(1, [(104, 100, 0.9), (400, 400, 0.9)], 0.5),
        # keypoint 0 at (100, 100), confidence 0.8: A is taken, nearest unmatched is B at 10 px,
        # OKS exp(-100/800) = 0.8825 -> matched at threshold 0.5, rejected at 0.9.
        prediction(1, [(100, 100, 0.8), (300, 320, 0.8)], 0.9),
    ]
    m = evaluate(gt, preds)
    # n = 3 labelled keypoints of non-crowd persons (A: 2, B: 1); keypoint 1's predictions are far from A
    # (the one on the crowd region's keypoint does not count).
    assert (m["recall-kp0"], m["recall-kp1"], m["recall"]) == (1.0, 0.0, pytest.approx(2 / 3))
    strict = evaluate(gt, preds, recall_oks_threshold=0.9)
    assert (strict["recall-kp0"], strict["recall"]) == (0.5, pytest.approx(1 / 3))


def test_keypoint_recall_sees_only_the_top_20_poses_per_image():
    gt = dataset([person(1, 1, [(100, 100, 2)], bbox=(50, 50, 100, 100), area=10000.0)], 1)
    far = [prediction(1, [(500, 400, 0.9)], 0.9 - 0.01 * i) for i in range(20)]
    exact = prediction(1, [(100, 100, 1.0)], 0.01)  # lowest pose score: 21st pose
    assert evaluate(gt, far + [exact], num_keypoints=1)["recall"] == 0.0
    assert evaluate(gt, far[:19] + [exact], num_keypoints=1)["recall"] == 1.0


def test_error_and_confidence_by_visibility_over_matched_poses():
    anns = [person(1, 1, [(50, 50, 2), (60, 60, 1), (0, 0, 0)], bbox=(0, 0, 300, 300), area=90000.0)]
    gt = dataset(anns, 3)
    preds = [
        prediction(1, [(53, 54, 0.9), (66, 68, 0.3), (10, 10, 0.5)], 0.7),  # errors 5 px and 10 px
        prediction(1, [(600, 400, 0.1), (600, 400, 0.1), (600, 400, 0.1)], 0.9),  # unmatched: not counted
    ]
    m = evaluate(gt, preds, num_keypoints=3)
    assert m["vis_error"] == pytest.approx(5.0) and m["vis_score"] == pytest.approx(0.9)
    assert m["inv_error"] == pytest.approx(10.0) and m["inv_score"] == pytest.approx(0.3)
    only_visible = dataset([person(1, 1, [(50, 50, 2), (60, 60, 2), (0, 0, 0)], bbox=(0, 0, 300, 300), area=9e4)], 3)
    m = evaluate(only_visible, preds, num_keypoints=3)
    assert m["vis_error"] == pytest.approx(7.5) and math.isnan(m["inv_error"]) and math.isnan(m["inv_score"])


def test_per_keypoint_ap():
    anns = [
        person(1, 1, [(100, 100, 2), (100, 200, 2)], bbox=(50, 50, 100, 200), area=20000.0),
        person(2, 1, [(300, 100, 2), (0, 0, 0)], bbox=(250, 50, 100, 200), area=20000.0),
    ]
    gt = dataset(anns, 2)
    preds = [
        prediction(1, [(100, 100, 0.9), (600, 470, 0.9)], 0.9),  # kp0 exact, kp1 far from A and B
        prediction(1, [(300, 100, 0.9), (100, 200, 0.9)], 0.8),  # kp0 exact, kp1 exact for A
    ]
    m = evaluate(gt, preds)
    assert m["AP-kp0"] == 1.0
    # kp1: one labelled person (A); the first (higher-score) pose misses it, the second hits:
    # precision 1/2 at recall 1 at every threshold -> AP 0.5.
    assert m["AP-kp1"] == pytest.approx(0.5)
    gt_no_kp1 = dataset([person(1, 1, [(100, 100, 2), (0, 0, 0)], bbox=(50, 50, 100, 200), area=2e4)], 2)
    assert evaluate(gt_no_kp1, preds)["AP-kp1"] == -1.0
    assert "AP-kp0" not in evaluate(gt, preds, per_keypoint=False)


def test_zero_predictions_give_zero_not_a_crash():
    gt = dataset([person(1, 1, [(10, 10, 2), (30, 30, 1)], bbox=(0, 0, 40, 50))], 2, crowd_indices=[0.1])
    m = evaluate(gt, [], protocol="crowdpose")
    assert (m["AP"], m["AR"], m["AP_easy"], m["recall"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["AP_medium"] == -1.0 and math.isnan(m["vis_error"])


def test_results_do_not_depend_on_call_order_and_inputs_are_not_modified():
    gt = dataset(
        [
            person(1, 1, [(10, 10, 2), (30, 30, 1)], bbox=(0, 0, 40, 50), area=1500.0),
            person(2, 1, [(100, 100, 2), (130, 130, 2)], bbox=(90, 90, 50, 50), area=2000.0),
        ],
        2,
        crowd_indices=[0.5],
    )
    preds = [
        prediction(1, [(12, 11, 0.9), (29, 33, 0.4)], 0.8),
        prediction(1, [(101, 99, 0.7), (120, 135, 0.6)], 0.6),
    ]
    gt_before, preds_before = copy.deepcopy(gt), copy.deepcopy(preds)
    first_crowdpose = evaluate(gt, preds, protocol="crowdpose")
    first_coco = evaluate(gt, preds)
    loaded = load_ground_truth(gt, num_keypoints=2, protocol="crowdpose")
    again = [evaluate(loaded, preds, protocol="crowdpose") for _ in range(2)]
    assert evaluate(gt, preds) == first_coco
    assert again[0] == again[1] == first_crowdpose
    assert gt == gt_before and preds == preds_before


def test_detectron2_convention_scales_fractions_only():
    metrics = {
        "AP": 0.5,
        "APm": -1.0,
        "recall": 0.25,
        "AP-kp0": 1.0,
        "vis_error": 3.0,
        "vis_score": -0.7,
    }
    converted = to_detectron2_metrics(metrics)
    assert list(converted) == list(metrics)
    assert converted["AP"] == 50.0 and math.isnan(converted["APm"]) and converted["recall"] == 25.0
    assert converted["AP-kp0"] == 100.0 and converted["vis_error"] == 3.0 and converted["vis_score"] == -0.7
