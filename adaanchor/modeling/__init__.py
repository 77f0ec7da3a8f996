"""Detectron2 components of AdaAnchor (need Detectron2); importing this package registers them:
the HRNet backbone (BACKBONE_REGISTRY: ``build_hrnet_backbone``), the meta-architectures (META_ARCH_REGISTRY:
``DEKR``, ``AssociativeEmbedding``, ``KeypointRCNN``) and the ROI keypoint head (ROI_KEYPOINT_HEAD_REGISTRY:
``build_anchor_keypoint_head``)."""

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.modeling")

from . import backbone  # noqa: E402,F401  (registers build_hrnet_backbone)
from .associative_embedding import AssociativeEmbedding  # noqa: E402,F401  (registers AssociativeEmbedding)
from .dekr.meta_arch import DEKR  # noqa: E402,F401  (registers DEKR)
from .roi_heads import KeypointRCNN, build_anchor_keypoint_head  # noqa: E402,F401  (registers both)
