"""An AdaAnchor ROI keypoint head for Keypoint R-CNN: every cell of an ROI's map is a candidate anchor.

``MODEL.ROI_KEYPOINT_HEAD.NAME: "build_anchor_keypoint_head"`` builds, by ``MODEL.ADAANCHOR.ENABLED``, either
:class:`AdaAnchorKeypointHead` or Detectron2's own heatmap head (``KRCNNConvDeconvUpsampleHead``, the
baseline), so the two differ by one key.

The head: Detectron2's conv trunk (``CONV_DIMS`` 3x3 convs + ReLU on the pooled S0 x S0 features), a 4x4
stride-2 deconvolution to the criterion's channels (2 S0 x 2 S0 cells, 28 x 28 for the usual 14 x 14 pool),
then, optionally, a bilinear x ``UPSAMPLE_FACTOR`` (Detectron2 upsamples its heatmaps x2 to 56 x 56; the
offsets make that unnecessary). Each ROI is one batch item of the criterion, with K keypoint types and one
target per type: the proposal's ground-truth keypoint in continuous ROI-map px (no flooring), labelled
keypoints with v = 1 included, keypoints cut off by the box kept as targets within the criterion's margin.
Inference decodes all ROIs at once with m = 1 (Detectron2's ``heatmaps_to_keypoints`` loops over ROIs).
``MODEL.ADAANCHOR.SELECTION`` gives the paper's Table 1 baselines on the same head: "nearest" (FixAnchor) and
"regression" (regression-anchor: one fixed anchor per ROI, scores 1).

Units: ROI-map px, cell (i, j) of an S x S map at (j + 0.5, i + 0.5); a box (x0, y0, x1, y1) in image px maps
x to (x - x0) * S / (x1 - x0).
"""

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.modeling.roi_heads")

from detectron2.config import configurable  # noqa: E402
from detectron2.layers import Conv2d, ConvTranspose2d, ShapeSpec  # noqa: E402
from detectron2.modeling.roi_heads import ROI_KEYPOINT_HEAD_REGISTRY, KRCNNConvDeconvUpsampleHead  # noqa: E402
from detectron2.structures import Instances  # noqa: E402

from adaanchor.anchor import AnchorCriterion, build_anchor_criterion  # noqa: E402


@ROI_KEYPOINT_HEAD_REGISTRY.register()
def build_anchor_keypoint_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """AdaAnchor's ROI keypoint head, or Detectron2's heatmap head when MODEL.ADAANCHOR.ENABLED is False."""
    if cfg.MODEL.ADAANCHOR.ENABLED:
        return AdaAnchorKeypointHead(cfg, input_shape)
    return KRCNNConvDeconvUpsampleHead(cfg, input_shape)


def roi_keypoint_targets(gt_keypoints: torch.Tensor, boxes: torch.Tensor, size: int):
    """Ground-truth keypoints of R ROIs in their S x S maps.

    Args:
        gt_keypoints: (R, K, 3) x, y image px (continuous), visibility.
        boxes: (R, 4) XYXY image px.
        size: S.
    Returns:
        targets (R, K, 1, 2) ROI-map px; valid (R, K, 1) bool, labelled (v > 0).
    """
    origin = boxes[:, None, :2]
    scale = size / (boxes[:, None, 2:] - boxes[:, None, :2]).clamp(min=1e-6)
    targets = (gt_keypoints[..., :2] - origin) * scale
    return targets[:, :, None, :], (gt_keypoints[..., 2] > 0)[:, :, None]


