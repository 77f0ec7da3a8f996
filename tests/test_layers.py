"""Generic blocks of adaanchor.layers (no Detectron2 needed): the norm factory, the heatmap head, the adaptive
conv's geometry, and the two deformable-conv implementations (values and gradients)."""

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adaanchor.layers import (
    GroupedAdaptiveBlock,
    GroupedConvBlock,
    HeatmapHead,
    conv3x3,
    grouped_deform_conv3x3,
    make_norm,
)

IMPLEMENTATIONS = ["torchvision", "grid_sample"]


def test_make_norm_options():
    assert isinstance(make_norm("BN", 30, groups=2), nn.BatchNorm2d)
    assert isinstance(make_norm("SyncBN", 30), nn.SyncBatchNorm)
    assert isinstance(make_norm("", 30), nn.Identity)
    gn = make_norm("GN", 14 * 15, groups=14)  # gcd(32, 15) = 1 group per keypoint
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 14
    assert make_norm("GN", 32).num_groups == 32
    assert make_norm("GN", 2 * 48, groups=2).num_groups == 2 * 16
    assert make_norm("GN", 18).num_groups == 2  # HRNet W18: gcd(32, 18)
    assert isinstance(make_norm(lambda c: nn.GroupNorm(1, c), 8), nn.GroupNorm)
    with pytest.raises(ValueError, match="'LayerNorm2d' unknown.*'FrozenBN'"):
        make_norm("LayerNorm2d", 8)
    with pytest.raises(ValueError, match="equal groups"):
        make_norm("BN", 10, groups=3)


def test_frozen_bn_without_detectron2_names_what_needs_it(monkeypatch):
    """FrozenBN is Detectron2's layer (tests/test_hrnet.py builds it); without Detectron2 the error says so."""
    monkeypatch.setitem(sys.modules, "detectron2", None)  # `import detectron2` now fails
    with pytest.raises(ImportError, match="norm 'FrozenBN' needs Detectron2"):
        make_norm("FrozenBN", 8)


def test_conv3x3_stride_and_groups():
    conv = conv3x3(6, 4, stride=2, groups=2)
    assert conv.bias is None and conv.weight.shape == (4, 3, 3, 3)
    assert conv(torch.randn(1, 6, 9, 10)).shape == (1, 4, 5, 5)


@pytest.mark.parametrize("norm", ["BN", "GN", ""])
def test_heatmap_head_builds_and_runs_with_each_norm(norm):
    x = torch.randn(2, 24, 8, 8)
    assert HeatmapHead(24, 5, channels=16, norm=norm)(x).shape == (2, 5, 8, 8)


def test_heatmap_head_shape_and_bias_init():
    prior_logit = -math.log((1 - 0.01) / 0.01)  # -log(99) = -4.59512: sigmoid starts at 0.01
    head = HeatmapHead(48, 15, channels=32, bias_init=[0.0] * 14 + [prior_logit])
    out = head(torch.randn(2, 48, 16, 20))
    assert out.shape == (2, 15, 16, 20)
    assert torch.allclose(head.predictor.bias[14:], torch.tensor([-4.59512]), atol=1e-5)
    assert torch.allclose(torch.sigmoid(head.predictor.bias[14:]), torch.tensor([0.01]))
    assert torch.all(head.predictor.bias[:14] == 0)
    # predictor weights ~N(0, 0.001): outputs start at their bias (|x| ~ 1 through BN'd features)
    assert (torch.sigmoid(out[:, 14]) - 0.01).abs().max() < 0.005
    assert out[:, :14].abs().max() < 0.05
    assert torch.all(HeatmapHead(48, 3).predictor.bias == 0)
    for bad in ([0.0, 0.0], [0.0] * 4, [0.0, float("inf"), 0.0]):
        with pytest.raises(ValueError, match="bias_init must give 3 finite values"):
            HeatmapHead(48, 3, bias_init=bad)


def _block_pair(randomise, norm="", implementation="auto"):
    """An adaptive block and a plain block sharing the conv weights and the norm (3 groups of 4 channels)."""
    adaptive = randomise(GroupedAdaptiveBlock(4, 3, norm=norm, implementation=implementation), seed=1)
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
def test_adaptive_block_with_identity_transform_equals_plain_conv_block(implementation, randomise):
    adaptive, plain = _block_pair(randomise, norm="BN", implementation=implementation)
    _set_transform(adaptive, [[1, 0], [0, 1]], [0, 0])
    x = torch.randn(2, 12, 9, 11)
    assert torch.allclose(adaptive(x), plain(x), atol=1e-5)
    # and the default init is exactly that identity
    fresh = GroupedAdaptiveBlock(4, 3)
    assert torch.count_nonzero(fresh.sampling_offsets(x)) == 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_adaptive_block_dekr_init_samples_the_centre_only(implementation, randomise):
    """DEKR's init (A = 0, t = 0): every tap samples the centre pixel = a 1x1 conv with the summed kernel."""
    adaptive, _ = _block_pair(randomise, implementation=implementation)
    _set_transform(adaptive, [[0, 0], [0, 0]], [0, 0])
    x = torch.randn(1, 12, 7, 8)
    summed = adaptive.adapt_conv.weight.sum(dim=(2, 3), keepdim=True)
    assert torch.allclose(adaptive(x), torch.relu(x + F.conv2d(x, summed, groups=3)), atol=1e-5)
    fresh = GroupedAdaptiveBlock(4, 3, identity_init=False)
    assert torch.count_nonzero(fresh.transform_matrix_conv.bias) == 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_adaptive_translation_moves_the_sampling_point(implementation, randomise):
    """t = (dy, dx) = (0, 1): every tap reads one pixel further right, i.e. a plain conv whose window is
    shifted right by one (zero padding 0 on the left, 2 on the right); t = (1, 0) shifts it down."""
    adaptive, plain = _block_pair(randomise, implementation=implementation)
    x = torch.randn(1, 12, 6, 7)
    for translation, padding in (([0, 1], (0, 2, 1, 1)), ([1, 0], (1, 1, 0, 2))):
        _set_transform(adaptive, [[1, 0], [0, 1]], translation)
        expected = torch.relu(x + F.conv2d(F.pad(x, padding), plain.conv.weight, groups=3))
        assert torch.allclose(adaptive(x), expected, atol=1e-5), translation


@pytest.mark.parametrize(
    "matrix,flip_dims", [([[1, 0], [0, -1]], (-1,)), ([[-1, 0], [0, 1]], (-2,)), ([[0, 1], [1, 0]], None)]
)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_adaptive_affine_transforms_the_kernel(matrix, flip_dims, implementation, randomise):
    """A = diag(1, -1) mirrors the taps left-right (kernel flipped horizontally); diag(-1, 1) up-down;
    [[0, 1], [1, 0]] swaps dy and dx (kernel transposed)."""
    adaptive, plain = _block_pair(randomise, implementation=implementation)
    _set_transform(adaptive, matrix, [0, 0])
    w = plain.conv.weight
    kernel = w.transpose(-1, -2) if flip_dims is None else w.flip(flip_dims)
    x = torch.randn(2, 12, 6, 5)
    assert torch.allclose(adaptive(x), torch.relu(x + F.conv2d(x, kernel, padding=1, groups=3)), atol=1e-5)


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
