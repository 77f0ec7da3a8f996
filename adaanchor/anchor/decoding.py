"""AdaAnchor decoding (paper section 3.1): single target (m = 1) and multiple targets (threshold gamma).

Multiple targets: every candidate with confidence >= gamma predicts a target at its estimate. Top-k training
gives one target up to k confident anchors, and they need not be adjacent (an occluded wrist may be
predicted from the visible elbow), so duplicates are merged on their *predicted positions*: greedy
non-maximum suppression by distance, in order of confidence, keeps a candidate unless a kept one predicts a
point within ``merge_radius`` of its own. Merging happens before the top-m cut; cutting first would spend
all m slots on the anchors of the first few targets.

All positions are in feature-map px; ``anchor_index`` is the flat index ``i * W + j`` of the candidate a
detection comes from (DEKR reads its per-keypoint offsets there).
"""

import math
from typing import NamedTuple, Tuple

import torch
from torch import Tensor

from ._keys import descending_key, first_k_per_group, rank_within_sorted_groups
from .candidates import EstimatesLike, estimate_source

__all__ = ["Detections", "decode_single_target", "decode_multiple_targets", "distance_nms"]


class Detections(NamedTuple):
    """Padded detections of every map (keypoint type or person center), D = max_detections slots each.

    Valid detections come first, by score descending; padding has ``valid`` False, score 0, position 0 and
    anchor_index -1. Leading dims ``...`` are those of the input maps (``(B, K)`` or ``(K,)``).

    Attributes:
        positions: (..., D, 2) float (x, y), feature-map px.
        scores: (..., D) float, confidence (or heatmap value).
        anchor_index: (..., D) long, flat candidate index ``i * W + j``.
        valid: (..., D) bool.
    """

    positions: Tensor
    scores: Tensor
    anchor_index: Tensor
    valid: Tensor


def _flatten_maps(confidence: Tensor):
    if confidence.dim() < 2:
        raise ValueError(f"confidence must be (..., H, W), got {tuple(confidence.shape)}")
    height, width = confidence.shape[-2:]
    return confidence.reshape(-1, height * width), tuple(confidence.shape[:-2]), height, width


def decode_single_target(confidence: Tensor, estimates: EstimatesLike) -> Tensor:
    """The candidate with the highest confidence of every map predicts its one target (m = 1).

    Args:
        confidence: (..., H, W) float, e.g. (B, K, H, W).
        estimates: (..., H, W, 2) float feature-map px, or :class:`CandidateEstimates` for the same maps.

    Returns:
        (..., 3) float: x, y (feature-map px) and the confidence. Ties go to the lowest flat index.
    """
    flat, lead, height, width = _flatten_maps(confidence)
    source = estimate_source(estimates, flat.shape[0], height, width)
    score, index = flat.max(dim=1)
    x, y = source.at(torch.arange(flat.shape[0], device=flat.device), index)
    return torch.stack((x.to(score.dtype), y.to(score.dtype), score), dim=-1).reshape(*lead, 3)


