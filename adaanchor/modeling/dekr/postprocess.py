"""Pose post-processing for DEKR: scoring from keypoint heatmaps, pose NMS, flip-test alignment (torch only).

Units: poses and maps share one frame, feature-map px with cell (i, j) centred at (j + 0.5, i + 0.5),
unless a function says otherwise.
"""

from typing import Sequence

import torch
import torch.nn.functional as F


def sample_keypoint_maps(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample channel k of ``maps`` at keypoint k of every pose.

    Args:
        maps: (K, H, W) float, one map per keypoint type.
        points: (N, K, 2) float, x, y in feature-map px (cell centres at +0.5).
    Returns:
        (N, K) values; points outside the map read the border value (clamped).
    """
    num_kpts, h, w = maps.shape
    if points.shape[0] == 0:
        return points.new_zeros((0, num_kpts))
    scale = points.new_tensor([2.0 / w, 2.0 / h])
    grid = (points * scale - 1.0).transpose(0, 1).unsqueeze(2)  # (K, N, 1, 2) in [-1, 1]
    sampled = F.grid_sample(maps.unsqueeze(1), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[:, 0, :, 0].transpose(0, 1)


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


def flip_maps_back(maps: torch.Tensor, channel_order: Sequence[int]) -> torch.Tensor:
    """Outputs of a horizontally flipped input -> the original frame: mirror W, reorder channels.

    Args:
        maps: (B, C, H, W).
        channel_order: C indices; channel c of the result is channel ``channel_order[c]`` of the mirror
            (the keypoint flip indices, with identity entries for centre / confidence channels).
    """
    return maps.flip(-1)[:, list(channel_order)]


def flip_vectors_back(vectors: torch.Tensor, flip_indices: Sequence[int]) -> torch.Tensor:
    """Displacement fields of a flipped input -> the original frame.

    Args:
        vectors: (B, 2K, H, W), channels (dx_0, dy_0, dx_1, dy_1, ...), K = len(flip_indices).
        flip_indices: K keypoint indices (identity [0] for a single centre offset field).
    Returns:
        (B, 2K, H, W): mirrored in W, keypoints reordered, x components negated.
    """
    b, c, h, w = vectors.shape
    v = vectors.flip(-1).view(b, c // 2, 2, h, w)[:, list(flip_indices)]
    v = torch.stack([-v[:, :, 0], v[:, :, 1]], dim=2)
    return v.reshape(b, c, h, w)


def shift_flipped_image(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Shift a horizontally flipped batch (B, C, H, W) left by ``shift`` px (zeros enter at the right).

    Why: a stride-2 3x3 convolution with padding 1 centres output i on input pixel 2i, so a stride-t
    network centres feature cell j on input pixel t*j, not on the cell centre t*j + (t-1)/2. Mirroring
    the input moves that bias to the other side: an object at pixel X shows up, in the mirrored-back
    outputs, at the cell of pixel X - (t - 1). Shifting the mirrored input left by t - 1 px (HRNet and
    ResNet stems: t = 4, shift 3) aligns the two runs.
    """
    if shift <= 0:
        return images
    shifted = torch.zeros_like(images)
    shifted[..., : images.shape[-1] - shift] = images[..., shift:]
    return shifted
