"""ROI heads of Keypoint R-CNN with the shared anchor criterion (registered in Detectron2)."""

from .keypoint_head import AdaAnchorKeypointHead, build_anchor_keypoint_head

__all__ = ["AdaAnchorKeypointHead", "build_anchor_keypoint_head"]
