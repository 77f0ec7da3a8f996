"""The anchor criterion shared by every host (framework-free): layout, losses and decoding for DEKR-, AE- and
ROI-shaped inputs, and the flip test."""

import math

import pytest
import torch
import torch.nn.functional as F

from adaanchor.anchor import AdaAnchor, AnchorCriterion, HeatmapAnchor, RegressionAnchor
from adaanchor.anchor.candidates import candidate_positions
from adaanchor.bottom_up import FlipTest, TestTimeAugmentation

# (name, B, K, T, H, W): DEKR centres, bottom-up AE keypoints, ROI keypoints (each ROI a batch item, T = 1)
HOSTS = [("dekr", 2, 1, 6, 24, 20), ("ae", 2, 5, 3, 24, 20), ("roi", 7, 5, 1, 14, 14)]
CRITERIA = [
    lambda k: AdaAnchor(num_types=k, loss_prefix="loss_x"),
    lambda k: AdaAnchor(num_types=k, loss_prefix="loss_x", local_refinement=False, topk=1),
    lambda k: HeatmapAnchor(num_types=k, loss_prefix="loss_x"),
]


def _targets(b, k, t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = torch.rand(b, k, t, 2, generator=g) * torch.tensor([w, h])
    valid = torch.rand(b, k, t, generator=g) > 0.2
    valid[0, 0, 0] = True
    return targets, valid


@pytest.mark.parametrize("make", CRITERIA)
@pytest.mark.parametrize("host,b,k,t,h,w", HOSTS)
def test_losses_and_decoding_for_every_host_shape(make, host, b, k, t, h, w):
    criterion = make(k)
    assert isinstance(criterion, AnchorCriterion)
    maps = torch.randn(b, criterion.num_channels, h, w, requires_grad=True)
    targets, valid = _targets(b, k, t, h, w)
    losses, assignment = criterion.losses(maps, targets, valid, torch.ones(b, h, w))
    assert losses and all(name.startswith("loss_x_") for name in losses)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert maps.grad is not None and torch.isfinite(maps.grad).all()
    if isinstance(criterion, AdaAnchor):
        assert assignment.shape == (b, k, h, w)
        owner = assignment.target_index
        assert owner.max() < t and (owner >= 0).sum() <= criterion.topk * int(valid.sum())
    else:
        assert assignment is None
    with torch.no_grad():
        detections = criterion.decode(maps)
        single = criterion.decode_single(maps)
        confidence = criterion.confidence(maps)
    assert detections.scores.shape == (b, k, criterion.max_detections)
    assert detections.positions.shape == (b, k, criterion.max_detections, 2)
    assert single.shape == (b, k, 3)
    assert confidence.shape == (b, k, h, w)
    # m = 1 takes the most confident cell of every map
    torch.testing.assert_close(single[..., 2], confidence.flatten(2).amax(dim=2))


def test_adaanchor_layout_bias_and_loss_names():
    criterion = AdaAnchor(num_types=3, loss_prefix="loss_keypoint")
    assert criterion.num_channels == 15
    prior = -math.log(0.99 / 0.01)
    assert criterion.output_bias == (prior,) * 3 + (0.0,) * 12
    maps = torch.arange(15.0).view(1, 15, 1, 1).expand(1, 15, 2, 2)
    logits, coarse, local = criterion.split(maps)
    assert logits[0, :, 0, 0].tolist() == [0, 1, 2]
    assert coarse[0, :, :, 0, 0].tolist() == [[3, 4], [5, 6], [7, 8]]  # (dx_k, dy_k) per type
    assert local[0, :, :, 0, 0].tolist() == [[9, 10], [11, 12], [13, 14]]
    targets, valid = _targets(1, 3, 2, 8, 8)
    losses, _ = criterion.losses(torch.zeros(1, 15, 8, 8), targets, valid)
    assert set(losses) == {"loss_keypoint_confidence", "loss_keypoint_offset", "loss_keypoint_local_offset"}
    assert AdaAnchor(num_types=1, local_refinement=False).num_channels == 3
    assert HeatmapAnchor(num_types=4, loss_prefix="loss_center").output_bias == (0.0,) * 4
    with pytest.raises(ValueError, match=r"reads \(B, 15, H, W\) maps"):
        criterion.decode(torch.zeros(1, 14, 8, 8))


def test_heatmap_anchor_loss_mask_and_margin():
    criterion = HeatmapAnchor(num_types=1, loss_prefix="loss_center", sigma=1.0)
    assert criterion.target_margin == 0.0 and AdaAnchor(num_types=1, margin=5.0).target_margin == 5.0
    targets = torch.tensor([[[[4.5, 4.5]]]])
    valid = torch.ones(1, 1, 1, dtype=torch.bool)
    maps = torch.zeros(1, 1, 10, 10)
    full, _ = criterion.losses(maps, targets, valid)
    masked, _ = criterion.losses(maps, targets, valid, torch.zeros(1, 10, 10))
    assert full["loss_center_heatmap"] > 0 and masked["loss_center_heatmap"] == 0


INVOLUTION = [2, 1, 0, 4, 3]  # keypoint flip indices: 0 <-> 2, 3 <-> 4, 1 stays


@pytest.mark.parametrize(
    "criterion",
    [AdaAnchor(num_types=5), AdaAnchor(num_types=5, local_refinement=False), HeatmapAnchor(num_types=5)],
    ids=["adaanchor", "adaanchor-no-local", "heatmap"],
)
def test_flipping_twice_returns_every_channel_group_unchanged(criterion):
    maps = torch.randn(2, criterion.num_channels, 6, 7)
    twice = criterion.flip_back(criterion.flip_back(maps, INVOLUTION), INVOLUTION)
    k = criterion.num_types
    group_sizes = (
        [k] if isinstance(criterion, HeatmapAnchor) else [k, 2 * k] + ([2 * k] if criterion.local_refinement else [])
    )
    start = 0
    for size in group_sizes:
        torch.testing.assert_close(twice[:, start : start + size], maps[:, start : start + size])
        start += size
    assert start == criterion.num_channels


def _mirror_equivariant_adaanchor_net(num_types: int, flip_indices):
    """A stride-4 network whose AdaAnchor maps mirror exactly with the input: type k on a mirrored input is
    type flip_indices[k] mirrored (scalars) or mirrored with x negated (the x components of offsets)."""
    torch.manual_seed(0)
    stem = torch.rand(1, 1, 3, 3)
    stem = (stem + stem.flip(-1)) / 2  # mirror-symmetric
    kernels = {}
    for k in range(num_types):
        j = flip_indices[k]
        for group, sign in (("logit", 1), ("dx", -1), ("dy", 1), ("lx", -1), ("ly", 1)):
            if (group, j) in kernels:
                kernels[(group, k)] = sign * kernels[(group, j)].flip(-1)
            else:
                kernels[(group, k)] = torch.randn(1, 1, 3, 3)
                if j == k:  # a type that is its own mirror: symmetric (scalars, y) or antisymmetric (x)
                    kernels[(group, k)] = (kernels[(group, k)] + sign * kernels[(group, k)].flip(-1)) / 2
    order = [("logit", k) for k in range(num_types)]
    order += [(g, k) for k in range(num_types) for g in ("dx", "dy")]
    order += [(g, k) for k in range(num_types) for g in ("lx", "ly")]
    weight = torch.cat([kernels[o] for o in order])

    def net(x):
        return {"maps": F.conv2d(F.conv2d(x, stem, stride=2, padding=1), weight, stride=2, padding=1)}

    return net


@pytest.mark.parametrize("num_types,flip_indices", [(1, [0]), (3, [1, 0, 2])])
def test_flip_averaged_adaanchor_outputs_equal_the_unflipped_ones(num_types, flip_indices):
    """With a mirror-symmetric network, the flip test must change nothing: confidence, coarse and local
    offsets of the flip-averaged maps equal the plain run's (a wrong channel order in flip_back, such as the
    local offsets taking the coarse ones, breaks this)."""
    criterion = AdaAnchor(num_types=num_types)
    net = _mirror_equivariant_adaanchor_net(num_types, flip_indices)
    image = torch.zeros(1, 1, 32, 64)
    image[..., 8:20, 10:30] = torch.rand(12, 20)
    flip = FlipTest(back={"maps": lambda m: criterion.flip_back(m, flip_indices)}, shift=3)
    ((averaged, _),) = TestTimeAugmentation(flip=flip).maps(net, image, (32, 64), stride=4, size_divisibility=4)
    plain = net(image)["maps"]
    logits, coarse, local = criterion.split(averaged["maps"])
    plain_logits, plain_coarse, plain_local = criterion.split(plain)
    torch.testing.assert_close(logits, plain_logits)
    torch.testing.assert_close(coarse, plain_coarse)
    torch.testing.assert_close(local, plain_local)
    assert (plain_local - plain_coarse).abs().max() > 1e-2  # the groups differ, so a mix-up would show


def test_fixanchor_positives_are_the_k_nearest_cells_whatever_the_maps_predict():
    """selection "nearest" (the paper's FixAnchor): the assignment ignores confidence and offsets."""
    torch.manual_seed(0)
    b, k, h, w, topk = 2, 3, 12, 10, 5
    criterion = AdaAnchor(num_types=k, topk=topk, selection="nearest")
    maps = torch.randn(b, criterion.num_channels, h, w) * 3
    targets = torch.rand(b, k, 1, 2) * torch.tensor([w, h])
    _, assignment = criterion.losses(maps, targets, torch.ones(b, k, 1, dtype=torch.bool))
    cells = candidate_positions(torch.arange(h * w), w)  # (H * W, 2) cell centres
    nearest = torch.cdist(targets.reshape(-1, 2), cells).topk(topk, largest=False).indices  # (B * K, k)
    positive = assignment.positive.reshape(b * k, h * w)
    for m in range(b * k):
        assert positive[m].nonzero().squeeze(1).tolist() == sorted(nearest[m].tolist())
    adaptive = AdaAnchor(num_types=k, topk=topk).losses(maps, targets, torch.ones(b, k, 1, dtype=torch.bool))[1]
    assert not torch.equal(adaptive.positive, assignment.positive)  # the adaptive choice follows the maps


def test_regression_anchor_regresses_from_the_map_centre():
    criterion = RegressionAnchor(num_types=2, loss_prefix="loss_keypoint", margin=1.0, offset_loss_weight=0.5)
    assert criterion.num_channels == 4 and criterion.output_bias == (0.0,) * 4 and criterion.max_detections == 1
    maps = torch.zeros(1, 4, 8, 6, requires_grad=True)
    with torch.no_grad():
        maps[0, 0, 0, 0] = 48.0  # type 0: mean dx = 1 (48 cells), dy = 0
        maps[0, 3] = -2.0  # type 1: dy = -2 everywhere
    decoded = criterion.decode_single(maps)
    torch.testing.assert_close(decoded, torch.tensor([[[4.0, 4.0, 1.0], [3.0, 2.0, 1.0]]]))  # centre (3, 4)
    targets = torch.tensor([[[[5.0, 4.0]], [[10.0, 2.0]]]])  # type 1 lies 4 px beyond the 1 px margin: unused
    losses, assignment = criterion.losses(maps, targets, torch.ones(1, 2, 1, dtype=torch.bool))
    assert assignment is None and set(losses) == {"loss_keypoint_offset"}
    assert losses["loss_keypoint_offset"].item() == pytest.approx(0.5 * (1.0 + 0.0) / 1)
    losses["loss_keypoint_offset"].backward()
    assert maps.grad[0, 2:].abs().sum() == 0 and maps.grad[0, 0].abs().sum() > 0
    torch.testing.assert_close(criterion.flip_back(criterion.flip_back(maps, [1, 0]), [1, 0]), maps)
    with pytest.raises(NotImplementedError, match="decode_single"):
        criterion.decode(maps)
    with pytest.raises(ValueError, match="one target per type"):
        criterion.losses(maps, targets.repeat(1, 1, 2, 1), torch.ones(1, 2, 2, dtype=torch.bool))
