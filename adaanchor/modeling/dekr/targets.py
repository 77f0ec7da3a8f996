"""Training targets of DEKR, vectorised over the batch, the people and the keypoints (torch only).

Frames: ground truth arrives in input px (continuous, Detectron2's convention); targets are built in
feature-map px (input px / stride), where cell (i, j) is centred at (j + 0.5, i + 0.5).

Decisions on DEKR's quirks (DEKR's own code is the reference for everything else):

- Person centre: the mean of the person's labelled keypoints, computed before the crop, as DEKR does.
- Centre heatmap sigma: ``MODEL.DEKR.CENTER_SIGMA`` on every dataset. DEKR's generator picks the centre
  sigma only for channel index >= 17, so on CrowdPose (14 keypoints) its centre silently gets the keypoint
  sigma; we apply the configured centre sigma as the config intends.
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


def region_owner(people: PeopleBatch, height: int, width: int, *, radius: float) -> torch.Tensor:
    """DEKR's offset region (the heatmap-anchor baseline): every cell within ``radius`` (Chebyshev, feature
    px) of a person's centre inside the map regresses that person; a cell near several centres goes to the
    smallest person (DEKR's rule).

    Returns:
        (B, H, W) long, the person index (into T) of every cell, -1 for none.
    """
    device = people.keypoints.device
    gx = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    gy = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    cx, cy = people.centers.unbind(-1)  # (B, T)
    near_x = (gx[None, None, :] - cx[..., None]).abs() <= radius  # (B, T, W)
    near_y = (gy[None, None, :] - cy[..., None]).abs() <= radius  # (B, T, H)
    member = near_y[..., :, None] & near_x[..., None, :] & people.centers_inside(height, width)[..., None, None]
    person_scale = 1.0 / people.offset_weight.clamp(min=torch.finfo(people.offset_weight.dtype).tiny)
    key = torch.where(member, person_scale[..., None, None], torch.tensor(float("inf"), device=device))
    best = key.argmin(dim=1)  # (B, H, W)
    return torch.where(member.any(dim=1), best, torch.full_like(best, -1))


def offset_targets(people: PeopleBatch, owner: torch.Tensor, height: int, width: int, *, margin: float):
    """Keypoint offset targets of the cells that regress a person (DEKR's disentangled regression).

    Args:
        owner: (B, H, W) long, the person index (into T) each cell regresses, -1 for none.
        margin: labelled keypoints up to this far outside the map (feature px) are targets: 0 for the
            heatmap-anchor baseline (DEKR skips them), MODEL.ADAANCHOR.TARGET_MARGIN for AdaAnchor.
    Returns:
        offsets: (B, 2K, H, W) float, keypoint - cell centre, feature px; channels (dx0, dy0, dx1, ...).
        weights: (B, 2K, H, W) float, the person's offset weight where the keypoint is a target, else 0.
    """
    b, t, k, _ = people.keypoints.shape
    device = people.keypoints.device
    index = owner.clamp(min=0).view(b, height * width)
    kpts = torch.gather(people.keypoints.view(b, t, k * 2), 1, index[..., None].expand(-1, -1, k * 2))
    usable = people.inside(height, width, margin) * people.offset_weight[..., None]  # (B, T, K)
    weight = torch.gather(usable, 1, index[..., None].expand(-1, -1, k))  # (B, HW, K)
    weight = weight * (owner.view(b, -1, 1) >= 0)
    gx = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    gy = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    cells = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).view(1, height * width, 1, 2)
    offsets = (kpts.view(b, height * width, k, 2) - cells) * (weight[..., None] > 0)
    offsets = offsets.view(b, height, width, 2 * k).permute(0, 3, 1, 2)
    weights = weight.repeat_interleave(2, dim=-1).view(b, height, width, 2 * k).permute(0, 3, 1, 2)
    return offsets.contiguous(), weights.contiguous()
