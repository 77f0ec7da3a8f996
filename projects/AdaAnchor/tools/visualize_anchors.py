#!/usr/bin/env python
"""The paper's Figure 4: where the anchors that predict each target sit, adaptive anchors against the heatmap anchor,
for the three hosts: DEKR (person centres), Associative Embedding and the Keypoint R-CNN ROI head (keypoints).

    python projects/AdaAnchor/tools/visualize_anchors.py --config-file configs/synthetic_dekr_adaanchor.yaml \\
        --input IMAGE --output fig.png [--mode inference|training] [--max-people N] [--keypoints NAME ...] \\
        MODEL.WEIGHTS model.pth

Writes one PNG (matplotlib, Agg; atomically), everything drawn in original-image px, with a legend. The host is
the config's MODEL.META_ARCHITECTURE: ``DEKR``, ``AssociativeEmbedding``, or ``KeypointRCNN`` / ``GeneralizedRCNN``
with MODEL.KEYPOINT_ON (the ROI host). The model runs in eval mode (BatchNorm running statistics) in both modes.
``--max-people``: inference, the N best people by score (default 10); training, the first N people of the image
in annotation order (default all). Training mode needs the image in a registered dataset (DATASETS.TEST, then
DATASETS.TRAIN, or ``--dataset NAME``), found by its path or, failing that, by its file name.

DEKR (the person centre is the anchored target):

- ``--mode inference`` (default): the image goes through the model as DefaultPredictor would send it (short side
  resized to INPUT.MIN_SIZE_TEST, INPUT.FORMAT, MODEL.DEKR.TEST scales / flip), the person centres are decoded
  with the model's ``center_criterion`` and the poses assembled and NMS-ed as the model does (the poses drawn
  are the model's predictions). For each of the top people, an AdaAnchor model draws an arrow from the winning
  anchor cell's centre to the decoded centre (anchor + coarse + local offset), and an X at the "heatmap-anchor
  position": the centre DEKR's heatmap baseline would use, the mean of the predicted pose's joints (DEKR's
  centre definition: the mean of the keypoints); dots mark the joints. A heatmap-anchor model
  (MODEL.ADAANCHOR.ENABLED False) has no adaptive anchors: its anchors are the peaks of the centre heatmap,
  drawn as diamonds, and no arrow is drawn.
- ``--mode training``: the image's dataset dict goes through the project's bottom-up training mapper with the
  augmentation off (zoom 1, no rotation, shift or flip: the square INPUT.BOTTOM_UP.SIZE input the training
  transform gives at zoom 1, the longer side cropped; the crop is outlined when it is not the whole image); the
  model's maps and ``center_criterion.losses`` give the assignment, and each positive anchor cell is drawn as an
  arrow to the ground-truth centre of the person it serves (one colour per person), the centre (DEKR's: the
  mean of the labelled keypoints, also the heatmap anchor's position) marked with an X. For a heatmap-anchor
  model there are no adaptive anchors to assign: the tool draws DEKR's square offset region instead (the cells
  within MODEL.DEKR.OFFSET_RADIUS of each centre that regress that person), as squares, no arrows.

Associative Embedding and the ROI head (every keypoint is an anchored target; a keypoint's heatmap anchor sits
on the keypoint itself, its heatmap peak, so the keypoint marker, an X, is the heatmap-anchor position).
``--keypoints NAME ...`` picks the keypoint types drawn (the dataset's keypoint names): default all at
inference (one arrow per joint), the wrists and ankles in training (k = 20 positives per keypoint crowd a
figure of all types).

- AE, ``--mode inference``: the input as for DEKR; the poses are the model's (its ``poses()``: decoding, tags,
  grouping). For each joint of the top people an AdaAnchor model draws an arrow from the winning anchor cell's
  centre to the decoded keypoint: the joint is one of the candidates ``criterion.decode`` returns on the same
  maps (matched by position within its type), whose ``anchor_index`` is the cell. A heatmap-anchor model draws
  its heatmap peaks (the joints, quarter-pixel shift included) as diamonds, no arrows.
- AE, ``--mode training``: the training input as for DEKR; each positive of the criterion's assignment
  (``criterion.losses``, as ``AssociativeEmbedding.losses`` calls it) is an arrow to the ground-truth keypoint it
  serves (one colour per person). A heatmap-anchor model selects no anchors: the ground-truth keypoints only.
- ROI, ``--mode inference``: the input as DefaultPredictor builds it; the person boxes are the model's detections
  (with MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES, the image's ground-truth boxes: the image must then be in a
  dataset, as in training mode). For each of the top boxes by score, per keypoint an arrow from the winning
  anchor, the centre of the argmax cell of the ROI's confidence map (what ``decode_single`` picks, m = 1; the
  regression-anchor baseline, MODEL.ADAANCHOR.SELECTION regression: its one fixed anchor, the map centre), to
  the predicted keypoint, both mapped through the box as the head's ``keypoints_in_image`` maps keypoints, then
  to original-image px as Detectron2's postprocessing scales them. Detectron2's heatmap head
  (MODEL.ADAANCHOR.ENABLED False) draws its heatmap argmax positions (its predicted keypoints), no arrows.
- ROI, ``--mode training``: the image at the test-time resize (no augmentation) with its ground-truth person
  boxes (the people with a labelled keypoint) as the ROIs; the head's maps of those ROIs and its criterion's
  ``losses`` give the assignment, each positive an arrow to the ground-truth keypoint it serves. Heads without
  adaptive anchors (Detectron2's heatmap head, the regression anchor) select none: ground-truth keypoints only.

The last line printed says what was drawn, e.g. ``... 12 arrows ...``. Exit status 0; 1 if the image cannot
be read, is not in the dataset (where needed), a keypoint name is unknown, or the config's meta-architecture is
none of the three hosts.
"""

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyArrow, Rectangle  # noqa: E402

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.modeling.postprocessing import detector_postprocess  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from adaanchor.anchor import AdaAnchor, RegressionAnchor, candidate_positions  # noqa: E402
from adaanchor.bottom_up import PeopleBatch, downsample_ignore_masks, gather_people, region_owner  # noqa: E402
from adaanchor.data.affine import bottom_up_affine  # noqa: E402
from adaanchor.data.bottom_up_mapper import BottomUpDatasetMapper  # noqa: E402
from adaanchor.data.image_io import ImageReadError, read_image  # noqa: E402
from adaanchor.engine import build_cfg  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402
from adaanchor.modeling.associative_embedding import AssociativeEmbedding, KeypointCandidates  # noqa: E402
from adaanchor.modeling.dekr.meta_arch import DEKR  # noqa: E402
from adaanchor.modeling.roi_heads import AdaAnchorKeypointHead  # noqa: E402
from adaanchor.modeling.roi_heads.keypoint_head import roi_keypoint_targets  # noqa: E402
from adaanchor.modeling.roi_heads.meta_arch import ground_truth_box_test_mapper, labelled_people  # noqa: E402
from adaanchor.utils.files import atomic_write  # noqa: E402

logger = logging.getLogger("adaanchor.visualize_anchors")

