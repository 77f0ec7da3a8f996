"""One anchor criterion for K anchor types, shared by every host: AdaAnchor and the heatmap anchor behind one
interface (one config key, ``MODEL.ADAANCHOR.ENABLED``, picks one; :func:`build_anchor_criterion`).

A criterion owns what a host's head predicts for its anchor types: the channel layout and the output bias,
the training loss (with the host's loss-name prefix), decoding, and the flip test. Hosts fit it as follows:

==========================  =====================  ==================  =================================
host                        batch item b           types K             targets T per (b, k)
==========================  =====================  ==================  =================================
DEKR (person centres)       image                  1                   people (up to 30), decode m > 1
bottom-up AE (keypoints)    image                  keypoint types      people (one per person), m > 1
ROI keypoint head           ROI                    keypoint types      exactly 1, decoded with m = 1
==========================  =====================  ==================  =================================

Maps: (B, C, H, W) with C = :attr:`AnchorCriterion.num_channels`, channel group by channel group:

- :class:`AdaAnchor`: ``[K confidence logits | 2K coarse offsets | 2K local offsets]`` (the local group only
  with local refinement); offsets in feature-map px, channels ``(dx_0, dy_0, dx_1, dy_1, ...)``;
- :class:`HeatmapAnchor`: ``[K heatmaps]``;
- :class:`RegressionAnchor` (a baseline, one target per type): ``[2K offsets]``.

Units: feature-map px; cell (i, j) sits at (j + 0.5, i + 0.5). Targets arrive as (B, K, T, 2) feature px with
``target_valid`` (B, K, T) bool.
"""

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .assignment import DEFAULT_CHUNK_SIZE, AnchorAssignment, assign_adaptive_anchors, usable_targets
from .candidates import CandidateEstimates
from .decoding import Detections, decode_multiple_targets, decode_single_target
from .flip import flip_maps_back, flip_vectors_back
from .heatmap import decode_heatmap, heatmap_loss, heatmap_targets
from .losses import adaanchor_losses
from .scoring import FUSIONS, KERNELS

__all__ = ["AnchorCriterion", "AdaAnchor", "HeatmapAnchor", "RegressionAnchor", "build_anchor_criterion", "SELECTIONS"]

#: Values of MODEL.ADAANCHOR.SELECTION (see adaanchor.config): AdaAnchor's own, FixAnchor, regression-anchor.
SELECTIONS = ("adaptive", "nearest", "regression")


