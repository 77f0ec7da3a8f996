"""Decoding: single target, multiple targets (merge on predicted positions before the top-m cut), NMS."""

import pytest
import torch

from adaanchor.anchor import (
    CandidateEstimates,
    candidate_grid,
    decode_multiple_targets,
    decode_single_target,
    distance_nms,
    refined_estimates,
)


def test_single_target_takes_the_most_confident_candidate():
    conf = torch.zeros(2, 1, 4, 5)
    conf[0, 0, 1, 3] = 0.8
    conf[1, 0, 3, 0] = 0.6
    conf[1, 0, 2, 2] = 0.6  # tie with (3, 0): the lower flat index (2, 2) wins
    coarse = torch.zeros(2, 1, 2, 4, 5)
    coarse[0, 0, :, 1, 3] = torch.tensor([-1.0, 2.0])
    result = decode_single_target(conf, CandidateEstimates(coarse))
    assert result.shape == (2, 1, 3)
    assert result[0, 0].tolist() == [3.5 - 1.0, 1.5 + 2.0, 0.800000011920929]
    assert result[1, 0].tolist()[:2] == [2.5, 2.5]
    assert torch.equal(decode_single_target(conf, refined_estimates(coarse)), result)


def _two_targets_many_anchors():
    """Target A = (10.2, 10.4) predicted by 25 anchors (confidence .9 .. .8), target B = (3.1, 3.3) by 5 (.5)."""
    height = width = 16
    conf = torch.zeros(1, height, width)
    est = candidate_grid(height, width).clone()[None]
    a_cells = [(i, j) for i in range(8, 13) for j in range(8, 13)]
    for rank, (i, j) in enumerate(a_cells):
        conf[0, i, j] = 0.9 - rank * 0.004
        est[0, i, j] = torch.tensor([10.2, 10.4]) + 0.05 * torch.tensor([rank % 3, rank % 2])  # jitter < radius
    for i, j in [(2, 2), (2, 3), (3, 2), (3, 3), (4, 3)]:
        conf[0, i, j] = 0.5
        est[0, i, j] = torch.tensor([3.1, 3.3])
    return conf, est


def test_merge_before_cut_keeps_every_target():
    conf, est = _two_targets_many_anchors()
    result = decode_multiple_targets(conf, est, threshold=0.1, merge_radius=2.0, max_detections=2)
    assert result.valid.tolist() == [[True, True]]
    assert torch.allclose(result.positions[0], torch.tensor([[10.2, 10.4], [3.1, 3.3]]))
    assert result.scores[0].tolist()[0] == conf.max().item()
    assert result.anchor_index[0].tolist() == [8 * 16 + 8, 2 * 16 + 2]  # the best anchor of each target
    # cutting to m = 2 first would keep two anchors of A and lose B:
    top2 = conf.reshape(-1).topk(2).indices
    assert all(conf.reshape(-1)[i] > 0.8 for i in top2)


def test_no_merging_radius_keeps_every_candidate_and_padding_is_marked():
    conf, est = _two_targets_many_anchors()
    result = decode_multiple_targets(conf, est, threshold=0.1, merge_radius=0.0, max_detections=40)
    assert result.valid.sum().item() == 30
    assert (result.anchor_index[0, 30:] == -1).all() and (result.scores[0, 30:] == 0).all()
    assert (result.scores[0, :29] >= result.scores[0, 1:30]).all()


def test_far_apart_anchors_of_one_target_merge_on_predicted_positions():
    # Two anchors 10 px apart that predict the same point are one detection (max-pooling c would keep both).
    conf = torch.zeros(1, 1, 12, 12)
    conf[0, 0, 1, 1] = 0.9
    conf[0, 0, 10, 10] = 0.7
    coarse = torch.zeros(1, 1, 2, 12, 12)
    coarse[0, 0, :, 1, 1] = torch.tensor([4.5, 4.5])  # (1.5, 1.5) -> (6, 6)
    coarse[0, 0, :, 10, 10] = torch.tensor([-4.0, -4.0])  # (10.5, 10.5) -> (6.5, 6.5)
    result = decode_multiple_targets(conf, CandidateEstimates(coarse), threshold=0.5, merge_radius=1.0)
    assert result.valid.sum().item() == 1
    assert result.positions[0, 0, 0].tolist() == [6.0, 6.0]
    assert result.anchor_index[0, 0, 0].item() == 1 * 12 + 1