class AdaAnchorKeypointHead(nn.Module):
    """Keypoint R-CNN's keypoint head with AdaAnchor maps (see the module docstring).

    Input: pooled ROI features (R, C, S0, S0). Training: ``{"loss_keypoint_confidence", "loss_keypoint_offset",
    "loss_keypoint_local_offset"}``, each normalised by the criterion (focal loss by positives, offsets by
    positives / local cells) and scaled by ``MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT``. Inference: sets
    ``pred_keypoints`` (R_i, K, 3: x, y image px, confidence in [0, 1]) and ``pred_keypoint_heatmaps`` (the
    confidence maps, R_i x K x S x S) on each image's instances.
    """

    @configurable
    def __init__(
        self, input_shape: ShapeSpec, *, criterion: AnchorCriterion, conv_dims, upsample_factor: int, loss_weight: float
    ):
        super().__init__()
        channels = input_shape.channels
        layers = []
        for dim in conv_dims:
            layers += [Conv2d(channels, dim, 3, padding=1), nn.ReLU()]
            channels = dim
        self.trunk = nn.Sequential(*layers)
        self.predictor = ConvTranspose2d(channels, criterion.num_channels, 4, stride=2, padding=1)
        for name, param in self.named_parameters():
            if "weight" in name:
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.constant_(param, 0)
        with torch.no_grad():
            self.predictor.weight.mul_(1e-3)  # offsets start near 0, confidences near their prior
            self.predictor.bias.copy_(torch.tensor(criterion.output_bias))
        self.criterion = criterion
        self.upsample_factor = upsample_factor
        self.loss_weight = loss_weight

    @classmethod
    def from_config(cls, cfg, input_shape):
        h = cfg.MODEL.ROI_KEYPOINT_HEAD
        if not cfg.MODEL.ADAANCHOR.ENABLED:
            raise ValueError("AdaAnchorKeypointHead needs MODEL.ADAANCHOR.ENABLED (build_anchor_keypoint_head picks)")
        if h.UPSAMPLE_FACTOR < 1:
            raise ValueError(f"MODEL.ROI_KEYPOINT_HEAD.UPSAMPLE_FACTOR must be >= 1, got {h.UPSAMPLE_FACTOR}")
        criterion = build_anchor_criterion(
            cfg, h.NUM_KEYPOINTS, loss_prefix="loss_keypoint", heatmap_sigma_key=None, one_target_per_type=True
        )
        return {
            "input_shape": input_shape,
            "criterion": criterion,
            "conv_dims": h.CONV_DIMS,
            "upsample_factor": h.UPSAMPLE_FACTOR,
            "loss_weight": h.LOSS_WEIGHT,
        }

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C, S0, S0) -> (R, C', S, S) anchor maps, S = 2 S0 x UPSAMPLE_FACTOR."""
        maps = self.predictor(self.trunk(x))
        if self.upsample_factor > 1:
            maps = F.interpolate(maps, scale_factor=self.upsample_factor, mode="bilinear", align_corners=False)
        return maps

    def forward(self, x: torch.Tensor, instances: List[Instances]):
        maps = self.layers(x)
        size = maps.shape[-1]
        if self.training:
            boxes = torch.cat([i.proposal_boxes.tensor for i in instances])
            gt = torch.cat([i.gt_keypoints.tensor for i in instances])
            targets, valid = roi_keypoint_targets(gt, boxes, size)
            losses, _ = self.criterion.losses(maps, targets, valid)
            return {name: value * self.loss_weight for name, value in losses.items()}
        return self.keypoints_in_image(maps, instances)

    def keypoints_in_image(self, maps: torch.Tensor, instances: List[Instances]) -> List[Instances]:
        """Decode (R, C, S, S) maps of all ROIs at once (m = 1) and set ``pred_keypoints`` (R_i, K, 3: x, y image
        px, score) and ``pred_keypoint_heatmaps`` (R_i, K, S, S confidences) on each image's ``instances``."""
        size = maps.shape[-1]
        boxes = torch.cat([i.pred_boxes.tensor for i in instances])
        keypoints = self.criterion.decode_single(maps)  # (R, K, 3) ROI-map px
        scale = (boxes[:, None, 2:] - boxes[:, None, :2]) / size
        keypoints = torch.cat([boxes[:, None, :2] + keypoints[..., :2] * scale, keypoints[..., 2:]], dim=-1)
        confidence = self.criterion.confidence(maps)
        counts = [len(i) for i in instances]
        for inst, kp, conf in zip(instances, keypoints.split(counts), confidence.split(counts)):
            inst.pred_keypoints = kp
            inst.pred_keypoint_heatmaps = conf
        return instances
