"""Flip-test primitives: outputs of a horizontally mirrored input brought back to the original frame.

Two kinds of channel group: scalar maps (one channel per type: heatmaps, confidence logits) are mirrored and
reordered by the flip indices; displacement fields (two channels per type, x then y) are also negated in x.
"""

from typing import Sequence

import torch

__all__ = ["flip_maps_back", "flip_vectors_back"]


def flip_maps_back(maps: torch.Tensor, flip_indices: Sequence[int]) -> torch.Tensor:
    """Scalar maps of a mirrored input -> the original frame: mirror W, reorder the types.

    Args:
        maps: (B, K, H, W), one channel per type.
        flip_indices: K type indices; channel k of the result is channel ``flip_indices[k]`` of the mirror
            (the keypoint flip indices; ``[0]`` for a single centre type).
    """
    if maps.shape[1] != len(flip_indices):
        raise ValueError(f"{maps.shape[1]} channels but {len(flip_indices)} flip indices")
    return maps.flip(-1)[:, list(flip_indices)]


def flip_vectors_back(vectors: torch.Tensor, flip_indices: Sequence[int]) -> torch.Tensor:
    """Displacement fields of a mirrored input -> the original frame.

    Args:
        vectors: (B, 2K, H, W), channels (dx_0, dy_0, dx_1, dy_1, ...), any length unit.
        flip_indices: K type indices (``[0]`` for a single centre offset field).
    Returns:
        (B, 2K, H, W): mirrored in W, types reordered, x components negated.
    """
    b, c, h, w = vectors.shape
    if c != 2 * len(flip_indices):
        raise ValueError(f"{c} channels but {len(flip_indices)} flip indices (2 channels per type)")
    v = vectors.flip(-1).view(b, c // 2, 2, h, w)[:, list(flip_indices)]
    v = torch.stack([-v[:, :, 0], v[:, :, 1]], dim=2)
    return v.reshape(b, c, h, w)
