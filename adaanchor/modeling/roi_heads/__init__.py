"""Keypoint R-CNN parts (registered in Detectron2): the ROI keypoint head with the shared anchor criterion, and
the KeypointRCNN meta-architecture with the ground-truth-box protocol."""

from .keypoint_head import AdaAnchorKeypointHead, build_anchor_keypoint_head
from .meta_arch import KeypointRCNN

__all__ = ["AdaAnchorKeypointHead", "KeypointRCNN", "build_anchor_keypoint_head"]
