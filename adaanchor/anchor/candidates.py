"""Candidate anchors and their estimates (paper eq. 2, 7 and 12).

Units: every length in this module is in feature-map px. Candidate (i, j) of a stride-``t`` map (row i,
column j) sits at the feature-map point ``(j + 0.5, i + 0.5)``, which is the input-image point
``((j + 0.5) t, (i + 0.5) t)`` in input px; :func:`to_feature_px` and :func:`to_input_px` convert.
Points are always ``(x, y)``. A candidate's flat index is ``n = i * W + j`` (row-major over ``H x W``).

The estimate of candidate A is ``P = A + (dx, dy) + (lx, ly)`` (eq. 12): ``(dx, dy)`` is the coarse offset
predicted at A and ``(lx, ly)`` the local offset map bilinearly sampled at ``A + (dx, dy)``.
:class:`CandidateEstimates` evaluates it lazily, only at the candidates that are asked for (the assignment
and the decoders need few), and :func:`refined_estimates` evaluates it everywhere.
"""

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "candidate_grid",
    "candidate_positions",
    "to_feature_px",
    "to_input_px",
    "CandidateEstimates",
    "refined_estimates",
    "sample_bilinear",
]


def candidate_grid(height: int, width: int, *, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The position of every candidate of an ``height x width`` map.

    Returns:
        (H, W, 2) tensor of ``dtype``: ``[i, j] = (j + 0.5, i + 0.5)``, (x, y) in feature-map px.
    """
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def candidate_positions(candidate_index: Tensor, width: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Positions of candidates given by flat index ``n = i * W + j``.

    Args:
        candidate_index: (...) integer tensor, flat indices into an ``H x W`` map.
        width: W, the map width.

    Returns:
        (..., 2) tensor of ``dtype``: ``(j + 0.5, i + 0.5)`` in feature-map px.
    """
    x = (candidate_index % width).to(dtype) + 0.5
    y = torch.div(candidate_index, width, rounding_mode="floor").to(dtype) + 0.5
    return torch.stack((x, y), dim=-1)


def take(source: Tensor, index: Tensor) -> Tensor:
    """``source.reshape(-1)[index]`` for any index shape (index_select: much faster than advanced indexing on CPU)."""
    return source.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)


def to_feature_px(points_input_px: Tensor, stride: float) -> Tensor:
    """Input px -> feature-map px for a stride-``stride`` map: ``p / stride`` (candidate centers map to centers)."""
    return points_input_px / stride


def to_input_px(points_feature_px: Tensor, stride: float) -> Tensor:
    """Feature-map px -> input px for a stride-``stride`` map: ``p * stride``."""
    return points_feature_px * stride


def sample_bilinear(maps: Tensor, map_index: Tensor, x: Tensor, y: Tensor) -> Tuple[Tensor, ...]:
    """Bilinearly sample C-channel maps at continuous points.

    The value stored at pixel (i, j) sits at (j + 0.5, i + 0.5), as for candidates; this matches
    ``torch.nn.functional.grid_sample(..., align_corners=False, padding_mode="border")``: points outside the
    map take the value at the nearest point of the map's border (the border pixels' centers), so an estimate
    that lands outside the map is refined with the local offsets of the closest pixels.

    Args:
        maps: (M, C, H, W) float tensor, e.g. C = 2 for offset maps (channel 0 = x, channel 1 = y component).
        map_index: (...) long tensor, which of the M maps each point samples.
        x, y: (...) float tensors, the points in feature-map px.

    Returns:
        C tensors (...) of ``maps.dtype``, one per channel. Differentiable w.r.t. ``maps``.
    """
    channels, height, width = maps.shape[-3:]
    u = (x - 0.5).clamp(0, width - 1)
    v = (y - 0.5).clamp(0, height - 1)
    u0 = u.floor().clamp_(max=max(width - 2, 0))
    v0 = v.floor().clamp_(max=max(height - 2, 0))
    fu = u - u0
    fv = v - v0
    plane = height * width
    top_left = map_index * (channels * plane) + v0.long() * width + u0.long()
    right = 1 if width > 1 else 0
    down = width if height > 1 else 0
    flat = maps.reshape(-1)

    def lerp2(channel: int) -> Tensor:
        corner = top_left + channel * plane
        upper = torch.lerp(take(flat, corner), take(flat, corner + right), fu)
        lower = torch.lerp(take(flat, corner + down), take(flat, corner + down + right), fu)
        return torch.lerp(upper, lower, fv)

    return tuple(lerp2(channel) for channel in range(channels))


