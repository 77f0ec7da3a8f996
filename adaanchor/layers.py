"""Generic convolution blocks (torch + torchvision only; importable without Detectron2).

- :func:`make_norm`: the one normalisation factory (DEKR heads, HRNet backbone);
- :func:`conv3x3`: bias-free 3x3 convolution, "same" padding;
- :func:`grouped_deform_conv3x3`: a 3x3 deformable convolution with one offset group per conv group;
- :class:`BasicResidualBlock`, :class:`GroupedConvBlock`, :class:`GroupedAdaptiveBlock` (DEKR's adaptive
  convolution, Geng et al., CVPR'21), :class:`HeatmapHead`.

Every block reads and writes (B, C, H, W) feature maps; lengths (offsets) are in feature-map px. Grouped
blocks run G independent branches as one grouped convolution per layer (group g = channels
[g * C / G, (g + 1) * C / G)), exactly equivalent to a Python loop over G separate branches.
"""

import math
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from adaanchor.utils.dependencies import require_detectron2

__all__ = [
    "NormSpec",
    "PREDICTOR_INIT_STD",
    "make_norm",
    "conv3x3",
    "init_convs",
    "grouped_deform_conv3x3",
    "BasicResidualBlock",
    "GroupedConvBlock",
    "GroupedAdaptiveBlock",
    "HeatmapHead",
]

NormSpec = Union[str, Callable[[int], nn.Module]]

# Predictor init as DEKR: N(0, 0.001) weights, so offsets start near 0 and maps near their bias.
PREDICTOR_INIT_STD = 0.001


def make_norm(norm: NormSpec, channels: int, *, groups: int = 1) -> nn.Module:
    """A normalisation layer over ``channels`` channels made of ``groups`` independent equal channel groups.

    Args:
        norm: "BN" (BatchNorm2d; per channel, so groups are independent), "SyncBN" (nn.SyncBatchNorm),
            "FrozenBN" (Detectron2's FrozenBatchNorm2d: fixed statistics and affine, for pretrained weights;
            imported only here, so it alone needs Detectron2), "GN" (GroupNorm with gcd(32, channels // groups)
            groups inside each channel group, so no group mixes keypoints, and HRNet widths such as 18 or 48,
            not multiples of 32, work), "" (identity), or a callable ``channels -> nn.Module`` (it receives all
            ``channels``).
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
    if norm == "FrozenBN":
        require_detectron2("norm 'FrozenBN'")
        from detectron2.layers import FrozenBatchNorm2d

        return FrozenBatchNorm2d(channels)
    if norm == "GN":
        return nn.GroupNorm(groups * math.gcd(32, channels // groups), channels)
    if norm == "":
        return nn.Identity()
    raise ValueError(
        f"norm {norm!r} unknown: use 'BN', 'SyncBN', 'FrozenBN', 'GN', '' (none) or a callable channels -> module"
    )


def conv3x3(in_channels: int, out_channels: int, *, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """Bias-free 3x3 convolution, zero padding 1: (B, in, H, W) -> (B, out, ceil(H / stride), ceil(W / stride))."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def init_convs(module: nn.Module) -> None:
    """He init (fan_out) for the bias-free convs of ``module`` (transitions and blocks of a head)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.bias is None:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


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
        self.conv_a = conv3x3(channels, channels)
        self.norm_a = make_norm(norm, channels)
        self.conv_b = conv3x3(channels, channels)
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
        self.conv = conv3x3(channels, channels, groups=groups)
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
        self.adapt_conv = conv3x3(channels, channels, groups=groups)  # weights only; applied deformably
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


class HeatmapHead(nn.Module):
    """DEKR's heatmap branch: 1x1 conv to ``channels`` + norm + ReLU, a basic residual block, 1x1 conv to
    ``num_outputs`` (with bias).

    Input (B, in_channels, H, W); output (B, num_outputs, H, W) raw maps/logits at the input's stride.
    ``bias_init``: the predictor's initial bias, one finite value per output channel (e.g. the logit of a
    focal-loss prior for confidence channels, 0 for DEKR's heatmaps); None: all zeros. Predictor weights
    start at N(0, PREDICTOR_INIT_STD), so every output starts near its bias.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        *,
        channels: int = 32,
        norm: NormSpec = "BN",
        bias_init: Optional[Sequence[float]] = None,
    ):
        super().__init__()
        bias = torch.zeros(num_outputs) if bias_init is None else torch.as_tensor(bias_init, dtype=torch.float32)
        if bias.shape != (num_outputs,) or not torch.isfinite(bias).all():
            raise ValueError(f"bias_init must give {num_outputs} finite values (one per output), got {bias_init!r}")
        self.transition = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, bias=False), make_norm(norm, channels), nn.ReLU(inplace=True)
        )
        self.block = BasicResidualBlock(channels, norm=norm)
        self.predictor = nn.Conv2d(channels, num_outputs, 1)
        init_convs(self)
        nn.init.normal_(self.predictor.weight, std=PREDICTOR_INIT_STD)
        with torch.no_grad():
            self.predictor.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.block(self.transition(x)))
