#!/usr/bin/env python
"""The paper's Figure 5: AP and keypoint recall as a function of the confidence threshold gamma, for an AdaAnchor
model and its heatmap-anchor baseline (DEKR or Associative Embedding), from one inference pass per model.

    python projects/AdaAnchor/tools/confidence_sweep.py \\
        --config-file configs/synthetic_dekr_adaanchor.yaml \\
        --weights output/synthetic_dekr_adaanchor/model_final.pth \\
        --baseline-config configs/synthetic_dekr_heatmap.yaml \\
        --baseline-weights output/synthetic_dekr_heatmap/model_final.pth \\
        --output sweep/ [--gammas 0.01 0.1 ...] [KEY VALUE ...]

(``synthetic_ae_{adaanchor,heatmap}.yaml`` and their checkpoints for Associative Embedding.)

Writes ``sweep/confidence_sweep.csv`` (one row per model and gamma: AP, AP50, AR, recall, ...) and
``sweep/confidence_sweep.png``. Why one pass suffices (exact, not an approximation): the network runs once per
image and its anchors are decoded once, at the lowest gamma. Decoding at a higher gamma keeps exactly the
decoded anchors scoring >= gamma: the merge is greedy in confidence order, so a candidate's fate depends only on
more confident ones, and the top-m cut keeps a confidence-ordered prefix (the heatmap anchor thresholds its
top-m peaks after the cut). What follows the decoding is re-run per gamma, by host:

- DEKR: each pose keeps its person anchor's score; per gamma the poses whose anchor scores >= gamma go through
  pose NMS again (its order is the pose score). gamma is the centre threshold:
  MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD (AdaAnchor) or MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD (the baseline).
- Associative Embedding: per image the keypoint candidates of every type are stored once, as the model hands
  them to its grouping (``AssociativeEmbedding.candidates``: positions, scores, and the tags it reads: its own,
  or the tagger's with MODEL.AE.TEST.TAGGER_WEIGHTS); per gamma the candidates scoring >= gamma are grouped
  again (``AssociativeEmbedding.group``, cheap; MODEL.AE.TEST.REFINE included). Two thresholds filter AE's candidates: the
  criterion's decoding threshold (score >= MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD, or
  MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD) and the grouping's (score > MODEL.AE.TEST.DETECTION_THRESHOLD; both 0.1
  in the AE configs, the paper's gamma for AE). gamma sets both, the paper's one "filter out predictions with
  confidence lower than gamma": sweeping the criterion's alone would give every gamma below the detection
  threshold the same result. The one-pass metrics equal those of the model evaluated with both keys at gamma.
- Keypoint R-CNN (the ROI head) is refused: the top-down host decodes one keypoint per type and box, its most
  confident anchor (m = 1; paper section 3.1, "for single keypoint localization task, A can be simply selected
  as the candidate with maximum confidence"), so no threshold gamma applies, and Figure 5 has no top-down panel.

Evaluation: the dataset's protocol on DATASETS.TEST[0] (KeypointEvaluator), values x100.
"""

import argparse
import csv
import dataclasses
import logging
import os
import sys
from typing import Callable, Iterator, List, Tuple

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from adaanchor.anchor import AdaAnchor  # noqa: E402
from adaanchor.bottom_up import keypoint_boxes  # noqa: E402
from adaanchor.engine import AdaAnchorTrainer, build_cfg  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402
from adaanchor.evaluation.detectron2_evaluator import KeypointEvaluator  # noqa: E402
from adaanchor.modeling.associative_embedding import AssociativeEmbedding, KeypointCandidates  # noqa: E402
from adaanchor.modeling.dekr.meta_arch import DEKR  # noqa: E402

DEFAULT_GAMMAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
COLUMNS = ("model", "gamma", "AP", "AP50", "AP75", "AR", "recall", "vis_error", "inv_error", "poses")
SWEPT_HOSTS = ("DEKR", "AssociativeEmbedding")
TOP_DOWN_HOSTS = ("KeypointRCNN", "GeneralizedRCNN")
logger = logging.getLogger("adaanchor.confidence_sweep")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the AdaAnchor DEKR or AE config")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--baseline-config", help="its heatmap-anchor twin (optional)")
    parser.add_argument("--baseline-weights")
    parser.add_argument("--gammas", type=float, nargs="+", default=list(DEFAULT_GAMMAS))
    parser.add_argument("--output", required=True, help="folder for confidence_sweep.csv and .png")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for both models: KEY VALUE ...")
    args = parser.parse_args(argv)
    if bool(args.baseline_config) != bool(args.baseline_weights):
        parser.error("--baseline-config and --baseline-weights go together")
    if not args.gammas or min(args.gammas) < 0 or max(args.gammas) > 1:
        parser.error("--gammas must be numbers in [0, 1]")
    return args


