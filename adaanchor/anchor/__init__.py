"""AdaAnchor, the method, framework-free (torch only; fvcore only for reference in tests).

Lengths are in feature-map px throughout: candidate (i, j) of a stride-t map sits at (j + 0.5, i + 0.5)
feature-map px = ((j + 0.5) t, (i + 0.5) t) input px (:func:`to_feature_px` / :func:`to_input_px`).

Training: ``confidence = sigmoid(logits)``; ``estimates = CandidateEstimates(coarse, local)`` (or the dense
:func:`refined_estimates`); ``assignment = assign_adaptive_anchors(confidence, estimates, targets, valid)``;
``losses = adaanchor_losses(logits, coarse, local, assignment, targets, valid)``.
Inference: :func:`decode_single_target` (m = 1) or :func:`decode_multiple_targets` (gamma, merge, top-m).
Baseline with the same interfaces: :func:`heatmap_targets`, :func:`heatmap_loss`, :func:`decode_heatmap`.

Hosts use both through one interface, :class:`AnchorCriterion` (:class:`AdaAnchor` / :class:`HeatmapAnchor`,
built from a config by :func:`build_anchor_criterion`): channel layout, losses, decoding and flip test.
"""

from .assignment import DEFAULT_CHUNK_SIZE, AnchorAssignment, assign_adaptive_anchors, usable_targets
from .candidates import (
    CandidateEstimates,
    candidate_grid,
    candidate_positions,
    refined_estimates,
    sample_bilinear,
    to_feature_px,
    to_input_px,
)
from .criterion import AdaAnchor, AnchorCriterion, HeatmapAnchor, RegressionAnchor, build_anchor_criterion
from .decoding import Detections, decode_multiple_targets, decode_single_target, distance_nms
from .flip import flip_maps_back, flip_vectors_back
from .heatmap import decode_heatmap, heatmap_loss, heatmap_targets, window_max
from .losses import adaanchor_losses, sparse_target_focal_loss
from .scoring import FUSIONS, KERNELS, anchor_scores, fuse_scores, regression_score

__all__ = [
    "AdaAnchor",
    "AnchorAssignment",
    "AnchorCriterion",
    "CandidateEstimates",
    "DEFAULT_CHUNK_SIZE",
    "Detections",
    "FUSIONS",
    "HeatmapAnchor",
    "KERNELS",
    "adaanchor_losses",
    "anchor_scores",
    "assign_adaptive_anchors",
    "RegressionAnchor",
    "build_anchor_criterion",
    "candidate_grid",
    "candidate_positions",
    "decode_heatmap",
    "decode_multiple_targets",
    "decode_single_target",
    "distance_nms",
    "flip_maps_back",
    "flip_vectors_back",
    "fuse_scores",
    "heatmap_loss",
    "heatmap_targets",
    "refined_estimates",
    "regression_score",
    "sample_bilinear",
    "sparse_target_focal_loss",
    "to_feature_px",
    "to_input_px",
    "usable_targets",
    "window_max",
]