DPI = 100
MAX_WIDTH_PX = 1600  # widest figure
MIN_WIDTH_PX = 800  # small images are drawn enlarged, so that arrows between cells stay visible
MAX_IMAGE_HEIGHT_PX = 1200  # tallest image panel
DEFAULT_INFERENCE_PEOPLE = 10  # --max-people in inference mode (a model returns up to 30, mostly weak)
TITLE_PX, LEGEND_PX = 50, 150  # bands above and below the image panel (the legend: up to 6 lines)
# --keypoints in training mode for the keypoint hosts (those of the dataset's names; all if it has none of them):
# the joints most often occluded, where adaptive anchors leave the keypoint
DEFAULT_TRAINING_KEYPOINTS = ("left_wrist", "right_wrist", "left_ankle", "right_ankle")
HOSTS = {"DEKR": "DEKR", "AssociativeEmbedding": "AE", "KeypointRCNN": "ROI", "GeneralizedRCNN": "ROI"}
JOINT_MATCH_TOLERANCE = 1e-3  # feature px: a pose joint is the decoded candidate at its position (float32 rounding)


class ToolError(Exception):
    """A problem the tool reports in one line and exits with status 1."""


# ---------------------------------------------------------------------------------------------------------------
# Computation (no drawing): arrows and markers, original-image px


@dataclass
class InferenceAnchors:
    """The people the model predicts, best first, original-image px (continuous coordinates).

    Attributes:
        adaptive: True for AdaAnchor centres, False for the heatmap anchor (no adaptive anchors).
        anchor_cells: (N, 2) centre of the cell each person's centre was decoded at (the winning anchor).
        centers: (N, 2) decoded person centres (AdaAnchor: anchor + coarse + local offsets; heatmap anchor:
            the centre-heatmap peak).
        joint_means: (N, 2) the mean of each predicted pose's joints (DEKR's centre definition: the position
            the heatmap anchor would sit at).
        poses: (N, K, 3) the predicted poses (x, y, joint score), as the model returns them.
        scores: (N,) pose scores.
    """

    adaptive: bool
    anchor_cells: np.ndarray
    centers: np.ndarray
    joint_means: np.ndarray
    poses: np.ndarray
    scores: np.ndarray

    @property
    def num_arrows(self) -> int:
        return len(self.scores) if self.adaptive else 0


@dataclass
class TrainingAnchors:
    """The assignment of one training input, original-image px.

    Attributes:
        adaptive: True for AdaAnchor (arrows: positives -> centres), False for the heatmap anchor (cells of
            DEKR's square offset region, no arrows).
        starts: (P, 2) centre of each positive cell (heatmap anchor: each offset-region cell).
        ends: (P, 2) the ground-truth centre of the person the cell serves.
        person: (P,) that person's index among the instances (the people of the image in annotation order).
        centers: (N, 2) ground-truth centre of every instance (mean of its labelled keypoints).
        center_used: (N,) bool, the people that took part in the assignment (allowed a centre, within range).
        keypoints: (N, K, 3) ground-truth keypoints, original-image px (v = 0 where unlabelled).
        crop: (x0, y0, x1, y1), the training input's square in original-image px.
    """

    adaptive: bool
    starts: np.ndarray
    ends: np.ndarray
    person: np.ndarray
    centers: np.ndarray
    center_used: np.ndarray
    keypoints: np.ndarray
    crop: Tuple[float, float, float, float]

    @property
    def num_arrows(self) -> int:
        return len(self.person) if self.adaptive else 0


@dataclass
class KeypointAnchors:
    """The keypoint hosts' figure (AE, ROI head), inference or training, original-image px.

    Attributes:
        adaptive: True when there are adaptive anchors to draw (arrows), False for the heatmap anchor (no arrows).
        starts: (P, 2) inference: the winning anchor of a joint (cell centre); training: a positive cell's centre.
        ends: (P, 2) the keypoint the anchor predicts (inference: the decoded keypoint; training: the ground-truth
            keypoint it serves).
        person: (P,) row of ``keypoints`` the arrow belongs to.
        joint: (P,) its keypoint type.
        keypoints: (N, K, 2) the people's keypoints (inference: predicted, best person first; training: ground
            truth, annotation order), also the heatmap anchor's positions.
        drawn: (N, K) bool, keypoints drawn (inference: joints of the pose; training: labelled; selected types).
        used: (N, K) bool, training: targets that took part in the assignment (others hollow); inference: = drawn.
        boxes: (N, 4) XYXY person boxes (ROI host) or None.
        crop: (x0, y0, x1, y1) the training input's square (bottom-up training) or None.
    """

    adaptive: bool
    starts: np.ndarray
    ends: np.ndarray
    person: np.ndarray
    joint: np.ndarray
    keypoints: np.ndarray
    drawn: np.ndarray
    used: np.ndarray
    boxes: Optional[np.ndarray] = None
    crop: Optional[Tuple[float, float, float, float]] = None

    @property
    def num_arrows(self) -> int:
        return len(self.person) if self.adaptive else 0


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float64)


def predictor_input(image_bgr: np.ndarray, cfg) -> dict:
    """The model's input for one BGR image, as DefaultPredictor builds it (INPUT.FORMAT, the test resize)."""
    image = image_bgr[:, :, ::-1] if cfg.INPUT.FORMAT == "RGB" else image_bgr
    height, width = image.shape[:2]
    resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
    resized = resize.get_transform(image).apply_image(image)
    tensor = torch.as_tensor(np.ascontiguousarray(resized.astype("float32").transpose(2, 0, 1)))
    return {"image": tensor, "height": height, "width": width}


@torch.no_grad()
def inference_anchors(model: DEKR, inputs: dict) -> InferenceAnchors:
    """Decode the person anchors of one image as the model does (``DEKRInference.poses`` and the mapping back
    to the original image in ``BottomUpMetaArch.inference``), keeping each pose's anchor cell and centre."""
    settings, criterion, stride = model.inference_settings, model.center_criterion, model.stride
    images = model.preprocess_image([inputs])
    input_h, input_w = images.image_sizes[0]
    scaled_maps = settings.test_time.maps(
        model.predict_maps,
        images.tensor[:1],
        (input_h, input_w),
        stride=stride,
        size_divisibility=model.backbone.size_divisibility,
    )
    found = settings.candidates(criterion, scaled_maps, stride, (input_h, input_w))
    keep = settings.select(found.poses, found.scores)
    to_original = found.poses.new_tensor([inputs["width"] / input_w, inputs["height"] / input_h])
    poses = found.poses[keep]
    poses[..., :2] = poses[..., :2] * to_original
    scores = found.scores[keep]
    cells = found.anchor_cells[keep] * to_original
    centers = found.anchor_positions[keep] * to_original
    return InferenceAnchors(
        adaptive=isinstance(criterion, AdaAnchor),
        anchor_cells=_numpy(cells),
        centers=_numpy(centers),
        joint_means=_numpy(poses[..., :2].mean(dim=1)),
        poses=_numpy(poses),
        scores=_numpy(scores),
    )