def check_host(cfg, config: str) -> None:
    """SystemExit with the reason unless ``cfg`` is a host with a confidence threshold (DEKR, AE)."""
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch in TOP_DOWN_HOSTS:
        raise SystemExit(
            f"{config}: MODEL.META_ARCHITECTURE {arch} (the top-down ROI host) has no confidence threshold to sweep: "
            "it decodes one keypoint per type and box, the most confident anchor (m = 1, no gamma; paper section "
            "3.1), and the paper's Figure 5 covers the bottom-up (AE) and single-stage (DEKR) hosts only"
        )
    if arch not in SWEPT_HOSTS:
        raise SystemExit(f"{config}: MODEL.META_ARCHITECTURE {arch}: the sweep is for {' and '.join(SWEPT_HOSTS)}")


def gamma_keys(cfg) -> Tuple[str, ...]:
    """The config keys gamma stands for in the model of ``cfg`` (see the module docstring)."""
    if cfg.MODEL.ADAANCHOR.ENABLED:
        criterion = "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD"
    else:
        criterion = "MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD"
    if cfg.MODEL.META_ARCHITECTURE == "AssociativeEmbedding":
        return criterion, "MODEL.AE.TEST.DETECTION_THRESHOLD"
    return (criterion,)


def at_threshold(criterion, gamma: float):
    """A copy of the anchor criterion decoding at ``gamma``."""
    if isinstance(criterion, AdaAnchor):
        return dataclasses.replace(criterion, confidence_threshold=gamma)
    return dataclasses.replace(criterion, threshold=gamma)


@dataclasses.dataclass
class DekrImage:
    """One image's DEKR poses decoded at the lowest gamma, before pose NMS.

    Attributes:
        inputs: the test loader's dict.
        poses: (N, K, 3) x, y original-image px and joint score; scores: (N,) pose scores; anchor_scores: (N,)
            the score of each pose's person anchor.
        select: the model's pose NMS (``DEKRInference.select``): (poses, scores) -> kept indices, best first.
    """

    inputs: dict
    poses: torch.Tensor
    scores: torch.Tensor
    anchor_scores: torch.Tensor
    select: Callable

    def poses_at(self, gamma: float) -> Tuple[torch.Tensor, torch.Tensor]:
        """The model's poses (N', K, 3) and scores (N',) had it decoded at ``gamma``."""
        keep = self.anchor_scores >= gamma
        poses, scores = self.poses[keep], self.scores[keep]
        order = self.select(poses, scores)
        return poses[order], scores[order]


@dataclasses.dataclass
class AeImage:
    """One image's AE keypoint candidates decoded at the lowest gamma (``AssociativeEmbedding.candidates``).

    Attributes:
        inputs: the test loader's dict.
        candidates: :class:`KeypointCandidates`, feature-map px.
        group: the model's grouping, (candidates, detection_threshold) -> poses (N, K, 3) input px, scores (N,).
        original_per_input: (x, y) original-image px per input px.
    """

    inputs: dict
    candidates: KeypointCandidates
    group: Callable
    original_per_input: Tuple[float, float]

    def poses_at(self, gamma: float) -> Tuple[torch.Tensor, torch.Tensor]:
        """The model's poses (N, K, 3) original-image px and scores (N,) had it decoded and grouped at ``gamma``
        (the same float32 steps as ``AssociativeEmbedding.poses`` and ``BottomUpMetaArch.inference``)."""
        scores = np.where(self.candidates.scores >= gamma, self.candidates.scores, 0.0)
        poses, person_scores = self.group(dataclasses.replace(self.candidates, scores=scores), gamma)
        poses = poses.cpu()
        poses[..., :2] = poses[..., :2] * poses.new_tensor(self.original_per_input)
        return poses, person_scores.cpu()


def dataset_inputs(model, cfg) -> Iterator[Tuple[dict, torch.Tensor, Tuple[int, int]]]:
    """(input dict, (1, 3, Hp, Wp) normalised padded image, (h, w) input px of the image in it) for every image of
    DATASETS.TEST[0], as the model's inference sees them."""
    dataset = cfg.DATASETS.TEST[0]
    for batch in tqdm(AdaAnchorTrainer.build_test_loader(cfg, dataset), desc=f"inference on {dataset}"):
        (x,) = batch
        images = model.preprocess_image(batch)
        yield x, images.tensor[:1], tuple(images.image_sizes[0])


