"""Adaptive anchor assignment (paper eq. 8-11), with hand-computed expectations and a brute-force reference."""

import math

import pytest
import torch

from adaanchor.anchor import (
    CandidateEstimates,
    anchor_scores,
    assign_adaptive_anchors,
    candidate_grid,
    fuse_scores,
    refined_estimates,
    regression_score,
    usable_targets,
)


def _flat_problem(height, width, targets, confidence=0.5, batch=1, types=1):
    """Flat confidence, zero offsets (estimates = anchors), targets (T, 2) for one map."""
    conf = torch.full((batch, types, height, width), confidence)
    est = candidate_grid(height, width).expand(batch, types, height, width, 2)
    tgt = torch.tensor(targets, dtype=torch.float32).reshape(1, 1, -1, 2).expand(batch, types, -1, 2)
    valid = torch.ones(tgt.shape[:3], dtype=torch.bool)
    return conf, est, tgt, valid


def _positives(assignment, target=None):
    """Set of (i, j) of positives of map 0 (optionally only those serving one target)."""
    index = assignment.target_index[0, 0]
    mask = index >= 0 if target is None else index == target
    return {tuple(p) for p in mask.nonzero().tolist()}


# --- scoring -------------------------------------------------------------------------------------------------


def test_regression_kernels_by_hand():
    est = torch.tensor([[3.0, 4.0]])
    tgt = torch.tensor([[0.0, 0.0]])
    assert regression_score(est, tgt, kernel="gaussian", kernel_width=4.0).item() == pytest.approx(math.exp(-25 / 32))
    assert regression_score(est, tgt, kernel="laplacian", kernel_width=2.0).item() == pytest.approx(math.exp(-7 / 2))
    assert regression_score(tgt, tgt).item() == 1.0


def test_mul_needs_both_add_needs_one():
    high_c_low_r = (torch.tensor(0.95), torch.tensor(0.05))
    both_moderate = (torch.tensor(0.3), torch.tensor(0.6))
    assert fuse_scores(*high_c_low_r, fusion="mul") < fuse_scores(*both_moderate, fusion="mul")  # 0.0475 < 0.18
    assert fuse_scores(*high_c_low_r, fusion="add") > fuse_scores(*both_moderate, fusion="add")  # 1.0 > 0.9


def test_bad_options_name_the_config_key():
    conf, est, tgt, valid = _flat_problem(4, 4, [[1.0, 1.0]])
    with pytest.raises(ValueError, match="MODEL.ADAANCHOR.FUSION"):
        assign_adaptive_anchors(conf, est, tgt, valid, fusion="max")
    with pytest.raises(ValueError, match="MODEL.ADAANCHOR.KERNEL"):
        assign_adaptive_anchors(conf, est, tgt, valid, kernel="box")
    with pytest.raises(ValueError, match="MODEL.ADAANCHOR.TOPK"):
        assign_adaptive_anchors(conf, est, tgt, valid, topk=0)


# --- selection -----------------------------------------------------------------------------------------------


def test_flat_confidence_zero_offsets_selects_the_k_nearest():
    # Target (4.2, 5.35): squared distances to centers (j + .5, i + .5):
    # (i5,j4) .1125  (i5,j3) .5125  (i4,j4) .8125  (i4,j3) 1.2125  (i6,j4) 1.4125 | (i5,j5) 1.7125 ...
    conf, est, tgt, valid = _flat_problem(10, 10, [[4.2, 5.35]])
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=5)
    assert _positives(result) == {(5, 4), (5, 3), (4, 4), (4, 3), (6, 4)}
    assert result.num_positives == 5
    assert (result.positive_target == 0).all()
    # and with the default k = 20, the 20 nearest (checked against a sort of the distances)
    distance2 = ((candidate_grid(10, 10) - torch.tensor([4.2, 5.35])) ** 2).sum(-1).reshape(-1)
    nearest = set(distance2.argsort()[:20].tolist())
    assert set(assign_adaptive_anchors(conf, est, tgt, valid).positive_index.tolist()) == nearest


def test_laplacian_ranks_by_l1_distance():
    # Target (4.2, 5.35): L1 to (i5,j4) .45  (i5,j3) .85  (i4,j4) 1.15  (i6,j4) 1.45  (i5,j5) 1.45 (tie: lower index)
    conf, est, tgt, valid = _flat_problem(10, 10, [[4.2, 5.35]])
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=4, kernel="laplacian", kernel_width=1.0)
    assert _positives(result) == {(5, 4), (5, 3), (4, 4), (5, 5)}  # (5,5) index 55 < (6,4) index 64


