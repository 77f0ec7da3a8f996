#!/usr/bin/env python
"""The paper's Figure 4 for the DEKR host: where the person anchors sit, adaptive anchors against the heatmap anchor.

    python projects/AdaAnchor/tools/visualize_anchors.py --config-file configs/synthetic_dekr_adaanchor.yaml \\
        --input IMAGE --output fig.png [--mode inference|training] [--max-people N] MODEL.WEIGHTS model.pth

Writes one PNG (matplotlib, Agg; atomically), everything drawn in original-image px, with a legend:

- ``--mode inference`` (default): the image goes through the model as DefaultPredictor would send it (short side
  resized to INPUT.MIN_SIZE_TEST, INPUT.FORMAT, MODEL.DEKR.TEST scales / flip), the person centres are decoded
  with the model's ``center_criterion`` and the poses assembled and NMS-ed as the model does (the poses drawn
  are the model's predictions). For each of the top ``--max-people`` people by score (default 10), an AdaAnchor
  model draws an arrow from the winning anchor cell's centre to the decoded centre (anchor + coarse + local offset), and
  an X at the "heatmap-anchor position": the centre DEKR's heatmap baseline would use, the mean of the
  predicted pose's joints (DEKR's centre definition: the mean of the keypoints); dots mark the joints. A
  heatmap-anchor model (MODEL.ADAANCHOR.ENABLED False) has no adaptive anchors: its anchors are the peaks of
  the centre heatmap, drawn as diamonds, and no arrow is drawn.
- ``--mode training``: the image must be one of a registered dataset (DATASETS.TEST, then DATASETS.TRAIN, or
  ``--dataset NAME``), found by its path or, failing that, by its file name. Its dataset dict goes through the
  project's bottom-up training mapper with the augmentation off (zoom 1, no rotation, shift or flip: the square
  INPUT.BOTTOM_UP.SIZE input the training transform gives at zoom 1, the longer side cropped; the crop is
  outlined when it is not the whole image); the model's maps and ``center_criterion.losses`` give the
  assignment, and each positive anchor cell is drawn as an arrow to the ground-truth centre of the person it
  serves (one colour per person), the centre (DEKR's: the mean of the labelled keypoints, also the heatmap
  anchor's position) marked with an X. The model runs in eval mode (BatchNorm running statistics). For a
  heatmap-anchor model there are no adaptive anchors to assign: the tool draws DEKR's square offset region
  instead (the cells within MODEL.DEKR.OFFSET_RADIUS of each centre that regress that person), as squares,
  no arrows. ``--max-people``: the first N people of the image, in annotation order.

The last line printed says what was drawn, e.g. ``... 12 arrows ...``. Exit status 0; 1 if the image cannot
be read, is not in the dataset (training mode) or the config's meta-architecture is not DEKR.
"""

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Tuple

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
from detectron2.utils.logger import setup_logger  # noqa: E402

from adaanchor.anchor import AdaAnchor, candidate_positions  # noqa: E402
from adaanchor.bottom_up import downsample_ignore_masks, gather_people, region_owner  # noqa: E402
from adaanchor.data.affine import bottom_up_affine  # noqa: E402
from adaanchor.data.bottom_up_mapper import BottomUpDatasetMapper  # noqa: E402
from adaanchor.data.image_io import ImageReadError, read_image  # noqa: E402
from adaanchor.engine import build_cfg  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402
from adaanchor.modeling.dekr.meta_arch import DEKR  # noqa: E402
from adaanchor.utils.files import atomic_write  # noqa: E402

logger = logging.getLogger("adaanchor.visualize_anchors")

DPI = 100
MAX_WIDTH_PX = 1600  # widest figure
MIN_WIDTH_PX = 800  # small images are drawn enlarged, so that arrows between cells stay visible
MAX_IMAGE_HEIGHT_PX = 1200  # tallest image panel
DEFAULT_INFERENCE_PEOPLE = 10  # --max-people in inference mode (a model returns up to 30, mostly weak)
TITLE_PX, LEGEND_PX = 50, 150  # bands above and below the image panel (the legend: up to 6 lines)


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
        anchor_cells=cells.cpu().numpy().astype(np.float64),
        centers=centers.cpu().numpy().astype(np.float64),
        joint_means=poses[..., :2].mean(dim=1).cpu().numpy().astype(np.float64),
        poses=poses.cpu().numpy().astype(np.float64),
        scores=scores.cpu().numpy().astype(np.float64),
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
        raise ToolError("--mode training needs a dataset: DATASETS.TEST and DATASETS.TRAIN are empty")
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
        raise ToolError(f"{file_name} is not an image of the dataset(s) {searched} (--mode training needs one)")
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
    _, _, h, w = assignment.shape
    image = torch.div(assignment.positive_index, h * w, rounding_mode="floor")
    first = image == 0
    cells = candidate_positions(assignment.positive_candidate[first], w, dtype=torch.float64)
    target = assignment.positive_target[first]
    ends = centers[0].to(torch.float64)[target]
    return (cells * stride).cpu().numpy(), (ends * stride).cpu().numpy(), target.cpu().numpy()


def region_cells(owner: torch.Tensor, centers: torch.Tensor, stride: int):
    """DEKR's offset region of the heatmap anchor, as :func:`assignment_arrows` returns arrows (input px)."""
    i, j = (owner[0] >= 0).nonzero().unbind(1)
    target = owner[0, i, j]
    cells = torch.stack([j.to(torch.float64) + 0.5, i.to(torch.float64) + 0.5], dim=1)
    ends = centers[0].to(torch.float64)[target]
    return (cells * stride).cpu().numpy(), (ends * stride).cpu().numpy(), target.cpu().numpy()