def top_people(anchors: InferenceAnchors, max_people: Optional[int]) -> InferenceAnchors:
    """The first ``max_people`` people (they come best first); None keeps all."""
    if max_people is None:
        return anchors
    n = max(0, max_people)
    return InferenceAnchors(
        anchors.adaptive, anchors.anchor_cells[:n], anchors.centers[:n], anchors.joint_means[:n],
        anchors.poses[:n], anchors.scores[:n],
    )  # fmt: skip


def find_dataset_dict(file_name: str, dataset_names: List[str]) -> Tuple[dict, str]:
    """(dataset dict, dataset name) of the image ``file_name``, searched in ``dataset_names`` in order.

    A dict whose ``file_name`` is the same file (real path) wins, the first dataset holding it; otherwise the one
    dict, over all the datasets, whose file name has the same basename. Raises ToolError if none (or several)."""
    if not dataset_names:
        raise ToolError("--mode training (and ROI inference on ground-truth boxes) needs a dataset: DATASETS.TEST "
                        "and DATASETS.TRAIN are empty")  # fmt: skip
    target = os.path.realpath(file_name)
    by_basename = []
    for name in dataset_names:
        for d in DatasetCatalog.get(name):
            if os.path.realpath(d["file_name"]) == target:
                return d, name
            if os.path.basename(d["file_name"]) == os.path.basename(file_name):
                by_basename.append((d, name))
    if len(by_basename) == 1:
        return by_basename[0]
    searched = ", ".join(dataset_names)
    if not by_basename:
        raise ToolError(f"{file_name} is not an image of the dataset(s) {searched} (--mode training, and ROI "
                        f"inference on ground-truth boxes, need one)")  # fmt: skip
    where = ", ".join(f"{n}: {d['file_name']}" for d, n in by_basename[:5])
    raise ToolError(
        f"{file_name} is not a file of the dataset(s) {searched}, and {len(by_basename)} of their images have "
        f"its name ({where}); pass the image's own path or --dataset NAME"
    )


def training_mapper(cfg, dataset_name: str) -> BottomUpDatasetMapper:
    """The project's bottom-up training mapper with the augmentation off (zoom 1, no rotation, shift or flip)."""
    num_keypoints = len(MetadataCatalog.get(dataset_name).keypoint_names)
    return BottomUpDatasetMapper(
        True, image_format=cfg.INPUT.FORMAT, input_size=cfg.INPUT.BOTTOM_UP.SIZE, scale_range=(1.0, 1.0),
        max_rotation_deg=0.0, max_translation=0.0, flip_prob=0.0, num_keypoints=num_keypoints,
    )  # fmt: skip


