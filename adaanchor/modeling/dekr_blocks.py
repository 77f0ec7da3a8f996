"""DEKR head building blocks (Geng et al., "Bottom-Up Human Pose Estimation via Disentangled Keypoint
Regression", CVPR'21): a heatmap branch and the disentangled, per-keypoint offset regression branch.

Framework-level (torch + torchvision only; no losses, targets or Detectron2). Both heads read one feature
map (B, C_in, H, W), e.g. HRNet's "hrnet_cat" or a ResNet "res2", and predict at the same resolution: every
output length is in units chosen by whoever trains the head (the meta-architecture); the heads themselves
only see feature-map positions.

Per-keypoint branches run as grouped convolutions (one call per layer for all keypoints; group k =
keypoint k), which is exactly equivalent to DEKR's Python loop of independent per-keypoint branches.
"""

import math
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

__all__ = [
    "make_norm",
    "grouped_deform_conv3x3",
    "BasicResidualBlock",
    "GroupedConvBlock",
    "GroupedAdaptiveBlock",
    "HeatmapHead",
    "DisentangledOffsetHead",
]

NormSpec = Union[str, Callable[[int], nn.Module]]

# Predictor init as DEKR: N(0, 0.001) weights, so offsets start near 0 and maps near their bias.
PREDICTOR_INIT_STD = 0.001


