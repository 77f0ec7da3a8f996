"""Framework-free helpers of the bottom-up and single-stage hosts (torch only; DEKR, Associative Embedding):
the people of a batch, which cells regress whom, pose assembly / scoring / NMS, and the test-time loop."""

from .ownership import offset_targets, region_owner
from .people import MIN_OFFSET_SCALE, PeopleBatch, downsample_ignore_masks, gather_people
from .poses import keypoint_boxes, pose_diagonals, pose_nms, poses_from_anchors, sample_keypoint_maps
from .test_time import FlipTest, TestTimeAugmentation, rescale_and_pad, shift_flipped_image

__all__ = [
    "FlipTest",
    "MIN_OFFSET_SCALE",
    "PeopleBatch",
    "TestTimeAugmentation",
    "downsample_ignore_masks",
    "gather_people",
    "keypoint_boxes",
    "offset_targets",
    "pose_diagonals",
    "pose_nms",
    "poses_from_anchors",
    "region_owner",
    "rescale_and_pad",
    "sample_keypoint_maps",
    "shift_flipped_image",
]
