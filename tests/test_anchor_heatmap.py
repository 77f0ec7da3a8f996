"""The heatmap-anchor baseline: targets, loss and decoding."""

import math

import pytest
import torch

from adaanchor.anchor import decode_heatmap, heatmap_loss, heatmap_targets, window_max


def test_gaussian_peak_window_and_background_weight_by_hand():
    targets = torch.tensor([[[[4.5, 5.5], [0.0, 0.0]]]])
    valid = torch.tensor([[[True, False]]])
    heatmap, weight = heatmap_targets(targets, valid, 12, 10, sigma=1.0, background_weight=0.1)
    assert heatmap.shape == weight.shape == (1, 1, 12, 10)
    assert heatmap[0, 0, 5, 4].item() == 1.0  # the target sits on pixel (i5, j4)'s center
    assert heatmap[0, 0, 5, 6].item() == pytest.approx(math.exp(-4 / 2))  # 2 px right
    assert heatmap[0, 0, 7, 6].item() == pytest.approx(math.exp(-8 / 2))
    # window: pixels within 3 sigma + 1 = 4 px per axis: columns 0..8, rows 1..9 -> 9 x 9
    assert (weight == 1).sum().item() == 81
    assert weight[0, 0, 5, 9].item() == pytest.approx(0.1) and heatmap[0, 0, 5, 9].item() == 0
    assert weight[0, 0, 1, 0].item() == 1 and weight[0, 0, 0, 0].item() == pytest.approx(0.1)


def test_overlapping_targets_merge_by_maximum_and_outside_targets_draw_nothing():
    targets = torch.tensor([[[[3.5, 3.5], [5.5, 3.5], [-1.0, 2.0], [3.0, 12.0]]]])
    valid = torch.ones(1, 1, 4, dtype=torch.bool)
    heatmap, _ = heatmap_targets(targets, valid, 8, 8, sigma=2.0)
    assert heatmap[0, 0, 3, 4].item() == pytest.approx(math.exp(-1 / 8))  # max of two equal Gaussians
    assert heatmap[0, 0, 3, 3].item() == 1.0 and heatmap[0, 0, 3, 5].item() == 1.0
    alone, _ = heatmap_targets(targets[:, :, :2], valid[:, :, :2], 8, 8, sigma=2.0)
    assert torch.equal(heatmap, alone)  # the two outside targets add nothing


def test_per_target_sigma():
    targets = torch.tensor([[[[2.5, 2.5], [10.5, 2.5]]]])
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    sigma = torch.tensor([[[1.0, 3.0]]])
    heatmap, _ = heatmap_targets(targets, valid, 6, 14, sigma=sigma)
    assert heatmap[0, 0, 2, 3].item() == pytest.approx(math.exp(-1 / 2))
    assert heatmap[0, 0, 2, 11].item() == pytest.approx(math.exp(-1 / 18))


def test_heatmap_loss_is_weighted_mse_with_its_gradient():
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 5, 4, requires_grad=True)
    target = torch.rand(2, 3, 5, 4)
    weight = torch.rand(2, 3, 5, 4)
    loss = heatmap_loss(pred, target, weight)
    expected = ((pred - target) ** 2 * weight).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, pred)
    (expected_grad,) = torch.autograd.grad(expected, pred)
    assert torch.allclose(grad, expected_grad, atol=1e-8)
    with pytest.raises(ValueError, match="one shape"):
        heatmap_loss(pred, target[:1], weight)


def test_decode_heatmap_peaks_and_quarter_offset():
    heatmap = torch.zeros(1, 8, 8)
    heatmap[0, 2, 2] = 0.9
    heatmap[0, 2, 3] = 0.5  # right neighbour higher than left -> x + 0.25; up == down -> y unchanged
    heatmap[0, 6, 6] = 0.7
    heatmap[0, 5, 6] = 0.2  # upper neighbour higher -> y - 0.25
    result = decode_heatmap(heatmap, nms_kernel=3, threshold=0.1, max_detections=3)
    assert result.valid.tolist() == [[True, True, False]]
    assert result.positions[0, 0].tolist() == [2.75, 2.5]
    assert result.positions[0, 1].tolist() == [6.5, 6.25]
    assert result.anchor_index[0].tolist() == [2 * 8 + 2, 6 * 8 + 6, -1]
    plain = decode_heatmap(heatmap, nms_kernel=3, threshold=0.1, max_detections=3, subpixel=False)
    assert plain.positions[0, 0].tolist() == [2.5, 2.5]


def test_decode_heatmap_max_pool_suppresses_within_the_kernel():
    heatmap = torch.zeros(2, 1, 9, 9)
    heatmap[:, 0, 4, 4] = 0.8
    heatmap[:, 0, 4, 6] = 0.6  # 2 px away: suppressed by a 5x5 window, kept by a 3x3 one
    assert decode_heatmap(heatmap, nms_kernel=5).valid.sum().item() == 2  # one per map
    assert decode_heatmap(heatmap, nms_kernel=3).valid.sum().item() == 4
    with pytest.raises(ValueError, match="NMS_KERNEL"):
        decode_heatmap(heatmap, nms_kernel=4)


def test_decode_heatmap_pads_small_maps():
    result = decode_heatmap(torch.ones(1, 2, 2), nms_kernel=1, max_detections=6)
    assert result.valid.tolist() == [[True] * 4 + [False] * 2]
    assert result.anchor_index[0, 4:].tolist() == [-1, -1]


@pytest.mark.parametrize("window", [1, 3, 5, 7])
def test_window_max_equals_max_pool_nan_and_borders_included(window):
    g = torch.Generator().manual_seed(window)
    maps = torch.randint(0, 6, (2, 3, 9, 11), generator=g).float() - 2.5  # ties and negative values
    maps[0, 1, 4, 5] = float("nan")
    maps[1, 2, 0, 0] = -float("inf")
    expected = torch.nn.functional.max_pool2d(maps, window, stride=1, padding=window // 2)
    result = window_max(maps, window)
    assert torch.equal(torch.isnan(result), torch.isnan(expected))
    assert torch.equal(result.nan_to_num(7.0), expected.nan_to_num(7.0))
    assert torch.equal(window_max(maps[0], window).nan_to_num(7.0), result[0].nan_to_num(7.0))  # (K, H, W)
