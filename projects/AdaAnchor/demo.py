#!/usr/bin/env python
"""Run a trained AdaAnchor model on images with Detectron2's DefaultPredictor and draw the poses.

    python projects/AdaAnchor/demo.py --config-file configs/synthetic_dekr_adaanchor.yaml \\
        --input photo1.jpg photo2.jpg --output vis/ MODEL.WEIGHTS output/synthetic_dekr_adaanchor/model_final.pth

Each input gets ``<output>/<name>.jpg`` with the poses drawn (the dataset's skeleton from DATASETS.TEST) and
``<output>/<name>.json`` with the predictions (COCO keypoint results as the evaluator writes them: original-image
pixel indices, the category id of DATASETS.TEST[0], ``image_id`` = the file name without extension); images
larger than ``--max-draw-size`` are drawn at that size, to keep memory bounded. An input may be a folder: its
files are processed in name order. A file that cannot be used is reported with the reason (missing, empty, not
an image, undecodable) and skipped, and the others are processed; the exit status is 1 if any was skipped.
"""

import argparse
import json
import logging
import os
import sys

import cv2
import torch

from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.structures import Instances
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import Visualizer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from adaanchor.data.image_io import ImageReadError, read_image  # noqa: E402
from adaanchor.engine import build_cfg  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402
from adaanchor.evaluation.detectron2_evaluator import instances_to_keypoint_results  # noqa: E402

logger = logging.getLogger("adaanchor.demo")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", required=True, help="image files or folders of images")
    parser.add_argument("--output", required=True, help="folder for the drawings and predictions")
    parser.add_argument("--min-score", type=float, default=0.1, help="draw poses scoring at least this")
    parser.add_argument("--keypoint-threshold", type=float, default=0.05, help="draw joints scoring at least this")
    parser.add_argument(
        "--max-draw-size",
        type=int,
        default=2048,
        help="draw images whose longest side exceeds this many px at that size (the predictions json keeps "
        "original-image px): matplotlib's canvas of an 8000 x 6000 photo alone takes gigabytes",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser.parse_args(argv)


def expand_inputs(inputs):
    """The files to process: each input file as given, each folder's files (not hidden) in name order."""
    paths = []
    for path in inputs:
        if os.path.isdir(path):
            paths += [
                os.path.join(path, name)
                for name in sorted(os.listdir(path))
                if not name.startswith(".") and os.path.isfile(os.path.join(path, name))
            ]
        else:
            paths.append(path)
    return paths


def build_predictor(cfg):
    """DefaultPredictor with MODEL.WEIGHTS loaded by AdaAnchorCheckpointer (weights-only, the file named on
    failure). Without weights the initialisation is seeded by SEED, so the same command draws the same thing."""
    weights = cfg.MODEL.WEIGHTS
    torch.manual_seed(cfg.SEED if cfg.SEED >= 0 else 0)
    empty = cfg.clone()
    empty.defrost()
    empty.MODEL.WEIGHTS = ""
    predictor = DefaultPredictor(empty)
    predictor.cfg = cfg
    if weights:
        AdaAnchorCheckpointer(predictor.model).resume_or_load(weights, resume=False)
    return predictor


def scaled_for_drawing(image, instances, max_size):
    """(image, instances) resized so that the longest side is at most ``max_size`` px (unchanged if it is)."""
    height, width = image.shape[:2]
    scale = min(1.0, max_size / max(height, width))
    if scale >= 1.0:
        return image, instances
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    scaled = Instances((size[1], size[0]))
    for name, value in instances.get_fields().items():
        if name == "pred_keypoints":
            value = value.clone()
            value[..., :2] *= torch.tensor([size[0] / width, size[1] / height])
        elif name == "pred_boxes":
            value = value.clone()
            value.scale(size[0] / width, size[1] / height)
        scaled.set(name, value)
    return small, scaled


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="adaanchor")
    cfg = build_cfg(args.config_file, args.opts)
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: the model is randomly initialised")
    predictor = build_predictor(cfg)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__unused")
    os.makedirs(args.output, exist_ok=True)
    failed = 0
    for path in expand_inputs(args.input):
        try:
            image = read_image(path, format="BGR")  # BGR, as DefaultPredictor expects
        except ImageReadError as e:
            logger.error(f"Cannot read image {path}: {e.reason} ({e.detail}): skipped")
            failed += 1
            continue
        try:
            instances = predictor(image)["instances"].to("cpu")
        except Exception as e:  # reported, and the other images are still processed
            logger.exception(f"Inference failed on {path} ({image.shape[1]} x {image.shape[0]} px): {e}: skipped")
            failed += 1
            continue
        shown = instances[instances.scores >= args.min_score]
        drawn_image, drawn = scaled_for_drawing(image, shown, args.max_draw_size)
        visualizer = Visualizer(drawn_image[:, :, ::-1], metadata)
        visualizer.keypoint_threshold = args.keypoint_threshold
        drawing = visualizer.draw_instance_predictions(drawn).get_image()[:, :, ::-1]
        name = os.path.splitext(os.path.basename(path))[0]
        cv2.imwrite(os.path.join(args.output, f"{name}.jpg"), drawing)
        with open(os.path.join(args.output, f"{name}.json"), "w") as f:
            json.dump(instances_to_keypoint_results(instances, name, metadata), f)
        logger.info(f"{path}: {len(instances)} poses, {len(shown)} drawn (score >= {args.min_score})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
