"""Associative Embedding grouping (Newell et al., NeurIPS'17, as in HigherHRNet): keypoint candidates of every
type are grouped into people by their tags, joint type by joint type, with Hungarian matching (framework-free:
numpy and scipy).

Joint order: derived from the dataset's skeleton (never a hard-coded COCO order), so that every joint after
the first is linked to one matched before it: a breadth-first walk from the skeleton's centre (the joint whose
farthest joint is nearest; ties to the higher degree, then the lower index), neighbours in index order; joints
of other components follow, each component walked from its own centre.

Matching, per joint type in that order: each candidate above the detection threshold is compared with the
people grouped so far by the distance between its tag and the person's mean tag; the cost is AE's
detection-value cost, ``round(distance) * 100 - score``, so that among tags equally close (to the unit) the
higher-scoring candidate wins; a pair is accepted when its tag distance is below ``tag_threshold`` (AE: 1);
every other candidate starts a new person. One departure from AE's code: a pair at or beyond the threshold costs
as much as no pair (AE's padding cost, 1e10) instead of its detection value. With AE's cost the optimum may
spend a person on a pair that is then rejected: two candidates sharing one person's tag, with another person at
the same rounded distance from both, tie (the totals differ by nothing), and the lower-scoring one may join
while the higher-scoring one starts a person alone; here the optimum first matches as many acceptable pairs
as it can, then takes the cheapest. Person score = mean keypoint score over all K types (a missing
joint counts 0), as HigherHRNet scores people.

Missing-joint refinement (optional, off by default: the paper removes it for a fair comparison): AE fills each
person's missing joint types after grouping with the heatmap location that maximises ``value - round(tag
distance)``; here the same rule runs over the decoded candidates of that type (every candidate with a positive
score, below the detection threshold too), so that it applies to both anchors alike. As in AE, the candidate
need not be unused and no tag threshold applies; the person score is taken after refinement.

Ground-truth tags (:func:`ground_truth_tags`, MODEL.AE.TEST.GROUND_TRUTH_TAGS) replace a learnt tagger by an oracle
for localisation studies: a candidate's tag is the index of the person whose labelled keypoint of its type is
nearest, so grouping is the same for every model and the result measures keypoint localisation and scores.
"""

from collections import deque
from typing import List, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["ground_truth_tags", "group_by_tags", "joint_order_from_skeleton"]

NO_PAIR_COST = 1e10  # the matching cost of a pair that the tag threshold rejects (AE's padding cost)


def joint_order_from_skeleton(num_keypoints: int, skeleton: Sequence[Tuple[int, int]]) -> List[int]:
    """The order in which AE grouping visits the joint types (see the module docstring).

    Args:
        num_keypoints: K.
        skeleton: links as pairs of 0-based keypoint indices.
    Returns:
        a permutation of range(K).
    """
    neighbours = [set() for _ in range(num_keypoints)]
    for a, b in skeleton:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise ValueError(f"skeleton link ({a}, {b}) is out of range for {num_keypoints} keypoints")
        if a != b:
            neighbours[a].add(b)
            neighbours[b].add(a)
    order: List[int] = []
    seen = set()
    for start in range(num_keypoints):
        if start in seen:
            continue
        component = _walk(start, neighbours)
        eccentricity = {j: max(_walk_depths(j, neighbours).values()) for j in component}
        centre = min(component, key=lambda j: (eccentricity[j], -len(neighbours[j]), j))
        walk = _walk(centre, neighbours)
        order += walk
        seen.update(walk)
    return order


def _walk(start: int, neighbours) -> List[int]:
    return list(_walk_depths(start, neighbours))


def _walk_depths(start: int, neighbours) -> dict:
    """Breadth-first walk: joint -> depth, in visiting order (neighbours in index order)."""
    depth = {start: 0}
    queue = deque([start])
    while queue:
        joint = queue.popleft()
        for other in sorted(neighbours[joint]):
            if other not in depth:
                depth[other] = depth[joint] + 1
                queue.append(other)
    return depth