def decode_multiple_targets(
    confidence: Tensor,
    estimates: EstimatesLike,
    *,
    threshold: float = 0.01,
    merge_radius: float = 2.0,
    max_detections: int = 30,
    candidates_per_detection: int = 20,
) -> Detections:
    """Candidates with confidence >= ``threshold``, merged by predicted position, then the top ``max_detections``.

    Bounded work: only the m x ``candidates_per_detection`` most confident candidates of each map are merged
    (when every map has at most that many cells above gamma, as trained maps do, those cells are ranked alone;
    otherwise one top-k per map picks them, not a sort of every candidate). The greedy merge keeps or drops a candidate
    by the candidates before it alone, so the survivors among them are exactly the first survivors of merging
    every candidate: the result is unchanged whenever at least m of them survive, as on trained maps (one target
    owns about k of them, k = top-k of training). On maps where they do not (an untrained map whose cells are all
    above gamma and predict fewer than m places), fewer than m detections come back - the most confident ones,
    as merging everything would rank them - and the cost stays m x 20 candidates whatever the maps hold.

    Args:
        confidence: (..., H, W) float in [0, 1], e.g. (B, K, H, W) or (K, H, W).
        estimates: (..., H, W, 2) float feature-map px, or :class:`CandidateEstimates` for the same maps
            (then only the candidates that reach the merge are evaluated).
        threshold: gamma (MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD).
        merge_radius: feature-map px (MODEL.ADAANCHOR.TEST.MERGE_RADIUS); <= 0 merges nothing.
        max_detections: m (MODEL.ADAANCHOR.TEST.MAX_DETECTIONS).
        candidates_per_detection: candidates merged per detection slot (see above; H x W = no bound).

    Returns:
        :class:`Detections` with D = max_detections. Candidates with non-finite estimates are dropped.
        Equal confidences are ordered by flat index.
    """
    if max_detections < 1:
        raise ValueError(f"MODEL.ADAANCHOR.TEST.MAX_DETECTIONS must be >= 1, got {max_detections}")
    if candidates_per_detection < 1:
        raise ValueError(f"candidates_per_detection must be >= 1, got {candidates_per_detection}")
    flat, lead, height, width = _flatten_maps(confidence)
    num_maps = flat.shape[0]
    source = estimate_source(estimates, num_maps, height, width)
    with torch.no_grad():
        limit = min(max_detections * candidates_per_detection, height * width)
        map_index, candidate = _most_confident(flat, threshold, limit)
        score = flat[map_index, candidate]
        x, y = source.at(map_index, candidate)
        x, y = x.to(flat.dtype), y.to(flat.dtype)
        finite = torch.isfinite(x) & torch.isfinite(y)
        map_index, candidate, x, y, score = _where(finite, map_index, candidate, x, y, score)
        keep = distance_nms(x, y, map_index, merge_radius)
        map_index, candidate, x, y, score = _where(keep, map_index, candidate, x, y, score)
        slot = rank_within_sorted_groups(map_index)
        cut = slot < max_detections
        map_index, candidate, x, y, score, slot = _where(cut, map_index, candidate, x, y, score, slot)
        return _padded(num_maps, max_detections, lead, map_index, slot, torch.stack((x, y), -1), score, candidate)


def _where(mask: Tensor, *values: Tensor) -> Tuple[Tensor, ...]:
    """``v[mask]`` for every (S,) tensor ``v``, with one ``nonzero`` for all (a boolean index per tensor repeats it)."""
    index = mask.nonzero().squeeze(1)
    return tuple(v.index_select(0, index) for v in values)


def _most_confident(flat: Tensor, threshold: float, limit: int) -> Tuple[Tensor, Tensor]:
    """The (at most) ``limit`` candidates of each map with confidence >= ``threshold``, by map, then by priority
    (confidence descending, then flat index ascending).

    Args:
        flat: (maps, H * W) confidence.
    Returns:
        map_index, candidate: (S,) long each.
    """
    above = flat >= threshold
    counts = above.sum(dim=1, dtype=torch.int32)
    if counts.numel() == 0 or int(counts.max()) <= limit:  # trained maps: few pass gamma; rank those alone
        map_index, candidate = above.nonzero().unbind(1)
        return _by_priority(flat, map_index, candidate, limit)
    masked = flat.masked_fill(~above, -math.inf)
    values, top = masked.topk(limit, dim=1)
    boundary = values[:, -1:]
    # topk's choice among the values equal to the limit-th one is unspecified: exact if it took all of them
    ties_cut = ((masked == boundary).sum(1) > (values == boundary).sum(1)) & (boundary[:, 0] > -math.inf)
    if not bool(ties_cut.any()):
        map_index, rank = above.gather(1, top).nonzero().unbind(1)
        return _by_priority(flat, map_index, top[map_index, rank], limit)
    index = torch.arange(flat.shape[1], device=flat.device).expand(flat.shape[0], -1)
    key = descending_key(flat, index).masked_fill(~above, torch.iinfo(torch.int64).min)
    top_key, top_candidate = key.topk(limit, dim=1)  # (maps, limit), key descending
    map_index, rank = (top_key > torch.iinfo(torch.int64).min).nonzero().unbind(1)  # map-major order
    return map_index, top_candidate[map_index, rank]


def _by_priority(flat: Tensor, map_index: Tensor, candidate: Tensor, limit: int) -> Tuple[Tensor, Tensor]:
    """The given candidates (at most ``limit`` per map), ordered by map, then confidence descending, then index."""
    order = first_k_per_group(map_index, descending_key(flat[map_index, candidate], candidate), limit)
    return map_index[order], candidate[order]