class AnchorCriterion(ABC):
    """Interface of an anchor criterion over K types (see the module docstring for layouts and units).

    Attributes:
        num_types: K.
        loss_prefix: the host's loss-name prefix, e.g. ``"loss_center"``: losses are ``{prefix}_{name}``.
        target_margin: labelled targets up to this far outside the map still train, feature-map px (hosts
            use it for their own targets too, e.g. DEKR's keypoint offsets).
        max_detections: m, at most this many detections per type and batch item in :meth:`decode`.
    """

    num_types: int
    loss_prefix: str

    @property
    @abstractmethod
    def num_channels(self) -> int:
        """C, the channels of the maps this criterion reads."""

    @property
    @abstractmethod
    def output_bias(self) -> Tuple[float, ...]:
        """C initial biases for the head's predictor (the focal-loss prior on confidences, 0 elsewhere)."""

    @property
    @abstractmethod
    def target_margin(self) -> float: ...

    @property
    @abstractmethod
    def max_detections(self) -> int: ...

    @abstractmethod
    def losses(
        self, maps: Tensor, targets: Tensor, target_valid: Tensor, loss_mask: Optional[Tensor] = None
    ) -> Tuple[Dict[str, Tensor], Optional[AnchorAssignment]]:
        """Training losses of a batch.

        Args:
            maps: (B, C, H, W) raw head outputs.
            targets: (B, K, T, 2) float, feature-map px.
            target_valid: (B, K, T) bool.
            loss_mask: optional (B, H, W) float, 0 where the host's ignore regions are.

        Returns:
            ``({prefix}_{name}: scalar}``, the assignment of positives (AdaAnchor) or None (the criterion
            selects no anchors: the host defines which cells stand for a target, e.g. DEKR's centre region).
        """

    @abstractmethod
    def decode(self, maps: Tensor) -> Detections:
        """Multiple targets per type: (B, C, H, W) -> :class:`Detections` with leading dims (B, K), D = m."""

    @abstractmethod
    def decode_single(self, maps: Tensor) -> Tensor:
        """One target per type (m = 1): (B, C, H, W) -> (B, K, 3), x, y feature-map px and the score."""

    @abstractmethod
    def confidence(self, maps: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, K, H, W) the per-cell score decoding thresholds (confidence or heatmap)."""

    @abstractmethod
    def flip_back(self, maps: Tensor, flip_indices: Sequence[int]) -> Tensor:
        """(B, C, H, W) maps of a mirrored input -> the original frame (types reordered by ``flip_indices``,
        K entries; x components of offsets negated)."""

    def _named(self, losses: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return {f"{self.loss_prefix}_{name}": value for name, value in losses.items()}

    def _check_maps(self, maps: Tensor) -> None:
        if maps.dim() != 4 or maps.shape[1] != self.num_channels:
            raise ValueError(
                f"{type(self).__name__} over {self.num_types} types reads (B, {self.num_channels}, H, W) maps, "
                f"got {tuple(maps.shape)}"
            )


@dataclass
class AdaAnchor(AnchorCriterion):
    """Adaptive anchors (paper section 3): every cell predicts, per type, a confidence c, a coarse offset and
    (with local refinement) a local offset; each target trains its top-k cells by c x r (eq. 8-12).

    ``selection="nearest"`` is the paper's FixAnchor baseline: the positives are the k cells nearest each target
    (the assignment ranks by the kernel of the cell-to-target distance alone), everything else unchanged.

    Defaults are the paper's; the config keys are those of :func:`build_anchor_criterion`.
    """

    num_types: int
    loss_prefix: str = "loss"
    topk: int = 20
    selection: str = "adaptive"
    kernel: str = "gaussian"
    kernel_width: float = 4.0
    fusion: str = "mul"
    local_refinement: bool = True
    local_radius: float = 2.0
    margin: float = 8.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    prior_prob: float = 0.01
    confidence_loss_weight: float = 1.0
    offset_loss_weight: float = 1.0
    local_offset_loss_weight: float = 1.0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    confidence_threshold: float = 0.01
    merge_radius: float = 2.0
    detections: int = 30

    @property
    def num_channels(self) -> int:
        return self.num_types * (5 if self.local_refinement else 3)

    @property
    def output_bias(self) -> Tuple[float, ...]:
        prior = -math.log((1.0 - self.prior_prob) / self.prior_prob)
        return (prior,) * self.num_types + (0.0,) * (self.num_channels - self.num_types)

    @property
    def target_margin(self) -> float:
        return self.margin

    @property
    def max_detections(self) -> int:
        return self.detections

    def split(self, maps: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """(B, C, H, W) -> logits (B, K, H, W), coarse (B, K, 2, H, W), local (B, K, 2, H, W) or None."""
        self._check_maps(maps)
        b, _, h, w = maps.shape
        k = self.num_types
        coarse = maps[:, k : 3 * k].reshape(b, k, 2, h, w)
        local = maps[:, 3 * k : 5 * k].reshape(b, k, 2, h, w) if self.local_refinement else None
        return maps[:, :k], coarse, local

    def losses(self, maps, targets, target_valid, loss_mask=None):
        """AdaAnchor's losses (``confidence``, ``offset``, ``local_offset``) and the assignment.

        ``loss_mask`` is not applied: the focal loss is normalised by positives, and an ignored region holds
        no target (ignore masks concern the heatmap MSE of the baseline).
        """
        logits, coarse, local = self.split(maps)
        if self.selection == "nearest":  # FixAnchor: confidence 1 and zero offsets, so distance alone ranks
            ranking_confidence, ranking_estimates = torch.ones_like(logits), CandidateEstimates(
                torch.zeros_like(coarse)
            )
        else:
            ranking_confidence, ranking_estimates = logits.detach().sigmoid(), CandidateEstimates(coarse, local)
        assignment = assign_adaptive_anchors(
            ranking_confidence, ranking_estimates, targets, target_valid,
            topk=self.topk, kernel=self.kernel, kernel_width=self.kernel_width, fusion=self.fusion,
            target_margin=self.margin, chunk_size=self.chunk_size,
        )  # fmt: skip
        losses = adaanchor_losses(
            logits, coarse, local, assignment, targets, target_valid,
            focal_alpha=self.focal_alpha, focal_gamma=self.focal_gamma,
            confidence_weight=self.confidence_loss_weight, offset_weight=self.offset_loss_weight,
            local_offset_weight=self.local_offset_loss_weight, local_radius=self.local_radius,
        )  # fmt: skip
        return self._named(losses), assignment

    def _estimates(self, maps: Tensor) -> Tuple[Tensor, CandidateEstimates]:
        logits, coarse, local = self.split(maps)
        return logits.sigmoid(), CandidateEstimates(coarse, local)

    def decode(self, maps: Tensor) -> Detections:
        confidence, estimates = self._estimates(maps)
        return decode_multiple_targets(
            confidence,
            estimates,
            threshold=self.confidence_threshold,
            merge_radius=self.merge_radius,
            max_detections=self.detections,
        )

    def decode_single(self, maps: Tensor) -> Tensor:
        return decode_single_target(*self._estimates(maps))

    def confidence(self, maps: Tensor) -> Tensor:
        return self.split(maps)[0].sigmoid()

    def flip_back(self, maps: Tensor, flip_indices: Sequence[int]) -> Tensor:
        self._check_maps(maps)
        k = self.num_types
        groups = [flip_maps_back(maps[:, :k], flip_indices), flip_vectors_back(maps[:, k : 3 * k], flip_indices)]
        if self.local_refinement:
            groups.append(flip_vectors_back(maps[:, 3 * k : 5 * k], flip_indices))
        return torch.cat(groups, dim=1)


@dataclass
class HeatmapAnchor(AnchorCriterion):
    """The heatmap anchor (the baseline): a Gaussian at each target on its type's map, trained with the
    weighted MSE of DEKR / HigherHRNet; decoded at max-pool peaks with the quarter-pixel adjustment.

    Its anchors are the map's pixels near a target, so it selects none (:meth:`losses` returns None); a
    heatmap anchor cannot sit outside the map, so targets outside train nothing (``target_margin`` 0).
    """

    num_types: int
    loss_prefix: str = "loss"
    sigma: float = 2.0
    background_weight: float = 0.1
    loss_weight: float = 1.0
    nms_kernel: int = 5
    threshold: float = 0.01
    detections: int = 30

    @property
    def num_channels(self) -> int:
        return self.num_types

    @property
    def output_bias(self) -> Tuple[float, ...]:
        return (0.0,) * self.num_types

    @property
    def target_margin(self) -> float:
        return 0.0

    @property
    def max_detections(self) -> int:
        return self.detections

    def losses(self, maps, targets, target_valid, loss_mask=None):
        """``heatmap``: the weighted MSE against Gaussian targets, ``loss_mask`` applied to the weights."""
        self._check_maps(maps)
        b, _, h, w = maps.shape
        heatmap, weight = heatmap_targets(
            targets, target_valid, h, w, sigma=self.sigma, background_weight=self.background_weight
        )
        if loss_mask is not None:
            weight = weight * loss_mask[:, None]
        return self._named({"heatmap": heatmap_loss(maps, heatmap, weight) * self.loss_weight}), None

    def decode(self, maps: Tensor) -> Detections:
        self._check_maps(maps)
        return decode_heatmap(
            maps, nms_kernel=self.nms_kernel, threshold=self.threshold, max_detections=self.detections
        )

    def decode_single(self, maps: Tensor) -> Tensor:
        self._check_maps(maps)
        peak = decode_heatmap(maps, nms_kernel=self.nms_kernel, threshold=-math.inf, max_detections=1)
        return torch.cat([peak.positions[..., 0, :], peak.scores[..., 0, None]], dim=-1)

    def confidence(self, maps: Tensor) -> Tensor:
        self._check_maps(maps)
        return maps

    def flip_back(self, maps: Tensor, flip_indices: Sequence[int]) -> Tensor:
        self._check_maps(maps)
        return flip_maps_back(maps, flip_indices)


@dataclass
class RegressionAnchor(AnchorCriterion):
    """The regression-anchor baseline of the paper's Table 1: one fixed anchor per batch item, at the map centre
    (W / 2, H / 2), regresses each type's one target directly. Its offset is the spatial mean of the type's two
    offset channels (global average pooling before the head's last, linear layer: direct coordinate
    regression), trained with L1 (summed over x, y, divided by the targets used, times ``offset_loss_weight``).
    It predicts no confidence: decoded scores are 1. Only for hosts with one target per type (the ROI head):
    :meth:`decode` (m > 1) is unavailable.
    """

    num_types: int
    loss_prefix: str = "loss"
    margin: float = 8.0
    offset_loss_weight: float = 1.0

    @property
    def num_channels(self) -> int:
        return 2 * self.num_types

    @property
    def output_bias(self) -> Tuple[float, ...]:
        return (0.0,) * self.num_channels

    @property
    def target_margin(self) -> float:
        return self.margin

    @property
    def max_detections(self) -> int:
        return 1

    def predictions(self, maps: Tensor) -> Tensor:
        """(B, 2K, H, W) -> (B, K, 2) the regressed positions, feature-map px."""
        self._check_maps(maps)
        b, _, h, w = maps.shape
        return maps.mean(dim=(2, 3)).view(b, self.num_types, 2) + maps.new_tensor([w / 2, h / 2])

    def losses(self, maps, targets, target_valid, loss_mask=None):
        """``offset``: L1 of the regressed positions; one target per type (T = 1). ``loss_mask`` is not used."""
        if targets.shape[2] != 1:
            raise ValueError(f"the regression anchor serves one target per type, got targets {tuple(targets.shape)}")
        h, w = maps.shape[-2:]
        used = usable_targets(targets, target_valid, h, w, self.margin)[..., 0]
        error = (self.predictions(maps) - targets[:, :, 0]).abs().sum(-1)
        loss = torch.where(used, error, torch.zeros_like(error)).sum() / used.sum().clamp(min=1)
        return self._named({"offset": loss * self.offset_loss_weight}), None

    def decode(self, maps: Tensor) -> Detections:
        raise NotImplementedError("the regression anchor predicts one target per type: use decode_single")

    def decode_single(self, maps: Tensor) -> Tensor:
        positions = self.predictions(maps)
        return torch.cat([positions, positions.new_ones(positions.shape[:-1] + (1,))], dim=-1)

    def confidence(self, maps: Tensor) -> Tensor:
        self._check_maps(maps)
        b, _, h, w = maps.shape
        return maps.new_ones(b, self.num_types, h, w)

    def flip_back(self, maps: Tensor, flip_indices: Sequence[int]) -> Tensor:
        self._check_maps(maps)
        return flip_vectors_back(maps, flip_indices)


def build_anchor_criterion(
    cfg, num_types: int, *, loss_prefix: str, heatmap_sigma_key: Optional[str], one_target_per_type: bool = False
) -> AnchorCriterion:
    """The criterion a config asks for: :class:`AdaAnchor` when ``MODEL.ADAANCHOR.ENABLED``, else
    :class:`HeatmapAnchor`. Every key is read here and checked, and a bad value raises ValueError naming it.

    Args:
        cfg: a config with ``MODEL.ADAANCHOR`` and ``MODEL.HEATMAP_ANCHOR`` (``adaanchor.config``).
        num_types: K, the host's anchor types (1 for DEKR's centres, the keypoint count for AE and ROI heads).
        loss_prefix: the host's loss-name prefix, e.g. ``"loss_center"`` or ``"loss_keypoint"``.
        heatmap_sigma_key: the host's key holding the heatmap anchor's Gaussian sigma (feature-map px), e.g.
            ``"MODEL.DEKR.CENTER_SIGMA"``: a centre and a keypoint sigma are different quantities, so each
            host owns its own. None: the host has a baseline of its own (the ROI head: Detectron2's heatmap
            head), and asking for the heatmap anchor is an error.
        one_target_per_type: the host has exactly one target per type and batch item (the ROI head); only such
            hosts take ``MODEL.ADAANCHOR.SELECTION "regression"``.
    """
    if num_types < 1:
        raise ValueError(f"an anchor criterion needs at least one type, got {num_types}")
    a, h = cfg.MODEL.ADAANCHOR, cfg.MODEL.HEATMAP_ANCHOR
    if a.ENABLED:
        _require(a.SELECTION in SELECTIONS, "MODEL.ADAANCHOR.SELECTION", a.SELECTION, f"must be one of {SELECTIONS}")
        _require(a.TARGET_MARGIN >= 0, "MODEL.ADAANCHOR.TARGET_MARGIN", a.TARGET_MARGIN, "must be >= 0")
        if a.SELECTION == "regression":
            rule = "is only for hosts with one target per type (the ROI keypoint head)"
            _require(one_target_per_type, "MODEL.ADAANCHOR.SELECTION", a.SELECTION, rule)
            return RegressionAnchor(
                num_types=num_types, loss_prefix=loss_prefix, margin=a.TARGET_MARGIN,
                offset_loss_weight=a.OFFSET_LOSS_WEIGHT,
            )  # fmt: skip
        _require(a.TOPK >= 1, "MODEL.ADAANCHOR.TOPK", a.TOPK, "must be >= 1")
        _require(a.KERNEL in KERNELS, "MODEL.ADAANCHOR.KERNEL", a.KERNEL, f"must be one of {sorted(KERNELS)}")
        _require(a.KERNEL_WIDTH > 0, "MODEL.ADAANCHOR.KERNEL_WIDTH", a.KERNEL_WIDTH, "must be > 0")
        _require(a.FUSION in FUSIONS, "MODEL.ADAANCHOR.FUSION", a.FUSION, f"must be one of {sorted(FUSIONS)}")
        _require(a.LOCAL_RADIUS >= 0, "MODEL.ADAANCHOR.LOCAL_RADIUS", a.LOCAL_RADIUS, "must be >= 0")
        _require(a.FOCAL_ALPHA <= 1, "MODEL.ADAANCHOR.FOCAL_ALPHA", a.FOCAL_ALPHA, "must be <= 1 (< 0: off)")
        _require(a.FOCAL_GAMMA >= 0, "MODEL.ADAANCHOR.FOCAL_GAMMA", a.FOCAL_GAMMA, "must be >= 0")
        _require(0 < a.PRIOR_PROB < 1, "MODEL.ADAANCHOR.PRIOR_PROB", a.PRIOR_PROB, "must be in (0, 1)")
        _require(
            a.ASSIGNMENT_CHUNK_SIZE >= 1,
            "MODEL.ADAANCHOR.ASSIGNMENT_CHUNK_SIZE",
            a.ASSIGNMENT_CHUNK_SIZE,
            "must be >= 1",
        )
        t = a.TEST
        gamma_key = "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD"
        _require(0 <= t.CONFIDENCE_THRESHOLD <= 1, gamma_key, t.CONFIDENCE_THRESHOLD, "(gamma) must be in [0, 1]")
        _require(t.MERGE_RADIUS >= 0, "MODEL.ADAANCHOR.TEST.MERGE_RADIUS", t.MERGE_RADIUS, "must be >= 0")
        _require(t.MAX_DETECTIONS >= 1, "MODEL.ADAANCHOR.TEST.MAX_DETECTIONS", t.MAX_DETECTIONS, "must be >= 1")
        return AdaAnchor(
            num_types=num_types, loss_prefix=loss_prefix, topk=a.TOPK, selection=a.SELECTION, kernel=a.KERNEL,
            kernel_width=a.KERNEL_WIDTH, fusion=a.FUSION, local_refinement=a.LOCAL_REFINEMENT,
            local_radius=a.LOCAL_RADIUS, margin=a.TARGET_MARGIN, focal_alpha=a.FOCAL_ALPHA, focal_gamma=a.FOCAL_GAMMA,
            prior_prob=a.PRIOR_PROB,
            confidence_loss_weight=a.CONFIDENCE_LOSS_WEIGHT, offset_loss_weight=a.OFFSET_LOSS_WEIGHT,
            local_offset_loss_weight=a.LOCAL_OFFSET_LOSS_WEIGHT, chunk_size=a.ASSIGNMENT_CHUNK_SIZE,
            confidence_threshold=t.CONFIDENCE_THRESHOLD, merge_radius=t.MERGE_RADIUS, detections=t.MAX_DETECTIONS,
        )  # fmt: skip
    if heatmap_sigma_key is None:
        raise ValueError(f"this host ({loss_prefix}) has no heatmap-anchor criterion: its baseline is its own head")
    sigma = _read_key(cfg, heatmap_sigma_key)
    _require(sigma > 0, heatmap_sigma_key, sigma, "must be > 0")
    _require(h.BACKGROUND_WEIGHT >= 0, "MODEL.HEATMAP_ANCHOR.BACKGROUND_WEIGHT", h.BACKGROUND_WEIGHT, "must be >= 0")
    odd = h.NMS_KERNEL >= 1 and h.NMS_KERNEL % 2 == 1
    _require(odd, "MODEL.HEATMAP_ANCHOR.NMS_KERNEL", h.NMS_KERNEL, "must be a positive odd number")
    _require(
        h.TEST_MAX_DETECTIONS >= 1, "MODEL.HEATMAP_ANCHOR.TEST_MAX_DETECTIONS", h.TEST_MAX_DETECTIONS, "must be >= 1"
    )
    return HeatmapAnchor(
        num_types=num_types, loss_prefix=loss_prefix, sigma=sigma, background_weight=h.BACKGROUND_WEIGHT,
        loss_weight=h.LOSS_WEIGHT, nms_kernel=h.NMS_KERNEL, threshold=h.TEST_THRESHOLD,
        detections=h.TEST_MAX_DETECTIONS,
    )  # fmt: skip


def _read_key(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _require(condition: bool, key: str, value, rule: str) -> None:
    if not condition:
        raise ValueError(f"{key} {rule}, got {value!r}")