def test_far_confident_candidate_whose_offset_hits_the_target_wins():
    conf, est, tgt, valid = _flat_problem(10, 10, [[4.2, 5.35]], confidence=0.1)
    conf = conf.clone()
    est = est.clone()
    conf[0, 0, 0, 9] = 0.9  # far corner, but it regresses exactly onto the target
    est[0, 0, 0, 9] = torch.tensor([4.2, 5.35])
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=1)
    assert _positives(result) == {(0, 9)}  # 0.9 * 1 beats 0.1 * exp(-.1125 / 32)
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=3)
    assert _positives(result) == {(0, 9), (5, 4), (5, 3)}
    assert result.positive_score.max().item() == pytest.approx(0.9)


def test_conflicting_candidate_goes_to_the_higher_score_and_the_loser_keeps_fewer():
    # A = (4.4, 4.5): top-2 (i4,j4) d2 .01, (i4,j3) .81.   B = (5.3, 4.5): top-2 (i4,j5) .04, (i4,j4) .64.
    # (i4,j4) is wanted by both: s_A = c exp(-.01/32) > s_B = c exp(-.64/32), so it serves A; B keeps one.
    conf, est, tgt, valid = _flat_problem(9, 9, [[4.4, 4.5], [5.3, 4.5]])
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=2)
    assert _positives(result, target=0) == {(4, 4), (4, 3)}
    assert _positives(result, target=1) == {(4, 5)}
    # k = 1, A = (4.2, 4.5) and B = (4.6, 4.5) both want (i4,j4): d2 .09 vs .01, so it serves B, A has none.
    conf2, est2, tgt2, valid2 = _flat_problem(9, 9, [[4.2, 4.5], [4.6, 4.5]])
    result2 = assign_adaptive_anchors(conf2, est2, tgt2, valid2, topk=1)
    assert _positives(result2, target=0) == set() and _positives(result2, target=1) == {(4, 4)}


def test_targets_of_different_types_and_images_do_not_compete():
    conf, est, tgt, valid = _flat_problem(6, 6, [[2.5, 2.5]], batch=2, types=3)
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=1)
    assert result.positive.sum().item() == 6  # one positive per (image, type), all at (2, 2)
    assert result.positive[:, :, 2, 2].all()


def test_mul_and_add_select_differently_where_the_paper_says():
    # X = (i0,j0): c .95, estimate r = .05 -> add 1.0, mul .0475; Y = (i0,j1): c .3, r = .6 -> add .9, mul .18.
    # Every other candidate: c = 0 and an estimate far away (r = 0).
    height = width = 8
    target = torch.tensor([4.0, 4.0])
    conf = torch.zeros(1, 1, height, width)
    est = torch.full((1, 1, height, width, 2), -500.0)
    conf[0, 0, 0, 0], conf[0, 0, 0, 1] = 0.95, 0.3
    est[0, 0, 0, 0] = target + torch.tensor([math.sqrt(-32 * math.log(0.05)), 0.0])
    est[0, 0, 0, 1] = target + torch.tensor([0.0, math.sqrt(-32 * math.log(0.6))])
    tgt = target.reshape(1, 1, 1, 2)
    valid = torch.ones(1, 1, 1, dtype=torch.bool)
    mul = assign_adaptive_anchors(conf, est, tgt, valid, topk=1, fusion="mul")
    add = assign_adaptive_anchors(conf, est, tgt, valid, topk=1, fusion="add")
    assert _positives(mul) == {(0, 1)} and mul.positive_score.item() == pytest.approx(0.18, rel=1e-4)
    assert _positives(add) == {(0, 0)} and add.positive_score.item() == pytest.approx(1.0, rel=1e-4)


# --- edge cases ----------------------------------------------------------------------------------------------


def test_no_targets_and_all_invalid_give_no_positives():
    conf, est, tgt, valid = _flat_problem(5, 5, [[1.0, 1.0], [2.0, 2.0]])
    none = assign_adaptive_anchors(conf, est, tgt[:, :, :0], valid[:, :, :0])
    invalid = assign_adaptive_anchors(conf, est, tgt, torch.zeros_like(valid))
    for result in (none, invalid):
        assert result.num_positives == 0
        assert not result.positive.any() and (result.target_index == -1).all()


def test_k_larger_than_the_candidates_takes_them_all_and_splits_conflicts():
    conf, est, tgt, valid = _flat_problem(3, 3, [[0.5, 0.5], [2.5, 2.5]])
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=20)
    index = result.target_index[0, 0]
    assert (index >= 0).all()  # every candidate serves someone
    # nearest target wins: the anti-diagonal is equidistant, ties go to the lower target index
    assert index.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 1]]


