"""The synthetic renderer: body model, drawing convention and visibility from the owner buffer."""

import numpy as np
import pytest

from adaanchor.data.keypoints import COCO_SPEC, CROWDPOSE_SPEC
from adaanchor.data.synthetic import body
from adaanchor.data.synthetic.body import BODY_JOINT_NAMES, sample_pose
from adaanchor.data.synthetic.dataset import person_annotation
from adaanchor.data.synthetic.person import person_paints, sample_appearance
from adaanchor.data.synthetic.scene import Entity, render_entities, render_image
from adaanchor.data.synthetic.shapes import Paint, disk, polygon

J = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}


def _pose(seed, front=None):
    rng = np.random.default_rng(seed)
    while True:
        pose = sample_pose(rng)
        if front is None or pose.front == front:
            return pose


def test_body_model_covers_both_skeletons():
    for spec in (COCO_SPEC, CROWDPOSE_SPEC):
        assert set(spec.keypoint_names) <= set(BODY_JOINT_NAMES)


@pytest.mark.parametrize("seed", range(30))
def test_left_right_follow_the_facing(seed):
    """Front-facing: the person's left is on the image right; back-facing: on the image left. Shoulders and
    hips are fixed by the torso, so their order along the torso's right axis tells the side."""
    pose = _pose(seed)
    right_axis = np.array([-pose.up[1], pose.up[0]])
    sign = 1.0 if pose.front else -1.0
    for part in ("shoulder", "hip", "ear"):
        left, right = pose.joint(f"left_{part}"), pose.joint(f"right_{part}")
        axis = right_axis if part != "ear" else np.array([-pose.head_up[1], pose.head_up[0]])
        assert sign * float((left - right) @ axis) > 0, (part, pose.front)


@pytest.mark.parametrize("seed", range(30))
def test_proportions_and_angle_limits(seed):
    """Segment lengths within the jittered proportions (foreshortened at most to 55%), head above the neck."""
    pose = _pose(seed)
    for side in ("left", "right"):
        upper = np.linalg.norm(pose.joint(f"{side}_elbow") - pose.joint(f"{side}_shoulder"))
        lower = np.linalg.norm(pose.joint(f"{side}_wrist") - pose.joint(f"{side}_elbow"))
        thigh = np.linalg.norm(pose.joint(f"{side}_knee") - pose.joint(f"{side}_hip"))
        shin = np.linalg.norm(pose.joint(f"{side}_ankle") - pose.joint(f"{side}_knee"))
        for length, nominal in ((upper, body.UPPER_ARM), (lower, body.FOREARM), (thigh, body.THIGH), (shin, body.SHIN)):
            assert 0.55 * 0.94 * nominal - 1e-9 <= length <= 1.06 * nominal + 1e-9
    torso = np.linalg.norm(pose.joint("neck") - 0.5 * (pose.joint("left_hip") + pose.joint("right_hip")))
    assert 0.94 * body.TORSO_LENGTH - 1e-9 <= torso <= 1.06 * body.TORSO_LENGTH + 1e-9
    # The torso leans at most TORSO_LEAN_MAX; the head sits above the neck.
    assert pose.up[1] <= -np.cos(np.deg2rad(body.TORSO_LEAN_MAX)) + 1e-9
    assert pose.joint("head")[1] < pose.joint("neck")[1]
    # A standing person is about one body unit tall: head top to the lowest ankle within [0.55, 1.1].
    height = max(pose.joint("left_ankle")[1], pose.joint("right_ankle")[1]) - pose.joint("head")[1]
    assert 0.55 < height < 1.1


def test_drawn_position_is_the_label_in_pixel_index_coordinates():
    """A disk drawn at pixel-index position (10, 20) — continuous (10.5, 20.5) — is centred on pixel (10, 20)."""
    image = np.zeros((40, 40, 3), np.uint8)
    render_entities(image, [Entity(paints=[Paint(disk(np.array([10.0, 20.0]), 3.0), (0, 0, 255), True)])])
    ys, xs = np.nonzero(image[:, :, 2] > 127)
    assert image[20, 10, 2] == 255
    assert xs.mean() == pytest.approx(10.0, abs=0.05) and ys.mean() == pytest.approx(20.0, abs=0.05)


def _person_entity(seed, origin, height, front=None):
    rng = np.random.default_rng(seed)
    pose = _pose(seed, front).transformed(np.asarray(origin, float), height)
    look = sample_appearance(rng, np.array([0.0, -1.0]))
    return Entity(paints=person_paints(pose, height, look, rng), pose=pose, scale=height)


def _occluder_at(point, radius=4.0):
    return Entity(paints=[Paint(disk(np.asarray(point, float), radius), (0, 255, 0), silhouette=True)])


