"""Associative Embedding pieces (framework-free): the skeleton-derived joint order, grouping by tags, and the
pull / push tag loss on hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from adaanchor.bottom_up import (
    associative_embedding_loss,
    associative_embedding_sample_loss,
    ground_truth_tags,
    group_by_tags,
    joint_order_from_skeleton,
)
from adaanchor.data.keypoints import COCO_SPEC, CROWDPOSE_SPEC


def _adjacent_to_an_earlier_joint(order, skeleton):
    links = {frozenset(link) for link in skeleton}
    return all(any(frozenset((j, i)) in links for i in order[:n]) for n, j in enumerate(order) if n > 0)


def test_joint_order_for_coco_and_crowdpose_walks_the_skeleton_from_its_centre():
    coco = joint_order_from_skeleton(17, COCO_SPEC.skeleton_indices)
    crowd = joint_order_from_skeleton(14, CROWDPOSE_SPEC.skeleton_indices)
    assert sorted(coco) == list(range(17)) and sorted(crowd) == list(range(14))
    assert _adjacent_to_an_earlier_joint(coco, COCO_SPEC.skeleton_indices)
    assert _adjacent_to_an_earlier_joint(crowd, CROWDPOSE_SPEC.skeleton_indices)
    assert coco[0] == 5  # left shoulder: no COCO joint is nearer to all others (ties: degree, then index)
    assert crowd[:5] == [0, 1, 2, 6, 13]  # left shoulder, then its neighbours in index order (neck last)
    assert coco == joint_order_from_skeleton(17, COCO_SPEC.skeleton_indices)  # deterministic


def test_joint_order_for_a_custom_five_keypoint_dataset_with_a_loose_joint():
    # a chain 3 - 1 - 0 - 2 and joint 4 unlinked
    order = joint_order_from_skeleton(5, [(0, 1), (1, 3), (0, 2)])
    assert order == [0, 1, 2, 3, 4]
    assert joint_order_from_skeleton(5, [(3, 4), (4, 2), (2, 1), (1, 0)]) == [2, 1, 4, 0, 3]
    with pytest.raises(ValueError, match="out of range"):
        joint_order_from_skeleton(3, [(0, 3)])


def _candidates(people, spurious=()):
    """people: list of {type: (x, y, score, tag)}; spurious: list of (type, x, y, score, tag)."""
    k, d = 3, 4
    positions, scores, tags = np.zeros((k, d, 2)), np.zeros((k, d)), np.zeros((k, d, 1))
    fill = [0] * k
    for joint_type, x, y, score, tag in [(t, *v) for p in people for t, v in p.items()] + list(spurious):
        slot = fill[joint_type]
        positions[joint_type, slot], scores[joint_type, slot], tags[joint_type, slot, 0] = (x, y), score, tag
        fill[joint_type] += 1
    return positions, scores, tags


def test_grouping_two_people_with_crossing_limbs_a_missing_joint_and_a_spurious_candidate():
    # person A (tag 0) and B (tag 5): B's joint 2 lies next to A's joint 1 (crossing limbs): only tags decide
    a = {0: (10, 10, 0.9, 0.1), 1: (20, 20, 0.8, -0.2), 2: (50, 50, 0.7, 0.3)}
    b = {0: (60, 60, 0.95, 5.0), 1: (55, 52, 0.6, 5.2), 2: (21, 21, 0.5, 4.9)}
    missing = {0: (90, 10, 0.8, 10.0), 2: (95, 20, 0.6, 10.1)}  # no joint 1
    spurious = [(1, 5, 5, 0.05, 0.0)]  # below the detection threshold: ignored
    positions, scores, tags = _candidates([a, b, missing], spurious)
    poses, person_scores = group_by_tags(positions, scores, tags, [0, 1, 2], detection_threshold=0.1)
    assert poses.shape == (3, 3, 3)
    by_first_x = {round(p[0, 0]): p for p in poses}
    np.testing.assert_allclose(by_first_x[10][:, :2], [[10, 10], [20, 20], [50, 50]])
    np.testing.assert_allclose(by_first_x[60][:, :2], [[60, 60], [55, 52], [21, 21]])
    np.testing.assert_allclose(by_first_x[90], [[90, 10, 0.8], [0, 0, 0], [95, 20, 0.6]])
    np.testing.assert_allclose(sorted(person_scores), sorted([0.8, 0.6833333, (0.8 + 0.6) / 3]), rtol=1e-6)
    assert list(person_scores) == sorted(person_scores, reverse=True)


def test_refinement_fills_a_missing_joint_with_the_candidate_nearest_in_tag_and_is_off_by_default():
    a = {0: (10, 10, 0.9, 0.0), 1: (12, 12, 0.8, 0.1)}  # no joint 2
    b = {0: (60, 60, 0.9, 5.0), 1: (62, 62, 0.8, 5.1), 2: (64, 64, 0.7, 5.0)}
    # joint 2 candidates below the detection threshold: one near A's tag, one far but higher-scoring
    weak = [(2, 15, 15, 0.05, 0.2), (2, 30, 30, 0.09, 2.0)]
    positions, scores, tags = _candidates([a, b], weak)
    plain, plain_scores = group_by_tags(positions, scores, tags, [0, 1, 2])
    refined, refined_scores = group_by_tags(positions, scores, tags, [0, 1, 2], refine=True)
    first = {round(p[0, 0]): p for p in plain}
    assert first[10][2].tolist() == [0, 0, 0]  # off by default
    by_first_x = {round(p[0, 0]): p for p in refined}
    np.testing.assert_allclose(by_first_x[10][2], [15, 15, 0.05])  # 0.05 - round(0.15) beats 0.09 - round(1.95)
    np.testing.assert_allclose(by_first_x[60], first[60])  # a complete person is left as it is
    assert sorted(refined_scores) == pytest.approx(sorted([0.8, (0.9 + 0.8 + 0.05) / 3]))
    # B's own joint 2 (score 0.7, tag 5.0) is not taken for A: 0.7 - round(4.95) < 0.05 - 0
    assert plain_scores.max() == pytest.approx(0.8)


def test_a_candidate_far_from_every_tag_starts_a_person_and_max_people_cuts_the_worst():
    a = {0: (10, 10, 0.9, 0.0), 1: (12, 12, 0.9, 0.1)}
    stray = [(1, 40, 40, 0.3, 3.0)]  # tag distance 3 >= 1: a person of its own
    positions, scores, tags = _candidates([a], stray)
    poses, person_scores = group_by_tags(positions, scores, tags, [0, 1, 2])
    assert len(poses) == 2 and person_scores[1] == pytest.approx(0.1)
    poses, _ = group_by_tags(positions, scores, tags, [0, 1, 2], max_people=1)
    assert len(poses) == 1 and poses[0, 1, 0] == 12
    empty, empty_scores = group_by_tags(positions, np.zeros_like(scores), tags, [0, 1, 2])
    assert empty.shape == (0, 3, 3) and empty_scores.shape == (0,)
    with pytest.raises(ValueError, match="permutation"):
        group_by_tags(positions, scores, tags, [0, 1])


def test_pull_push_loss_by_hand():
    # image 0: person 0 tags (1, 3) -> ref 2, spread 1; person 1 tags (0) -> ref 0, spread 0
    # image 1: one person tags (4, 4, 4) -> no push pair
    tags = torch.tensor([[[1.0, 3.0, 9.0], [0.0, 7.0, 7.0]], [[4.0, 4.0, 4.0], [0.0, 0.0, 0.0]]], requires_grad=True)
    valid = torch.tensor([[[True, True, False], [True, False, False]], [[True, True, True], [False, False, False]]])
    pull, push = associative_embedding_loss(tags, valid)
    assert pull.item() == pytest.approx(((1.0 + 0.0) / 2 + 0.0) / 2)
    assert push.item() == pytest.approx((2 * math.exp(-4.0) / 2 * 0.5 + 0.0) / 2)
    (pull + push).backward()
    assert tags.grad[0, 0, 2] == 0 and tags.grad[0, 0, 0] != 0  # untagged joints get no gradient
    zero_pull, zero_push = associative_embedding_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3, dtype=torch.bool))
    assert zero_pull.item() == 0 and zero_push.item() == 0


def test_sample_loss_takes_several_samples_per_joint():
    """Tags at anchors: person 0 has samples (1, 1, 3) -> ref 5/3; person 1 (image 0) has (-1) -> ref -1."""
    tags = torch.tensor([1.0, 1.0, 3.0, -1.0])
    person = torch.tensor([0, 0, 0, 1])  # b * T + t with T = 2
    pull, push = associative_embedding_sample_loss(tags, person, batch=1, people=2)
    ref = 5.0 / 3.0
    spread = ((1 - ref) ** 2 * 2 + (3 - ref) ** 2) / 3
    assert pull.item() == pytest.approx(spread / 2)
    assert push.item() == pytest.approx(2 * math.exp(-((ref + 1.0) ** 2)) / 2 * 0.5)


def test_max_push_loss_by_hand_and_its_gradient_where_tags_meet():
    """HigherHRNet's "max" push: max(0, 1 - |d|) per ordered pair, halved. Three people with references 0, 0.25
    and 2 (pairs 0.75, 0, 0): push = 2 * 0.75 / 6 / 2. Where two people's tags nearly meet, exp's gradient
    vanishes and max's does not."""
    tags = torch.tensor([0.0, 0.25, 1.5, 2.5])
    person = torch.tensor([0, 1, 2, 2])  # person 2: ref 2, spread 0.25
    pull, push = associative_embedding_sample_loss(tags, person, batch=1, people=3, push_type="max")
    assert push.item() == pytest.approx(2 * 0.75 / 6 / 2)
    assert pull.item() == pytest.approx(0.25 / 3)
    _, exp_push = associative_embedding_sample_loss(tags, person, batch=1, people=3)
    assert exp_push.item() == pytest.approx(2 * (math.exp(-0.0625) + math.exp(-4.0) + math.exp(-3.0625)) / 6 / 2)
    near = torch.tensor([0.0, 1e-4], requires_grad=True)
    for push_type, expected in (("exp", 1e-4), ("max", 0.5)):  # d(0.5 f(r0 - r1)) / d r0, d = -1e-4
        near.grad = None
        associative_embedding_sample_loss(near, torch.tensor([0, 1]), 1, 2, push_type)[1].backward()
        assert near.grad.tolist() == pytest.approx([expected, -expected], rel=1e-3), push_type
    with pytest.raises(ValueError, match="MODEL.AE.PUSH_LOSS_TYPE"):
        associative_embedding_sample_loss(tags, person, batch=1, people=3, push_type="hinge")