class CandidateEstimates:
    """The estimates of every candidate (paper eq. 12), evaluated only where they are asked for.

    Args:
        coarse_offsets: (B, K, 2, H, W) float tensor, (dx, dy) from each candidate to its estimate, feature-map px.
        local_offsets: (B, K, 2, H, W) float tensor or None (no local refinement): the local (short-range)
            offset map, sampled bilinearly at ``A + (dx, dy)`` (see :func:`sample_bilinear` for the border).

    Evaluation is differentiable w.r.t. both offset maps. ``A + d`` is computed first and the local offset
    added to it, in that order (the assignment's bounds rely on it).
    """

    def __init__(self, coarse_offsets: Tensor, local_offsets: Optional[Tensor] = None):
        if coarse_offsets.dim() != 5 or coarse_offsets.shape[2] != 2:
            raise ValueError(f"coarse_offsets must be (B, K, 2, H, W), got {tuple(coarse_offsets.shape)}")
        if local_offsets is not None and local_offsets.shape != coarse_offsets.shape:
            raise ValueError(
                f"local_offsets must have the shape of coarse_offsets {tuple(coarse_offsets.shape)}, "
                f"got {tuple(local_offsets.shape)}"
            )
        self.coarse_offsets = coarse_offsets.contiguous()
        self.local_offsets = None if local_offsets is None else local_offsets.contiguous()
        batch, types, _, height, width = coarse_offsets.shape
        self.shape = (batch, types, height, width)

    @property
    def num_maps(self) -> int:
        return self.shape[0] * self.shape[1]

    def at(self, map_index: Tensor, candidate_index: Tensor) -> Tuple[Tensor, Tensor]:
        """Estimates of the given candidates.

        Args:
            map_index: (...) long, ``b * K + k``.
            candidate_index: (...) long, flat index ``i * W + j`` into the ``H x W`` map.

        Returns:
            ``(x, y)``: two (...) float tensors, feature-map px.
        """
        height, width = self.shape[2:]
        plane = height * width
        anchor = candidate_positions(candidate_index, width, dtype=self.coarse_offsets.dtype)
        flat = self.coarse_offsets.reshape(-1)
        base = map_index * (2 * plane) + candidate_index
        x = anchor[..., 0] + take(flat, base)
        y = anchor[..., 1] + take(flat, base + plane)
        if self.local_offsets is not None:
            local_maps = self.local_offsets.reshape(self.num_maps, 2, height, width)
            local_x, local_y = sample_bilinear(local_maps, map_index, x, y)
            x = x + local_x
            y = y + local_y
        return x, y

    def dense(self) -> Tensor:
        """Every candidate's estimate: (B, K, H, W, 2) float tensor (x, y) in feature-map px.

        The result is a channels-last view of a (B, K, 2, H, W) tensor (call ``.contiguous()`` if needed).
        """
        batch, types, height, width = self.shape
        device = self.coarse_offsets.device
        candidate_index = torch.arange(height * width, device=device).expand(batch * types, -1)
        map_index = torch.arange(batch * types, device=device)[:, None].expand(-1, height * width)
        x, y = self.at(map_index, candidate_index)
        return torch.stack((x, y), dim=1).view(batch, types, 2, height, width).permute(0, 1, 3, 4, 2)


