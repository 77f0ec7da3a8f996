"""Adaptive anchor assignment (paper section 3.2, eq. 8-11).

For every target P* (a labelled keypoint of one type in one image, or a person center), every candidate of
that type's map gets the anchor score ``s = c * r`` (or ``c + r``, see :mod:`.scoring`) and the top-k
candidates by ``s`` become its positives. Targets of the same type in one image compete: a candidate in the
top-k of several targets goes to the one where its score is highest. Selection runs without gradient.

How it stays fast and bounded in memory without changing the result: the k-th best score of a target is at
least the k-th best score among the candidates of a small window around it (a lower bound ``tau``), and the
score of any candidate in a ``TILE x TILE`` block is at most the score computed from the block's highest
confidence and the distance from the target to the box around the block's estimates (an upper bound).
Blocks whose bound is below ``tau`` cannot hold a positive and are skipped; the exact top-k is taken over
the candidates of the remaining blocks. Work is split into chunks of at most ``chunk_size`` scores, each
holding whole targets, so chunking never changes which candidates are compared.
"""

import math
from dataclasses import dataclass
from typing import List, Tuple

import torch
from torch import Tensor

from ._keys import descending_key, first_k_per_group
from .candidates import EstimatesLike, estimate_source, tile_reduce
from .scoring import RankingScore

__all__ = ["AnchorAssignment", "assign_adaptive_anchors", "usable_targets", "DEFAULT_CHUNK_SIZE"]

#: Default bound on the (target, candidate) scores held at once: 4M float32 scores (16 MiB per array).
DEFAULT_CHUNK_SIZE = 1 << 22
#: Side of the candidate blocks that are pruned together, candidates.
TILE = 8


@dataclass
class AnchorAssignment:
    """Which candidates are positives, and for which target.

    Attributes:
        shape: (B, K, H, W) of the candidate maps.
        positive_index: (P,) long, flat index ``((b * K + k) * H + i) * W + j`` of every positive, ascending.
        positive_target: (P,) long in [0, T), the target each positive serves.
        positive_score: (P,) float32, its anchor score ``s`` (eq. 9) for that target (no gradient).
        target_used: (B, K, T) bool, the targets that took part (valid, finite, within the margin).
    """

    shape: Tuple[int, int, int, int]
    positive_index: Tensor
    positive_target: Tensor
    positive_score: Tensor
    target_used: Tensor

    @property
    def num_positives(self) -> int:
        return self.positive_index.numel()

    @property
    def positive_map(self) -> Tensor:
        """(P,) long, ``b * K + k`` of every positive."""
        return torch.div(self.positive_index, self.shape[2] * self.shape[3], rounding_mode="floor")

    @property
    def positive_candidate(self) -> Tensor:
        """(P,) long, flat candidate index ``i * W + j`` of every positive."""
        return self.positive_index % (self.shape[2] * self.shape[3])

    @property
    def positive(self) -> Tensor:
        """(B, K, H, W) bool, True at positives."""
        mask = torch.zeros(self.shape, dtype=torch.bool, device=self.positive_index.device)
        mask.view(-1)[self.positive_index] = True
        return mask

    @property
    def target_index(self) -> Tensor:
        """(B, K, H, W) long, the target each candidate serves, -1 for negatives."""
        index = torch.full(self.shape, -1, dtype=torch.long, device=self.positive_index.device)
        index.view(-1)[self.positive_index] = self.positive_target
        return index


def usable_targets(targets: Tensor, target_valid: Tensor, height: int, width: int, margin: float) -> Tensor:
    """Targets that take part in the assignment: valid, finite, and within ``margin`` of the map.

    A labelled keypoint pushed outside the input by augmentation is still a target if it lies within
    ``[-margin, W + margin] x [-margin, H + margin]`` feature-map px: candidates inside the map may regress to it.

    Args:
        targets: (B, K, T, 2) float (x, y), feature-map px.
        target_valid: (B, K, T) bool.

    Returns:
        (B, K, T) bool.
    """
    x, y = targets[..., 0], targets[..., 1]
    inside = (x >= -margin) & (x <= width + margin) & (y >= -margin) & (y <= height + margin)  # False for NaN
    return target_valid.bool() & inside


