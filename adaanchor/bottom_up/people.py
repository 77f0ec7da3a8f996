"""The ground-truth people of a bottom-up batch, padded and vectorised over images, people and keypoints.

Frames: ground truth arrives in input px (continuous, Detectron2's convention); :class:`PeopleBatch` holds it
in feature-map px (input px / stride), where cell (i, j) is centred at (j + 0.5, i + 0.5).

Decisions on DEKR's quirks (DEKR's own code is the reference for everything else):

- Person centre: the mean of the person's labelled keypoints, computed before the crop, as DEKR does.
- Offset weight: 1 / (diagonal of the person's labelled-keypoint extent, input px). DEKR takes the
  extent over all K entries, unlabelled (0, 0) ones included, which inflates it for partly labelled
  people; we use labelled keypoints only, with the diagonal floored at ``MIN_OFFSET_SCALE`` input px.
"""

from dataclasses import dataclass
from typing import List, Optional

import torch

MIN_OFFSET_SCALE = 16.0  # input px; floor of the person scale in the offset weight


@dataclass
class PeopleBatch:
    """The ground-truth people of a batch, padded to T people per image.

    Attributes:
        keypoints: (B, T, K, 2) float, feature-map px.
        labelled: (B, T, K) bool, v > 0.
        valid: (B, T) bool, a real person (not padding) with at least one labelled keypoint.
        centers: (B, T, 2) float, feature-map px: mean of the labelled keypoints.
        offset_weight: (B, T) float, 1 / person scale (input px), DEKR's area weight.
        center_allowed: (B, T) bool, large enough to get a centre (``min_area``).
    """

    keypoints: torch.Tensor
    labelled: torch.Tensor
    valid: torch.Tensor
    centers: torch.Tensor
    offset_weight: torch.Tensor
    center_allowed: torch.Tensor

    def centers_inside(self, height: int, width: int) -> torch.Tensor:
        """(B, T) bool: people allowed a centre whose centre lies inside the (height, width) map."""
        x, y = self.centers.unbind(-1)
        return self.center_allowed & (x >= 0) & (x < width) & (y >= 0) & (y < height)

    def inside(self, height: int, width: int, margin: float = 0.0) -> torch.Tensor:
        """(B, T, K) bool: labelled keypoints within ``margin`` feature px of the (height, width) map."""
        x, y = self.keypoints.unbind(-1)
        return (
            self.labelled
            & (x >= -margin) & (x < width + margin)
            & (y >= -margin) & (y < height + margin)
        )  # fmt: skip


def gather_people(
    gt_keypoints: List[torch.Tensor],
    gt_areas: List[torch.Tensor],
    *,
    stride: int,
    min_area: float = 0.0,
) -> PeopleBatch:
    """Pad the people of B images into one batch.

    Args:
        gt_keypoints: B tensors (N_b, K, 3): x, y input px, visibility.
        gt_areas: B tensors (N_b,): person areas, input px^2 (for the ``min_area`` rule).
        stride: feature-map stride, input px per feature px.
        min_area: people with a smaller area get no centre (DEKR: 32^2 on COCO), input px^2.
    """
    b = len(gt_keypoints)
    k = gt_keypoints[0].shape[1]
    t = max(1, max(kp.shape[0] for kp in gt_keypoints))
    device = gt_keypoints[0].device
    kpts = torch.zeros((b, t, k, 3), device=device)
    areas = torch.zeros((b, t), device=device)
    present = torch.zeros((b, t), dtype=torch.bool, device=device)
    for i, (kp, area) in enumerate(zip(gt_keypoints, gt_areas)):  # one copy per image, not per person
        n = kp.shape[0]
        kpts[i, :n] = kp
        areas[i, :n] = area
        present[i, :n] = True
    labelled = kpts[..., 2] > 0
    valid = present & labelled.any(dim=-1)
    xy_input = kpts[..., :2]
    count = labelled.sum(dim=-1, keepdim=True).clamp(min=1)
    centers = (xy_input * labelled[..., None]).sum(dim=-2) / count
    big = torch.finfo(xy_input.dtype).max
    lo = torch.where(labelled[..., None], xy_input, torch.full_like(xy_input, big)).amin(dim=-2)
    hi = torch.where(labelled[..., None], xy_input, torch.full_like(xy_input, -big)).amax(dim=-2)
    diag = torch.where(valid, (hi - lo).norm(dim=-1), torch.zeros_like(areas))
    offset_weight = torch.where(valid, 1.0 / diag.clamp(min=MIN_OFFSET_SCALE), torch.zeros_like(diag))
    return PeopleBatch(
        keypoints=xy_input / stride,
        labelled=labelled,
        valid=valid,
        centers=centers / stride,
        offset_weight=offset_weight,
        center_allowed=valid & (areas >= min_area),
    )


def downsample_ignore_masks(
    masks: List[Optional[torch.Tensor]], height: int, width: int, stride: int, device
) -> torch.Tensor:
    """(B, H, W) float loss mask from per-image input-resolution ignore masks: 0 where ignored, else 1.

    A feature cell is ignored when the input pixel at its centre is. Images without a mask keep 1.
    """
    out = torch.ones((len(masks), height, width), device=device)
    rows = torch.arange(height, device=device) * stride + stride // 2  # input pixel at each cell's centre
    cols = torch.arange(width, device=device) * stride + stride // 2
    for i, mask in enumerate(masks):  # one gather per image
        if mask is None:
            continue
        mask = mask.to(device)
        picked = mask[rows.clamp(max=mask.shape[0] - 1)][:, cols.clamp(max=mask.shape[1] - 1)]
        out[i] = 1.0 - picked.float()
    return out