def input_to_original(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points (..., 2) of the training input -> original-image px, by the inverse of the (2, 3) affine."""
    linear, offset = matrix[:, :2], matrix[:, 2]
    return (np.asarray(points, dtype=np.float64) - offset) @ np.linalg.inv(linear).T


def positive_cells(assignment) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The positives of an :class:`AnchorAssignment` of shape (B, K, H, W).

    Returns:
        map (P,) ``b * K + k``; cells (P, 2) float64, the cell centres (j + 0.5, i + 0.5), feature px; target (P,)
        the index in [0, T) of the target each serves.
    """
    width = assignment.shape[3]
    cells = candidate_positions(assignment.positive_candidate, width, dtype=torch.float64)
    return assignment.positive_map, cells, assignment.positive_target


def assignment_arrows(assignment, centers: torch.Tensor, stride: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrows of an :class:`AnchorAssignment` of one type (DEKR's centres), input px.

    Args:
        assignment: shape (B, 1, H, W); ``positive_index`` flat ``((b * K + k) * H + i) * W + j``.
        centers: (B, T, 2) the targets, feature px.
        stride: input px per feature px.
    Returns:
        starts (P, 2): the positive cells' centres ((j + 0.5, i + 0.5) * stride); ends (P, 2): the centre of
        the target each serves (* stride); target (P,) its index in [0, T). Batch item 0 only.
    """
    image, cells, target = positive_cells(assignment)
    first = image == 0
    target = target[first]
    ends = centers[0].to(torch.float64)[target]
    return (cells[first] * stride).cpu().numpy(), (ends * stride).cpu().numpy(), target.cpu().numpy()


def region_cells(owner: torch.Tensor, centers: torch.Tensor, stride: int):
    """DEKR's offset region of the heatmap anchor, as :func:`assignment_arrows` returns arrows (input px)."""
    i, j = (owner[0] >= 0).nonzero().unbind(1)
    target = owner[0, i, j]
    cells = torch.stack([j.to(torch.float64) + 0.5, i.to(torch.float64) + 0.5], dim=1)
    ends = centers[0].to(torch.float64)[target]
    return (cells * stride).cpu().numpy(), (ends * stride).cpu().numpy(), target.cpu().numpy()


@dataclass
class BottomUpTrainingInput:
    """One image's training input (augmentation off) through a bottom-up model, what its losses take.

    Attributes:
        num_people: N, the mapper's instances (the image's people in annotation order).
        matrix: (2, 3) affine, original-image px -> input px (the mapper's transform at zoom 1).
        maps: the model's ``predict_maps`` of the input, feature px.
        people: ``gather_people`` of the instances (one image; feature px).
        loss_mask: (1, h, w) the ignore regions at map resolution.
        keypoints: (N, K, 3) ground-truth keypoints, original-image px (all 0 where unlabelled).
        crop: (x0, y0, x1, y1), the input's square in original-image px.
    """

    num_people: int
    matrix: np.ndarray
    maps: dict
    people: PeopleBatch
    loss_mask: torch.Tensor
    keypoints: np.ndarray
    crop: Tuple[float, float, float, float]


def bottom_up_training_input(
    model, mapper: BottomUpDatasetMapper, dataset_dict: dict, map_name: str, min_area: float = 0.0
) -> BottomUpTrainingInput:
    """Map ``dataset_dict`` with the training ``mapper`` and run the bottom-up ``model``'s network on it (callers
    hold ``torch.no_grad``).

    Args:
        map_name: an output of ``predict_maps`` giving the map size (h, w).
        min_area: ``gather_people``'s rule for a person centre (DEKR's MIN_PERSON_AREA), input px^2.
    """
    mapped = mapper(dataset_dict)
    if mapped is None:
        raise ToolError(f"{dataset_dict['file_name']}: the training mapper could not read the image")
    instances = mapped["instances"].to(model.device)
    matrix = bottom_up_affine((mapped["height"], mapped["width"]), mapper.input_size)
    maps = model.predict_maps(model.preprocess_image([mapped]).tensor)
    _, _, h, w = maps[map_name].shape
    people = gather_people(
        [instances.gt_keypoints.tensor], [instances.gt_areas], stride=model.stride, min_area=min_area
    )
    keypoints = _numpy(instances.gt_keypoints.tensor)
    keypoints[..., :2] = input_to_original(keypoints[..., :2], matrix)
    keypoints[keypoints[..., 2] <= 0] = 0.0
    size = mapper.input_size
    (x0, y0), (x1, y1) = input_to_original(np.array([[0.0, 0.0], [size, size]]), matrix)
    return BottomUpTrainingInput(
        num_people=len(instances),
        matrix=matrix,
        maps=maps,
        people=people,
        loss_mask=downsample_ignore_masks([mapped.get("ignore_mask")], h, w, model.stride, model.device),
        keypoints=keypoints,
        crop=(float(x0), float(y0), float(x1), float(y1)),
    )


@torch.no_grad()
def training_anchors(model: DEKR, mapper: BottomUpDatasetMapper, dataset_dict: dict) -> TrainingAnchors:
    """The assignment of one image's training input (``mapper``'s output), mapped back to the original image."""
    t = bottom_up_training_input(model, mapper, dataset_dict, "center_maps", min_area=model.min_person_area)
    people, matrix, n = t.people, t.matrix, t.num_people
    _, _, h, w = t.maps["center_maps"].shape
    criterion = model.center_criterion
    _, assignment = criterion.losses(
        t.maps["center_maps"], people.centers[:, None], people.center_allowed[:, None], t.loss_mask
    )
    if assignment is not None:
        starts, ends, person = assignment_arrows(assignment, people.centers, model.stride)
        used = assignment.target_used[0, 0]
    else:
        owner = region_owner(people, h, w, radius=model.offset_radius)
        starts, ends, person = region_cells(owner, people.centers, model.stride)
        used = people.centers_inside(h, w)[0]
    return TrainingAnchors(
        adaptive=assignment is not None,
        starts=input_to_original(starts, matrix).reshape(-1, 2),
        ends=input_to_original(ends, matrix).reshape(-1, 2),
        person=person,
        centers=input_to_original(people.centers[0, :n].double().cpu().numpy() * model.stride, matrix).reshape(-1, 2),
        center_used=used[:n].cpu().numpy(),
        keypoints=t.keypoints,
        crop=t.crop,
    )


def keep_people(anchors: TrainingAnchors, max_people: Optional[int]) -> TrainingAnchors:
    """The first ``max_people`` people of the image and their cells; None keeps all."""
    if max_people is None:
        return anchors
    n = max(0, max_people)
    keep = anchors.person < n
    return TrainingAnchors(
        anchors.adaptive, anchors.starts[keep], anchors.ends[keep], anchors.person[keep], anchors.centers[:n],
        anchors.center_used[:n], anchors.keypoints[:n], anchors.crop,
    )  # fmt: skip


def joint_arrows(cells: np.ndarray, keypoints: np.ndarray, drawn: np.ndarray, **fields) -> KeypointAnchors:
    """An inference figure of adaptive anchors: one arrow per drawn joint, from its anchor to the keypoint.

    Args:
        cells: (N, K, 2) the winning anchor of each joint; keypoints: (N, K, 2) the decoded keypoints; drawn:
            (N, K) bool, the joints the poses have (same unit: original-image px).
        fields: ``boxes`` / ``crop`` of :class:`KeypointAnchors`.
    """
    person, joint = np.nonzero(drawn)
    return KeypointAnchors(
        adaptive=True, starts=cells[person, joint].reshape(-1, 2), ends=keypoints[person, joint].reshape(-1, 2),
        person=person, joint=joint, keypoints=keypoints, drawn=drawn, used=drawn, **fields,
    )  # fmt: skip


def no_arrows(keypoints: np.ndarray, drawn: np.ndarray, used: np.ndarray, **fields) -> KeypointAnchors:
    """A figure without adaptive anchors (the heatmap anchor): keypoints (N, K, 2) and their masks (N, K) only."""
    empty = np.zeros((0,), dtype=np.int64)
    return KeypointAnchors(
        adaptive=False, starts=np.zeros((0, 2)), ends=np.zeros((0, 2)), person=empty, joint=empty,
        keypoints=keypoints, drawn=drawn, used=used, **fields,
    )  # fmt: skip


def ae_anchor_cells(candidates: KeypointCandidates, poses: np.ndarray) -> np.ndarray:
    """The winning anchor of every joint of the AE model's poses of one image.

    Args:
        candidates: the model's candidates of the image (``AssociativeEmbedding.candidates``), feature-map px.
        poses: (N, K, 3) their grouping, x, y feature-map px, score (0 for a missing joint).
    Returns:
        (N, K, 2) feature-map px, the centre of the anchor cell of the candidate each joint is, NaN for missing
        joints. Raises RuntimeError if a joint is not one of the candidates.
    """
    distance = np.linalg.norm(poses[:, :, None, :2] - candidates.positions[None], axis=-1)  # (N, K, D)
    distance = np.where(candidates.scores[None] > 0, distance, np.inf)
    slot, present = distance.argmin(axis=-1), poses[..., 2] > 0
    if (np.take_along_axis(distance, slot[..., None], -1)[..., 0][present] > JOINT_MATCH_TOLERANCE).any():
        raise RuntimeError("a joint of the AE model's poses is not one of its decoded candidates")
    cells = candidates.anchors[np.arange(poses.shape[1])[None, :], slot]  # (N, K, 2)
    return np.where(present[..., None], cells, np.nan)


@torch.no_grad()
def ae_inference(model: AssociativeEmbedding, inputs: dict) -> KeypointAnchors:
    """The AE model's poses of one image (its ``poses()``: candidates, then grouping; best first) and, for
    AdaAnchor, each joint's winning anchor (:func:`ae_anchor_cells`), mapped to original-image px as
    ``BottomUpMetaArch.inference`` maps poses."""
    images = model.preprocess_image([inputs])
    input_size = tuple(images.image_sizes[0])
    candidates = model.candidates(images.tensor[:1], input_size)
    poses, _ = model.group(candidates)  # input px
    to_original = poses.new_tensor([inputs["width"] / input_size[1], inputs["height"] / input_size[0]])
    keypoints, drawn = _numpy(poses[..., :2] * to_original), (poses[..., 2] > 0).cpu().numpy()
    if not isinstance(model.criterion, AdaAnchor):
        return no_arrows(keypoints, drawn, drawn)
    to_input = model.stride / np.asarray(candidates.ratio)  # input px per feature px
    in_features = np.concatenate([_numpy(poses[..., :2]) / to_input, _numpy(poses[..., 2:])], axis=-1)
    cells = ae_anchor_cells(candidates, in_features) * to_input * _numpy(to_original)
    return joint_arrows(cells, keypoints, drawn)


@torch.no_grad()
def ae_training(model: AssociativeEmbedding, mapper: BottomUpDatasetMapper, dataset_dict: dict) -> KeypointAnchors:
    """The AE criterion's assignment on one image's training input (as ``AssociativeEmbedding.losses`` computes
    it), each positive an arrow to the ground-truth keypoint it serves, original-image px."""
    t = bottom_up_training_input(model, mapper, dataset_dict, "anchors")
    people, n = t.people, t.num_people
    _, _, h, w = t.maps["anchors"].shape
    labelled = t.keypoints[..., 2] > 0
    _, assignment = model.criterion.losses(
        t.maps["anchors"], people.keypoints.transpose(1, 2), people.labelled.transpose(1, 2), t.loss_mask
    )
    keypoints = t.keypoints[..., :2]
    if assignment is None:
        return no_arrows(keypoints, labelled, people.inside(h, w)[0, :n].cpu().numpy(), crop=t.crop)
    joint, cells, person = positive_cells(assignment)  # one image: map index b * K + k = k
    ends = people.keypoints[0].to(torch.float64)[person, joint]
    return KeypointAnchors(
        adaptive=True,
        starts=input_to_original((cells * model.stride).cpu().numpy(), t.matrix).reshape(-1, 2),
        ends=input_to_original((ends * model.stride).cpu().numpy(), t.matrix).reshape(-1, 2),
        person=person.cpu().numpy(),
        joint=joint.cpu().numpy(),
        keypoints=keypoints,
        drawn=labelled,
        used=assignment.target_used[0].T[:n].cpu().numpy(),
        crop=t.crop,
    )


def roi_to_image(points: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(R, ..., 2) ROI-map px of S x S maps -> image px through the boxes (R, 4) XYXY, as the head maps keypoints
    (``keypoints_in_image``: x -> x0 + x (x1 - x0) / S)."""
    shape = (boxes.shape[0],) + (1,) * (points.dim() - 2) + (2,)
    origin, extent = boxes[:, :2].reshape(shape), (boxes[:, 2:] - boxes[:, :2]).reshape(shape)
    return origin + points * extent / size


def roi_anchor_cells(criterion, confidence: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The winning anchor of each keypoint of R ROIs (m = 1), image px.

    Args:
        criterion: the head's criterion (AdaAnchor: the most confident cell, as ``decode_single`` picks it;
            RegressionAnchor: its one fixed anchor, the map centre).
        confidence: (R, K, S, S) the ROI maps' confidences (the head's ``pred_keypoint_heatmaps``).
        boxes: (R, 4) XYXY, the ROIs in image px.
    Returns:
        (R, K, 2), the anchors' positions (cell centres) in the same image px as ``boxes``.
    """
    r, k, size, _ = confidence.shape
    if isinstance(criterion, RegressionAnchor):
        cells = confidence.new_full((r, k, 2), size / 2)
    else:
        cells = candidate_positions(confidence.flatten(2).max(dim=2).indices, size, dtype=confidence.dtype)
    return roi_to_image(cells, boxes, size)


@torch.no_grad()
def roi_inference(model, inputs: dict) -> KeypointAnchors:
    """The R-CNN's people of one image (detections, or ground-truth boxes with TEST_ON_GT_BOXES), best first, as
    the model returns them, with each keypoint's winning anchor (:func:`roi_anchor_cells`), original-image px."""
    (raw,) = model.inference([inputs], do_postprocess=False)  # input px
    head = model.roi_heads.keypoint_head
    adaptive = isinstance(head, AdaAnchorKeypointHead)
    if adaptive:
        raw.anchor_cells = roi_anchor_cells(head.criterion, raw.pred_keypoint_heatmaps, raw.pred_boxes.tensor)
    input_h, input_w = raw.image_size
    people = detector_postprocess(raw, inputs["height"], inputs["width"])  # as GeneralizedRCNN returns them
    people = people[torch.argsort(people.scores, descending=True, stable=True)]
    keypoints = _numpy(people.pred_keypoints[..., :2])
    drawn = np.ones(keypoints.shape[:2], dtype=bool)
    boxes = _numpy(people.pred_boxes.tensor)
    if not adaptive:
        return no_arrows(keypoints, drawn, drawn, boxes=boxes)
    cells = people.anchor_cells * people.anchor_cells.new_tensor(
        [inputs["width"] / input_w, inputs["height"] / input_h]
    )
    return joint_arrows(_numpy(cells), keypoints, drawn, boxes=boxes)


@torch.no_grad()
def roi_training(model, mapped: dict) -> KeypointAnchors:
    """The ROI head's assignment on the ground-truth person boxes of one test-resized input (``mapped``, with
    ``instances``), each positive an arrow to the ground-truth keypoint it serves, original-image px."""
    people = labelled_people(mapped["instances"].to(model.device))
    input_h, input_w = mapped["image"].shape[-2:]
    to_original = torch.tensor([mapped["width"] / input_w, mapped["height"] / input_h], dtype=torch.float64)
    gt, boxes = people.gt_keypoints.tensor.double(), people.gt_boxes.tensor.double()
    keypoints, labelled = _numpy(gt[..., :2] * to_original), (gt[..., 2] > 0).cpu().numpy()
    fields = {"boxes": _numpy(boxes * to_original.repeat(2))}
    head = model.roi_heads.keypoint_head
    if not isinstance(head, AdaAnchorKeypointHead) or len(people) == 0:
        return no_arrows(keypoints, labelled, labelled, **fields)
    features = model.backbone(model.preprocess_image([mapped]).tensor)
    roi_features = [features[f] for f in model.roi_heads.keypoint_in_features]
    maps = head.layers(model.roi_heads.keypoint_pooler(roi_features, [people.gt_boxes]))
    size = maps.shape[-1]
    targets, valid = roi_keypoint_targets(people.gt_keypoints.tensor, people.gt_boxes.tensor, size)
    _, assignment = head.criterion.losses(maps, targets, valid)
    if assignment is None:  # the regression anchor selects no positives
        return no_arrows(keypoints, labelled, labelled, **fields)
    index, cells, _ = positive_cells(assignment)  # one target per (ROI, type): map index = roi * K + type
    roi, joint = torch.div(index, gt.shape[1], rounding_mode="floor"), index % gt.shape[1]
    starts = roi_to_image(cells, boxes[roi], size) * to_original
    roi, joint = roi.cpu().numpy(), joint.cpu().numpy()
    return KeypointAnchors(
        adaptive=True, starts=_numpy(starts), ends=keypoints[roi, joint], person=roi, joint=joint,
        keypoints=keypoints, drawn=labelled, used=assignment.target_used[..., 0].cpu().numpy(), **fields,
    )  # fmt: skip


def keep_keypoints(anchors: KeypointAnchors, max_people: Optional[int], types: Sequence[int]) -> KeypointAnchors:
    """The first ``max_people`` people (None: all) and the keypoint types ``types``, their arrows only."""
    n = len(anchors.keypoints) if max_people is None else max(0, max_people)
    keep = (anchors.person < n) & np.isin(anchors.joint, types)
    selected = np.zeros(anchors.keypoints.shape[1], dtype=bool)
    selected[list(types)] = True
    return KeypointAnchors(
        anchors.adaptive, anchors.starts[keep], anchors.ends[keep], anchors.person[keep], anchors.joint[keep],
        anchors.keypoints[:n], anchors.drawn[:n] & selected, anchors.used[:n] & selected,
        None if anchors.boxes is None else anchors.boxes[:n], anchors.crop,
    )  # fmt: skip


def keypoint_types(names: Sequence[str], requested: Optional[Sequence[str]], default: Sequence[str] = ()) -> List[int]:
    """Indices of the keypoint types to draw among the dataset's ``names``: ``requested`` (each must be one of them),
    else those of ``default`` the dataset has, else all."""
    if requested:
        unknown = [n for n in requested if n not in names]
        if unknown:
            raise ToolError(f"--keypoints: unknown keypoint name(s) {', '.join(unknown)}; the dataset's are "
                            f"{', '.join(names)}")  # fmt: skip
        return [list(names).index(n) for n in dict.fromkeys(requested)]
    chosen = [list(names).index(n) for n in default if n in names]
    return chosen or list(range(len(names)))


# ---------------------------------------------------------------------------------------------------------------
# Drawing


def figure_size_px(image_width: int, image_height: int) -> Tuple[int, int, int]:
    """(figure width, figure height, image panel height), px: the image panel is between MIN_WIDTH_PX and
    MAX_WIDTH_PX wide (aspect kept, at most MAX_IMAGE_HEIGHT_PX tall), a title band above, a legend band below."""
    width = min(MAX_WIDTH_PX, max(MIN_WIDTH_PX, image_width))
    panel = round(width * image_height / image_width)
    if panel > MAX_IMAGE_HEIGHT_PX:
        panel = MAX_IMAGE_HEIGHT_PX
        width = max(1, round(panel * image_width / image_height))
    return width, panel + TITLE_PX + LEGEND_PX, panel


def person_colour(index: int):
    return plt.get_cmap("tab20")(index % 20)


def _figure(image_rgb: np.ndarray, title: str):
    h, w = image_rgb.shape[:2]
    fig_w, fig_h, panel = figure_size_px(w, h)
    # +0.5 px: Agg truncates the canvas size, and w / DPI * DPI may fall a hair short of w
    fig = plt.figure(figsize=((fig_w + 0.5) / DPI, (fig_h + 0.5) / DPI), dpi=DPI)
    ax = fig.add_axes([0.0, LEGEND_PX / fig_h, 1.0, panel / fig_h])
    ax.imshow(image_rgb, extent=(0, w, h, 0), interpolation="nearest")  # continuous px: pixel i is [i, i + 1)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    fig.text(0.5, 1.0 - TITLE_PX / 2 / fig_h, title, ha="center", va="center", fontsize=10, wrap=True)
    return fig, ax, w / fig_w  # image px per figure px


def _arrows(ax, starts, ends, colours, px):
    """Arrows from ``starts`` to ``ends`` (image px); ``px``: image px per figure px (the arrows' width is
    1.5 figure px, their heads 9 px long, at most half the arrow)."""
    width = 1.5 * px
    for (x0, y0), (x1, y1), colour in zip(starts, ends, colours):
        dx, dy = x1 - x0, y1 - y0
        length = float(np.hypot(dx, dy))
        if length <= 1e-9:
            continue
        head = min(9 * px, length * 0.5)
        ax.add_patch(
            FancyArrow(x0, y0, dx, dy, width=width, head_width=head * 0.8, head_length=head, length_includes_head=True,
                       color=colour, alpha=0.9, lw=0, zorder=3)
        )  # fmt: skip


def _legend(fig, handles):
    fig.legend(handles=handles, loc="lower center", ncol=1, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.0))


def _outline_crop(ax, crop, width: int, height: int) -> Optional[Line2D]:
    """Outline the training input's square ``crop`` (image px) unless it is the whole image; its legend entry."""
    x0, y0, x1, y1 = crop
    if x0 <= 1e-6 and y0 <= 1e-6 and x1 >= width - 1e-6 and y1 >= height - 1e-6:
        return None
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", ec="black", lw=1.2, zorder=1))
    return Line2D([], [], color="black", ls="--", label="training input (square crop at zoom 1)")


def draw_inference(image_rgb: np.ndarray, anchors: InferenceAnchors, title: str):
    """The inference figure (see the module docstring); returns the matplotlib figure."""
    fig, ax, px = _figure(image_rgb, title)
    colours = [person_colour(i) for i in range(len(anchors.scores))]
    marker = 8.0  # points
    for i, colour in enumerate(colours):
        joints = anchors.poses[i]
        ax.scatter(joints[:, 0], joints[:, 1], s=marker * 1.5, color=colour, alpha=0.6, linewidths=0, zorder=2)
    if anchors.adaptive:
        _arrows(ax, anchors.anchor_cells, anchors.centers, colours, px)
        for cell, centre, colour in zip(anchors.anchor_cells, anchors.centers, colours):
            ax.plot(*cell, "s", ms=marker * 0.6, mfc="none", mec=colour, mew=1.5, zorder=4)
            ax.plot(*centre, "o", ms=marker * 0.6, mfc=colour, mec="black", mew=0.8, zorder=6)
    else:
        for centre, colour in zip(anchors.centers, colours):
            ax.plot(*centre, "D", ms=marker * 0.7, mfc=colour, mec="black", mew=0.8, zorder=4)
    for mean, colour in zip(anchors.joint_means, colours):
        ax.plot(*mean, "X", ms=marker, mfc=colour, mec="white", mew=1.0, zorder=5)
    grey = "0.3"
    handles = []
    if anchors.adaptive:
        handles += [
            Line2D([], [], ls="none", marker="s", mfc="none", mec=grey, mew=1.5,
                   label="adaptive anchor: centre of the winning anchor cell"),
            Line2D([], [], color=grey, lw=2, label="arrow: anchor cell -> decoded centre (coarse + local offsets)"),
            Line2D([], [], ls="none", marker="o", mfc=grey, mec="black", label="decoded person centre (AdaAnchor)"),
        ]  # fmt: skip
    else:
        handles.append(
            Line2D([], [], ls="none", marker="D", mfc=grey, mec="black",
                   label="heatmap anchor: centre-heatmap peak (no adaptive anchors)")
        )  # fmt: skip
    handles += [
        Line2D([], [], ls="none", marker="X", mfc=grey, mec="white", ms=10,
               label="heatmap-anchor position: mean of the predicted joints (DEKR's centre)"),
        Line2D([], [], ls="none", marker="o", mfc=grey, mec="none", alpha=0.6, ms=5, label="predicted joints"),
    ]  # fmt: skip
    _legend(fig, handles)
    return fig


def draw_training(image_rgb: np.ndarray, anchors: TrainingAnchors, title: str):
    """The training figure (see the module docstring); returns the matplotlib figure."""
    fig, ax, px = _figure(image_rgb, title)
    h, w = image_rgb.shape[:2]
    marker = 8.0  # points
    crop_handle = _outline_crop(ax, anchors.crop, w, h)
    colours = [person_colour(int(p)) for p in anchors.person]
    for i, kpts in enumerate(anchors.keypoints):
        labelled = kpts[:, 2] > 0
        ax.scatter(kpts[labelled, 0], kpts[labelled, 1], s=marker * 1.5, color=person_colour(i), alpha=0.5,
                   linewidths=0, zorder=2)  # fmt: skip
    if anchors.adaptive:
        _arrows(ax, anchors.starts, anchors.ends, colours, px)
        ax.scatter(anchors.starts[:, 0], anchors.starts[:, 1], s=marker * 2, facecolors="none", edgecolors=colours,
                   marker="s", linewidths=1.0, zorder=4)  # fmt: skip
    else:
        ax.scatter(anchors.starts[:, 0], anchors.starts[:, 1], s=marker * 3, color=colours, marker="s", alpha=0.5,
                   linewidths=0, zorder=3)  # fmt: skip
    for i, (centre, used) in enumerate(zip(anchors.centers, anchors.center_used)):
        ax.plot(*centre, "X", ms=marker, mfc=person_colour(i) if used else "none", mec="white" if used else "0.5",
                mew=1.0, zorder=5)  # fmt: skip
    grey = "0.3"
    if anchors.adaptive:
        handles = [
            Line2D([], [], ls="none", marker="s", mfc="none", mec=grey, label="positive adaptive anchor (cell centre)"),
            Line2D([], [], color=grey, lw=2, label="arrow: positive -> the centre it serves (colour = person)"),
        ]  # fmt: skip
    else:
        handles = [
            Line2D([], [], ls="none", marker="s", mfc=grey, alpha=0.5, mec="none",
                   label="heatmap anchor, no adaptive anchors: DEKR's square offset region"),
        ]  # fmt: skip
    handles += [
        Line2D([], [], ls="none", marker="X", mfc=grey, mec="white", ms=10,
               label="ground-truth centre = mean of labelled keypoints (the heatmap anchor's position)"),
        Line2D([], [], ls="none", marker="o", mfc=grey, mec="none", alpha=0.5, ms=5, label="labelled keypoints"),
    ]  # fmt: skip
    if not anchors.center_used.all():
        handles.append(Line2D([], [], ls="none", marker="X", mfc="none", mec="0.5", ms=10, label="centre not assigned"))
    if crop_handle is not None:
        handles.append(crop_handle)
    _legend(fig, handles)
    return fig


def keypoint_legend(anchors: KeypointAnchors, training: bool, anchor_label: str, box_label: str) -> List[Line2D]:
    """Legend entries of :func:`draw_keypoints`; ``anchor_label`` names the arrows' start (the host's anchor),
    ``box_label`` the boxes (if any)."""
    grey = "0.3"
    if training:
        target = "ground-truth keypoint (also the heatmap anchor's position: its target's peak)"
    else:
        target = "predicted keypoint = heatmap-anchor position (a keypoint's heatmap anchor is its own peak)"
    if anchors.adaptive:
        end = "the keypoint it serves" if training else "the decoded keypoint"
        handles = [
            Line2D([], [], ls="none", marker="s", mfc="none", mec=grey, mew=1.5, label=anchor_label),
            Line2D([], [], color=grey, lw=2, label=f"arrow: anchor -> {end} (colour = person)"),
            Line2D([], [], ls="none", marker="X", mfc=grey, mec="white", ms=10, label=target),
        ]  # fmt: skip
    elif training:
        handles = [Line2D([], [], ls="none", marker="X", mfc=grey, mec="white", ms=10,
                          label=f"{target}; no adaptive anchors, no positives")]  # fmt: skip
    else:
        handles = [Line2D([], [], ls="none", marker="D", mfc=grey, mec="black",
                          label="heatmap anchor: heatmap peak = predicted keypoint (no adaptive anchors)")]  # fmt: skip
    if (anchors.drawn & ~anchors.used).any():
        handles.append(
            Line2D([], [], ls="none", marker="X", mfc="none", mec="0.5", ms=10, label="keypoint not assigned")
        )
    if anchors.boxes is not None:
        handles.append(Line2D([], [], color=grey, lw=1, label=box_label))
    return handles


def draw_keypoints(
    image_rgb: np.ndarray, anchors: KeypointAnchors, title: str, training: bool, anchor_label: str, box_label: str = ""
):
    """The figure of a keypoint host (AE, ROI; see the module docstring); returns the matplotlib figure. The anchors
    are drawn above the keypoints: an untrained model's offsets are ~0 and its arrows too short to see."""
    fig, ax, px = _figure(image_rgb, title)
    h, w = image_rgb.shape[:2]
    marker = 8.0  # points
    crop_handle = None if anchors.crop is None else _outline_crop(ax, anchors.crop, w, h)
    for i, box in enumerate([] if anchors.boxes is None else anchors.boxes):
        ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, ec=person_colour(i), lw=1.0,
                               alpha=0.8, zorder=1))  # fmt: skip
    colours = [person_colour(int(p)) for p in anchors.person]
    if anchors.adaptive:
        _arrows(ax, anchors.starts, anchors.ends, colours, px)
        ax.scatter(anchors.starts[:, 0], anchors.starts[:, 1], s=marker * 2, facecolors="none", edgecolors=colours,
                   marker="s", linewidths=1.0, zorder=6)  # fmt: skip
    peaks = not anchors.adaptive and not training  # the heatmap anchor's own peaks: diamonds
    for i, (points, drawn, used) in enumerate(zip(anchors.keypoints, anchors.drawn, anchors.used)):
        for (x, y), assigned in zip(points[drawn], used[drawn]):
            face = person_colour(i) if assigned else "none"
            ax.plot(x, y, "D" if peaks else "X", ms=marker * (0.7 if peaks else 1.0), mfc=face,
                    mec=("black" if peaks else "white") if assigned else "0.5", mew=0.8, zorder=5)  # fmt: skip
    handles = keypoint_legend(anchors, training, anchor_label, box_label)
    if crop_handle is not None:
        handles.append(crop_handle)
    _legend(fig, handles)
    return fig


def save_figure(fig, path: str) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (a complete file or none) and close it."""
    try:
        fig.set_facecolor("white")
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, facecolor="white"))
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", required=True, metavar="IMAGE")
    parser.add_argument("--output", required=True, metavar="PNG")
    parser.add_argument("--mode", choices=("inference", "training"), default="inference")
    parser.add_argument(
        "--max-people",
        type=int,
        default=None,
        help="inference: the N best people (default 10); training: the first N people (default: all)",
    )
    parser.add_argument(
        "--keypoints",
        nargs="+",
        metavar="NAME",
        help="AE / ROI host: the keypoint types drawn (default: all at inference; training: wrists and ankles); "
        "the names end at the first config key (KEY VALUE overrides may follow them)",
    )
    parser.add_argument("--dataset", help="look the image up in this registered dataset only (training mode, "
                                          "ROI inference on ground-truth boxes)")  # fmt: skip
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.keypoints:  # "--keypoints a b MODEL.X v": a config key has a dot, a keypoint name none
        names = next((i for i, name in enumerate(args.keypoints) if "." in name), len(args.keypoints))
        args.keypoints, args.opts = args.keypoints[:names], args.keypoints[names:] + args.opts
        if not args.keypoints:
            parser.error("--keypoints needs at least one keypoint name")
    return args


def host_of(cfg) -> str:
    """The host of the config, by MODEL.META_ARCHITECTURE: "DEKR", "AE" or "ROI"; ToolError for anything else."""
    arch = cfg.MODEL.META_ARCHITECTURE
    host = HOSTS.get(arch)
    if host == "ROI" and not cfg.MODEL.KEYPOINT_ON:
        raise ToolError(f"MODEL.META_ARCHITECTURE {arch} without MODEL.KEYPOINT_ON has no keypoint head to draw")
    if host is None:
        raise ToolError(f"this tool draws the anchors of DEKR, AssociativeEmbedding and Keypoint R-CNN (KeypointRCNN "
                        f"/ GeneralizedRCNN); the config's MODEL.META_ARCHITECTURE is {arch}")  # fmt: skip
    return host


def load_model(cfg):
    """The model in eval mode with MODEL.WEIGHTS loaded (as the demo's predictor); without weights the
    initialisation is seeded by SEED (an untrained model, for trying the tool)."""
    torch.manual_seed(cfg.SEED if cfg.SEED >= 0 else 0)
    model = build_model(cfg)
    model.eval()
    if cfg.MODEL.WEIGHTS:
        AdaAnchorCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    else:
        logger.warning("MODEL.WEIGHTS is empty: drawing an untrained model")
    return model


def dataset_image(args, cfg) -> Tuple[dict, str]:
    """(dataset dict, dataset name) of ``--input`` in ``--dataset`` or DATASETS.TEST then DATASETS.TRAIN."""
    names = [args.dataset] if args.dataset else list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN)
    return find_dataset_dict(args.input, list(dict.fromkeys(names)))


def anchor_name(host: str, model) -> str:
    """What the model's anchors are, for the title and the summary line."""
    none = "no adaptive anchors"
    if host == "DEKR":
        criterion = model.center_criterion
    elif host == "AE":
        criterion = model.criterion
    elif isinstance(model.roi_heads.keypoint_head, AdaAnchorKeypointHead):
        criterion = model.roi_heads.keypoint_head.criterion
    else:
        return f"Detectron2's heatmap head (MODEL.ADAANCHOR.ENABLED False: {none})"
    if isinstance(criterion, RegressionAnchor):
        return "regression anchor (one fixed anchor per ROI, the map centre)"
    if isinstance(criterion, AdaAnchor):
        return "AdaAnchor" if criterion.selection == "adaptive" else f"AdaAnchor, selection {criterion.selection}"
    return f"heatmap anchor (MODEL.ADAANCHOR.ENABLED False: {none})"


def dekr_figure(args, cfg, model, image_bgr, anchor: str):
    """DEKR's figure and what was drawn (see the module docstring)."""
    name = os.path.basename(args.input)
    if args.mode == "inference":
        max_people = DEFAULT_INFERENCE_PEOPLE if args.max_people is None else args.max_people
        anchors = top_people(inference_anchors(model, predictor_input(image_bgr, cfg)), max_people)
        title = f"{name}: DEKR person anchors at inference, {anchor}; {len(anchors.scores)} people"
        fig = draw_inference(image_bgr[:, :, ::-1], anchors, title)
        return fig, f"{len(anchors.scores)} people, {anchors.num_arrows} arrows"
    dataset_dict, dataset = dataset_image(args, cfg)
    anchors = keep_people(training_anchors(model, training_mapper(cfg, dataset), dataset_dict), args.max_people)
    what = "positives" if anchors.adaptive else "offset-region cells"
    title = (f"{name} ({dataset}): DEKR centre assignment in training, {anchor}; {len(anchors.centers)} people, "
             f"{len(anchors.person)} {what}")  # fmt: skip
    fig = draw_training(image_bgr[:, :, ::-1], anchors, title)
    return fig, f"{len(anchors.centers)} people, {anchors.num_arrows} arrows, {len(anchors.person)} {what}"


def keypoint_host_anchors(args, cfg, model, host: str, image_bgr) -> Tuple[KeypointAnchors, str]:
    """The AE / ROI host's figure content for ``args.mode`` (all people, all types) and the dataset whose
    keypoint names apply."""
    ground_truth_boxes = host == "ROI" and cfg.MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES
    if args.mode == "inference" and not ground_truth_boxes:
        inputs = predictor_input(image_bgr, cfg)
        run_model = ae_inference if host == "AE" else roi_inference
        datasets = list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN)
        if not datasets:
            raise ToolError("the keypoint names come from DATASETS.TEST or DATASETS.TRAIN, and both are empty")
        return run_model(model, inputs), datasets[0]
    dataset_dict, dataset = dataset_image(args, cfg)
    if host == "AE":
        return ae_training(model, training_mapper(cfg, dataset), dataset_dict), dataset
    mapped = ground_truth_box_test_mapper(cfg)(dataset_dict)
    if args.mode == "inference":
        return roi_inference(model, mapped), dataset
    return roi_training(model, mapped), dataset


def keypoint_figure(args, cfg, model, host: str, image_bgr, anchor: str):
    """The AE / ROI host's figure and what was drawn (see the module docstring)."""
    training = args.mode == "training"
    anchors, dataset = keypoint_host_anchors(args, cfg, model, host, image_bgr)
    names = list(MetadataCatalog.get(dataset).keypoint_names)
    types = keypoint_types(names, args.keypoints, DEFAULT_TRAINING_KEYPOINTS if training else ())
    max_people = DEFAULT_INFERENCE_PEOPLE if args.max_people is None and not training else args.max_people
    anchors = keep_keypoints(anchors, max_people, types)
    people = len(anchors.keypoints)
    shown = "all keypoint types" if len(types) == len(names) else ", ".join(names[t] for t in types)
    stage = f"assignment in training ({dataset})" if training else "anchors at inference"
    title = f"{os.path.basename(args.input)}: {host} keypoint {stage}, {anchor}; {people} people; {shown}"
    if training:
        anchor_label = "positive adaptive anchor (cell centre)"
    elif host == "AE":
        anchor_label = "winning anchor: centre of the cell the keypoint is decoded from"
    else:
        anchor_label = "winning anchor: most confident cell of the ROI (regression anchor: the ROI centre)"
    given = training or cfg.MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES
    box_label = f"{'ground-truth' if given else 'detected'} person boxes (the ROIs)"
    fig = draw_keypoints(image_bgr[:, :, ::-1], anchors, title, training, anchor_label, box_label)
    return fig, f"{people} people, {anchors.num_arrows} arrows, {len(types)} keypoint types"


def run(args) -> str:
    """Draw the figure of ``args``; returns the summary line."""
    cfg = build_cfg(args.config_file, args.opts)
    try:
        image_bgr = read_image(args.input, format="BGR")
    except ImageReadError as e:
        raise ToolError(f"Cannot read image {e.file_name}: {e.reason} ({e.detail})") from None
    host = host_of(cfg)
    if host == "DEKR" and args.keypoints:
        raise ToolError("--keypoints is for the keypoint hosts (AE, ROI head): DEKR's anchors are person centres")
    model = load_model(cfg)
    anchor = anchor_name(host, model)
    if host == "DEKR":
        fig, drawn = dekr_figure(args, cfg, model, image_bgr, anchor)
    else:
        fig, drawn = keypoint_figure(args, cfg, model, host, image_bgr, anchor)
    save_figure(fig, args.output)
    w, h, _ = figure_size_px(image_bgr.shape[1], image_bgr.shape[0])
    return f"visualize_anchors: wrote {args.output} ({w} x {h} px, {args.mode}, {anchor}): {drawn}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        print(run(args), flush=True)
    except ToolError as e:
        print(f"visualize_anchors: error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    setup_logger(name="adaanchor")  # here, not in main(): a caller of main() keeps its own logging
    sys.exit(main())