def test_lazy_and_dense_estimates_decode_alike_batched():
    torch.manual_seed(0)
    conf = torch.rand(2, 3, 10, 11)
    coarse = torch.randn(2, 3, 2, 10, 11)
    local = torch.randn(2, 3, 2, 10, 11) * 0.3
    lazy = decode_multiple_targets(conf, CandidateEstimates(coarse, local), threshold=0.3, max_detections=7)
    dense = decode_multiple_targets(conf, refined_estimates(coarse, local), threshold=0.3, max_detections=7)
    assert lazy.positions.shape == (2, 3, 7, 2)
    for a, b in zip(lazy, dense):
        assert torch.equal(a, b)


def _sequential_greedy(x, y, group, radius):
    keep = []
    for i in range(len(x)):
        if all(group[j] != group[i] or (x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2 > radius**2 for j in keep):
            keep.append(i)
    return keep


def test_distance_nms_equals_sequential_greedy():
    g = torch.Generator().manual_seed(3)
    for trial in range(5):
        n = 300
        x = torch.rand(n, generator=g) * 20
        y = torch.rand(n, generator=g) * 20
        group = torch.randint(0, 3, (n,), generator=g)
        radius = [0.5, 1.0, 2.0, 3.5, 7.0][trial]
        keep = distance_nms(x, y, group, radius)
        assert keep.nonzero().squeeze(1).tolist() == _sequential_greedy(x.tolist(), y.tolist(), group.tolist(), radius)


def test_distance_nms_chain():
    # A chain 0-1-2-3 with spacing 1 < radius 1.5: greedy keeps 0 and 2 (1 suppressed by 0, 3 by 2).
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    keep = distance_nms(x, torch.zeros(4), torch.zeros(4, dtype=torch.long), 1.5)
    assert keep.tolist() == [True, False, True, False]


def test_nothing_above_threshold():
    result = decode_multiple_targets(torch.zeros(3, 5, 5), candidate_grid(5, 5).expand(3, 5, 5, 2), threshold=0.5)
    assert not result.valid.any() and result.positions.shape == (3, 30, 2)


def _assert_prefix(bounded, reference):
    """Per map, the bounded detections are the first detections of the reference, slot by slot."""
    for m in range(bounded.valid.shape[1]):
        n = int(bounded.valid[0, m].sum())
        assert not bounded.valid[0, m, n:].any() and reference.valid[0, m, :n].all()
        for field in ("positions", "scores", "anchor_index"):
            assert torch.equal(getattr(bounded, field)[0, m, :n], getattr(reference, field)[0, m, :n]), (m, field)


@pytest.mark.parametrize("seed", [0, 1])
def test_bounded_merge_returns_the_most_confident_detections_of_merging_every_candidate(seed):
    """Trained-like and untrained-like maps: merging only the most confident m x c candidates returns the first
    detections of merging all of them (every one of them when m survive), for any c."""
    g = torch.Generator().manual_seed(seed)
    k, h, w = 3, 24, 20
    confidence = torch.rand(k, h, w, generator=g)
    confidence[0] = 0.011 + 1e-4 * torch.rand(h, w, generator=g)  # untrained: every cell above gamma
    coarse = torch.randn(1, k, 2, h, w, generator=g)
    coarse[:, 1] *= 0.1  # anchors predicting near themselves: long merge chains
    local = 0.3 * torch.randn(1, k, 2, h, w, generator=g)
    estimates = CandidateEstimates(coarse, local)
    settings = dict(threshold=0.01, merge_radius=2.0, max_detections=7)
    reference = decode_multiple_targets(confidence[None], estimates, **settings, candidates_per_detection=h * w)
    for per_detection in (1, 2, 20):
        bounded = decode_multiple_targets(
            confidence[None], estimates, **settings, candidates_per_detection=per_detection
        )
        _assert_prefix(bounded, reference)
        if per_detection == 20:  # 140 candidates hold 7 survivors on each of these maps: nothing changes
            for field in ("positions", "scores", "anchor_index", "valid"):
                assert torch.equal(getattr(bounded, field), getattr(reference, field)), field


@pytest.mark.parametrize("crowded_map", ["distinct", "tied"])
def test_few_and_many_candidates_above_gamma_rank_alike_with_ties(crowded_map):
    """Maps with few cells above gamma are ranked among those cells only, unless a map of the batch has more
    than m x c of them (then every map takes one top-k, by confidence, or by exact keys where equal
    confidences straddle the cut): every way gives the same detections, ties (by flat index) included."""
    g = torch.Generator().manual_seed(3)
    k, h, w = 3, 12, 10
    confidence = torch.randint(0, 4, (k, h, w), generator=g).float() / 4  # many equal values
    if crowded_map == "distinct":
        confidence[0] = 0.2 + torch.rand(h, w, generator=g)
    confidence[1:] *= torch.rand(k - 1, h, w, generator=g) < 0.3  # few cells above gamma
    estimates = CandidateEstimates(0.8 * torch.randn(1, k, 2, h, w, generator=g))
    settings = dict(threshold=0.2, merge_radius=1.0, max_detections=5, candidates_per_detection=8)
    assert int((confidence[0] >= 0.2).sum()) > 5 * 8 >= int((confidence[1:] >= 0.2).sum(dim=(1, 2)).max())
    together = decode_multiple_targets(confidence[None], estimates, **settings)
    alone = decode_multiple_targets(
        confidence[None, 1:], CandidateEstimates(estimates.coarse_offsets[:, 1:]), **settings
    )
    for field in ("positions", "scores", "anchor_index", "valid"):
        assert torch.equal(getattr(together, field)[:, 1:], getattr(alone, field)), field
    assert alone.valid.sum() >= 6


def test_an_empty_batch_decodes_to_empty_detections():
    empty = decode_multiple_targets(torch.zeros(0, 3, 6, 5), CandidateEstimates(torch.zeros(0, 3, 2, 6, 5)))
    assert empty.positions.shape == (0, 3, 30, 2) and empty.valid.shape == (0, 3, 30)


def test_every_cell_above_gamma_predicting_one_point_is_decoded_with_bounded_work():
    """The worst case for an unbounded merge: all 128 x 192 cells above gamma, all predicting about the same
    point (learnt offsets, untrained confidence). The decoder merges m x 20 candidates only and returns the one
    detection merging all of them ranks first."""
    g = torch.Generator().manual_seed(0)
    h, w = 128, 192
    confidence = 0.011 + 0.5 * torch.rand(1, 1, h, w, generator=g)
    cells = candidate_grid(h, w)  # (h, w, 2) feature px
    coarse = (torch.tensor([90.0, 60.0]) - cells + 0.3 * torch.randn(h, w, 2, generator=g)).permute(2, 0, 1)
    coarse, local = coarse[None, None], torch.zeros(1, 1, 2, h, w)
    counting = _CountingEstimates(coarse, local)
    bounded = decode_multiple_targets(confidence, counting, threshold=0.01, merge_radius=2.0, max_detections=30)
    assert counting.evaluated == 30 * 20 and int(bounded.valid.sum()) == 1
    best = int(confidence.flatten().argmax())
    assert int(bounded.anchor_index[0, 0, 0]) == best
    assert torch.allclose(bounded.positions[0, 0, 0], torch.tensor([90.0, 60.0]), atol=1.5)


class _CountingEstimates(CandidateEstimates):
    """Estimates that count how many candidates the decoder evaluates (each reaches the merge once)."""

    evaluated = 0

    def at(self, map_index, candidate_index):
        self.evaluated += map_index.numel()
        return super().at(map_index, candidate_index)


@pytest.mark.parametrize("people", [5, 30, 60])
def test_bounded_merge_is_unchanged_on_trained_like_centre_maps(people):
    """DEKR-like centre maps of a 768 x 512 input (128 x 192 cells): each person's 5 x 5 cells confident and
    regressing its centre, clutter just above gamma elsewhere. Merging the m x 20 most confident candidates
    first decodes what merging every candidate does, and each person is one detection, at its centre."""
    g = torch.Generator().manual_seed(people)
    h, w = 128, 192
    side = int(people**0.5 + 0.999)
    gx, gy = torch.meshgrid(
        (torch.arange(side) + 0.5) * (w / side), (torch.arange(side) + 0.5) * (h / side), indexing="xy"
    )
    centres = torch.stack([gx, gy], -1).reshape(-1, 2)[:people] + torch.rand(people, 2, generator=g) - 0.5
    cells = candidate_grid(h, w)  # (h, w, 2) feature px
    nearest = ((cells[:, :, None] - centres) ** 2).sum(-1).argmin(-1)  # (h, w)
    to_centre = centres[nearest] - cells
    confidence = torch.where(to_centre.abs().amax(-1) <= 2, 0.3 + 0.6 * torch.rand(h, w, generator=g), 0.0)
    clutter = torch.rand(h, w, generator=g) < 0.04
    confidence = torch.where(clutter & (confidence == 0), 0.01 + 0.04 * torch.rand(h, w, generator=g), confidence)
    coarse = torch.where(confidence[..., None] >= 0.3, to_centre, 4 * torch.randn(h, w, 2, generator=g))
    coarse = (coarse + 0.3 * torch.randn(h, w, 2, generator=g)).permute(2, 0, 1)[None, None]
    local = 0.05 * torch.randn(1, 1, 2, h, w, generator=g)
    settings = dict(threshold=0.01, merge_radius=2.0, max_detections=30)
    counting = _CountingEstimates(coarse, local)
    bounded = decode_multiple_targets(confidence[None, None], counting, **settings)
    assert counting.evaluated == 30 * 20 < (confidence >= 0.01).sum()  # the bound is what decides here
    reference = decode_multiple_targets(
        confidence[None, None], CandidateEstimates(coarse, local), **settings, candidates_per_detection=h * w
    )
    for field in ("positions", "scores", "anchor_index", "valid"):
        assert torch.equal(getattr(bounded, field), getattr(reference, field)), field
    found = min(people, 30)
    assert bounded.valid.all()  # clutter fills the slots the people leave
    error = torch.cdist(bounded.positions[0, 0, :found], centres).amin(1)
    assert (error < 1.5).all() and (bounded.scores[0, 0, :found] >= 0.3).all()


def test_every_cell_above_gamma_with_random_offsets_is_decoded_with_bounded_work():
    """An untrained-like map, every one of 128 x 192 cells above gamma with random offsets: the decoder evaluates
    (and merges) only the m x 20 most confident candidates, and decodes what merging all of them does."""
    g = torch.Generator().manual_seed(0)
    h, w = 128, 192
    confidence = 0.011 + 0.5 * torch.rand(1, 1, h, w, generator=g)
    coarse = 4 * torch.randn(1, 1, 2, h, w, generator=g)
    local = 0.5 * torch.randn(1, 1, 2, h, w, generator=g)
    settings = dict(threshold=0.01, merge_radius=2.0, max_detections=30)
    counting = _CountingEstimates(coarse, local)
    bounded = decode_multiple_targets(confidence, counting, **settings, candidates_per_detection=20)
    assert counting.evaluated == 30 * 20
    assert bounded.valid.all()
    reference = decode_multiple_targets(
        confidence, CandidateEstimates(coarse, local), **settings, candidates_per_detection=h * w
    )
    for field in ("positions", "scores", "anchor_index", "valid"):
        assert torch.equal(getattr(bounded, field), getattr(reference, field)), field
