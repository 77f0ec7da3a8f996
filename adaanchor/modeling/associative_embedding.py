"""Bottom-up Associative Embedding (Newell et al., NeurIPS'17; HigherHRNet's set-up, paper appendix A.3) with
AdaAnchor keypoints, as a Detectron2 meta-architecture.

One stride-4 backbone map feeds one head predicting, per keypoint type, the anchor criterion's maps (the
shared :class:`~adaanchor.anchor.AnchorCriterion` over K types, one target per person per type: AdaAnchor's
confidence and offsets, or a Gaussian heatmap, by MODEL.ADAANCHOR.ENABLED) and one 1-D tag map. Tags train
with AE's pull / push loss (HigherHRNet's weights, MODEL.AE.PULL_LOSS_WEIGHT / PUSH_LOSS_WEIGHT); where a tag
is read is MODEL.AE.TAG_POSITION: "anchor" (the default; AdaAnchor only: tags trained at every selected anchor
of a joint, read at the anchor a detection comes from, which may sit on a visible part of the same person; the
heatmap anchor selects no anchors and keeps AE's rule) or "keypoint" (as AE: tags trained at the ground-truth
keypoint, read at the predicted position). MODEL.AE.PUSH_LOSS_TYPE: HigherHRNet's "exp" or "max" push.
Inference: per type, the criterion's detections (gamma, merge, top 30; heatmap: max-pool peaks, top 30,
quarter-pixel shift), tags read there, grouped by
:func:`adaanchor.bottom_up.group_by_tags` in the joint order derived from the dataset's skeleton; person
score = mean keypoint score. Flip test: maps averaged, tags of the mirrored run concatenated (HigherHRNet).
The paper's protocol, one tagger for both anchors: with MODEL.AE.TEST.TAGGER_WEIGHTS a trained AE model (by
default this config's heatmap-anchor twin) runs beside the model at test time and its tags, read at the
predicted keypoints, replace the model's own; MODEL.AE.TEST.GROUND_TRUTH_TAGS is an oracle tagger instead (each
candidate tagged with the ground-truth person nearest it; a localisation study). Missing-joint refinement:
MODEL.AE.TEST.REFINE (off).

Units: feature-map px inside; ``pred_keypoints`` in original-image px (Detectron2's continuous convention).
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

import torch
from torch import nn

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.modeling.associative_embedding")

from detectron2.config import configurable  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.data.detection_utils import create_keypoint_hflip_indices  # noqa: E402
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone  # noqa: E402

from adaanchor.anchor import (  # noqa: E402
    AdaAnchor,
    AnchorAssignment,
    build_anchor_criterion,
    candidate_positions,
    flip_maps_back,
)
from adaanchor.bottom_up import (  # noqa: E402
    PUSH_LOSS_TYPES,
    FlipTest,
    TestTimeAugmentation,
    associative_embedding_loss,
    associative_embedding_sample_loss,
    downsample_ignore_masks,
    gather_people,
    ground_truth_tags,
    group_by_tags,
    joint_order_from_skeleton,
)
from adaanchor.layers import HeatmapHead  # noqa: E402
from adaanchor.modeling.bottom_up_base import BottomUpMetaArch  # noqa: E402

TAG_POSITIONS = ("keypoint", "anchor")


@dataclass
class KeypointCandidates:
    """One image's decoded keypoint candidates, D slots per type, as AE grouping takes them (numpy).

    Attributes:
        positions: (K, D, 2) x, y feature-map px.
        scores: (K, D) confidence (or heatmap value), 0 for empty slots.
        tags: (K, D, L) tags read for each candidate (L = 2 with the flip test).
        anchors: (K, D, 2) the centre of the anchor cell each candidate comes from, feature-map px (heatmap
            anchor: its peak's cell); meaningless for empty slots.
        ratio: (x, y) of the decoded (scaled) input to the input.
    """

    positions: np.ndarray
    scores: np.ndarray
    tags: np.ndarray
    anchors: np.ndarray
    ratio: Tuple[float, float]


def skeleton_of(metadata):
    """(K, [(a, b), ...]) keypoint count and 0-based skeleton links from Detectron2 keypoint metadata."""
    names = list(metadata.keypoint_names)
    links = [(names.index(a), names.index(b)) for a, b, *_ in getattr(metadata, "keypoint_connection_rules", [])]
    return len(names), links


def tags_at_cells(tag_maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Tags read at the cells holding points: tag map k at point k.

    Args:
        tag_maps: (B, K, H, W).
        points: (B, N, K, 2) x, y feature px (clamped to the map).
    Returns:
        (B, N, K) the tag of each point's cell.
    """
    b, k, h, w = tag_maps.shape
    col = points[..., 0].floor().long().clamp(0, w - 1)
    row = points[..., 1].floor().long().clamp(0, h - 1)
    cells = (row * w + col).permute(0, 2, 1)  # (B, K, N)
    return torch.gather(tag_maps.reshape(b, k, h * w), 2, cells).permute(0, 2, 1)


@META_ARCH_REGISTRY.register()
class AssociativeEmbedding(BottomUpMetaArch):
    """Bottom-up pose estimation by keypoint anchors + associative embedding (see the module docstring).

    Inputs and outputs follow :class:`~adaanchor.modeling.dekr.meta_arch.DEKR` (the bottom-up mapper's dicts;
    ``[{"instances": Instances}]`` with ``pred_keypoints``, ``scores``, ``pred_boxes``, ``pred_classes``).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        in_feature: str,
        criterion,
        head: nn.Module,
        pull_loss_weight: float,
        push_loss_weight: float,
        tag_position: str,
        push_loss_type: str = "exp",
        joint_order: List[int],
        test_time: TestTimeAugmentation,
        tag_threshold: float,
        detection_threshold: float,
        max_people: int,
        refine: bool = False,
        tagger: Optional["AssociativeEmbedding"] = None,
        use_ground_truth_tags: bool = False,
        pixel_mean,
        pixel_std,
    ):
        super().__init__(pixel_mean, pixel_std)
        self.backbone = backbone
        self.in_feature = in_feature
        self.stride = backbone.output_shape()[in_feature].stride
        self.criterion = criterion
        self.num_keypoints = criterion.num_types
        self.head = head
        self.pull_loss_weight, self.push_loss_weight = pull_loss_weight, push_loss_weight
        if push_loss_type not in PUSH_LOSS_TYPES:
            raise ValueError(f"MODEL.AE.PUSH_LOSS_TYPE must be one of {PUSH_LOSS_TYPES}, got {push_loss_type!r}")
        self.push_loss_type = push_loss_type
        self.tag_at_anchor = tag_position == "anchor" and isinstance(criterion, AdaAnchor)  # heatmap: no anchors
        self.joint_order = joint_order
        self.test_time = test_time
        self.tag_threshold, self.detection_threshold, self.max_people = tag_threshold, detection_threshold, max_people
        self.refine = refine
        # kept out of the module tree: not trained, not in this model's checkpoints, moved and set to eval here
        self._tagger = (tagger.eval(),) if tagger is not None else ()
        self.use_ground_truth_tags = use_ground_truth_tags

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        a = cfg.MODEL.AE
        shapes = backbone.output_shape()
        if a.IN_FEATURE not in shapes:
            raise ValueError(f"MODEL.AE.IN_FEATURE '{a.IN_FEATURE}' is not a backbone output: {sorted(shapes)}")
        if a.TAG_POSITION not in TAG_POSITIONS:
            raise ValueError(f"MODEL.AE.TAG_POSITION must be one of {TAG_POSITIONS}, got {a.TAG_POSITION!r}")
        k = a.NUM_KEYPOINTS
        criterion = build_anchor_criterion(
            cfg, k, loss_prefix="loss_keypoint", heatmap_sigma_key="MODEL.AE.KEYPOINT_SIGMA"
        )
        channels = shapes[a.IN_FEATURE].channels
        head = HeatmapHead(
            channels, criterion.num_channels + k, channels=a.HEAD_CHANNELS, norm=a.NORM,
            bias_init=criterion.output_bias + (0.0,) * k,
        )  # fmt: skip
        names = list(cfg.DATASETS.TEST or cfg.DATASETS.TRAIN)
        if not names:
            raise ValueError("AssociativeEmbedding needs keypoint metadata from DATASETS.TEST or TRAIN")
        num_keypoints, skeleton = skeleton_of(MetadataCatalog.get(names[0]))
        if num_keypoints != k:
            raise ValueError(f"MODEL.AE.NUM_KEYPOINTS is {k} but dataset '{names[0]}' has {num_keypoints} keypoints")
        if a.TEST.GROUND_TRUTH_TAGS and a.TEST.TAGGER_WEIGHTS:
            raise ValueError("MODEL.AE.TEST.GROUND_TRUTH_TAGS and MODEL.AE.TEST.TAGGER_WEIGHTS: choose one tagger")
        if tuple(a.TEST.SCALES) != (1.0,):
            raise ValueError(f"MODEL.AE.TEST.SCALES: only (1.0,) is supported for now, got {tuple(a.TEST.SCALES)}")
        flip = None
        if a.TEST.FLIP:
            flip_indices = list(create_keypoint_hflip_indices(names))
            stride = shapes[a.IN_FEATURE].stride
            flip = FlipTest(
                back={
                    "anchors": lambda maps: criterion.flip_back(maps, flip_indices),
                    "tags": lambda maps: flip_maps_back(maps, flip_indices),
                },
                concatenate=("tags",),
                shift=stride - 1,
            )
        return {
            "backbone": backbone,
            "in_feature": a.IN_FEATURE,
            "criterion": criterion,
            "head": head,
            "pull_loss_weight": a.PULL_LOSS_WEIGHT,
            "push_loss_weight": a.PUSH_LOSS_WEIGHT,
            "push_loss_type": a.PUSH_LOSS_TYPE,
            "tag_position": a.TAG_POSITION,
            "joint_order": joint_order_from_skeleton(k, skeleton),
            "test_time": TestTimeAugmentation(scales=(1.0,), flip=flip),
            "tag_threshold": a.TEST.TAG_THRESHOLD,
            "detection_threshold": a.TEST.DETECTION_THRESHOLD,
            "max_people": criterion.max_detections,
            "refine": a.TEST.REFINE,
            "tagger": build_tagger(cfg, stride=shapes[a.IN_FEATURE].stride) if a.TEST.TAGGER_WEIGHTS else None,
            "use_ground_truth_tags": a.TEST.GROUND_TRUTH_TAGS,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def predict_maps(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, 3, H, W) normalised input -> ``anchors`` (B, C, h, w) criterion maps and ``tags`` (B, K, h, w)."""
        out = self.head(self.backbone(images)[self.in_feature])
        return {"anchors": out[:, : self.criterion.num_channels], "tags": out[:, self.criterion.num_channels :]}

    def losses(self, batched_inputs: List[dict], maps: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        _, _, h, w = maps["tags"].shape
        instances = [x["instances"].to(self.device) for x in batched_inputs]
        people = gather_people(
            [i.gt_keypoints.tensor for i in instances], [i.gt_areas for i in instances], stride=self.stride
        )
        loss_mask = downsample_ignore_masks(
            [x.get("ignore_mask") for x in batched_inputs], h, w, self.stride, self.device
        )
        keypoints = people.keypoints.transpose(1, 2)  # (B, K, T, 2)
        losses, assignment = self.criterion.losses(
            maps["anchors"], keypoints, people.labelled.transpose(1, 2), loss_mask
        )
        if self.tag_at_anchor and assignment is not None:
            pull, push = self._tag_losses_at_anchors(maps["tags"], assignment, people.keypoints.shape[1])
        else:  # AE's rule: tags at the ground-truth keypoints
            tags = tags_at_cells(maps["tags"], people.keypoints)  # (B, T, K)
            pull, push = associative_embedding_loss(tags, people.inside(h, w), self.push_loss_type)
        losses["loss_tag_pull"] = pull * self.pull_loss_weight
        losses["loss_tag_push"] = push * self.push_loss_weight
        return losses

    def _tag_losses_at_anchors(self, tag_maps: torch.Tensor, assignment: AnchorAssignment, people: int):
        """Pull / push over the tags at every positive of the assignment (sample = positive, person = its target)."""
        b, k, h, w = tag_maps.shape
        tags = tag_maps.reshape(b * k, h * w)[assignment.positive_map, assignment.positive_candidate]
        image = torch.div(assignment.positive_map, k, rounding_mode="floor")
        return associative_embedding_sample_loss(
            tags, image * people + assignment.positive_target, b, people, self.push_loss_type
        )

    @torch.no_grad()
    def candidates(
        self, image: torch.Tensor, input_size, people: Optional[torch.Tensor] = None
    ) -> "KeypointCandidates":
        """The keypoint candidates of one (1, 3, Hp, Wp) normalised, padded image (the image in its top-left
        ``input_size``, input px), as grouping takes them: decoded per type, tags read (see the module docstring).
        ``people``: (T, K, 3) the ground-truth keypoints, input px, for MODEL.AE.TEST.GROUND_TRUTH_TAGS."""
        ((maps, ratio),) = self.test_time.maps(
            self.predict_maps, image, input_size, stride=self.stride, size_divisibility=self.backbone.size_divisibility
        )
        detections = self.criterion.decode(maps["anchors"])  # leading dims (1, K), D slots
        positions = detections.positions[0]  # (K, D, 2) feature px
        anchors = candidate_positions(detections.anchor_index[0].clamp(min=0), maps["anchors"].shape[-1])
        if self._tagger:
            tag_maps, read_at = self._tagger_maps(image, input_size, maps["tags"].shape[-2:]), positions
        else:
            tag_maps, read_at = maps["tags"], anchors if self.tag_at_anchor else positions
        runs = tag_maps.shape[1] // self.num_keypoints  # 2 with the flip test (concatenated tags)
        tags = torch.stack(
            [tags_at_cells(tag_maps[:, r * self.num_keypoints : (r + 1) * self.num_keypoints],
                           read_at.transpose(0, 1)[None])[0].T for r in range(runs)], dim=-1,
        )  # (K, D, runs)  # fmt: skip
        scores = torch.where(detections.valid[0], detections.scores[0], torch.zeros_like(detections.scores[0]))
        tags = tags.cpu().numpy()
        if self.use_ground_truth_tags:
            if people is None:
                raise ValueError("MODEL.AE.TEST.GROUND_TRUTH_TAGS: the input has no ground-truth 'instances'")
            in_features = people.detach().cpu().double().numpy().copy()
            in_features[..., :2] *= np.asarray(ratio) / self.stride  # input px -> feature px
            tags = ground_truth_tags(positions.cpu().double().numpy(), in_features)
        return KeypointCandidates(
            positions.cpu().numpy(), scores.cpu().numpy(), tags, anchors.cpu().numpy(), tuple(ratio)
        )

    def group(self, candidates: "KeypointCandidates", detection_threshold: Optional[float] = None):
        """Poses of grouped candidates: (N, K, 3) x, y input px and joint score; (N,) person scores, best first.
        ``detection_threshold``: default MODEL.AE.TEST.DETECTION_THRESHOLD."""
        threshold = self.detection_threshold if detection_threshold is None else detection_threshold
        poses, person_scores = group_by_tags(
            candidates.positions, candidates.scores, candidates.tags, self.joint_order,
            detection_threshold=threshold, tag_threshold=self.tag_threshold, max_people=self.max_people,
            refine=self.refine,
        )  # fmt: skip
        poses = torch.as_tensor(poses, dtype=torch.float32, device=self.device)
        poses[..., :2] *= self.stride / poses.new_tensor(candidates.ratio)
        return poses, torch.as_tensor(person_scores, dtype=torch.float32, device=self.device)

    def poses(self, image: torch.Tensor, input_size, people: Optional[torch.Tensor] = None):
        """Poses of one image: (N, K, 3) x, y input px and joint score; (N,) person scores, best first
        (``people``: see :meth:`candidates`)."""
        return self.group(self.candidates(image, input_size, people))

    def ground_truth_people(self, inputs: dict) -> Optional[torch.Tensor]:
        """(T, K, 3) an input dict's ground-truth keypoints (input px) where MODEL.AE.TEST.GROUND_TRUTH_TAGS reads
        them (the test mapper keeps them then), else None."""
        if self.use_ground_truth_tags and "instances" in inputs:
            return inputs["instances"].gt_keypoints.tensor
        return None

    def input_poses(self, inputs: dict, image: torch.Tensor, input_size):
        return self.poses(image, input_size, self.ground_truth_people(inputs))

    def _tagger_maps(self, image: torch.Tensor, input_size, map_size) -> torch.Tensor:
        """(1, K x runs, h, w) the tagger's tag maps of the same normalised, padded input (its own flip setting)."""
        (tagger,) = self._tagger
        tagger.to(self.device).eval()
        ((maps, _),) = tagger.test_time.maps(
            tagger.predict_maps,
            image,
            input_size,
            stride=tagger.stride,
            size_divisibility=self.backbone.size_divisibility,
        )
        if tuple(maps["tags"].shape[-2:]) != tuple(map_size):
            raise ValueError(f"MODEL.AE.TEST.TAGGER_WEIGHTS: the tagger's maps are {tuple(maps['tags'].shape[-2:])}, "
                             f"the model's {tuple(map_size)}")  # fmt: skip
        return maps["tags"]


def build_tagger(cfg, *, stride: int) -> AssociativeEmbedding:
    """The trained AE model of MODEL.AE.TEST.TAGGER_WEIGHTS (config MODEL.AE.TEST.TAGGER_CONFIG, by default
    ``cfg`` with MODEL.ADAANCHOR.ENABLED False), with the flip setting of ``cfg``, in eval mode.

    Raises:
        ValueError / CheckpointLoadError naming the key when the config or the weights do not fit.
    """
    from adaanchor.engine.checkpoint import CheckpointLoadError, StrictWeightsCheckpointer
    from adaanchor.engine.setup import build_cfg

    test = cfg.MODEL.AE.TEST
    tagger_cfg = build_cfg(test.TAGGER_CONFIG) if test.TAGGER_CONFIG else cfg.clone()
    tagger_cfg.defrost()
    if not test.TAGGER_CONFIG:
        tagger_cfg.MODEL.ADAANCHOR.ENABLED = False
    tagger_cfg.MODEL.AE.TEST.TAGGER_WEIGHTS = ""
    tagger_cfg.MODEL.AE.TEST.FLIP = test.FLIP
    tagger_cfg.MODEL.DEVICE = cfg.MODEL.DEVICE
    tagger_cfg.freeze()
    if tagger_cfg.MODEL.META_ARCHITECTURE != "AssociativeEmbedding":
        raise ValueError(f"MODEL.AE.TEST.TAGGER_CONFIG {test.TAGGER_CONFIG}: the tagger must be an AssociativeEmbedding "
                         f"model, not {tagger_cfg.MODEL.META_ARCHITECTURE}")  # fmt: skip
    if tagger_cfg.MODEL.AE.NUM_KEYPOINTS != cfg.MODEL.AE.NUM_KEYPOINTS:
        raise ValueError(f"MODEL.AE.TEST.TAGGER_CONFIG: the tagger has {tagger_cfg.MODEL.AE.NUM_KEYPOINTS} keypoint "
                         f"types, the model {cfg.MODEL.AE.NUM_KEYPOINTS}")  # fmt: skip
    tagger = AssociativeEmbedding(tagger_cfg)
    if tagger.stride != stride:
        raise ValueError(f"MODEL.AE.TEST.TAGGER_CONFIG: the tagger's stride is {tagger.stride}, the model's {stride}")
    try:
        StrictWeightsCheckpointer(tagger).load(test.TAGGER_WEIGHTS, checkpointables=[])
    except CheckpointLoadError as e:
        raise CheckpointLoadError(f"MODEL.AE.TEST.TAGGER_WEIGHTS: {e}") from e
    return tagger.eval()