@torch.no_grad()
def dekr_candidates(model: DEKR, cfg, gamma: float) -> List[DekrImage]:
    """One inference pass of a DEKR model: per image, every pose decoded at ``gamma`` with its anchor score."""
    settings, criterion = model.inference_settings, at_threshold(model.center_criterion, gamma)
    out = []
    for x, image, (input_h, input_w) in dataset_inputs(model, cfg):
        scaled = settings.test_time.maps(
            model.predict_maps,
            image,
            (input_h, input_w),
            stride=model.stride,
            size_divisibility=model.backbone.size_divisibility,
        )
        found = settings.candidates(criterion, scaled, model.stride, (input_h, input_w))
        poses = found.poses.cpu()
        poses[..., :2] *= poses.new_tensor([x["width"] / input_w, x["height"] / input_h])
        out.append(DekrImage(x, poses, found.scores.cpu(), found.anchor_scores.cpu(), settings.select))
    return out


@torch.no_grad()
def ae_candidates(model: AssociativeEmbedding, cfg, gamma: float) -> List[AeImage]:
    """One inference pass of an AE model: per image, its keypoint candidates decoded at ``gamma`` (its criterion
    at ``gamma`` for the pass; restored after)."""
    criterion, out = model.criterion, []
    model.criterion = at_threshold(criterion, gamma)
    try:
        for x, image, (input_h, input_w) in dataset_inputs(model, cfg):
            scale = (x["width"] / input_w, x["height"] / input_h)
            found = model.candidates(image, (input_h, input_w), model.ground_truth_people(x))
            out.append(AeImage(x, found, model.group, scale))
    finally:
        model.criterion = criterion
    return out


def candidate_poses(model, cfg, gamma: float):
    """One inference pass of ``model`` on DATASETS.TEST[0] decoded at ``gamma``: a list of per-image records
    (:class:`DekrImage` or :class:`AeImage`) whose ``poses_at(g)`` gives the model's output at any g >= gamma."""
    if isinstance(model, DEKR):
        return dekr_candidates(model, cfg, gamma)
    if isinstance(model, AssociativeEmbedding):
        return ae_candidates(model, cfg, gamma)
    raise TypeError(f"no confidence sweep for {type(model).__name__} (see the module docstring)")


def _instances(inputs: dict, poses: torch.Tensor, scores: torch.Tensor) -> Instances:
    """Poses (N, K, 3) original-image px and scores (N,) as the bottom-up models return them."""
    instances = Instances((inputs["height"], inputs["width"]))
    instances.pred_keypoints, instances.scores = poses, scores
    instances.pred_boxes = Boxes(keypoint_boxes(poses[..., :2]))
    instances.pred_classes = torch.zeros(len(scores), dtype=torch.long)
    return instances


def sweep(model_name: str, cfg, candidates, gammas):
    """Metrics at each gamma: the records' poses at gamma (:func:`candidate_poses`), evaluated."""
    evaluator = KeypointEvaluator(cfg.DATASETS.TEST[0], distributed=False, per_keypoint=False)
    rows = []
    for gamma in sorted(gammas):
        evaluator.reset()
        count = 0
        for image in candidates:
            poses, scores = image.poses_at(gamma)
            evaluator.process([image.inputs], [{"instances": _instances(image.inputs, poses, scores)}])
            count += len(scores)
        metrics = evaluator.evaluate().get("keypoints", {})
        rows.append({"model": model_name, "gamma": gamma, "poses": count, **{c: metrics.get(c) for c in COLUMNS[2:-1]}})
        logger.info(f"{model_name} gamma {gamma}: AP {metrics.get('AP')}, recall {metrics.get('recall')}")
    return rows


def plot(rows, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        for ax, key in zip(axes, ("AP", "recall")):
            ax.plot([r["gamma"] for r in mine], [r[key] for r in mine], marker="o", label=name)
    for ax, key in zip(axes, ("AP (x100)", "keypoint recall (x100)")):
        ax.set_xlabel("confidence threshold gamma")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("AP and recall vs the confidence threshold (paper Fig. 5)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    models = [("adaanchor", args.config_file, args.weights)]
    if args.baseline_config:
        models.append(("heatmap", args.baseline_config, args.baseline_weights))
    configs = [(name, build_cfg(config, args.opts), config, weights) for name, config, weights in models]
    for _, cfg, config, _ in configs:  # before any inference pass
        check_host(cfg, config)
        if not cfg.DATASETS.TEST:
            raise SystemExit(f"{config}: DATASETS.TEST is empty: nothing to evaluate")
    rows = []
    for name, cfg, _, weights in configs:
        model = build_model(cfg)
        AdaAnchorCheckpointer(model).load(weights)
        model.eval()
        logger.info(f"{name}: gamma sets {' and '.join(gamma_keys(cfg))}")
        rows += sweep(name, cfg, candidate_poses(model, cfg, min(args.gammas)), args.gammas)
    os.makedirs(args.output, exist_ok=True)
    csv_path = os.path.join(args.output, "confidence_sweep.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, os.path.join(args.output, "confidence_sweep.png"))
    logger.info(f"wrote {csv_path} and confidence_sweep.png ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    setup_logger(name="adaanchor")  # here, not in main(): it stops the logger's records propagating to the root
    sys.exit(main())
