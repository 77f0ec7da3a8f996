"""Poses of bottom-up models: assembly from anchors and offsets, scoring from keypoint maps, pose NMS (torch only).

Units: poses and maps share one frame, feature-map px with cell (i, j) centred at (j + 0.5, i + 0.5),
unless a function says otherwise.
"""

from typing import Tuple

import torch

from adaanchor.anchor import Detections, candidate_positions, sample_bilinear


def sample_keypoint_maps(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample channel k of ``maps`` at keypoint k of every pose.

    Args:
        maps: (K, H, W) float, one map per keypoint type.
        points: (N, K, 2) float, x, y in feature-map px (cell centres at +0.5).
    Returns:
        (N, K) values; points outside the map read the border value (clamped).
    """
    num_kpts = maps.shape[0]
    keypoint = torch.arange(num_kpts, device=points.device).expand(points.shape[0], num_kpts)
    (values,) = sample_bilinear(maps[:, None], keypoint, points[..., 0], points[..., 1])
    return values


def poses_from_anchors(
    detections: Detections, keypoint_maps: torch.Tensor, offsets: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """DEKR's poses of one image from its person anchors: anchor cell centre + the cell's keypoint offsets.

    Joint score = anchor score x keypoint map at the joint (bilinear); pose score = mean joint score (DEKR's
    scoring, without its rescoring net).

    Args:
        detections: the person anchors of the image (one centre type), any leading dims of size 1, D slots.
        keypoint_maps: (K, H, W) keypoint heatmaps.
        offsets: (2K, H, W) keypoint offsets of every cell, feature px, channels (dx0, dy0, dx1, ...).
    Returns:
        poses (N, K, 3): x, y feature px, joint score; scores (N,). N = valid anchors, in slot order.
    """
    num_kpts, h, w = keypoint_maps.shape
    valid = detections.valid.reshape(-1)
    anchor = detections.anchor_index.reshape(-1)[valid]
    anchor_score = detections.scores.reshape(-1)[valid]
    cells = candidate_positions(anchor, w)
    displacement = offsets.reshape(num_kpts, 2, h * w)[:, :, anchor].permute(2, 0, 1)  # (N, K, 2)
    xy = cells[:, None, :] + displacement
    joint_scores = anchor_score[:, None] * sample_keypoint_maps(keypoint_maps, xy)
    return torch.cat([xy, joint_scores[..., None]], dim=-1), joint_scores.mean(dim=1)


def pose_diagonals(poses: torch.Tensor) -> torch.Tensor:
    """(N, K, 2) poses -> (N,) length of the diagonal of each pose's keypoint extent (same units)."""
    if poses.shape[0] == 0:
        return poses.new_zeros((0,))
    extent = poses.amax(dim=1) - poses.amin(dim=1)
    return extent.norm(dim=1)


def keypoint_boxes(poses: torch.Tensor) -> torch.Tensor:
    """(N, K, 2) -> (N, 4) XYXY boxes around the keypoints (Detectron2 needs a box per instance)."""
    if poses.shape[0] == 0:
        return poses.new_zeros((0, 4))
    return torch.cat([poses.amin(dim=1), poses.amax(dim=1)], dim=1)


def pose_nms(
    poses: torch.Tensor, scores: torch.Tensor, *, distance_ratio: float = 0.05, min_close_joints: int = 8
) -> torch.Tensor:
    """Greedy pose NMS (DEKR's criterion): two poses are duplicates when at least ``min_close_joints`` of
    their joints lie closer than ``distance_ratio`` x the diagonal of the higher-scoring pose's extent.

    Args:
        poses: (N, K, 2) float, any length unit.
        scores: (N,) float.
    Returns:
        (M,) long indices of the kept poses, highest score first.

    The (N, N) duplicate matrix is one vectorised computation; the greedy pass over it runs on a Python
    list of N booleans per row (N is at most a few hundred proposals), which is faster than per-step
    tensor ops at this size.
    """
    n = poses.shape[0]
    if n == 0:
        return torch.zeros((0,), dtype=torch.long, device=poses.device)
    order = torch.argsort(scores, descending=True, stable=True)
    ordered = poses[order]
    distances = (ordered[:, None] - ordered[None]).norm(dim=-1)  # (N, N, K)
    thresholds = distance_ratio * pose_diagonals(ordered)  # row i: the suppressing pose's scale
    duplicates = ((distances < thresholds[:, None, None]).sum(dim=-1) >= min_close_joints).cpu().tolist()
    suppressed = [False] * n
    kept = []
    for i in range(n):
        if suppressed[i]:
            continue
        kept.append(i)
        row = duplicates[i]
        for j in range(i + 1, n):
            if row[j]:
                suppressed[j] = True
    return order[torch.as_tensor(kept, dtype=torch.long, device=poses.device)]
