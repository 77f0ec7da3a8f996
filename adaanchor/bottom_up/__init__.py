"""Framework-free helpers of the bottom-up and single-stage hosts (torch only; DEKR, Associative Embedding):
the people of a batch, which cells regress whom, pose assembly / scoring / NMS, the test-time loop, and
Associative Embedding's tag loss and grouping."""

from .grouping import ground_truth_tags, group_by_tags, joint_order_from_skeleton
from .ownership import offset_targets, region_owner
from .people import MIN_OFFSET_SCALE, PeopleBatch, downsample_ignore_masks, gather_people
from .poses import (
    absorb_to_keypoint_peaks,
    keypoint_boxes,
    keypoint_peaks,
    pose_diagonals,
    pose_nms,
    poses_from_anchors,
    sample_keypoint_maps,
)
from .tags import PUSH_LOSS_TYPES, associative_embedding_loss, associative_embedding_sample_loss
from .test_time import FlipTest, TestTimeAugmentation, rescale_and_pad, shift_flipped_image

__all__ = [
    "FlipTest",
    "MIN_OFFSET_SCALE",
    "PUSH_LOSS_TYPES",
    "PeopleBatch",
    "TestTimeAugmentation",
    "associative_embedding_loss",
    "associative_embedding_sample_loss",
    "downsample_ignore_masks",
    "gather_people",
    "ground_truth_tags",
    "group_by_tags",
    "joint_order_from_skeleton",
    "keypoint_boxes",
    "offset_targets",
    "pose_diagonals",
    "pose_nms",
    "absorb_to_keypoint_peaks",
    "keypoint_peaks",
    "poses_from_anchors",
    "region_owner",
    "rescale_and_pad",
    "sample_keypoint_maps",
    "shift_flipped_image",
]
