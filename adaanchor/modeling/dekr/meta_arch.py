"""DEKR (Geng et al., CVPR'21) as a Detectron2 meta-architecture, with AdaAnchor centre proposals.

Heads on one stride-4 backbone map:

- heatmap head: K keypoint heatmaps (trained in both variants, used to score poses) + the centre channels
  of the centre criterion (:class:`adaanchor.anchor.AnchorCriterion` over one type: AdaAnchor's
  confidence and offsets, or DEKR's centre heatmap, chosen by MODEL.ADAANCHOR.ENABLED);
- disentangled offset head: for every cell, an offset from the cell centre to each keypoint of the person
  the cell stands for.

Training: the centre criterion's positives are the cells that regress each person (AdaAnchor: the
person's top-k adaptive anchors); the heatmap anchor selects none, and DEKR's square around the centre
(MODEL.DEKR.OFFSET_RADIUS) stands in and the offsets are trained there with DEKR's
smooth-L1 and 1/scale weight. Inference: person anchors decoded by the centre criterion, pose = anchor + offsets,
joint score = anchor score x keypoint heatmap at the joint, pose score = mean joint score, pose NMS, mapped
back to the original image.
"""

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.modeling.dekr")

from detectron2.config import configurable  # noqa: E402
from detectron2.data.detection_utils import create_keypoint_hflip_indices  # noqa: E402
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone  # noqa: E402
from detectron2.utils.events import get_event_storage  # noqa: E402

import adaanchor.data.datasets  # noqa: E402,F401  (the flip test reads the datasets' keypoint flip maps)
from adaanchor.anchor import HeatmapAnchor, build_anchor_criterion  # noqa: E402
from adaanchor.bottom_up import (  # noqa: E402
    TestTimeAugmentation,
    downsample_ignore_masks,
    gather_people,
    offset_targets,
    region_owner,
)
from adaanchor.layers import HeatmapHead  # noqa: E402
from adaanchor.modeling.bottom_up_base import BottomUpMetaArch  # noqa: E402
from adaanchor.modeling.dekr.inference import DEKRInference, dekr_flip_test  # noqa: E402
from adaanchor.modeling.dekr.offset_head import DisentangledOffsetHead  # noqa: E402

SMOOTH_L1_BETA = 1.0 / 9.0  # DEKR's offset loss