def test_ties_are_broken_by_lower_flat_index():
    # Target (2.0, 2.0) is equidistant from (i1,j1), (i1,j2), (i2,j1), (i2,j2); k = 2 keeps the first two.
    conf, est, tgt, valid = _flat_problem(5, 5, [[2.0, 2.0]])
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=2)
    assert _positives(result) == {(1, 1), (1, 2)}


def test_targets_outside_the_image_within_and_beyond_the_margin():
    # Truncated keypoint 3 px left of the map: still a target within margin 8; border candidates serve it.
    conf, est, tgt, valid = _flat_problem(10, 10, [[-3.0, 4.6], [-20.0, 4.6]])
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=3, target_margin=8.0)
    assert result.target_used[0, 0].tolist() == [True, False]
    assert _positives(result, target=0) == {(4, 0), (5, 0), (3, 0)}  # column 0, rows nearest y = 4.6
    assert _positives(result, target=1) == set()
    narrow = assign_adaptive_anchors(conf, est, tgt, valid, topk=3, target_margin=2.0)
    assert narrow.num_positives == 0
    nan_target = torch.tensor([[[[float("nan"), 1.0]]]])
    assert usable_targets(nan_target, torch.ones(1, 1, 1, dtype=torch.bool), 5, 5, 8.0).sum() == 0


def test_no_gradient_through_selection():
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 12, 12, requires_grad=True)
    coarse = torch.randn(1, 2, 2, 12, 12, requires_grad=True)
    tgt = torch.rand(1, 2, 3, 2) * 12
    valid = torch.ones(1, 2, 3, dtype=torch.bool)
    attached = assign_adaptive_anchors(torch.sigmoid(logits), CandidateEstimates(coarse), tgt, valid)
    detached = assign_adaptive_anchors(torch.sigmoid(logits).detach(), refined_estimates(coarse.detach()), tgt, valid)
    for field in ("positive_index", "positive_target", "positive_score"):
        value = getattr(attached, field)
        assert not value.requires_grad and value.grad_fn is None
        assert torch.equal(value, getattr(detached, field))


# --- exactness of the pruned, chunked implementation -----------------------------------------------------------


def _reference(conf, est, tgt, valid, topk, kernel, width, fusion, margin):
    """Brute force: dense scores, stable ranking, then per-candidate best target (Python loop, tiny inputs)."""
    batch, types, num = conf.shape[0], conf.shape[1], conf.shape[2] * conf.shape[3]
    used = usable_targets(tgt, valid, conf.shape[2], conf.shape[3], margin)
    flat_est = est.reshape(batch, types, 1, num, 2)
    offset = flat_est - tgt[:, :, :, None]
    if kernel == "gaussian":
        log_r = -(offset**2).sum(-1) / (2 * width**2)
    else:
        log_r = -offset.abs().sum(-1) / width
    c = conf.reshape(batch, types, 1, num)
    if fusion == "mul":
        rank = c.clamp(min=torch.finfo(torch.float32).tiny).log() - (-log_r)
    else:
        rank = c + torch.exp(log_r)
    owner = torch.full((batch, types, num), -1)
    best = torch.full((batch, types, num), -math.inf)
    k = min(topk, num)
    for b in range(batch):
        for t_type in range(types):
            for t in range(tgt.shape[2]):
                if not used[b, t_type, t]:
                    continue
                order = sorted(range(num), key=lambda n: (-rank[b, t_type, t, n].item(), n))[:k]
                for n in order:
                    if rank[b, t_type, t, n] > best[b, t_type, n]:
                        best[b, t_type, n] = rank[b, t_type, t, n]
                        owner[b, t_type, n] = t
    return owner.reshape(conf.shape)


def _random_problem(seed, batch=2, types=2, height=13, width=11, num_targets=4, local=True):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, types, height, width, generator=g) * 2 - 3
    coarse = torch.randn(batch, types, 2, height, width, generator=g) * 2
    local_offsets = torch.randn(batch, types, 2, height, width, generator=g) * 0.7 if local else None
    tgt = torch.rand(batch, types, num_targets, 2, generator=g) * torch.tensor([width + 6.0, height + 6.0]) - 3
    valid = torch.rand(batch, types, num_targets, generator=g) > 0.2
    return torch.sigmoid(logits), CandidateEstimates(coarse, local_offsets), tgt, valid


