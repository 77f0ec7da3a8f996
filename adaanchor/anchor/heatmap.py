"""The heatmap-anchor baseline, with the same interfaces as AdaAnchor (one config key switches between them).

Targets and loss as in DEKR / HigherHRNet: every target draws an unnormalised Gaussian
``exp(-d^2 / (2 sigma^2))`` on its keypoint type's map, truncated to the pixels within ``3 sigma + 1`` of it
(Chebyshev distance, feature-map px), overlapping targets merge by maximum; the loss weight is 1 inside any
target's window and ``background_weight`` elsewhere (DEKR's BG_WEIGHT); the loss is the weighted squared
error averaged over all pixels. Targets outside the map draw nothing (as in DEKR: a heatmap anchor cannot
sit outside the map). Decoding: peaks are pixels equal to the max-pooled heatmap (``nms_kernel``) and
>= ``threshold``, the top ``max_detections`` per map, shifted by a quarter pixel toward the higher
neighbour along x and y (HigherHRNet's adjustment; with equal neighbours we leave the coordinate, where
HigherHRNet moves it by -0.25).

Pixel (i, j) sits at (j + 0.5, i + 0.5) feature-map px, as candidates do.
"""

import math
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._blocks import CPU_BLOCK
from .decoding import Detections

__all__ = ["heatmap_targets", "heatmap_loss", "decode_heatmap", "window_max"]


def heatmap_targets(
    targets: Tensor,
    target_valid: Tensor,
    height: int,
    width: int,
    *,
    sigma: Union[float, Tensor] = 2.0,
    background_weight: float = 0.1,
) -> Tuple[Tensor, Tensor]:
    """Gaussian heatmap targets and loss weights.

    Args:
        targets: (B, K, T, 2) float (x, y), feature-map px.
        target_valid: (B, K, T) bool.
        height, width: the map size H, W.
        sigma: Gaussian sigma, feature-map px: a number, or a (B, K, T) tensor (per target, e.g. scale-aware).
        background_weight: loss weight of pixels outside every target's window.

    Returns:
        ``(heatmap, weight)``: (B, K, H, W) float32 each.
    """
    if targets.dim() != 4 or targets.shape[-1] != 2 or tuple(target_valid.shape) != tuple(targets.shape[:3]):
        raise ValueError(
            f"targets must be (B, K, T, 2) and target_valid (B, K, T), got {tuple(targets.shape)} "
            f"and {tuple(target_valid.shape)}"
        )
    batch, types, num_targets = target_valid.shape
    device = targets.device
    plane = height * width
    heatmap = torch.zeros(batch * types * plane, device=device)
    weight = torch.full((batch * types * plane,), float(background_weight), device=device)
    shape = (batch, types, height, width)
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=device).expand(batch, types, num_targets)
    if not bool((sigma > 0).all()):
        raise ValueError("MODEL.HEATMAP_ANCHOR.SIGMA must be > 0")
    with torch.no_grad():
        x, y = targets[..., 0].float(), targets[..., 1].float()
        inside = target_valid.bool() & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        rows = inside.reshape(-1).nonzero().squeeze(1)
        if rows.numel() == 0:
            return heatmap.view(shape), weight.view(shape)
        point = targets.reshape(-1, 2)[rows].float()
        row_sigma = sigma.reshape(-1)[rows]
        reach = 3 * row_sigma + 1
        side = 2 * math.ceil(float(reach.max())) + 2
        first = torch.ceil(point - 0.5 - reach[:, None]).long()  # first pixel within reach, per axis
        pixel = first[:, :, None] + torch.arange(side, device=device)  # (R, 2, side) pixel indices
        offset = pixel.float() + 0.5 - point[:, :, None]
        size = torch.tensor([width, height], device=device)[None, :, None]
        within = (offset.abs() <= reach[:, None, None]) & (pixel >= 0) & (pixel < size)
        gauss = torch.exp(-(offset * offset) / (2 * row_sigma[:, None, None] ** 2)) * within
        pixel = torch.minimum(pixel.clamp(min=0), size - 1)  # pixels outside get value 0 (see below)
        map_index = torch.div(rows, num_targets, rounding_mode="floor")
        index = map_index[:, None, None] * plane + pixel[:, 1, :, None] * width + pixel[:, 0, None, :]
        # Maximum-merge; entries outside a window carry 0 (and, for the weight, background_weight), which
        # never changes a maximum over values >= 0 (>= background_weight), so they need not be removed.
        values = gauss[:, 1, :, None] * gauss[:, 0, None, :]  # (R, side_y, side_x)
        heatmap.scatter_reduce_(0, index.reshape(-1), values.reshape(-1), "amax")
        inside = (within[:, 1, :, None] & within[:, 0, None, :]).reshape(-1)
        if background_weight <= 1:
            weight.scatter_reduce_(0, index.reshape(-1), torch.where(inside, 1.0, float(background_weight)), "amax")
        else:
            weight[index.reshape(-1)[inside]] = 1.0
    return heatmap.view(shape), weight.view(shape)


