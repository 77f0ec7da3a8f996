"""Adaptive anchor assignment (paper section 3.2, eq. 8-11).

For every target P* (a labelled keypoint of one type in one image, or a person center), every candidate of
that type's map gets the anchor score ``s = c * r`` (or ``c + r``, see :mod:`.scoring`) and the top-k
candidates by ``s`` become its positives. Targets of the same type in one image compete: a candidate in the
top-k of several targets goes to the one where its score is highest. Selection runs without gradient.

How it stays fast and bounded in memory without changing the result (no Python loop over candidates, types
or persons; every step is a batched tensor operation over all targets of the batch):

1. A lower bound ``tau`` of each target's k-th best score: the k-th best exact score among a window of
   ``(ceil(sqrt k) + 2)^2`` candidates around it (any k candidates give one).
2. Upper bounds by blocks: the score of any candidate in a block of ``TILE_SIZES[0]`` squared candidates is at
   most the score computed from the block's highest confidence and the distance from the target to a box
   around the block's estimates (with local refinement, widened by the map's local-offset range). Blocks
   below ``tau`` are dropped; the survivors are split into ``TILE_SIZES[1]`` blocks and tested again.
3. The candidates of the surviving finest blocks: first a bound without the local offset, then the exact
   score (bilinear sample of the local offsets) for those that can still reach ``tau``; the exact top-k of
   each target is taken over those reaching ``tau`` (there are always at least k: the window's).
4. Conflicts: each selected candidate goes to the target where its score is highest.

Only the candidates whose score can matter are ever scored, so work and memory grow with the number of
targets times the candidates near them, not times H * W. Work is split into chunks of about ``chunk_size``
(target, candidate or block) pairs, each holding whole targets, so chunking never changes the result. The
pruning bounds hold in floating point (monotone operations, boxes widened by a few ulps, ``tau`` lowered by
a relative 1e-5), so the result equals a brute-force top-k over all candidates (tests check this).
"""

import math
from dataclasses import dataclass
from typing import List, NamedTuple, Tuple

import torch
from torch import Tensor

from ._keys import descending_key, first_k_per_group, rank_within_sorted_groups
from .candidates import (
    CandidateEstimates,
    EstimatesLike,
    candidate_grid,
    estimate_source,
    sample_bilinear,
    take,
    tile_reduce,
)
from .scoring import RankingScore

__all__ = ["AnchorAssignment", "assign_adaptive_anchors", "usable_targets", "DEFAULT_CHUNK_SIZE"]

#: Default bound on the (target, candidate or block) pairs scored at once: 256K, so that the working arrays
#: stay in the CPU cache (larger chunks are slower on CPU, not faster). Memory per chunk is a few MiB.
DEFAULT_CHUNK_SIZE = 1 << 18
#: Block sides of the pruning levels, coarse to fine (each divides the previous), candidates.
TILE_SIZES = (16, 4)


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
            estimates=_Estimates(source, height, width),
            ranking=ranking,
            row_map=torch.div(rows, num_targets, rounding_mode="floor"),
            row_x=targets.detach()[..., 0].reshape(-1)[rows].float(),
            row_y=targets.detach()[..., 1].reshape(-1)[rows].float(),
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


class _Estimates:
    """What the assignment needs of the estimates, without gradient: the points before local refinement
    (A + coarse offset) as an (M, 2, H, W) float32 tensor, and the local refinement at given points with
    bounds on it (``local`` is None without local refinement)."""

    def __init__(self, source, height: int, width: int):
        self.local = None
        self.plane = height * width
        if isinstance(source, CandidateEstimates):
            coarse = source.coarse_offsets.detach().reshape(-1, 2, height, width).float()
            anchors = candidate_grid(height, width, device=coarse.device).permute(2, 0, 1)
            self.points = coarse + anchors  # the same float operation as CandidateEstimates.at
            if source.local_offsets is not None:
                self.local = source.local_offsets.detach().reshape(-1, 2, height, width).float()
                flat = self.local.reshape(self.local.shape[0], 2, -1)
                lo, hi = flat.amin(dim=2), flat.amax(dim=2)
                # bilinear samples lie within [lo, hi] up to rounding: widen a little
                self.local_range = (
                    _widen_down(lo[:, 0]),
                    _widen_up(hi[:, 0]),
                    _widen_down(lo[:, 1]),
                    _widen_up(hi[:, 1]),
                )
        else:
            self.points = torch.stack((source._x.float(), source._y.float()), dim=1)

    def at(self, map_index: Tensor, candidate: Tensor) -> Tuple[Tensor, Tensor]:
        """Points before local refinement of candidates (...) of maps (...) -> (x, y)."""
        base = map_index * (2 * self.plane) + candidate
        return take(self.points, base), take(self.points, base + self.plane)

    def refine(self, map_index: Tensor, x: Tensor, y: Tensor):
        local_x, local_y = sample_bilinear(self.local, map_index, x, y)
        return x + local_x, y + local_y


