"""DEKR inference: network maps -> scored poses in input px (flip test, multi-scale, pose NMS). torch only."""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from adaanchor.modeling.dekr.postprocess import (
    flip_maps_back,
    flip_vectors_back,
    pose_nms,
    sample_keypoint_maps,
    shift_flipped_image,
)


@dataclass
class DEKRInference:
    """Test-time settings and the pose decoding of one image.

    Attributes:
        flip_indices: K keypoint indices for the flip test, or None (no flip test).
        flip_shift: left shift of the mirrored input, input px (stride - 1; see ``shift_flipped_image``).
        scales: input scale factors; the poses of all scales meet in one pose NMS.
        nms_distance_ratio, nms_min_joints: the pose NMS criterion (``pose_nms``).
        max_people: at most this many poses per image.
    """

    flip_indices: Optional[Sequence[int]]
    flip_shift: int
    scales: Tuple[float, ...]
    nms_distance_ratio: float
    nms_min_joints: int
    max_people: int

    def poses(self, model, image: torch.Tensor, input_size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Poses of one image.

        Args:
            model: the DEKR model (``predict_maps``, ``center_proposal``, ``stride``, size divisibility).
            image: (1, 3, Hp, Wp) normalised input, padded; the image occupies the top-left ``input_size``.
            input_size: (h, w) of the image inside the padded tensor, input px.
        Returns:
            poses (N, K, 3): x, y input px (continuous), joint score; scores (N,). Best first, N <= max_people.
        """
        h, w = input_size
        scaled_maps = []
        for scale in self.scales:
            scaled, ratio = _rescale(image[..., :h, :w], scale, model.backbone.size_divisibility)
            # keep the cells that cover the image, not the padding (cell j covers input px [j t, (j + 1) t))
            rows = math.ceil(h * ratio[1] / model.stride)
            cols = math.ceil(w * ratio[0] / model.stride)
            maps = {k: v[..., :rows, :cols] for k, v in self._maps(model, scaled).items()}
            scaled_maps.append((maps, ratio))
        return self.postprocess(model.center_proposal, scaled_maps, model.stride)

    def postprocess(self, center_proposal, scaled_maps, stride: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Poses of one image from its maps at every test scale: decode, back to input px, pose NMS.

        Args:
            scaled_maps: a list of (maps, (x ratio, y ratio)) per scale; maps as ``predict_maps`` returns
                them for a batch of 1, the ratios of the scaled input to the input.
            stride: the maps' stride, input px.
        Returns: as :meth:`poses`.
        """
        all_poses, all_scores = [], []
        for maps, ratio in scaled_maps:
            poses, scores = decode_poses(center_proposal, maps)
            poses[..., :2] = poses[..., :2] * (stride / poses.new_tensor(ratio))
            all_poses.append(poses)
            all_scores.append(scores)
        poses, scores = torch.cat(all_poses), torch.cat(all_scores)
        keep = pose_nms(
            poses[..., :2], scores, distance_ratio=self.nms_distance_ratio, min_close_joints=self.nms_min_joints
        )[: self.max_people]
        return poses[keep], scores[keep]

    def _maps(self, model, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        maps = model.predict_maps(images)
        if self.flip_indices is None:
            return maps
        mirrored = model.predict_maps(shift_flipped_image(images.flip(-1), self.flip_shift))
        center_channels = model.center_proposal
        back = {
            "keypoint_heatmaps": flip_maps_back(mirrored["keypoint_heatmaps"], self.flip_indices),
            "center_maps": center_channels.flip_back(mirrored["center_maps"]),
            "offsets": flip_vectors_back(mirrored["offsets"], self.flip_indices),
        }
        return {k: (maps[k] + back[k]) / 2 for k in maps}


def decode_poses(center_proposal, maps: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Poses of one image from its maps (batch of 1), in feature-map px.

    Pose = person anchor cell centre + the cell's keypoint offsets; joint score = anchor score x keypoint
    heatmap at the joint (bilinear); pose score = mean joint score (DEKR's scoring, without rescoring net).

    Returns:
        poses (N, K, 3): x, y feature px, joint score; scores (N,).
    """
    heatmaps, offsets = maps["keypoint_heatmaps"][0], maps["offsets"][0]
    num_kpts, h, w = heatmaps.shape
    detections = center_proposal.decode(maps["center_maps"][0])
    valid = detections.valid.reshape(-1)
    anchor = detections.anchor_index.reshape(-1)[valid]
    anchor_score = detections.scores.reshape(-1)[valid]
    cells = torch.stack([(anchor % w).float() + 0.5, torch.div(anchor, w, rounding_mode="floor").float() + 0.5], -1)
    displacement = offsets.reshape(num_kpts, 2, h * w)[:, :, anchor].permute(2, 0, 1)  # (N, K, 2)
    xy = cells[:, None, :] + displacement
    joint_scores = anchor_score[:, None] * sample_keypoint_maps(heatmaps, xy)
    return torch.cat([xy, joint_scores[..., None]], dim=-1), joint_scores.mean(dim=1)


def _rescale(image: torch.Tensor, scale: float, divisibility: int) -> Tuple[torch.Tensor, Tuple[float, float]]:
    """Resize (1, 3, h, w) by ``scale`` and zero-pad to ``divisibility``; returns it and the (x, y) ratios."""
    h, w = image.shape[-2:]
    if scale != 1.0:
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        image = F.interpolate(image, size=(new_h, new_w), mode="bilinear", align_corners=False)
    new_h, new_w = image.shape[-2:]
    d = max(1, divisibility)
    pad_h, pad_w = (-new_h) % d, (-new_w) % d
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h))
    return image, (new_w / w, new_h / h)
