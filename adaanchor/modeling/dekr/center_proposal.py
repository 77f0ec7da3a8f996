"""Where DEKR's person centres come from: AdaAnchor's adaptive anchors, or DEKR's centre heatmap.

Both strategies read the centre channels of DEKR's heatmap head and offer the same three operations:

- ``losses(center_maps, people, loss_mask)`` -> (loss dict, owner): the centre losses of a batch and, for
  every cell, the person whose keypoint offsets it regresses (-1 for none);
- ``decode(center_maps)`` -> Detections: the person anchors of one image (cell index and score);
- ``flip_back(center_maps)`` -> the centre maps of a mirrored input, in the original frame.

Units: feature-map px, cell (i, j) centred at (j + 0.5, i + 0.5).
"""

import math
from typing import Dict, Tuple

import torch

from adaanchor.anchor import (
    CandidateEstimates,
    Detections,
    adaanchor_losses,
    assign_adaptive_anchors,
    decode_heatmap,
    decode_multiple_targets,
    heatmap_loss,
    heatmap_targets,
)
from adaanchor.modeling.dekr.postprocess import flip_vectors_back
from adaanchor.modeling.dekr.targets import PeopleBatch, region_owner


class AdaptiveCenterProposal:
    """AdaAnchor centres: every cell predicts a centre confidence c, a coarse offset to the person centre and
    (with local refinement) a local offset; each person trains its top-k cells by c x r(regressed centre)
    (paper eq. 8-12), and those cells are where DEKR's disentangled keypoint offsets are trained.

    Centre channels (5, or 3 without local refinement): confidence logit, coarse (dx, dy), local (dx, dy).
    """

    def __init__(
        self,
        *,
        topk: int,
        kernel: str,
        kernel_width: float,
        fusion: str,
        local_refinement: bool,
        local_radius: float,
        target_margin: float,
        focal_alpha: float,
        focal_gamma: float,
        prior_prob: float,
        confidence_loss_weight: float,
        offset_loss_weight: float,
        local_offset_loss_weight: float,
        chunk_size: int,
        confidence_threshold: float,
        merge_radius: float,
        max_detections: int,
    ):
        self.topk, self.kernel, self.kernel_width, self.fusion = topk, kernel, kernel_width, fusion
        self.local_refinement, self.local_radius = local_refinement, local_radius
        self.target_margin = target_margin
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.prior_prob = prior_prob
        self.loss_weights = (confidence_loss_weight, offset_loss_weight, local_offset_loss_weight)
        self.chunk_size = chunk_size
        self.confidence_threshold, self.merge_radius, self.max_detections = (
            confidence_threshold, merge_radius, max_detections,
        )  # fmt: skip

    @property
    def num_channels(self) -> int:
        return 5 if self.local_refinement else 3

    @property
    def output_bias(self) -> Tuple[float, ...]:
        """Initial biases of the centre channels: the focal-loss prior on the confidence, 0 elsewhere."""
        prior = -math.log((1.0 - self.prior_prob) / self.prior_prob)
        return (prior,) + (0.0,) * (self.num_channels - 1)

    def _split(self, center_maps: torch.Tensor):
        """(B, C, H, W) -> logits (B, 1, H, W), coarse (B, 1, 2, H, W), local (B, 1, 2, H, W) or None."""
        b, _, h, w = center_maps.shape
        logits = center_maps[:, :1]
        coarse = center_maps[:, 1:3].reshape(b, 1, 2, h, w)
        local = center_maps[:, 3:5].reshape(b, 1, 2, h, w) if self.local_refinement else None
        return logits, coarse, local

    def losses(
        self, center_maps: torch.Tensor, people: PeopleBatch, loss_mask: torch.Tensor
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """AdaAnchor's losses on the centre channels, and the positives' person index as the owner map.

        ``loss_mask`` is not applied: the focal loss is normalised by positives and an ignored region holds
        nobody's centre (DEKR's ignore mask only concerns the heatmap MSE).
        """
        logits, coarse, local = self._split(center_maps)
        targets = people.centers[:, None]  # (B, 1, T, 2)
        valid = people.center_allowed[:, None]  # (B, 1, T)
        estimates = CandidateEstimates(coarse, local)
        assignment = assign_adaptive_anchors(
            logits.detach().sigmoid(), estimates, targets, valid,
            topk=self.topk, kernel=self.kernel, kernel_width=self.kernel_width, fusion=self.fusion,
            target_margin=self.target_margin, chunk_size=self.chunk_size,
        )  # fmt: skip
        conf_w, offset_w, local_w = self.loss_weights
        losses = adaanchor_losses(
            logits, coarse, local, assignment, targets, valid,
            focal_alpha=self.focal_alpha, focal_gamma=self.focal_gamma,
            confidence_weight=conf_w, offset_weight=offset_w, local_offset_weight=local_w,
            local_radius=self.local_radius,
        )  # fmt: skip
        losses = {k.replace("loss_", "loss_center_"): v for k, v in losses.items()}
        return losses, assignment.target_index[:, 0]

    def decode(self, center_maps: torch.Tensor) -> Detections:
        """Person anchors of one image: (C, H, W) centre maps -> Detections with leading dim (1,)."""
        logits, coarse, local = self._split(center_maps[None])
        return decode_multiple_targets(
            logits[0].sigmoid(),
            CandidateEstimates(coarse, local),
            threshold=self.confidence_threshold,
            merge_radius=self.merge_radius,
            max_detections=self.max_detections,
        )

    def flip_back(self, center_maps: torch.Tensor) -> torch.Tensor:
        """Confidence mirrored; the offset fields mirrored with x negated."""
        logits = center_maps[:, :1].flip(-1)
        vectors = flip_vectors_back(center_maps[:, 1:], [0] * ((self.num_channels - 1) // 2))
        return torch.cat([logits, vectors], dim=1)


class HeatmapCenterProposal:
    """DEKR's centre heatmap (the heatmap-anchor baseline): a Gaussian at each person centre, trained with
    the weighted MSE of the keypoint heatmaps; cells within ``offset_radius`` of a centre regress that
    person's keypoints; peaks of the map (max-pool NMS) are the person anchors.
    """

    num_channels = 1
    output_bias = (0.0,)

    def __init__(
        self,
        *,
        sigma: float,
        background_weight: float,
        loss_weight: float,
        offset_radius: float,
        nms_kernel: int,
        threshold: float,
        max_detections: int,
    ):
        self.sigma, self.background_weight, self.loss_weight = sigma, background_weight, loss_weight
        self.offset_radius = offset_radius
        self.nms_kernel, self.threshold, self.max_detections = nms_kernel, threshold, max_detections

    def losses(
        self, center_maps: torch.Tensor, people: PeopleBatch, loss_mask: torch.Tensor
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        _, _, h, w = center_maps.shape
        heatmap, weight = heatmap_targets(
            people.centers[:, None], people.centers_inside(h, w)[:, None], h, w, sigma=self.sigma, background_weight=self.background_weight
        )
        loss = heatmap_loss(center_maps, heatmap, weight * loss_mask[:, None])
        owner = region_owner(people, h, w, radius=self.offset_radius)
        return {"loss_center_heatmap": loss * self.loss_weight}, owner

    def decode(self, center_maps: torch.Tensor) -> Detections:
        return decode_heatmap(
            center_maps, nms_kernel=self.nms_kernel, threshold=self.threshold, max_detections=self.max_detections
        )

    def flip_back(self, center_maps: torch.Tensor) -> torch.Tensor:
        return center_maps.flip(-1)