def _widen_down(value: Tensor) -> Tensor:
    return value - (value.abs() * 1e-5 + 1e-5)


def _widen_up(value: Tensor) -> Tensor:
    return value + (value.abs() * 1e-5 + 1e-5)


class _Level:
    """Bounds of one block size: per block, the highest confidence and a box around the estimates.

    Attributes: ``size`` (block side, candidates), ``grid`` (blocks per column and row), and (M, blocks)
    float32 arrays ``max_confidence``, ``x_min``, ``x_max``, ``y_min``, ``y_max`` (feature-map px).
    """

    def __init__(self, size, grid, max_confidence, x_min, x_max, y_min, y_max):
        self.size, self.grid = size, grid
        self.max_confidence = max_confidence.reshape(max_confidence.shape[0], -1)
        self.boxes = [box.reshape(box.shape[0], -1) for box in (x_min, x_max, y_min, y_max)]

    @property
    def count(self) -> int:
        return self.grid[0] * self.grid[1]

    @classmethod
    def build(cls, confidence: Tensor, estimates: _Estimates, sizes: Tuple[int, ...]) -> List["_Level"]:
        """Levels for ``sizes`` (coarse to fine), each reduced from the next finer one."""
        finest = sizes[-1]
        points = estimates.points.reshape(-1, *estimates.points.shape[2:])  # (M * 2, H, W)
        low = tile_reduce(points, finest, largest=False).unflatten(0, (-1, 2))
        high = tile_reduce(points, finest, largest=True).unflatten(0, (-1, 2))
        grids = [tile_reduce(confidence, finest, largest=True), low[:, 0], high[:, 0], low[:, 1], high[:, 1]]
        levels = [grids]
        for coarse, fine in zip(sizes[-2::-1], sizes[:0:-1]):
            factor = coarse // fine
            levels.insert(0, [tile_reduce(g, factor, largest=i != 1 and i != 3) for i, g in enumerate(levels[0])])
        out = []
        for size, (max_confidence, x_min, x_max, y_min, y_max) in zip(sizes, levels):
            boxes = [x_min, x_max, y_min, y_max]
            if estimates.local is not None:
                boxes = [box + bound[:, None, None] for box, bound in zip(boxes, estimates.local_range)]
            boxes = [_widen_down(boxes[0]), _widen_up(boxes[1]), _widen_down(boxes[2]), _widen_up(boxes[3])]
            out.append(cls(size, tuple(max_confidence.shape[1:]), max_confidence, *boxes))
        return out