def _check_inputs(confidence: Tensor, targets: Tensor, target_valid: Tensor) -> None:
    if confidence.dim() != 4:
        raise ValueError(f"confidence must be (B, K, H, W), got {tuple(confidence.shape)}")
    batch, types = confidence.shape[:2]
    if targets.dim() != 4 or tuple(targets.shape[:2]) != (batch, types) or targets.shape[3] != 2:
        raise ValueError(f"targets must be (B={batch}, K={types}, T, 2), got {tuple(targets.shape)}")
    if tuple(target_valid.shape) != tuple(targets.shape[:3]):
        raise ValueError(f"target_valid must be {tuple(targets.shape[:3])}, got {tuple(target_valid.shape)}")


def assign_adaptive_anchors(
    confidence: Tensor,
    estimates: EstimatesLike,
    targets: Tensor,
    target_valid: Tensor,
    *,
    topk: int = 20,
    kernel: str = "gaussian",
    kernel_width: float = 4.0,
    fusion: str = "mul",
    target_margin: float = 8.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> AnchorAssignment:
    """Select the positives of every target by anchor score (paper eq. 8-11), for a batch.

    Args:
        confidence: (B, K, H, W) float in [0, 1], the predicted confidence c of every candidate
            (``sigmoid`` of the logits). Must be finite.
        estimates: (B, K, H, W, 2) float (x, y) feature-map px, every candidate's estimate (eq. 12; see
            :func:`refined_estimates`), or a :class:`CandidateEstimates` (same result, evaluated only at the
            candidates that can matter). Must be finite.
        targets: (B, K, T, 2) float (x, y) feature-map px. T = the most targets of one type in an image
            (persons), padded; K = 1 for person centers.
        target_valid: (B, K, T) bool; False for padding and unlabelled keypoints (v = 0).
        topk: k of eq. 11, positives per target (20 in the paper; 1 = "w/o multiple anchors").
            Capped at H * W.
        kernel, kernel_width, fusion: the anchor score, see :mod:`.scoring` (kernel_width in feature-map px).
        target_margin: targets up to this far outside the map (feature-map px) still take part; farther or
            non-finite ones are ignored (see :func:`usable_targets`).
        chunk_size: at most about this many (target, candidate) scores are held at once (plus those of one
            target); only memory and speed depend on it, never the result.

    Returns:
        :class:`AnchorAssignment`. Ranking is by ``s`` (computed as ``log c + log r`` for 'mul'); equal scores
        go to the lower flat candidate index, and a candidate wanted by several targets with equal scores
        goes to the lower target index, so results are deterministic and the same on CPU and CUDA up to
        floating-point differences. A target that loses candidates to others keeps fewer than k (it does
        not take its (k+1)-th). Nothing here carries gradient.
    """
    _check_inputs(confidence, targets, target_valid)
    if topk < 1:
        raise ValueError(f"MODEL.ADAANCHOR.TOPK must be >= 1, got {topk}")
    if chunk_size < 1:
        raise ValueError(f"MODEL.ADAANCHOR.ASSIGNMENT_CHUNK_SIZE must be >= 1, got {chunk_size}")
    ranking = RankingScore(kernel, kernel_width, fusion)
    batch, types, height, width = confidence.shape
    num_maps, num_targets, plane = batch * types, targets.shape[2], height * width
    device = confidence.device
    with torch.no_grad():
        source = estimate_source(estimates, num_maps, height, width)
        used = usable_targets(targets.detach(), target_valid, height, width, target_margin)
        rows = used.reshape(-1).nonzero().squeeze(1)  # ascending: by map, then target
        if rows.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return AnchorAssignment((batch, types, height, width), empty, empty, empty.float(), used)
        problem = _Problem(
            confidence=confidence.detach().reshape(-1),
            source=source,
            ranking=ranking,
            row_map=torch.div(rows, num_targets, rounding_mode="floor"),
            row_target=targets.detach().reshape(-1, 2)[rows].float(),
            height=height,
            width=width,
            k=min(topk, plane),
        )
        selected_row, selected_candidate, selected_rank = problem.select(chunk_size)
        # Conflicts: each candidate goes to the row (target) where it ranks highest, ties to the lower row.
        candidate = problem.row_map[selected_row] * plane + selected_candidate
        best = first_k_per_group(candidate, descending_key(selected_rank, selected_row), 1)  # by candidate
        return AnchorAssignment(
            shape=(batch, types, height, width),
            positive_index=candidate[best],
            positive_target=rows[selected_row[best]] % num_targets,
            positive_score=ranking.to_anchor_score(selected_rank[best]),
            target_used=used,
        )


@dataclass
class _Problem:
    """One batch's assignment: rows are the usable targets, in (map, target) order."""

    confidence: Tensor  # (M * H * W,) float
    source: object  # estimate_source(...)
    ranking: RankingScore
    row_map: Tensor  # (R,) long
    row_target: Tensor  # (R, 2) float32, feature-map px
    height: int
    width: int
    k: int

    def rank(self, row: Tensor, candidate: Tensor) -> Tensor:
        """Ranking scores (see RankingScore) of candidates (r, n) for rows (r, 1) -> (r, n) float32."""
        map_index = self.row_map[row]
        confidence = self.confidence[map_index * (self.height * self.width) + candidate]
        x, y = self.source.at(map_index, candidate)
        target = self.row_target[row]
        penalty = self.ranking.penalty(x.float() - target[..., 0], y.float() - target[..., 1])
        return self.ranking.combine(self.ranking.confidence_term(confidence), penalty)

    def select(self, chunk_size: int) -> Tuple[Tensor, Tensor, Tensor]:
        """Exact top-k candidates of every row: (row, candidate, rank) triples, k per row, by row."""
        num_rows = self.row_map.numel()
        device = self.row_map.device
        tiles_y, tiles_x = math.ceil(self.height / TILE), math.ceil(self.width / TILE)
        maps = self.confidence.reshape(-1, self.height, self.width)
        tile_max_confidence = tile_reduce(maps, TILE, largest=True).reshape(maps.shape[0], -1)
        boxes = [box.reshape(box.shape[0], -1) for box in self.source.tile_boxes(TILE)]
        window = self._window_offsets()
        rows_per_chunk = max(1, chunk_size // max(tiles_y * tiles_x, window[0].numel()))
        pair_rows: List[Tensor] = []
        pair_tiles: List[Tensor] = []
        thresholds: List[Tensor] = []
        for start in range(0, num_rows, rows_per_chunk):
            row = torch.arange(start, min(start + rows_per_chunk, num_rows), device=device)
            threshold = self._lower_bound(row, window)
            bound = self._upper_bounds(row, tile_max_confidence, boxes)
            pair = (bound >= threshold[:, None]).nonzero()
            pair_rows.append(row[pair[:, 0]])
            pair_tiles.append(pair[:, 1])
            thresholds.append(threshold)
        pair_row, pair_tile, threshold = torch.cat(pair_rows), torch.cat(pair_tiles), torch.cat(thresholds)

        offsets, offset_valid = self._tile_offsets(device)
        tile_start = (
            torch.div(pair_tile, tiles_x, rounding_mode="floor") * (TILE * self.width) + (pair_tile % tiles_x) * TILE
        )
        results = []
        for lo, hi in _chunks_by_row(pair_row, num_rows, max(1, chunk_size // offsets.numel())):
            row = pair_row[lo:hi, None]
            candidate = tile_start[lo:hi, None] + offsets
            if offset_valid is not None:  # blocks cut by the map's bottom or right edge
                valid = offset_valid[pair_tile[lo:hi]]
                candidate = torch.where(valid, candidate, 0)
            rank = self.rank(row, candidate)
            keep = rank >= threshold[row]
            if offset_valid is not None:
                keep &= valid
            row, candidate, rank = row.expand_as(candidate)[keep], candidate[keep], rank[keep]
            best = first_k_per_group(row, descending_key(rank, candidate), self.k)
            results.append((row[best], candidate[best], rank[best]))
        return tuple(torch.cat(parts) for parts in zip(*results))

    def _window_offsets(self) -> Tuple[Tensor, int, int]:
        """Flat offsets of a window of at least k candidates, and its height and width."""
        side = math.ceil(math.sqrt(self.k)) + 2
        win_h, win_w = min(side, self.height), min(side, self.width)
        if win_h * win_w < self.k:
            win_h, win_w = self.height, self.width
        dy, dx = torch.meshgrid(
            torch.arange(win_h, device=self.row_map.device),
            torch.arange(win_w, device=self.row_map.device),
            indexing="ij",
        )
        return (dy * self.width + dx).reshape(-1), win_h, win_w

    def _lower_bound(self, row: Tensor, window: Tuple[Tensor, int, int]) -> Tensor:
        """(r,) a value no larger than the k-th best rank of each row, with slack for rounding."""
        offsets, win_h, win_w = window
        target = self.row_target[row]
        top = (target[:, 1].floor().clamp(-1, self.height) - win_h // 2).clamp(0, self.height - win_h).long()
        left = (target[:, 0].floor().clamp(-1, self.width) - win_w // 2).clamp(0, self.width - win_w).long()
        candidate = (top * self.width + left)[:, None] + offsets
        rank = self.rank(row[:, None], candidate)
        kth = rank.topk(self.k, dim=1).values[:, -1]
        return kth - (kth.abs() * 1e-5 + 1e-5)

    def _upper_bounds(self, row: Tensor, tile_max_confidence: Tensor, boxes) -> Tensor:
        """(r, tiles) the highest rank any candidate of each block can reach for each row."""
        map_index = self.row_map[row]
        x_min, x_max, y_min, y_max = (box[map_index] for box in boxes)
        target = self.row_target[row]
        tx, ty = target[:, 0, None], target[:, 1, None]
        gap_x = torch.clamp(torch.maximum(x_min - tx, tx - x_max), min=0)
        gap_y = torch.clamp(torch.maximum(y_min - ty, ty - y_max), min=0)
        confidence_term = self.ranking.confidence_term(tile_max_confidence[map_index])
        return self.ranking.combine(confidence_term, self.ranking.penalty(gap_x, gap_y))

    def _tile_offsets(self, device) -> Tuple[Tensor, object]:
        """Flat offsets of the candidates of a block from its first one, and (tiles, TILE^2) validity or None."""
        dy, dx = torch.meshgrid(torch.arange(TILE, device=device), torch.arange(TILE, device=device), indexing="ij")
        offsets = (dy * self.width + dx).reshape(-1)
        if self.height % TILE == 0 and self.width % TILE == 0:
            return offsets, None
        tiles_y, tiles_x = math.ceil(self.height / TILE), math.ceil(self.width / TILE)
        ty = torch.arange(tiles_y, device=device)[:, None, None] * TILE + dy.reshape(-1)
        tx = torch.arange(tiles_x, device=device)[None, :, None] * TILE + dx.reshape(-1)
        valid = (ty < self.height) & (tx < self.width)
        return offsets, valid.reshape(tiles_y * tiles_x, -1)


def _chunks_by_row(pair_row: Tensor, num_rows: int, max_pairs: int) -> List[Tuple[int, int]]:
    """Split pairs (sorted by row) into [lo, hi) ranges of about max_pairs, never splitting a row."""
    total = pair_row.numel()
    if total <= max_pairs:
        return [(0, total)] if total else []
    counts = torch.bincount(pair_row, minlength=num_rows)
    ends = counts.cumsum(0)
    row_chunk = torch.div(ends - counts, max_pairs, rounding_mode="floor")
    boundaries = torch.nonzero(row_chunk[1:] != row_chunk[:-1]).squeeze(1)
    cuts = [0] + (ends[boundaries]).tolist() + [total]
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]
