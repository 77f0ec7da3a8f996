"""Poses of bottom-up models: assembly from anchors and offsets, scoring from keypoint maps, pose NMS (torch only).

Units: poses and maps share one frame, feature-map px with cell (i, j) centred at (j + 0.5, i + 0.5),
unless a function says otherwise.
"""

from typing import Optional, Tuple

import torch

from adaanchor.anchor import Detections, candidate_positions, sample_bilinear, window_max


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


def keypoint_peaks(keypoint_maps: torch.Tensor, max_peaks: int, window: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``max_peaks`` strongest local maxima of every keypoint map (``window`` x ``window`` max-pool NMS).

    Each peak is its cell centre moved a quarter cell towards the higher neighbour along x and y (the usual
    sub-cell estimate of a Gaussian peak).

    Args:
        keypoint_maps: (K, H, W) keypoint heatmaps.
    Returns:
        xy (K, P, 2) feature px; values (K, P); P = min(max_peaks, H * W), strongest first.
    """
    num_kpts, h, w = keypoint_maps.shape
    maps = keypoint_maps[None]
    pooled = window_max(keypoint_maps, window)
    is_peak = keypoint_maps == pooled
    values, index = (
        torch.where(is_peak, keypoint_maps, torch.full_like(keypoint_maps, -float("inf")))
        .reshape(num_kpts, -1)
        .topk(min(max_peaks, h * w), dim=1)
    )
    ys, xs = index // w, index % w
    padded = torch.nn.functional.pad(maps, (1, 1, 1, 1), mode="replicate")[0]  # (K, H + 2, W + 2)
    k = torch.arange(num_kpts, device=index.device)[:, None]
    dx = padded[k, ys + 1, xs + 2] - padded[k, ys + 1, xs]
    dy = padded[k, ys + 2, xs + 1] - padded[k, ys, xs + 1]
    xy = torch.stack([xs + 0.5 + 0.25 * torch.sign(dx), ys + 0.5 + 0.25 * torch.sign(dy)], dim=-1)
    return xy.to(keypoint_maps.dtype), values


def absorb_to_keypoint_peaks(
    poses: torch.Tensor,
    keypoint_maps: torch.Tensor,
    *,
    max_distance: float,
    max_peaks: int,
    window: int = 5,
    extent: Optional[Tuple[float, float]] = None,
) -> torch.Tensor:
    """Move every regressed joint onto the nearest peak of its keypoint map, if one lies within
    ``max_distance`` (DEKR's test-time option of matching poses to the heatmaps; its Gaussian fit after the
    move is not done here). Joint scores are kept.

    Args:
        poses: (N, K, 3) x, y feature px, joint score.
        keypoint_maps: (K, H, W) keypoint heatmaps.
        max_distance: feature px.
        max_peaks: peaks considered per keypoint type (e.g. the most people an image holds).
        extent: (width, height) of the image in feature px: peaks are clamped into [0, width] x [0, height]
            (the last cells of a map may reach past an image whose size is not a multiple of the stride).
    Returns:
        (N, K, 3) poses with absorbed joints (a new tensor).
    """
    out = poses.clone()
    if poses.shape[0] == 0:
        return out
    peaks, _ = keypoint_peaks(keypoint_maps, max_peaks, window)  # (K, P, 2)
    if extent is not None:
        peaks = torch.minimum(peaks.clamp(min=0), peaks.new_tensor(extent))
    distances = (poses[..., None, :2] - peaks[None]).norm(dim=-1)  # (N, K, P)
    nearest, which = distances.min(dim=-1)  # (N, K)
    absorbed = peaks[torch.arange(peaks.shape[0], device=which.device), which]  # (N, K, 2)
    close = nearest < max_distance
    out[..., :2] = torch.where(close[..., None], absorbed, poses[..., :2])
    return out