class _WeightedSquaredErrorMean(torch.autograd.Function):
    """mean(weight * (pred - target)^2), differentiable w.r.t. pred only.

    The forward pass also computes the gradient, block by block, and keeps only it (one map-sized tensor).
    """

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        ctx.pred_shape = pred.shape
        p, t, w = (v.detach().reshape(-1) for v in (pred, target, weight))
        count = p.numel()
        grad = torch.empty_like(p)
        block = count if p.is_cuda else CPU_BLOCK
        sums = []
        for start in range(0, count, block):
            end = start + block
            diff = p[start:end] - t[start:end]
            weighted = torch.mul(diff, w[start:end], out=grad[start:end])
            sums.append(torch.dot(weighted, diff))
        grad.mul_(2.0 / count)
        ctx.save_for_backward(grad)
        return torch.stack(sums).sum() / count if sums else p.new_zeros(())

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        (grad,) = ctx.saved_tensors
        return (grad * grad_loss).view(ctx.pred_shape), None, None


def heatmap_loss(pred: Tensor, heatmap: Tensor, weight: Tensor) -> Tensor:
    """Weighted mean squared error of predicted heatmaps (DEKR's / HigherHRNet's heatmap loss).

    Args:
        pred, heatmap, weight: (B, K, H, W) float (any equal shapes).

    Returns:
        Scalar ``mean(weight * (pred - heatmap)^2)``, differentiable w.r.t. ``pred`` (and w.r.t. the others
        if they require grad).
    """
    if pred.shape != heatmap.shape or pred.shape != weight.shape:
        raise ValueError(
            f"pred, heatmap and weight must have one shape, got {tuple(pred.shape)}, "
            f"{tuple(heatmap.shape)}, {tuple(weight.shape)}"
        )
    if heatmap.requires_grad or weight.requires_grad:
        return ((pred - heatmap) ** 2 * weight).mean()
    return _WeightedSquaredErrorMean.apply(pred, heatmap, weight)


def decode_heatmap(
    heatmap: Tensor,
    *,
    nms_kernel: int = 5,
    threshold: float = 0.01,
    max_detections: int = 30,
    subpixel: bool = True,
) -> Detections:
    """Peaks of heatmaps: max-pool NMS, threshold, top ``max_detections``, quarter-pixel adjustment.

    Args:
        heatmap: (..., H, W) float, e.g. (B, K, H, W) or (K, H, W).
        nms_kernel: odd max-pool window, px (MODEL.HEATMAP_ANCHOR.NMS_KERNEL).
        threshold: minimum peak value (MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD).
        max_detections: peaks kept per map.
        subpixel: shift each peak by 0.25 px toward its higher neighbour along x and along y.

    Returns:
        :class:`Detections` with D = max_detections; positions in feature-map px, anchor_index the peak pixel.
    """
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"MODEL.HEATMAP_ANCHOR.NMS_KERNEL must be a positive odd number, got {nms_kernel}")
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}")
    height, width = heatmap.shape[-2:]
    lead = tuple(heatmap.shape[:-2])
    with torch.no_grad():
        maps = heatmap.reshape(-1, 1, height, width)
        pooled = window_max(maps, nms_kernel)
        flat = maps.reshape(maps.shape[0], -1)
        peaks = torch.where(maps == pooled, maps, torch.full_like(maps, -math.inf)).reshape(flat.shape)
        count = min(max_detections, flat.shape[1])
        score, index = peaks.topk(count, dim=1)
        valid = score >= threshold
        column = index % width
        row = torch.div(index, width, rounding_mode="floor")
        x = column.to(flat.dtype) + 0.5
        y = row.to(flat.dtype) + 0.5
        if subpixel:

            def value(r, c):
                return flat.gather(1, r * width + c)

            right, left = value(row, (column + 1).clamp(max=width - 1)), value(row, (column - 1).clamp(min=0))
            below, above = value((row + 1).clamp(max=height - 1), column), value((row - 1).clamp(min=0), column)
            x = x + 0.25 * torch.sign(right - left)
            y = y + 0.25 * torch.sign(below - above)
        positions = torch.stack((x, y), dim=-1) * valid[..., None]
        score = torch.where(valid, score, torch.zeros_like(score))
        index = torch.where(valid, index, torch.full_like(index, -1))
        if count < max_detections:
            pad = max_detections - count
            positions = F.pad(positions, (0, 0, 0, pad))
            score = F.pad(score, (0, pad))
            index = F.pad(index, (0, pad), value=-1)
            valid = F.pad(valid, (0, pad))
        return Detections(
            positions.reshape(*lead, max_detections, 2),
            score.reshape(*lead, max_detections),
            index.reshape(*lead, max_detections),
            valid.reshape(*lead, max_detections),
        )


def window_max(maps: Tensor, window: int) -> Tensor:
    """The maximum over the ``window`` x ``window`` neighbourhood of every pixel (odd ``window``), values outside
    the map not counted: ``F.max_pool2d(maps, window, stride=1, padding=window // 2)``, NaN included, computed as
    a row pass then a column pass of shifted maxima (on CPU ~10x faster than max_pool2d here).

    Args:
        maps: (..., H, W) float.
    Returns:
        (..., H, W), the same dtype.
    """
    radius = window // 2
    height, width = maps.shape[-2:]
    padded = F.pad(maps, (radius, radius, 0, 0), value=-math.inf)
    rows = padded[..., :, :width]
    for shift in range(1, window):
        rows = torch.maximum(rows, padded[..., :, shift : shift + width])
    padded = F.pad(rows, (0, 0, radius, radius), value=-math.inf)
    out = padded[..., :height, :]
    for shift in range(1, window):
        out = torch.maximum(out, padded[..., shift : shift + height, :])
    return out
