import json
from collections import defaultdict

import numpy as np
import pytest

from adaanchor.data.crowd_index import crowd_index, crowd_index_of_annotations, crowd_level


def _person(joints, bbox):
    """joints: list of (x, y, v)."""
    return {"keypoints": [c for j in joints for c in j], "bbox": list(bbox)}


def test_two_persons_hand_computed():
    # A's box [0, 10] x [0, 10] holds one labelled joint of B (6, 6); B's (7, 7) has v = 0 and (14, 14) is out.
    a = _person([(1, 1, 2), (2, 2, 1), (0, 0, 0)], (0, 0, 10, 10))
    # B's box [5, 15] x [5, 15] holds none of A's joints.
    b = _person([(6, 6, 2), (14, 14, 1), (7, 7, 0)], (5, 5, 10, 10))
    # A: N_b / N_a = 1 / 2; B: 0 / 2 -> CI = (0.5 + 0) / 2.
    assert crowd_index_of_annotations([a, b]) == pytest.approx(0.25)


def test_box_edges_are_inside():
    a = _person([(1, 1, 2), (0, 0, 0), (0, 0, 0)], (0, 0, 10, 10))
    b = _person([(10, 10, 2), (0, 5, 2), (10.01, 5, 2)], (20, 20, 5, 5))  # corner and left edge inside, one just out
    # A: 2 / 1; B: 0 / 3 -> CI = 1.0
    assert crowd_index_of_annotations([a, b]) == pytest.approx(1.0)


def test_unlabelled_person_is_left_out_of_the_mean_and_its_box_counts_nothing():
    a = _person([(1, 1, 2), (2, 2, 1), (0, 0, 0)], (0, 0, 10, 10))
    b = _person([(6, 6, 2), (14, 14, 1), (7, 7, 0)], (5, 5, 10, 10))
    c = _person([(1, 1, 0), (6, 6, 0), (3, 3, 0)], (0, 0, 100, 100))
    assert crowd_index_of_annotations([a, b, c]) == pytest.approx(0.25)


def test_three_persons_and_values_above_one():
    # Person 0 is small and sits among two others whose joints fill its box.
    p0 = _person([(5, 5, 2), (6, 6, 2), (0, 0, 0)], (4, 4, 4, 4))
    p1 = _person([(4, 4, 2), (7, 7, 2), (50, 50, 2)], (0, 0, 60, 60))
    p2 = _person([(5, 7, 1), (30, 30, 2), (0, 0, 0)], (4, 4, 30, 30))
    # p0: joints of p1 in [4,8]^2: (4,4), (7,7) -> 2; of p2: (5,7) -> 1; N_b = 3, N_a = 2 -> 1.5
    # p1: box [0,60]^2 holds p0's 2 and p2's 2 -> 4 / 3
    # p2: box [4,34]^2 holds p0's 2, p1's (4,4), (7,7) -> 4 / 2 = 2
    expected = (1.5 + 4 / 3 + 2.0) / 3
    assert crowd_index_of_annotations([p0, p1, p2]) == pytest.approx(expected)


def test_empty_and_single_person():
    assert crowd_index(np.zeros((0, 14, 3)), np.zeros((0, 4))) == 0.0
    assert crowd_index_of_annotations([]) == 0.0
    assert crowd_index_of_annotations([_person([(1, 1, 2)], (0, 0, 5, 5))]) == 0.0


def test_flat_and_shaped_keypoints_agree():
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(0, 50, (4, 5, 2)), rng.integers(0, 3, (4, 5, 1))], axis=2)
    boxes = np.concatenate([rng.uniform(0, 25, (4, 2)), rng.uniform(5, 25, (4, 2))], axis=1)
    assert crowd_index(kpts, boxes) == crowd_index(kpts.reshape(4, -1), boxes)


def test_bad_boxes_shape():
    with pytest.raises(ValueError, match="bboxes"):
        crowd_index(np.zeros((2, 3, 3)), np.zeros((2, 3)))


@pytest.mark.parametrize(
    "ci, level",
    [(0.0, "easy"), (0.1999, "easy"), (0.2, "medium"), (0.7999, "medium"), (0.8, "hard"), (1.7, "hard")],
)
def test_crowd_level_thresholds(ci, level):
    assert crowd_level(ci) == level


def test_reproduces_real_crowdpose_crowd_index(shared_data):
    """CrowdPose stores the index rounded to 2 decimals; our rules must give the same on real images."""
    files = [
        shared_data / "crowdpose" / "test_crowdpose.json",
        shared_data / "xtcocoapi_examples" / "example_crowdpose_val.json",
    ]
    checked = 0
    for path in files:
        data = json.loads(path.read_text())
        by_image = defaultdict(list)
        for ann in data["annotations"]:
            by_image[ann["image_id"]].append(ann)
        for image in data["images"]:
            ci = crowd_index_of_annotations(by_image[image["id"]])
            assert round(ci, 2) == pytest.approx(image["crowdIndex"]), (path.name, image["id"], ci)
            checked += 1
    assert checked == 6
