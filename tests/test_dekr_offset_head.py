"""DEKR's disentangled offset head: shapes, init, grouped == per-keypoint loop, independent branches."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

pytest.importorskip("detectron2")  # adaanchor.modeling is a Detectron2 package

from adaanchor.layers import HeatmapHead  # noqa: E402
from adaanchor.modeling.dekr.offset_head import DisentangledOffsetHead  # noqa: E402

IMPLEMENTATIONS = ["torchvision", "grid_sample"]


@pytest.mark.parametrize("norm", ["BN", "GN", ""])
def test_offset_head_builds_and_runs_with_each_norm(norm):
    assert DisentangledOffsetHead(24, 3, norm=norm)(torch.randn(2, 24, 8, 8)).shape == (2, 6, 8, 8)


@pytest.mark.parametrize("block", ["adaptive", "plain"])
def test_offset_head_shape_backward_and_small_start(block):
    head = DisentangledOffsetHead(32, 14, block=block)
    x = torch.randn(2, 32, 12, 16)
    out = head(x)
    assert out.shape == (2, 28, 12, 16)
    assert out.abs().max() < 0.1  # predictor N(0, 0.001): offsets start near 0
    (out**2).sum().backward()
    if block == "adaptive":
        # the transform / translation convs start at zero weights but do receive gradient
        assert head.blocks[0].transform_matrix_conv.weight.grad.abs().sum() > 0
        assert head.blocks[0].translation_conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head.parameters())


def test_offset_head_rejects_unknown_block():
    with pytest.raises(ValueError, match="block 'deform'"):
        DisentangledOffsetHead(32, 14, block="deform")


def test_head_parameter_count_equals_official_dekr_heads():
    """DEKR W32 COCO heads (480 input channels, K = 17; heatmap of K + 1 maps): 255,646 parameters, counted
    on the official model (29,561,182 in all, README "29.6M") minus its backbone (29,305,536)."""
    heads = [HeatmapHead(480, 18, channels=32), DisentangledOffsetHead(480, 17)]
    assert sum(p.numel() for h in heads for p in h.parameters()) == 255_646


def _per_keypoint_reference(head: DisentangledOffsetHead, x: torch.Tensor) -> torch.Tensor:
    """DEKR's formulation, one keypoint at a time: slices of the grouped weights used as K separate
    branches; offsets built tap by tap from A and t (eval-mode BN)."""
    k_total, c = head.num_keypoints, head.transition[0].out_channels // head.num_keypoints

    def bn(t, norm, sl):
        return F.batch_norm(
            t, norm.running_mean[sl], norm.running_var[sl], norm.weight[sl], norm.bias[sl], eps=norm.eps
        )

    feature = torch.relu(bn(F.conv2d(x, head.transition[0].weight), head.transition[1], slice(None)))
    outputs = []
    for k in range(k_total):
        ch = slice(k * c, (k + 1) * c)
        y = feature[:, ch]
        for block in head.blocks:
            a = F.conv2d(
                y,
                block.transform_matrix_conv.weight[4 * k : 4 * k + 4],
                block.transform_matrix_conv.bias[4 * k : 4 * k + 4],
                padding=1,
            )
            t = F.conv2d(
                y,
                block.translation_conv.weight[2 * k : 2 * k + 2],
                block.translation_conv.bias[2 * k : 2 * k + 2],
                padding=1,
            )
            taps = []
            for ry in (-1, 0, 1):
                for rx in (-1, 0, 1):
                    dy = (a[:, 0] - 1) * ry + a[:, 1] * rx + t[:, 0]
                    dx = a[:, 2] * ry + (a[:, 3] - 1) * rx + t[:, 1]
                    taps += [dy, dx]
            out = deform_conv2d(y, torch.stack(taps, dim=1), block.adapt_conv.weight[ch], padding=(1, 1))
            y = torch.relu(y + bn(out, block.norm, ch))
        p = head.predictor
        outputs.append(F.conv2d(y, p.weight[2 * k : 2 * k + 2], p.bias[2 * k : 2 * k + 2]))
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_grouped_offset_head_equals_per_keypoint_loop(implementation, randomise):
    head = DisentangledOffsetHead(20, 5, channels_per_keypoint=6, num_blocks=2, implementation=implementation)
    head = randomise(head, seed=3).eval()
    x = torch.randn(2, 20, 10, 12)
    with torch.no_grad():
        grouped, reference = head(x), _per_keypoint_reference(head, x)
    assert reference.abs().max() > 0.5  # a non-trivial comparison
    assert torch.allclose(grouped, reference, atol=1e-4), (grouped - reference).abs().max()


@pytest.mark.parametrize("block,norm", [("adaptive", "GN"), ("plain", "BN")])
def test_keypoint_branches_are_independent(block, norm, randomise):
    """Changing keypoint 1's branch input changes only keypoint 1's two output channels (train mode)."""
    head = randomise(DisentangledOffsetHead(16, 4, channels_per_keypoint=5, block=block, norm=norm), seed=4).train()
    y = torch.randn(2, 20, 8, 8)
    y2 = y.clone()
    y2[:, 5:10] += torch.randn(2, 5, 8, 8)
    with torch.no_grad():
        diff = (head.predictor(head.blocks(y)) - head.predictor(head.blocks(y2))).abs().amax(dim=(0, 2, 3))
    assert diff[2:4].min() > 1e-3
    assert diff[[0, 1, 4, 5, 6, 7]].max() == 0