def group_by_tags(
    positions: np.ndarray,
    scores: np.ndarray,
    tags: np.ndarray,
    joint_order: Sequence[int],
    *,
    detection_threshold: float = 0.1,
    tag_threshold: float = 1.0,
    max_people: int = 30,
    refine: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Group the keypoint candidates of one image into people.

    Args:
        positions: (K, D, 2) float, candidate positions (any unit; returned as they are).
        scores: (K, D) float, candidate scores (confidence or heatmap value); candidates below
            ``detection_threshold`` (padding included, score 0) take no part.
        tags: (K, D, L) float, candidate tags (L = 1, or 2 with the flip test's concatenated tags).
        joint_order: the K joint types in matching order (:func:`joint_order_from_skeleton`).
        detection_threshold: minimum candidate score.
        tag_threshold: maximum tag distance for a candidate to join a person (AE: 1).
        max_people: at most this many people, best score first.
        refine: fill missing joints by AE's refinement over the candidates (see the module docstring).
    Returns:
        poses (N, K, 3): x, y, score (0, 0, 0 for a missing joint); scores (N,), the mean joint scores.
    """
    num_types = positions.shape[0]
    if sorted(joint_order) != list(range(num_types)):
        raise ValueError(f"joint_order must be a permutation of range({num_types}), got {list(joint_order)}")
    capacity = int((scores > detection_threshold).sum())  # every candidate starts at most one person
    joints = np.zeros((capacity, num_types, 3))  # per person: x, y, score of each type
    tag_sums = np.zeros((capacity, tags.shape[2]))  # per person: sum of its joints' tags
    tag_counts = np.zeros(capacity)
    people = 0
    for k in joint_order:
        chosen = np.flatnonzero(scores[k] > detection_threshold)
        if chosen.size == 0:
            continue
        found = np.concatenate([positions[k, chosen], scores[k, chosen, None]], axis=1)  # (n, 3)
        found_tags = tags[k, chosen]  # (n, L)
        assigned = np.full(chosen.size, -1)
        if people:
            means = tag_sums[:people] / tag_counts[:people, None]  # (P, L)
            distance = np.linalg.norm(found_tags[:, None, :] - means[None, :, :], axis=2)  # (n, P)
            cost = np.where(distance < tag_threshold, np.round(distance) * 100 - found[:, 2:3], NO_PAIR_COST)
            rows, cols = linear_sum_assignment(cost)
            accept = distance[rows, cols] < tag_threshold
            assigned[rows[accept]] = cols[accept]
        new = np.flatnonzero(assigned < 0)
        assigned[new] = people + np.arange(new.size)
        people += new.size
        joints[assigned, k] = found
        tag_sums[assigned] += found_tags
        tag_counts[assigned] += 1
    if not people:
        return np.zeros((0, num_types, 3)), np.zeros((0,))
    poses = joints[:people]
    if refine:
        _refine_missing_joints(poses, tag_sums[:people] / tag_counts[:people, None], positions, scores, tags)
    person_scores = poses[:, :, 2].mean(axis=1)
    order = np.argsort(-person_scores, kind="stable")[:max_people]
    return poses[order], person_scores[order]


def _refine_missing_joints(poses: np.ndarray, person_tags: np.ndarray, positions, scores, tags) -> None:
    """Fill in place each person's missing joints (score 0) with the candidate of that type maximising
    ``score - round(distance to the person's mean tag)`` among the candidates with a positive score.

    Args:
        poses: (P, K, 3) grouped people, modified in place.
        person_tags: (P, L) their mean tags.
        positions, scores, tags: the candidates, as :func:`group_by_tags` takes them.
    """
    for k in range(poses.shape[1]):
        missing = np.flatnonzero(poses[:, k, 2] == 0)
        found = np.flatnonzero(scores[k] > 0)
        if missing.size == 0 or found.size == 0:
            continue
        distance = np.linalg.norm(person_tags[missing, None, :] - tags[k, found][None, :, :], axis=2)  # (m, n)
        best = found[np.argmax(scores[k, found][None, :] - np.round(distance), axis=1)]
        poses[missing, k, :2] = positions[k, best]
        poses[missing, k, 2] = scores[k, best]


def ground_truth_tags(positions: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Oracle tags: each candidate takes the index of the person whose labelled keypoint of its type is nearest.

    Args:
        positions: (K, D, 2) candidate positions.
        keypoints: (T, K, 3) the ground-truth people, x, y in the unit of ``positions``, v (> 0: labelled).
    Returns:
        (K, D, 1) float tags for :func:`group_by_tags`: the person index t, or, for a type that no person has
        labelled, a tag of the candidate's own (T + its flat index: at least 1 from every other tag, so it
        starts a person alone, as a spurious candidate does).
    """
    num_types, slots = positions.shape[:2]
    tags = (keypoints.shape[0] + np.arange(num_types * slots, dtype=np.float64)).reshape(num_types, slots)
    if keypoints.shape[0]:
        by_type = keypoints.transpose(1, 0, 2)  # (K, T, 3)
        distance = np.linalg.norm(positions[:, :, None, :] - by_type[:, None, :, :2], axis=-1)  # (K, D, T)
        distance = np.where(by_type[:, None, :, 2] > 0, distance, np.inf)
        tags = np.where(np.isfinite(distance.min(axis=-1)), distance.argmin(axis=-1), tags)
    return tags[..., None]