@torch.no_grad()
def training_anchors(model: DEKR, mapper: BottomUpDatasetMapper, dataset_dict: dict) -> TrainingAnchors:
    """The assignment of one image's training input (``mapper``'s output), mapped back to the original image."""
    mapped = mapper(dataset_dict)
    if mapped is None:
        raise ToolError(f"{dataset_dict['file_name']}: the training mapper could not read the image")
    instances = mapped["instances"].to(model.device)
    height, width = mapped["height"], mapped["width"]
    matrix = bottom_up_affine((height, width), mapper.input_size)  # the mapper's transform at zoom 1
    images = model.preprocess_image([mapped])
    maps = model.predict_maps(images.tensor)
    _, _, h, w = maps["center_maps"].shape
    people = gather_people(
        [instances.gt_keypoints.tensor], [instances.gt_areas], stride=model.stride, min_area=model.min_person_area
    )
    loss_mask = downsample_ignore_masks([mapped.get("ignore_mask")], h, w, model.stride, model.device)
    criterion = model.center_criterion
    _, assignment = criterion.losses(
        maps["center_maps"], people.centers[:, None], people.center_allowed[:, None], loss_mask
    )
    if assignment is not None:
        starts, ends, person = assignment_arrows(assignment, people.centers, model.stride)
        used = assignment.target_used[0, 0]
    else:
        owner = region_owner(people, h, w, radius=model.offset_radius)
        starts, ends, person = region_cells(owner, people.centers, model.stride)
        used = people.centers_inside(h, w)[0]
    n = len(instances)
    keypoints = instances.gt_keypoints.tensor.cpu().numpy().astype(np.float64)
    keypoints[..., :2] = input_to_original(keypoints[..., :2], matrix)
    keypoints[keypoints[..., 2] <= 0] = 0.0
    size = mapper.input_size
    (x0, y0), (x1, y1) = input_to_original(np.array([[0.0, 0.0], [size, size]]), matrix)
    return TrainingAnchors(
        adaptive=assignment is not None,
        starts=input_to_original(starts, matrix).reshape(-1, 2),
        ends=input_to_original(ends, matrix).reshape(-1, 2),
        person=person,
        centers=input_to_original(people.centers[0, :n].double().cpu().numpy() * model.stride, matrix).reshape(-1, 2),
        center_used=used[:n].cpu().numpy(),
        keypoints=keypoints,
        crop=(float(x0), float(y0), float(x1), float(y1)),
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
    x0, y0, x1, y1 = anchors.crop
    if x0 > 1e-6 or y0 > 1e-6 or x1 < w - 1e-6 or y1 < h - 1e-6:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", ec="black", lw=1.2, zorder=1))
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
    if x0 > 1e-6 or y0 > 1e-6 or x1 < w - 1e-6 or y1 < h - 1e-6:
        handles.append(Line2D([], [], color="black", ls="--", label="training input (square crop at zoom 1)"))
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
    parser.add_argument("--dataset", help="training mode: look the image up in this registered dataset only")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser.parse_args(argv)


def build_dekr(cfg) -> DEKR:
    """The model in eval mode with MODEL.WEIGHTS loaded (as the demo's predictor); without weights the
    initialisation is seeded by SEED (an untrained model, for trying the tool)."""
    if cfg.MODEL.META_ARCHITECTURE != "DEKR":
        raise ToolError(f"this tool draws DEKR's person anchors; the config's MODEL.META_ARCHITECTURE is "
                        f"{cfg.MODEL.META_ARCHITECTURE}")  # fmt: skip
    torch.manual_seed(cfg.SEED if cfg.SEED >= 0 else 0)
    model = build_model(cfg)
    model.eval()
    if cfg.MODEL.WEIGHTS:
        AdaAnchorCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    else:
        logger.warning("MODEL.WEIGHTS is empty: drawing an untrained model")
    return model


def run(args) -> str:
    """Draw the figure of ``args``; returns the summary line."""
    cfg = build_cfg(args.config_file, args.opts)
    try:
        image_bgr = read_image(args.input, format="BGR")
    except ImageReadError as e:
        raise ToolError(f"Cannot read image {e.file_name}: {e.reason} ({e.detail})") from None
    model = build_dekr(cfg)
    adaptive = isinstance(model.center_criterion, AdaAnchor)
    anchor = "AdaAnchor" if adaptive else "heatmap anchor (MODEL.ADAANCHOR.ENABLED False: no adaptive anchors)"
    name = os.path.basename(args.input)
    if args.mode == "inference":
        max_people = DEFAULT_INFERENCE_PEOPLE if args.max_people is None else args.max_people
        anchors = top_people(inference_anchors(model, predictor_input(image_bgr, cfg)), max_people)
        title = f"{name}: DEKR person anchors at inference, {anchor}; {len(anchors.scores)} people"
        fig = draw_inference(image_bgr[:, :, ::-1], anchors, title)
        drawn = f"{len(anchors.scores)} people, {anchors.num_arrows} arrows"
    else:
        names = [args.dataset] if args.dataset else list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN)
        names = list(dict.fromkeys(names))
        dataset_dict, dataset = find_dataset_dict(args.input, names)
        anchors = keep_people(training_anchors(model, training_mapper(cfg, dataset), dataset_dict), args.max_people)
        what = "positives" if anchors.adaptive else "offset-region cells"
        title = (f"{name} ({dataset}): DEKR centre assignment in training, {anchor}; {len(anchors.centers)} people, "
                 f"{len(anchors.person)} {what}")  # fmt: skip
        fig = draw_training(image_bgr[:, :, ::-1], anchors, title)
        drawn = f"{len(anchors.centers)} people, {anchors.num_arrows} arrows, {len(anchors.person)} {what}"
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