def refined_estimates(coarse_offsets: Tensor, local_offsets: Optional[Tensor] = None) -> Tensor:
    """Every candidate's estimate ``A + (dx, dy) + local(A + (dx, dy))`` (paper eq. 12).

    Args:
        coarse_offsets: (B, K, 2, H, W) float, feature-map px.
        local_offsets: (B, K, 2, H, W) float or None (then the estimate is ``A + (dx, dy)``), feature-map px;
            sampled bilinearly, border values outside the map (see :func:`sample_bilinear`).

    Returns:
        (B, K, H, W, 2) float tensor, (x, y) in feature-map px (a channels-last view). Differentiable.
        The assignment and decoders also accept a :class:`CandidateEstimates`, which evaluates only the
        candidates they need and gives the same values.
    """
    return CandidateEstimates(coarse_offsets, local_offsets).dense()


class _DenseEstimates:
    """Precomputed estimates, (..., H, W, 2) with M maps in front, behind the interface of CandidateEstimates."""

    def __init__(self, estimates: Tensor):
        height, width = estimates.shape[-3:-1]
        self._x = estimates[..., 0].reshape(-1, height, width).contiguous()
        self._y = estimates[..., 1].reshape(-1, height, width).contiguous()
        self.num_maps = self._x.shape[0]
        self.map_size = (height, width)

    def at(self, map_index: Tensor, candidate_index: Tensor) -> Tuple[Tensor, Tensor]:
        plane = self.map_size[0] * self.map_size[1]
        flat = map_index * plane + candidate_index
        return take(self._x, flat), take(self._y, flat)


EstimatesLike = Union[Tensor, CandidateEstimates]


def estimate_source(estimates: EstimatesLike, num_maps: int, height: int, width: int):
    """Wrap estimates for the assignment and decoders, after checking they match M maps of H x W.

    Args:
        estimates: (..., H, W, 2) float tensor (leading dims flattening to M = num_maps) or a
            :class:`CandidateEstimates` with B * K = M and the same H, W.

    Returns:
        An object with ``at(map_index, candidate_index) -> (x, y)`` (feature-map px).
    """
    if isinstance(estimates, CandidateEstimates):
        batch, types, est_height, est_width = estimates.shape
        if (batch * types, est_height, est_width) != (num_maps, height, width):
            raise ValueError(
                f"estimates are for {batch * types} maps of {est_height}x{est_width}, "
                f"confidence has {num_maps} maps of {height}x{width}"
            )
        return estimates
    if not isinstance(estimates, Tensor):
        raise TypeError(f"estimates must be a Tensor or CandidateEstimates, got {type(estimates).__name__}")
    if (
        estimates.dim() < 3
        or tuple(estimates.shape[-3:]) != (height, width, 2)
        or estimates[..., 0].numel() != num_maps * height * width
    ):
        raise ValueError(
            f"estimates must be (..., {height}, {width}, 2) for {num_maps} maps, got {tuple(estimates.shape)}"
        )
    return _DenseEstimates(estimates)


def tile_reduce(plane: Tensor, tile: int, *, largest: bool) -> Tensor:
    """Max (``largest``) or min over each ``tile x tile`` block of (M, H, W) maps -> (M, ceil(H/t), ceil(W/t)) float32.

    Partial blocks at the bottom and right reduce over the pixels they have.
    """
    num_maps, height, width = plane.shape
    pad_h, pad_w = -height % tile, -width % tile
    if pad_h or pad_w:
        plane = F.pad(plane.float(), (0, pad_w, 0, pad_h), value=-math.inf if largest else math.inf)
    rows = plane.reshape(num_maps, (height + pad_h) // tile, tile, width + pad_w)
    rows = rows.amax(dim=2) if largest else rows.amin(dim=2)
    blocks = rows.reshape(num_maps, rows.shape[1], (width + pad_w) // tile, tile)
    return (blocks.amax(dim=3) if largest else blocks.amin(dim=3)).float()
