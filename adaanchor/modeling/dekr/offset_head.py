"""DEKR's disentangled keypoint regression head (Geng et al., "Bottom-Up Human Pose Estimation via
Disentangled Keypoint Regression", CVPR'21): one independent branch per keypoint, run as grouped convolutions
(one call per layer for all keypoints; group k = keypoint k), exactly equivalent to DEKR's Python loop of
per-keypoint branches. Torch + torchvision only; the blocks come from :mod:`adaanchor.layers`.
"""

import torch
from torch import nn

from adaanchor.layers import (
    PREDICTOR_INIT_STD,
    GroupedAdaptiveBlock,
    GroupedConvBlock,
    NormSpec,
    init_convs,
    make_norm,
)

__all__ = ["DisentangledOffsetHead"]


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
        init_convs(self)
        nn.init.normal_(self.predictor.weight, std=PREDICTOR_INIT_STD)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.blocks(self.transition(x)))