@META_ARCH_REGISTRY.register()
class DEKR(BottomUpMetaArch):
    """Single-stage multi-person pose estimation by disentangled keypoint regression.

    Inputs (Detectron2's format): ``image`` (3, H, W) uint8; training: ``instances`` with ``gt_keypoints``
    (input px) and ``gt_areas``, optional ``ignore_mask`` (H, W) bool; inference: ``height``/``width`` of
    the original image. Outputs: training, a dict of scalar losses; inference, ``[{"instances": ...}]``
    with ``pred_keypoints`` (N, K, 3: x, y original-image px in Detectron2's continuous convention, joint
    score), ``scores`` (N,), ``pred_boxes`` (keypoint extent) and ``pred_classes`` (zeros).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        in_feature: str,
        keypoint_heatmaps: HeatmapAnchor,
        center_criterion,
        heatmap_head: nn.Module,
        offset_head: nn.Module,
        offset_loss_weight: float,
        offset_radius: float,
        min_person_area: float,
        inference: DEKRInference,
        pixel_mean,
        pixel_std,
    ):
        """
        Args:
            keypoint_heatmaps: DEKR's K keypoint heatmaps (Gaussian targets, weighted MSE), both variants.
            center_criterion: an :class:`~adaanchor.anchor.AnchorCriterion` over one type, the person centre.
            offset_radius: the heatmap anchor's offset region around each centre, feature-map px (Chebyshev).
        """
        super().__init__(pixel_mean, pixel_std)
        self.backbone = backbone
        self.in_feature = in_feature
        self.stride = backbone.output_shape()[in_feature].stride
        self.num_keypoints = keypoint_heatmaps.num_types
        self.keypoint_heatmaps = keypoint_heatmaps
        self.center_criterion = center_criterion
        self.heatmap_head = heatmap_head
        self.offset_head = offset_head
        self.offset_loss_weight = offset_loss_weight
        self.offset_radius = offset_radius
        self.min_person_area = min_person_area
        self.inference_settings = inference

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        d = cfg.MODEL.DEKR
        shapes = backbone.output_shape()
        if d.IN_FEATURE not in shapes:
            raise ValueError(f"MODEL.DEKR.IN_FEATURE '{d.IN_FEATURE}' is not a backbone output: {sorted(shapes)}")
        if d.TEST.ABSORB_DISTANCE < 0:
            raise ValueError(
                f"MODEL.DEKR.TEST.ABSORB_DISTANCE must be >= 0 (input px; 0 = off), got {d.TEST.ABSORB_DISTANCE}"
            )
        if d.NUM_KEYPOINTS < 1:
            raise ValueError(f"MODEL.DEKR.NUM_KEYPOINTS must be >= 1, got {d.NUM_KEYPOINTS}")
        channels = shapes[d.IN_FEATURE].channels
        keypoint_heatmaps = HeatmapAnchor(
            num_types=d.NUM_KEYPOINTS, loss_prefix="loss_keypoint", sigma=d.KEYPOINT_SIGMA,
            background_weight=d.KEYPOINT_BACKGROUND_WEIGHT, loss_weight=d.HEATMAP_LOSS_WEIGHT,
        )  # fmt: skip
        center = build_anchor_criterion(cfg, 1, loss_prefix="loss_center", heatmap_sigma_key="MODEL.DEKR.CENTER_SIGMA")
        heatmap_head = HeatmapHead(
            channels,
            keypoint_heatmaps.num_channels + center.num_channels,
            channels=d.HEATMAP_HEAD_CHANNELS,
            norm=d.NORM,
            bias_init=keypoint_heatmaps.output_bias + center.output_bias,
        )
        offset_head = DisentangledOffsetHead(
            channels, d.NUM_KEYPOINTS, channels_per_keypoint=d.OFFSET_CHANNELS_PER_KEYPOINT,
            num_blocks=d.OFFSET_NUM_BLOCKS, block=d.OFFSET_BLOCK, norm=d.NORM,
        )  # fmt: skip
        stride = shapes[d.IN_FEATURE].stride
        flip = None
        if d.TEST.FLIP:
            names = cfg.DATASETS.TEST or cfg.DATASETS.TRAIN
            if not names:
                raise ValueError("MODEL.DEKR.TEST.FLIP needs keypoint flip metadata from DATASETS.TEST or TRAIN")
            flip_indices = list(create_keypoint_hflip_indices(list(names)))
            flip = dekr_flip_test(center, flip_indices, stride - 1 if d.TEST.FLIP_SHIFT < 0 else d.TEST.FLIP_SHIFT)
        inference = DEKRInference(
            test_time=TestTimeAugmentation(scales=tuple(d.TEST.SCALES), flip=flip),
            nms_distance_ratio=d.TEST.NMS_DISTANCE_RATIO,
            nms_min_joints=d.TEST.NMS_MIN_JOINTS,
            max_people=center.max_detections,
            absorb_distance=d.TEST.ABSORB_DISTANCE,
        )
        return {
            "backbone": backbone,
            "in_feature": d.IN_FEATURE,
            "keypoint_heatmaps": keypoint_heatmaps,
            "center_criterion": center,
            "heatmap_head": heatmap_head,
            "offset_head": offset_head,
            "offset_loss_weight": d.OFFSET_LOSS_WEIGHT,
            "offset_radius": d.OFFSET_RADIUS,
            "min_person_area": d.MIN_PERSON_AREA,
            "inference": inference,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def predict_maps(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Network outputs of a normalised, padded batch (B, 3, H, W), all at the feature stride.

        Returns ``keypoint_heatmaps`` (B, K, h, w), ``center_maps`` (B, C, h, w) and ``offsets`` (B, 2K, h, w)
        (feature px, channels (dx0, dy0, dx1, ...)).
        """
        feature = self.backbone(images)[self.in_feature]
        heads = self.heatmap_head(feature)
        return {
            "keypoint_heatmaps": heads[:, : self.num_keypoints],
            "center_maps": heads[:, self.num_keypoints :],
            "offsets": self.offset_head(feature),
        }

    def losses(self, batched_inputs: List[dict], maps: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        heatmaps = maps["keypoint_heatmaps"]
        _, _, h, w = heatmaps.shape
        instances = [x["instances"].to(self.device) for x in batched_inputs]
        people = gather_people(
            [i.gt_keypoints.tensor for i in instances],
            [i.gt_areas for i in instances],
            stride=self.stride,
            min_area=self.min_person_area,
        )
        loss_mask = downsample_ignore_masks(
            [x.get("ignore_mask") for x in batched_inputs], h, w, self.stride, self.device
        )

        # Keypoint heatmaps (both variants): Gaussians at labelled keypoints inside the map.
        keypoints = people.keypoints.transpose(1, 2)  # (B, K, T, 2)
        losses, _ = self.keypoint_heatmaps.losses(heatmaps, keypoints, people.labelled.transpose(1, 2), loss_mask)

        # Person centres: one type, T people per image.
        center_losses, assignment = self.center_criterion.losses(
            maps["center_maps"], people.centers[:, None], people.center_allowed[:, None], loss_mask
        )
        losses.update(center_losses)
        if assignment is not None:  # AdaAnchor: a person's positives regress its keypoints
            owner = assignment.target_index[:, 0]
        else:  # heatmap anchor: DEKR's square region around each centre
            owner = region_owner(people, h, w, radius=self.offset_radius)

        target, weight = offset_targets(people, owner, h, w, margin=self.center_criterion.target_margin)
        smooth_l1 = F.smooth_l1_loss(maps["offsets"], target, reduction="none", beta=SMOOTH_L1_BETA)
        num_entries = max(int((weight > 0).sum()), 1)
        losses["loss_offset"] = self.offset_loss_weight * (smooth_l1 * weight).sum() / num_entries
        get_event_storage().put_scalar("dekr/offset_cells", float((owner >= 0).sum()) / len(batched_inputs))
        return losses

    def poses(self, image: torch.Tensor, input_size) -> Tuple[torch.Tensor, torch.Tensor]:
        """Poses of one image (see :meth:`DEKRInference.poses`)."""
        return self.inference_settings.poses(self, image, input_size)