def make_norm(norm: NormSpec, channels: int, *, groups: int = 1) -> nn.Module:
    """A normalisation layer over ``channels`` channels made of ``groups`` independent equal channel groups.

    Args:
        norm: "BN" (BatchNorm2d; per channel, so groups are independent), "SyncBN" (nn.SyncBatchNorm),
            "GN" (GroupNorm with gcd(32, channels // groups) groups inside each channel group, so no group
            mixes keypoints), "" (identity), or a callable ``channels -> nn.Module`` (e.g. wrapping
            Detectron2's ``get_norm``; it receives all ``channels``).
        channels: total channels.
        groups: channel groups that must stay independent (keypoints of a grouped head).
    """
    if callable(norm):
        return norm(channels)
    if channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} equal groups")
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "GN":
        return nn.GroupNorm(groups * math.gcd(32, channels // groups), channels)
    if norm == "":
        return nn.Identity()
    raise ValueError(f"norm {norm!r} unknown: use 'BN', 'SyncBN', 'GN', '' or a callable channels -> module")


def _conv3x3(in_channels: int, out_channels: int, *, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, groups=groups, bias=False)


def grouped_deform_conv3x3(
    x: torch.Tensor, offsets: torch.Tensor, weight: torch.Tensor, *, implementation: str = "auto"
) -> torch.Tensor:
    """3x3 deformable convolution (stride 1, zero padding 1, no bias) with one offset group per conv group.

    Args:
        x: (B, G * C_in, H, W).
        offsets: (B, G * 18, H, W), feature-map px, torchvision's layout: group-major, then the 9 taps
            row-major, then (dy, dx). Tap (ky, kx) of output pixel (i, j) reads x bilinearly at
            (i + ky - 1 + dy, j + kx - 1 + dx), zero outside the map.
        weight: (G * C_out, C_in, 3, 3).
        implementation: "torchvision" (``torchvision.ops.deform_conv2d``: its CUDA kernel is the fast one),
            "grid_sample" (bilinear sampling of the 9 taps with ``F.grid_sample``, then a grouped 1x1
            conv over (channel, tap); same result, several times faster on CPU, above all backward, at the cost of a
            (B, G * C_in, 9, H, W) buffer), "auto" (torchvision on CUDA, grid_sample elsewhere).

    Returns: (B, G * C_out, H, W).
    """
    if implementation == "auto":
        implementation = "torchvision" if x.is_cuda else "grid_sample"
    if implementation == "torchvision":
        return deform_conv2d(x, offsets, weight, padding=(1, 1))
    if implementation != "grid_sample":
        raise ValueError(f"implementation {implementation!r} unknown: use 'auto', 'torchvision' or 'grid_sample'")
    b, _, h, w = x.shape
    groups, c_in = offsets.shape[1] // 18, weight.shape[1]
    if x.shape[1] != groups * c_in or weight.shape[0] % groups:
        raise ValueError(
            f"x {tuple(x.shape)}, offsets {tuple(offsets.shape)} and weight {tuple(weight.shape)} disagree on groups"
        )
    offsets = offsets.view(b, groups, 9, 2, h, w)
    taps = torch.arange(-1, 2, dtype=x.dtype, device=x.device)
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(h, 1) + taps.repeat_interleave(3).view(9, 1, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, w) + taps.repeat(3).view(9, 1, 1)
    ys, xs = rows + offsets[:, :, :, 0], cols + offsets[:, :, :, 1]  # (B, G, 9, H, W), px
    # grid_sample's normalised coordinates with align_corners=False: px p -> (2p + 1) / size - 1
    grid = torch.stack([(2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1], dim=-1).view(b * groups, 9 * h, w, 2)
    sampled = F.grid_sample(
        x.reshape(b * groups, c_in, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (B * G, C_in, 9 * H, W): channels (g, c), then taps, in memory order
    # sum over (c, tap) per group = a grouped 1x1 conv with the kernel flattened (c, tap) like the samples
    return F.conv2d(
        sampled.view(b, groups * c_in * 9, h, w), weight.reshape(weight.shape[0], c_in * 9, 1, 1), groups=groups
    )


class BasicResidualBlock(nn.Module):
    """ResNet basic block at constant width: ReLU(x + norm(conv3x3(ReLU(norm(conv3x3(x))))))."""

    def __init__(self, channels: int, *, norm: NormSpec = "BN"):
        super().__init__()
        self.conv_a = _conv3x3(channels, channels)
        self.norm_a = make_norm(norm, channels)
        self.conv_b = _conv3x3(channels, channels)
        self.norm_b = make_norm(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm_a(self.conv_a(x)))
        return torch.relu(x + self.norm_b(self.conv_b(out)))


class GroupedConvBlock(nn.Module):
    """``groups`` independent single-conv residual blocks: ReLU(x + norm(grouped conv3x3(x))).

    The plain counterpart of :class:`GroupedAdaptiveBlock` (same layers without the sampling offsets).
    Input/output: (B, groups * channels_per_group, H, W).
    """

    def __init__(self, channels_per_group: int, groups: int, *, norm: NormSpec = "BN"):
        super().__init__()
        channels = channels_per_group * groups
        self.conv = _conv3x3(channels, channels, groups=groups)
        self.norm = make_norm(norm, channels, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.norm(self.conv(x)))


class GroupedAdaptiveBlock(nn.Module):
    """``groups`` independent DEKR adaptive-convolution residual blocks, run as one deformable conv.

    For each group g and pixel p, two 3x3 convs on the group's channels predict an affine matrix A_g(p)
    (2x2 acting on (dy, dx) column vectors, entries row-major in channels 4g..4g+3) and a translation
    t_g(p) = (dy, dx) (channels 2g, 2g+1). The 3x3
    kernel's regular sampling grid R (rows: dy, dx of the 9 taps, in {-1, 0, 1}, taps row-major) is moved to
    A R + t, i.e. deformable-conv offsets (A - I) R + t (feature-map px, (dy, dx) per tap). Output:
    ReLU(x + norm(deform_conv3x3(x, offsets))), same shape as x: (B, groups * channels_per_group, H, W).

    ``identity_init=True`` starts from A = I, t = 0 (a plain 3x3 conv). ``False`` reproduces DEKR's code,
    which zero-initialises the transform conv's weights and bias (A = 0: all 9 taps start at the centre
    pixel, a 1x1 conv with the summed kernel). Either way the transform and translation weights start at 0.
    Per-group layout matches DEKR's AdaptBlock (``transform_matrix_conv``, ``translation_conv``,
    ``adapt_conv``): DEKR's per-keypoint weights concatenate along the output-channel axis into these.
    ``implementation``: see :func:`grouped_deform_conv3x3`.
    """

    def __init__(
        self,
        channels_per_group: int,
        groups: int,
        *,
        norm: NormSpec = "BN",
        identity_init: bool = True,
        implementation: str = "auto",
    ):
        super().__init__()
        channels = channels_per_group * groups
        self.groups = groups
        self.implementation = implementation
        self.transform_matrix_conv = nn.Conv2d(channels, 4 * groups, 3, padding=1, groups=groups)
        self.translation_conv = nn.Conv2d(channels, 2 * groups, 3, padding=1, groups=groups)
        self.adapt_conv = _conv3x3(channels, channels, groups=groups)  # weights only; applied deformably
        self.norm = make_norm(norm, channels, groups=groups)
        taps = torch.arange(3, dtype=torch.float32) - 1
        grid = torch.stack([taps.repeat_interleave(3), taps.repeat(3)])  # (2, 9): dy, dx of taps row-major
        self.register_buffer("regular_grid", grid, persistent=False)

        nn.init.zeros_(self.transform_matrix_conv.weight)
        identity = torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(groups) if identity_init else torch.zeros(4 * groups)
        with torch.no_grad():
            self.transform_matrix_conv.bias.copy_(identity)
        nn.init.zeros_(self.translation_conv.weight)
        nn.init.zeros_(self.translation_conv.bias)

    def sampling_offsets(self, x: torch.Tensor) -> torch.Tensor:
        """Deformable-conv offsets (B, groups * 18, H, W), feature-map px, torchvision's layout: group-major,
        then tap (row-major), then (dy, dx)."""
        b, _, h, w = x.shape
        affine = self.transform_matrix_conv(x).view(b, self.groups, 2, 2, h, w)
        translation = self.translation_conv(x).view(b, self.groups, 2, 1, h, w)
        eye = torch.eye(2, dtype=x.dtype, device=x.device).view(1, 1, 2, 2, 1, 1)
        offsets = torch.einsum("bgijhw,jk->bgikhw", affine - eye, self.regular_grid.to(x.dtype)) + translation
        return offsets.transpose(2, 3).reshape(b, self.groups * 18, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offsets = self.sampling_offsets(x)
        out = grouped_deform_conv3x3(x, offsets, self.adapt_conv.weight, implementation=self.implementation)
        return torch.relu(x + self.norm(out))


def _init_convs(module: nn.Module) -> None:
    """He init (fan_out) for the bias-free convs of transitions and blocks."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.bias is None:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class HeatmapHead(nn.Module):
    """DEKR's heatmap branch: 1x1 conv to ``channels`` + norm + ReLU, a basic residual block, 1x1 conv to
    ``num_outputs`` (with bias).

    Input (B, in_channels, H, W); output (B, num_outputs, H, W) raw maps/logits at the input's stride.
    ``prior_prob``: initialise the output bias to -log((1 - p) / p), so sigmoid(output) starts at p
    (focal-loss confidence maps); None: bias 0 (DEKR's heatmaps).
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        *,
        channels: int = 32,
        norm: NormSpec = "BN",
        prior_prob: Optional[float] = None,
    ):
        super().__init__()
        self.transition = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, bias=False), make_norm(norm, channels), nn.ReLU(inplace=True)
        )
        self.block = BasicResidualBlock(channels, norm=norm)
        self.predictor = nn.Conv2d(channels, num_outputs, 1)
        _init_convs(self)
        nn.init.normal_(self.predictor.weight, std=PREDICTOR_INIT_STD)
        if prior_prob is None:
            nn.init.zeros_(self.predictor.bias)
        elif 0.0 < prior_prob < 1.0:
            nn.init.constant_(self.predictor.bias, -math.log((1.0 - prior_prob) / prior_prob))
        else:
            raise ValueError(f"prior_prob must be in (0, 1), got {prior_prob}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.block(self.transition(x)))


class DisentangledOffsetHead(nn.Module):
    """DEKR's disentangled keypoint regression: one independent branch per keypoint.

    1x1 conv from ``in_channels`` to K * C (C = ``channels_per_keypoint``) + norm + ReLU; channels
    [k*C, (k+1)*C) form keypoint k's branch: ``num_blocks`` blocks (``block="adaptive"``: DEKR's adaptive
    convolution, :class:`GroupedAdaptiveBlock`; ``"plain"``: a plain 3x3 conv residual block,
    :class:`GroupedConvBlock`, the ablation / faster option), then a 1x1 conv to 2 channels.
    ``identity_init`` and ``implementation`` go to the adaptive blocks (:class:`GroupedAdaptiveBlock`).

    Input (B, in_channels, H, W); output (B, 2K, H, W): channels 2k, 2k+1 belong to keypoint k (which one is
    x and the units, e.g. feature-map px, are the meta-architecture's choice). Outputs start near 0.
    """

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        *,
        channels_per_keypoint: int = 15,
        num_blocks: int = 2,
        block: str = "adaptive",
        norm: NormSpec = "BN",
        identity_init: bool = True,
        implementation: str = "auto",
    ):
        super().__init__()
        k, c = num_keypoints, channels_per_keypoint
        if block == "adaptive":
            blocks = [
                GroupedAdaptiveBlock(c, k, norm=norm, identity_init=identity_init, implementation=implementation)
                for _ in range(num_blocks)
            ]
        elif block == "plain":
            blocks = [GroupedConvBlock(c, k, norm=norm) for _ in range(num_blocks)]
        else:
            raise ValueError(f"block {block!r} unknown: use 'adaptive' or 'plain'")
        self.num_keypoints = k
        self.transition = nn.Sequential(
            nn.Conv2d(in_channels, k * c, 1, bias=False), make_norm(norm, k * c, groups=k), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(*blocks)
        self.predictor = nn.Conv2d(k * c, 2 * k, 1, groups=k)
        _init_convs(self)
        nn.init.normal_(self.predictor.weight, std=PREDICTOR_INIT_STD)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.blocks(self.transition(x)))
