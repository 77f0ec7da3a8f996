"""Which cells regress which person (target ownership) and DEKR's keypoint offset targets (torch only).

Units: feature-map px, cell (i, j) centred at (j + 0.5, i + 0.5) (:func:`adaanchor.anchor.candidate_grid`).
An owner map (B, H, W) long holds, for every cell, the index (into T) of the person it regresses, -1 for none:
AdaAnchor's owners are the positives of its assignment; the heatmap-anchor baseline's are DEKR's square
region around each centre (:func:`region_owner`).
"""

import torch

from adaanchor.anchor import candidate_grid

from .people import PeopleBatch


def region_owner(people: PeopleBatch, height: int, width: int, *, radius: float) -> torch.Tensor:
    """DEKR's offset region (the heatmap-anchor baseline): every cell within ``radius`` (Chebyshev, feature
    px) of a person's centre inside the map regresses that person; a cell near several centres goes to the
    smallest person (DEKR's rule).

    Returns:
        (B, H, W) long, the person index (into T) of every cell, -1 for none.
    """
    device = people.keypoints.device
    grid = candidate_grid(height, width, device=device)
    gx, gy = grid[0, :, 0], grid[:, 0, 1]  # (W,), (H,) cell centres
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
        margin: labelled keypoints up to this far outside the map (feature px) are targets: the centre
            criterion's ``target_margin`` (0 for the heatmap anchor, as DEKR skips them;
            MODEL.ADAANCHOR.TARGET_MARGIN for AdaAnchor).
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
    cells = candidate_grid(height, width, device=device).view(1, height * width, 1, 2)
    offsets = (kpts.view(b, height * width, k, 2) - cells) * (weight[..., None] > 0)
    offsets = offsets.view(b, height, width, 2 * k).permute(0, 3, 1, 2)
    weights = weight.repeat_interleave(2, dim=-1).view(b, height, width, 2 * k).permute(0, 3, 1, 2)
    return offsets.contiguous(), weights.contiguous()