@dataclass
class _Problem:
    """One batch's assignment: rows are the usable targets, in (map, target) order."""

    confidence: Tensor  # (M * H * W,) float
    estimates: _Estimates
    ranking: RankingScore
    row_map: Tensor  # (R,) long
    row_x: Tensor  # (R,) float32, target x, feature-map px
    row_y: Tensor  # (R,) float32, target y
    height: int
    width: int
    k: int

    def rank(self, row: Tensor, candidate: Tensor) -> Tensor:
        """Exact ranking scores (see RankingScore) of candidates (r, n) for rows (r, 1) -> (r, n) float32."""
        map_index = take(self.row_map, row)
        x, y = self.estimates.at(map_index, candidate)
        if self.estimates.local is not None:
            x, y = self.estimates.refine(map_index.expand_as(x), x, y)
        confidence = take(self.confidence, map_index * (self.height * self.width) + candidate)
        return self._score(confidence, x, y, take(self.row_x, row), take(self.row_y, row))

    def _score(self, confidence: Tensor, x: Tensor, y: Tensor, target_x: Tensor, target_y: Tensor) -> Tensor:
        penalty = self.ranking.penalty(x - target_x, y - target_y)
        return self.ranking.combine(self.ranking.confidence_term(confidence), penalty)

    def select(self, chunk_size: int) -> Tuple[Tensor, Tensor, Tensor]:
        """Exact top-k candidates of every row: (row, candidate, rank) triples, at most k per row."""
        num_rows = self.row_map.numel()
        device = self.row_map.device
        maps = self.confidence.reshape(-1, self.height, self.width)
        self.levels = _Level.build(maps, self.estimates, TILE_SIZES)
        self.chunk_size = chunk_size
        window = self._window_offsets()
        first = self.levels[0]
        rows_per_chunk = max(1, chunk_size // max(first.count, window[0].numel()))
        thresholds = [
            self._lower_bound(torch.arange(lo, min(lo + rows_per_chunk, num_rows), device=device), window)
            for lo in range(0, num_rows, rows_per_chunk)
        ]
        self.threshold = torch.cat(thresholds)
        self.results = []
        all_blocks = torch.arange(first.count, device=device)
        for lo in range(0, num_rows, rows_per_chunk):
            row = torch.arange(lo, min(lo + rows_per_chunk, num_rows), device=device)[:, None]
            keep = self._block_bounds(first, row, all_blocks[None, :]) >= take(self.threshold, row)
            pair = keep.nonzero()
            self._descend(0, row[pair[:, 0], 0], pair[:, 1])
        if not self.results:  # only with non-finite scores
            empty = self.row_map.new_zeros(0)
            return empty, empty, self.row_x.new_zeros(0)
        return tuple(torch.cat(parts) for parts in zip(*self.results))

    def _descend(self, depth: int, row: Tensor, block: Tensor) -> None:
        """Refine surviving (row, block) pairs of level ``depth`` (sorted by row) down to candidates."""
        level = self.levels[depth]
        if depth + 1 == len(self.levels):
            children, valid = _children(level.grid, level.size, self.width, (self.height, self.width), block.device)
            per_pair = level.size**2
        else:
            finer = self.levels[depth + 1]
            children, valid = _children(level.grid, level.size // finer.size, finer.grid[1], finer.grid, block.device)
            per_pair = (level.size // finer.size) ** 2
        for lo, hi in _chunks_by_row(row, self.row_map.numel(), max(1, self.chunk_size // per_pair)):
            chunk_row, chunk_block = row[lo:hi, None], block[lo:hi]
            child = take(children.start, chunk_block)[:, None] + children.offsets
            child_valid = None if valid is None else valid[chunk_block]
            if child_valid is not None:
                child = torch.where(child_valid, child, 0)
            if depth + 1 == len(self.levels):
                self._select_candidates(chunk_row, child, child_valid)
                continue
            keep = self._block_bounds(finer, chunk_row, child) >= take(self.threshold, chunk_row)
            if child_valid is not None:
                keep &= child_valid
            self._descend(depth + 1, chunk_row.expand_as(child)[keep], child[keep])

    def _block_bounds(self, level: _Level, row: Tensor, block: Tensor) -> Tensor:
        """(p, c) the highest rank any candidate of each block (p, c) can reach for its row (p, 1)."""
        flat = take(self.row_map, row) * level.count + block
        x_min, x_max, y_min, y_max = (take(box, flat) for box in level.boxes)
        tx, ty = take(self.row_x, row), take(self.row_y, row)
        gap_x = torch.clamp(torch.maximum(x_min - tx, tx - x_max), min=0)
        gap_y = torch.clamp(torch.maximum(y_min - ty, ty - y_max), min=0)
        confidence_term = self.ranking.confidence_term(take(level.max_confidence, flat))
        return self.ranking.combine(confidence_term, self.ranking.penalty(gap_x, gap_y))

    def _select_candidates(self, row: Tensor, candidate: Tensor, keep) -> None:
        """Top-k of the candidates (p, n) of rows (p, 1) -- all of each row's candidates are in this call."""
        row, candidate, rank = self._candidates_above(row, candidate, keep)
        if row.numel() == 0:
            return
        key = descending_key(rank, candidate)
        slot = rank_within_sorted_groups(row)
        first_row = row[0]
        local_row = row - first_row
        table = torch.full((int(local_row[-1]) + 1, int(slot.max()) + 1), _NO_KEY, dtype=torch.long, device=row.device)
        table[local_row, slot] = key
        entry = torch.full_like(table, -1)
        entry[local_row, slot] = torch.arange(row.numel(), device=row.device)
        top_key, top_slot = table.topk(min(self.k, table.shape[1]), dim=1)
        chosen = entry.gather(1, top_slot)[top_key != _NO_KEY]
        self.results.append((row[chosen], candidate[chosen], rank[chosen]))

    def _candidates_above(self, row: Tensor, candidate: Tensor, keep):
        """Exact ranks of the candidates (p, n) of rows (p, 1) that reach their row's threshold, flattened."""
        map_index = take(self.row_map, row)  # per row, broadcast over candidates until compaction
        x, y = self.estimates.at(map_index, candidate)
        confidence = take(self.confidence, map_index * (self.height * self.width) + candidate)
        tx, ty, threshold = take(self.row_x, row), take(self.row_y, row), take(self.threshold, row)
        if self.estimates.local is not None:
            # Before sampling the local offsets, drop candidates that cannot reach the threshold whatever
            # local offset (within the map's range) they get.
            lo_x, hi_x, lo_y, hi_y = (take(bound, map_index) for bound in self.estimates.local_range)
            gap_x = torch.clamp(torch.maximum((x + lo_x) - tx, tx - (x + hi_x)), min=0)
            gap_y = torch.clamp(torch.maximum((y + lo_y) - ty, ty - (y + hi_y)), min=0)
            reach = self.ranking.combine(self.ranking.confidence_term(confidence), self.ranking.penalty(gap_x, gap_y))
            possible = reach >= threshold
            keep = possible if keep is None else keep & possible
            pair, column = keep.nonzero().unbind(1)
            row, candidate = take(row, pair), candidate[pair, column]
            x, y, confidence = x[pair, column], y[pair, column], confidence[pair, column]
            map_index, tx, ty, threshold = (take(v, pair) for v in (map_index, tx, ty, threshold))
            x, y = self.estimates.refine(map_index, x, y)
            keep = None
        rank = self._score(confidence, x, y, tx, ty)
        above = rank >= threshold
        keep = above if keep is None else keep & above
        if rank.dim() == 1:
            index = keep.nonzero().squeeze(1)
            return take(row, index), take(candidate, index), take(rank, index)
        pair, column = keep.nonzero().unbind(1)
        return take(row, pair), candidate[pair, column], rank[pair, column]

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
        target_x, target_y = take(self.row_x, row), take(self.row_y, row)
        top = (target_y.floor().clamp(-1, self.height) - win_h // 2).clamp(0, self.height - win_h).long()
        left = (target_x.floor().clamp(-1, self.width) - win_w // 2).clamp(0, self.width - win_w).long()
        candidate = (top * self.width + left)[:, None] + offsets
        rank = self.rank(row[:, None], candidate)
        kth = rank.topk(self.k, dim=1).values[:, -1]
        return kth - (kth.abs() * 1e-5 + 1e-5)


_NO_KEY = -(1 << 63)


class _Children(NamedTuple):
    start: Tensor  # (blocks,) flat index of each block's first child
    offsets: Tensor  # (children,) flat offsets of the children from the first


def _children(grid, factor: int, child_width: int, child_grid, device) -> Tuple[_Children, object]:
    """Children of every block of a ``grid``: ``factor x factor`` finer blocks (or candidates, factor = block
    side, child_width = W), with a (blocks, children) validity mask where blocks overhang, else None."""
    rows, cols = grid
    block_row = torch.arange(rows, device=device)[:, None] * factor
    block_col = torch.arange(cols, device=device)[None, :] * factor
    start = (block_row * child_width + block_col).reshape(-1)
    dy, dx = torch.meshgrid(torch.arange(factor, device=device), torch.arange(factor, device=device), indexing="ij")
    offsets = (dy * child_width + dx).reshape(-1)
    if rows * factor == child_grid[0] and cols * factor == child_grid[1]:
        return _Children(start, offsets), None
    child_row = block_row.reshape(rows, 1, 1) + dy.reshape(1, 1, -1)
    child_col = block_col.reshape(1, cols, 1) + dx.reshape(1, 1, -1)
    valid = (child_row < child_grid[0]) & (child_col < child_grid[1])
    return _Children(start, offsets), valid.reshape(rows * cols, -1)


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
