"""DEKR head blocks: shapes, init, the adaptive conv's geometry, grouped == per-keypoint loop."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

pytest.importorskip("detectron2")  # adaanchor.modeling is a Detectron2 package

from adaanchor.modeling.dekr_blocks import (  # noqa: E402
    DisentangledOffsetHead,
    GroupedAdaptiveBlock,
    GroupedConvBlock,
    HeatmapHead,
    grouped_deform_conv3x3,
    make_norm,
)

IMPLEMENTATIONS = ["torchvision", "grid_sample"]


def _randomise(module: nn.Module, seed: int = 0, std: float = 0.2) -> nn.Module:
    """Random weights everywhere (including the adaptive transform / translation convs) and random BN
    running statistics, so that every path and every keypoint group matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module


def test_make_norm_options():
    assert isinstance(make_norm("BN", 30, groups=2), nn.BatchNorm2d)
    assert isinstance(make_norm("SyncBN", 30), nn.SyncBatchNorm)
    assert isinstance(make_norm("", 30), nn.Identity)
    gn = make_norm("GN", 14 * 15, groups=14)  # gcd(32, 15) = 1 group per keypoint
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 14
    assert make_norm("GN", 32).num_groups == 32
    assert make_norm("GN", 2 * 48, groups=2).num_groups == 2 * 16
    assert isinstance(make_norm(lambda c: nn.GroupNorm(1, c), 8), nn.GroupNorm)
    with pytest.raises(ValueError, match="FrozenBN"):
        make_norm("FrozenBN", 8)
    with pytest.raises(ValueError, match="equal groups"):
        make_norm("BN", 10, groups=3)


@pytest.mark.parametrize("norm", ["BN", "GN", ""])
def test_heads_build_and_run_with_each_norm(norm):
    x = torch.randn(2, 24, 8, 8)
    assert HeatmapHead(24, 5, channels=16, norm=norm)(x).shape == (2, 5, 8, 8)
    assert DisentangledOffsetHead(24, 3, norm=norm)(x).shape == (2, 6, 8, 8)


def test_heatmap_head_shape_and_prior_bias():
    head = HeatmapHead(48, 15, channels=32, prior_prob=0.01)
    out = head(torch.randn(2, 48, 16, 20))
    assert out.shape == (2, 15, 16, 20)
    # -log((1 - 0.01) / 0.01) = -log(99) = -4.59512
    assert torch.allclose(head.predictor.bias, torch.full((15,), -4.59512), atol=1e-5)
    assert torch.allclose(torch.sigmoid(head.predictor.bias), torch.full((15,), 0.01))
    # predictor weights ~N(0, 0.001): logits start at the prior (|x| ~ 1 through BN'd features)
    assert (torch.sigmoid(out) - 0.01).abs().max() < 0.005
    assert torch.all(HeatmapHead(48, 3).predictor.bias == 0)
    with pytest.raises(ValueError, match="prior_prob"):
        HeatmapHead(48, 3, prior_prob=1.0)


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


def _block_pair(norm="", implementation="auto"):
    """An adaptive block and a plain block sharing the conv weights and the norm (3 groups of 4 channels)."""
    adaptive = _randomise(GroupedAdaptiveBlock(4, 3, norm=norm, implementation=implementation), seed=1)
    plain = GroupedConvBlock(4, 3, norm=norm)
    plain.load_state_dict(
        {
            "conv.weight": adaptive.adapt_conv.weight,
            **{k: v for k, v in adaptive.state_dict().items() if k.startswith("norm.")},
        }
    )
    return adaptive.eval(), plain.eval()