def test_joint_under_an_occluder_in_front_is_v1_and_behind_is_v2():
    person = _person_entity(3, (100, 100), 200.0, front=True)
    wrist = person.pose.joint("left_wrist")
    image = np.zeros((260, 220, 3), np.uint8)
    (labelled,) = render_entities(image, [person, _occluder_at(wrist)])
    assert labelled.visibility[J["left_wrist"]] == 1
    assert labelled.visibility[J["right_ankle"]] == 2 or np.linalg.norm(person.pose.joint("right_ankle") - wrist) < 6
    (behind,) = render_entities(np.zeros_like(image), [_occluder_at(wrist), person])
    assert behind.visibility[J["left_wrist"]] == 2


def test_person_in_front_occludes_the_one_behind():
    back = _person_entity(5, (100, 100), 200.0, front=True)
    # A big rectangle "person part" is not needed: a second person placed on the same spot covers the torso.
    front = _person_entity(6, (100, 100), 200.0, front=True)
    image = np.zeros((260, 220, 3), np.uint8)
    p_back, p_front = render_entities(image, [back, front])
    covered = [n for n in ("left_hip", "right_hip", "neck") if p_back.visibility[J[n]] == 1]
    assert covered, p_back.visibility  # the front person's torso covers part of the back person's torso
    assert all(p_front.visibility[J[n]] == 2 for n in ("left_hip", "right_hip", "neck"))


def test_joints_outside_the_image_are_v0_and_written_as_zeros():
    person = _person_entity(7, (10, 60), 120.0, front=True)  # pelvis 10 px from the left border
    image = np.zeros((200, 150, 3), np.uint8)
    (rendered,) = render_entities(image, [person])
    px = np.floor(person.pose.joints + 0.5)
    outside = (px[:, 0] < 0) | (px[:, 1] < 0) | (px[:, 0] >= 150) | (px[:, 1] >= 200)
    assert outside.any() and (~outside).any()
    assert np.all(rendered.visibility[outside] == 0)
    assert np.all(rendered.visibility[~outside] > 0)
    assert rendered.truncated
    ann = person_annotation(rendered, CROWDPOSE_SPEC)
    kpts = np.array(ann["keypoints"]).reshape(-1, 3)
    for name, (x, y, v) in zip(CROWDPOSE_SPEC.keypoint_names, kpts):
        if outside[J[name]]:
            assert (x, y, v) == (0, 0, 0)
        else:
            assert (x, y) == pytest.approx(tuple(person.pose.joint(name)), abs=0.005)
    # num_keypoints counts the labelled body joints only (head and neck excluded for CrowdPose)
    counted = [n for n in CROWDPOSE_SPEC.keypoint_names if n not in ("head", "neck")]
    assert ann["num_keypoints"] == sum(not outside[J[n]] for n in counted)
    # the box covers the in-image silhouette: it starts at the border
    assert ann["bbox"][0] == 0.0


def test_back_facing_face_is_v1_front_facing_face_is_v2():
    image = np.zeros((260, 220, 3), np.uint8)
    (back,) = render_entities(image, [_person_entity(11, (100, 100), 200.0, front=False)])
    (front,) = render_entities(np.zeros_like(image), [_person_entity(11, (100, 100), 200.0, front=True)])
    for name in ("nose", "left_eye", "right_eye"):
        assert back.visibility[J[name]] == 1
        assert front.visibility[J[name]] == 2
    assert back.visibility[J["left_ear"]] == 2


def test_bbox_and_area_of_an_occluder_free_person():
    person = _person_entity(13, (110, 110), 150.0)
    image = np.zeros((240, 220, 3), np.uint8)
    (rendered,) = render_entities(image, [person])
    x, y, w, h = rendered.bbox
    joints = person.pose.joints
    # every joint (pixel-index) lies in the continuous box [x, x + w) after adding 0.5
    assert np.all(joints[:, 0] + 0.5 >= x) and np.all(joints[:, 0] + 0.5 <= x + w)
    assert np.all(joints[:, 1] + 0.5 >= y) and np.all(joints[:, 1] + 0.5 <= y + h)
    assert 0 < rendered.area < w * h
    assert not rendered.truncated


def test_polygon_occluder_covers_by_painter_order():
    """Three stacked entities: the middle one's joints are v = 1 only where the front one covers them."""
    back = _person_entity(17, (100, 120), 200.0)
    wall = Entity(paints=[Paint(polygon([[0, 0], [220, 0], [220, 110], [0, 110]]), (9, 9, 9), silhouette=True)])
    image = np.zeros((260, 220, 3), np.uint8)
    (rendered,) = render_entities(image, [back, wall])
    y_px = np.floor(back.pose.joints[:, 1] + 0.5)
    assert np.all(rendered.visibility[y_px <= 110] == 1)
    assert np.all(rendered.visibility[(y_px > 111) & (rendered.visibility > 0)] == 2)


def test_render_image_is_deterministic_and_seed_dependent():
    a, b = render_image(5, 2, 160), render_image(5, 2, 160)
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(p.joints, q.joints) for p, q in zip(a.persons, b.persons))
    c = render_image(6, 2, 160)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)