@pytest.mark.parametrize(
    "kernel,fusion,topk,seed",
    [("gaussian", "mul", 20, 0), ("gaussian", "add", 5, 1), ("laplacian", "mul", 7, 2), ("laplacian", "add", 1, 3)],
)
def test_pruned_assignment_equals_brute_force(kernel, fusion, topk, seed):
    conf, lazy, tgt, valid = _random_problem(seed)
    result = assign_adaptive_anchors(conf, lazy, tgt, valid, topk=topk, kernel=kernel, kernel_width=3.0, fusion=fusion)
    expected = _reference(conf, lazy.dense(), tgt, valid, topk, kernel, 3.0, fusion, 8.0)
    assert torch.equal(result.target_index, expected)


def test_chunked_equals_unchunked_and_dense_equals_lazy_estimates():
    conf, lazy, tgt, valid = _random_problem(4, batch=2, types=3, height=24, width=20, num_targets=6)
    whole = assign_adaptive_anchors(conf, lazy, tgt, valid, chunk_size=10**9)
    assert whole.num_positives > 0
    for chunk in (1, 50, 700):
        part = assign_adaptive_anchors(conf, lazy, tgt, valid, chunk_size=chunk)
        assert torch.equal(part.positive_index, whole.positive_index)
        assert torch.equal(part.positive_target, whole.positive_target)
        assert torch.equal(part.positive_score, whole.positive_score)
    dense = assign_adaptive_anchors(conf, lazy.dense(), tgt, valid)
    assert torch.equal(dense.positive_index, whole.positive_index)


def test_repeated_cpu_runs_are_identical():
    conf, lazy, tgt, valid = _random_problem(5)
    first = assign_adaptive_anchors(conf, lazy, tgt, valid)
    for _ in range(3):
        again = assign_adaptive_anchors(conf, lazy, tgt, valid)
        assert torch.equal(again.positive_index, first.positive_index)
        assert torch.equal(again.positive_target, first.positive_target)


def test_anchor_scores_agree_with_the_assignment_ranking():
    conf, lazy, tgt, valid = _random_problem(6, batch=1, types=1, num_targets=1)
    valid[:] = True
    est = lazy.dense()
    scores = anchor_scores(conf, est, tgt)  # (1, 1, 1, H, W)
    result = assign_adaptive_anchors(conf, est, tgt, valid, topk=5)
    top = set(scores.reshape(-1).topk(5).indices.tolist())
    assert set(result.positive_index.tolist()) == top
    expected = scores.reshape(-1).topk(5).values.sort().values
    assert torch.allclose(result.positive_score.sort().values, expected, rtol=1e-5)


def test_crowded_image_chunked_equals_unchunked_with_bounded_work():
    """40 persons x 17 keypoint types on a 160 x 160 map: small chunks give the same positives."""
    g = torch.Generator().manual_seed(7)
    types, size, persons = 17, 160, 40
    centers = torch.rand(1, 1, persons, 2, generator=g) * size
    tgt = centers + torch.randn(1, types, persons, 2, generator=g) * 8
    valid = torch.rand(1, types, persons, generator=g) > 0.15
    conf = torch.sigmoid(torch.randn(1, types, size, size, generator=g) * 1.5 - 4.6)
    lazy = CandidateEstimates(
        torch.randn(1, types, 2, size, size, generator=g) * 3, torch.randn(1, types, 2, size, size, generator=g) * 0.5
    )
    whole = assign_adaptive_anchors(conf, lazy, tgt, valid, chunk_size=1 << 30)
    small = assign_adaptive_anchors(conf, lazy, tgt, valid, chunk_size=1 << 14)  # dozens of chunks
    assert whole.num_positives > 10 * persons
    assert torch.equal(small.positive_index, whole.positive_index)
    assert torch.equal(small.positive_target, whole.positive_target)


def test_defaults_follow_the_config_contract():
    pytest.importorskip("detectron2")
    import inspect

    from detectron2.config import get_cfg

    from adaanchor.config import add_adaanchor_config

    cfg = add_adaanchor_config(get_cfg()).MODEL.ADAANCHOR
    defaults = {k: v.default for k, v in inspect.signature(assign_adaptive_anchors).parameters.items()}
    assert defaults["topk"] == cfg.TOPK and defaults["kernel"] == cfg.KERNEL
    assert defaults["kernel_width"] == cfg.KERNEL_WIDTH and defaults["fusion"] == cfg.FUSION
    assert defaults["target_margin"] == cfg.TARGET_MARGIN and defaults["chunk_size"] == cfg.ASSIGNMENT_CHUNK_SIZE
