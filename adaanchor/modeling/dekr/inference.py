"""DEKR inference: network maps -> scored poses in input px (test-time loop, pose decoding, pose NMS)."""

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from adaanchor.anchor import AnchorCriterion, candidate_positions, flip_maps_back, flip_vectors_back
from adaanchor.bottom_up import (
    FlipTest,
    TestTimeAugmentation,
    absorb_to_keypoint_peaks,
    pose_nms,
    poses_from_anchors,
)


def dekr_flip_test(center_criterion: AnchorCriterion, flip_indices: Sequence[int], shift: int) -> FlipTest:
    """The flip functions of DEKR's outputs: keypoint heatmaps and offsets reorder the keypoints (offsets
    also negate x); the centre maps are flipped by their criterion (one type: indices [0])."""
    return FlipTest(
        back={
            "keypoint_heatmaps": lambda maps: flip_maps_back(maps, flip_indices),
            "center_maps": lambda maps: center_criterion.flip_back(maps, [0]),
            "offsets": lambda maps: flip_vectors_back(maps, flip_indices),
        },
        shift=shift,
    )


@dataclass
class PoseCandidates:
    """The poses of every decoded person anchor of one image, all scales, before pose NMS; input px.

    Attributes:
        poses: (N, K, 3) x, y, joint score.
        scores: (N,) pose scores.
        anchor_scores: (N,) the centre criterion's score of each pose's anchor.
        anchor_cells: (N, 2) x, y of the centre of each pose's anchor cell.
        anchor_positions: (N, 2) x, y of the decoded person centre (AdaAnchor: cell + coarse + local offsets).
    """

    poses: torch.Tensor
    scores: torch.Tensor
    anchor_scores: torch.Tensor
    anchor_cells: torch.Tensor
    anchor_positions: torch.Tensor


@dataclass
class DEKRInference:
    """Test-time settings and the pose decoding of one image.

    Attributes:
        test_time: scales and flip test (the poses of all scales meet in one pose NMS).
        nms_distance_ratio, nms_min_joints: the pose NMS criterion (``pose_nms``).
        max_people: at most this many poses per image (also the peaks per keypoint map that joints may be
            absorbed to).
        absorb_distance: input px; > 0 moves every regressed joint onto the nearest peak of its keypoint
            heatmap within this distance (DEKR's test-time matching of poses to heatmaps), 0 keeps it.
    """

    test_time: TestTimeAugmentation
    nms_distance_ratio: float
    nms_min_joints: int
    max_people: int
    absorb_distance: float = 0.0

    def poses(self, model, image: torch.Tensor, input_size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Poses of one image.

        Args:
            model: the DEKR model (``predict_maps``, ``center_criterion``, ``stride``, size divisibility).
            image: (1, 3, Hp, Wp) normalised input, padded; the image occupies the top-left ``input_size``.
            input_size: (h, w) of the image inside the padded tensor, input px.
        Returns:
            poses (N, K, 3): x, y input px (continuous), joint score; scores (N,). Best first, N <= max_people.
        """
        scaled_maps = self.test_time.maps(
            model.predict_maps,
            image,
            input_size,
            stride=model.stride,
            size_divisibility=model.backbone.size_divisibility,
        )
        return self.postprocess(model.center_criterion, scaled_maps, model.stride, input_size)

    def postprocess(
        self,
        center_criterion: AnchorCriterion,
        scaled_maps: List[Tuple[Dict[str, torch.Tensor], Tuple[float, float]]],
        stride: int,
        input_size: Tuple[int, int],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Poses of one image from its maps at every test scale: :meth:`candidates`, then :meth:`select`.

        Args:
            scaled_maps: a list of (maps, (x ratio, y ratio)) per scale; maps as ``predict_maps`` returns
                them for a batch of 1, the ratios of the scaled input to the input.
            stride: the maps' stride, input px.
            input_size: (h, w) of the image, input px; joints absorbed to heatmap peaks stay inside it.
        Returns: as :meth:`poses`.
        """
        found = self.candidates(center_criterion, scaled_maps, stride, input_size)
        keep = self.select(found.poses, found.scores)
        return found.poses[keep], found.scores[keep]

    def candidates(
        self,
        center_criterion: AnchorCriterion,
        scaled_maps: List[Tuple[Dict[str, torch.Tensor], Tuple[float, float]]],
        stride: int,
        input_size: Tuple[int, int],
    ) -> PoseCandidates:
        """The poses of every decoded person anchor at every scale, before pose NMS (arguments as
        :meth:`postprocess`): decode, pose = anchor + offsets, joints absorbed to heatmap peaks (if
        ``absorb_distance``), back to input px."""
        parts = []
        for maps, ratio in scaled_maps:
            detections = center_criterion.decode(maps["center_maps"])  # leading dims (1, 1)
            poses, scores = poses_from_anchors(detections, maps["keypoint_heatmaps"][0], maps["offsets"][0])
            if self.absorb_distance > 0:
                poses = absorb_to_keypoint_peaks(
                    poses, maps["keypoint_heatmaps"][0], max_peaks=self.max_people,
                    max_distance=self.absorb_distance * sum(ratio) / 2 / stride,
                    extent=(input_size[1] * ratio[0] / stride, input_size[0] * ratio[1] / stride),
                )  # fmt: skip
            to_input = stride / poses.new_tensor(ratio)
            poses[..., :2] = poses[..., :2] * to_input
            valid = detections.valid.reshape(-1)
            cells = candidate_positions(detections.anchor_index.reshape(-1)[valid], maps["center_maps"].shape[-1])
            parts.append(
                (
                    poses,
                    scores,
                    detections.scores.reshape(-1)[valid],
                    cells.to(poses.dtype) * to_input,
                    detections.positions.reshape(-1, 2)[valid] * to_input,
                )
            )
        return PoseCandidates(*(torch.cat(column) for column in zip(*parts)))

    def select(self, poses: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """(M,) indices of the poses kept by pose NMS, best first, at most ``max_people``."""
        return pose_nms(
            poses[..., :2], scores, distance_ratio=self.nms_distance_ratio, min_close_joints=self.nms_min_joints
        )[: self.max_people]