def test_ground_truth_tags_name_the_person_whose_keypoint_of_the_type_is_nearest():
    people = np.array(
        [[[10, 10, 2], [20, 20, 2], [0, 0, 0]], [[60, 60, 2], [0, 0, 0], [0, 0, 0]]], dtype=float
    )  # (T=2, K=3, 3): type 1 only person 0 labelled, type 2 nobody
    positions = np.array([[[58, 61], [11, 9]], [[70, 70], [21, 19]], [[10, 10], [60, 60]]], dtype=float)  # (K, D=2)
    tags = ground_truth_tags(positions, people)
    assert tags.shape == (3, 2, 1)
    assert tags[0, :, 0].tolist() == [1, 0] and tags[1, :, 0].tolist() == [0, 0]  # nearest labelled of that type
    assert tags[2, :, 0].tolist() == [2 + 4, 2 + 5]  # nobody labelled type 2: tags of their own
    scores = np.array([[0.9, 0.9], [0.5, 0.9], [0.9, 0.9]])  # the far type-1 candidate scores lower
    poses, _ = group_by_tags(positions, scores, tags, [0, 1, 2])
    by_first_x = {round(p[0, 0]): p for p in poses if p[0, 2] > 0}
    np.testing.assert_allclose(by_first_x[11][:2, :2], [[11, 9], [21, 19]])  # person 0 gets its own type-1 joint
    assert len(poses) == 5  # persons 0 and 1, type 1's far candidate and the two type-2 candidates alone
    empty = ground_truth_tags(positions, np.zeros((0, 3, 3)))
    assert empty[..., 0].tolist() == [[0, 1], [2, 3], [4, 5]]