def _set_transform(block: GroupedAdaptiveBlock, matrix, translation):
    """Constant prediction: affine ``matrix`` (2x2, rows dy, dx) and ``translation`` (dy, dx) everywhere."""
    with torch.no_grad():
        block.transform_matrix_conv.weight.zero_()
        block.transform_matrix_conv.bias.copy_(torch.tensor(matrix, dtype=torch.float32).flatten().repeat(block.groups))
        block.translation_conv.weight.zero_()
        block.translation_conv.bias.copy_(torch.tensor(translation, dtype=torch.float32).repeat(block.groups))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_adaptive_block_with_identity_transform_equals_plain_conv_block(implementation):
    adaptive, plain = _block_pair(norm="BN", implementation=implementation)
    _set_transform(adaptive, [[1, 0], [0, 1]], [0, 0])
    x = torch.randn(2, 12, 9, 11)
    assert torch.allclose(adaptive(x), plain(x), atol=1e-5)
    # and the default init is exactly that identity
    fresh = GroupedAdaptiveBlock(4, 3)
    assert torch.count_nonzero(fresh.sampling_offsets(x)) == 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_adaptive_block_dekr_init_samples_the_centre_only(implementation):
    """DEKR's init (A = 0, t = 0): every tap samples the centre pixel = a 1x1 conv with the summed kernel."""
    adaptive, _ = _block_pair(implementation=implementation)
    _set_transform(adaptive, [[0, 0], [0, 0]], [0, 0])
    x = torch.randn(1, 12, 7, 8)
    summed = adaptive.adapt_conv.weight.sum(dim=(2, 3), keepdim=True)
    assert torch.allclose(adaptive(x), torch.relu(x + F.conv2d(x, summed, groups=3)), atol=1e-5)
    fresh = GroupedAdaptiveBlock(4, 3, identity_init=False)
    assert torch.count_nonzero(fresh.transform_matrix_conv.bias) == 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_adaptive_translation_moves_the_sampling_point(implementation):
    """t = (dy, dx) = (0, 1): every tap reads one pixel further right, i.e. a plain conv whose window is
    shifted right by one (zero padding 0 on the left, 2 on the right); t = (1, 0) shifts it down."""
    adaptive, plain = _block_pair(implementation=implementation)
    x = torch.randn(1, 12, 6, 7)
    for translation, padding in (([0, 1], (0, 2, 1, 1)), ([1, 0], (1, 1, 0, 2))):
        _set_transform(adaptive, [[1, 0], [0, 1]], translation)
        expected = torch.relu(x + F.conv2d(F.pad(x, padding), plain.conv.weight, groups=3))
        assert torch.allclose(adaptive(x), expected, atol=1e-5), translation


@pytest.mark.parametrize(
    "matrix,flip_dims", [([[1, 0], [0, -1]], (-1,)), ([[-1, 0], [0, 1]], (-2,)), ([[0, 1], [1, 0]], None)]
)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_adaptive_affine_transforms_the_kernel(matrix, flip_dims, implementation):
    """A = diag(1, -1) mirrors the taps left-right (kernel flipped horizontally); diag(-1, 1) up-down;
    [[0, 1], [1, 0]] swaps dy and dx (kernel transposed)."""
    adaptive, plain = _block_pair(implementation=implementation)
    _set_transform(adaptive, matrix, [0, 0])
    w = plain.conv.weight
    kernel = w.transpose(-1, -2) if flip_dims is None else w.flip(flip_dims)
    x = torch.randn(2, 12, 6, 5)
    assert torch.allclose(adaptive(x), torch.relu(x + F.conv2d(x, kernel, padding=1, groups=3)), atol=1e-5)


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
def test_grouped_offset_head_equals_per_keypoint_loop(implementation):
    head = DisentangledOffsetHead(20, 5, channels_per_keypoint=6, num_blocks=2, implementation=implementation)
    head = _randomise(head, seed=3).eval()
    x = torch.randn(2, 20, 10, 12)
    with torch.no_grad():
        grouped, reference = head(x), _per_keypoint_reference(head, x)
    assert reference.abs().max() > 0.5  # a non-trivial comparison
    assert torch.allclose(grouped, reference, atol=1e-4), (grouped - reference).abs().max()


@pytest.mark.parametrize("block,norm", [("adaptive", "GN"), ("plain", "BN")])
def test_keypoint_branches_are_independent(block, norm):
    """Changing keypoint 1's branch input changes only keypoint 1's two output channels (train mode)."""
    head = _randomise(DisentangledOffsetHead(16, 4, channels_per_keypoint=5, block=block, norm=norm), seed=4).train()
    y = torch.randn(2, 20, 8, 8)
    y2 = y.clone()
    y2[:, 5:10] += torch.randn(2, 5, 8, 8)
    with torch.no_grad():
        diff = (head.predictor(head.blocks(y)) - head.predictor(head.blocks(y2))).abs().amax(dim=(0, 2, 3))
    assert diff[2:4].min() > 1e-3
    assert diff[[0, 1, 4, 5, 6, 7]].max() == 0


def test_deform_conv_implementations_agree_with_gradients():
    """grid_sample vs torchvision on random sub-pixel offsets, some taps reaching outside the map."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3 * 4, 9, 10, generator=g, requires_grad=True)
    offsets = (torch.randn(2, 3 * 18, 9, 10, generator=g) * 2.5).requires_grad_()
    weight = torch.randn(3 * 5, 4, 3, 3, generator=g, requires_grad=True)
    upstream = torch.randn(2, 15, 9, 10, generator=g)
    results = []
    for implementation in IMPLEMENTATIONS:
        out = grouped_deform_conv3x3(x, offsets, weight, implementation=implementation)
        results.append((out, *torch.autograd.grad(out, [x, offsets, weight], upstream)))
    for reference, value in zip(*results):
        assert torch.allclose(value, reference, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="implementation 'cuda'"):
        grouped_deform_conv3x3(x, offsets, weight, implementation="cuda")