def _padded(num_maps, slots, lead, map_index, slot, positions, scores, anchor_index) -> Detections:
    device = scores.device
    out_positions = torch.zeros(num_maps, slots, 2, dtype=positions.dtype, device=device)
    out_scores = torch.zeros(num_maps, slots, dtype=scores.dtype, device=device)
    out_index = torch.full((num_maps, slots), -1, dtype=torch.long, device=device)
    out_valid = torch.zeros(num_maps, slots, dtype=torch.bool, device=device)
    out_positions[map_index, slot] = positions
    out_scores[map_index, slot] = scores
    out_index[map_index, slot] = anchor_index
    out_valid[map_index, slot] = True
    return Detections(
        out_positions.reshape(*lead, slots, 2),
        out_scores.reshape(*lead, slots),
        out_index.reshape(*lead, slots),
        out_valid.reshape(*lead, slots),
    )


def distance_nms(x: Tensor, y: Tensor, group: Tensor, radius: float) -> Tensor:
    """Greedy non-maximum suppression of points by distance, within groups.

    Points must be given in priority order within each group (groups need not be contiguous). A point is
    kept unless a kept point of its group, earlier in that order, lies within ``radius`` (Euclidean,
    inclusive) of it — the exact result of the sequential greedy algorithm.

    Neighbours are found on a grid of cells of about ``radius``, so the work is proportional to the number of
    close pairs, not to the square of the number of points; the greedy order is resolved by iterating
    "keep every undecided point whose earlier neighbours are all suppressed, suppress every point with a kept
    earlier neighbour", which takes as many rounds as the longest chain of suppressions.

    Args:
        x, y: (n,) float, positions (any unit, the same as ``radius``); must be finite.
        group: (n,) long, points of different groups never suppress each other.
        radius: merge distance; <= 0 keeps every point.

    Returns:
        (n,) bool, True for kept points.
    """
    count = x.numel()
    keep_all = torch.ones(count, dtype=torch.bool, device=x.device)
    if count < 2 or radius <= 0:
        return keep_all
    x = x.double()
    y = y.double()
    x_min, y_min = x.min(), y.min()
    span = max((x.max() - x_min).item(), (y.max() - y_min).item())
    cell = max(radius * (1 + 1e-6), span / (1 << 20))
    cell_x = torch.floor((x - x_min) / cell).long() + 1
    cell_y = torch.floor((y - y_min) / cell).long() + 1
    cells_x = int(cell_x.max()) + 2
    cells_y = int(cell_y.max()) + 2
    key = (group * cells_y + cell_y) * cells_x + cell_x
    sorted_key, order = torch.sort(key)
    # The 3 x 3 cells around a point are three runs of consecutive keys, one per row of cells.
    rows = torch.tensor([-cells_x, 0, cells_x], device=x.device)
    row_key = key[:, None] + rows
    lo = torch.searchsorted(sorted_key, row_key - 1, right=False).reshape(-1)
    counts = torch.searchsorted(sorted_key, row_key + 1, right=True).reshape(-1) - lo
    source = torch.repeat_interleave(torch.arange(counts.numel(), device=x.device), counts)
    first = (counts.cumsum(0) - counts - lo).index_select(0, source)  # pair p looks at sorted point p - first
    later = torch.div(source, rows.numel(), rounding_mode="floor")
    earlier = order.index_select(0, torch.arange(source.numel(), device=x.device) - first)
    later, earlier = _where(earlier < later, later, earlier)
    dx = x.index_select(0, later) - x.index_select(0, earlier)
    dy = y.index_select(0, later) - y.index_select(0, earlier)
    later, earlier = _where(dx * dx + dy * dy <= radius * radius, later, earlier)

    undecided, kept, suppressed = 0, 1, 2
    state = torch.zeros(count, dtype=torch.int8, device=x.device)
    while True:
        open_points = state == undecided
        if not bool(open_points.any()):
            break
        earlier_state = state.index_select(0, earlier)
        has_kept = torch.zeros(count, dtype=torch.bool, device=x.device)
        has_kept[later[earlier_state == kept]] = True
        has_open = torch.zeros(count, dtype=torch.bool, device=x.device)
        has_open[later[earlier_state == undecided]] = True
        state[open_points & has_kept] = suppressed
        state[open_points & ~has_kept & ~has_open] = kept
        live = (state.index_select(0, later) == undecided) & (state.index_select(0, earlier) != suppressed)
        later, earlier = _where(live, later, earlier)
    return state == kept
