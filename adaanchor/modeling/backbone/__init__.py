"""Backbones registered in Detectron2's BACKBONE_REGISTRY (importing this package registers them)."""

from .hrnet import (
    HRNET_PRESETS,
    HRNet,
    HRNetLoadReport,
    HRNetSpec,
    build_hrnet_backbone,
    hrnet_spec_from_config,
    load_hrnet_pretrained,
)

__all__ = [
    "HRNET_PRESETS",
    "HRNet",
    "HRNetLoadReport",
    "HRNetSpec",
    "build_hrnet_backbone",
    "hrnet_spec_from_config",
    "load_hrnet_pretrained",
]
