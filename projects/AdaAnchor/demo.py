#!/usr/bin/env python
"""Run a trained AdaAnchor model on images with Detectron2's DefaultPredictor and draw the poses.

    python projects/AdaAnchor/demo.py --config-file configs/synthetic_dekr_adaanchor.yaml \\
        --input photo1.jpg photo2.jpg --output vis/ MODEL.WEIGHTS output/synthetic_dekr_adaanchor/model_final.pth

Each input gets ``<output>/<name>.jpg`` with the poses drawn (the dataset's skeleton from DATASETS.TEST) and
``<output>/<name>.json`` with the predictions (COCO keypoint results as the evaluator writes them: original-image
pixel indices, the category id of DATASETS.TEST[0], ``image_id`` = the file name without extension). An image
that cannot be read is reported and skipped; the exit status is 1 if any was.
"""

import argparse
import json
import logging
import os
import sys

import cv2

from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import Visualizer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from adaanchor.engine import build_cfg  # noqa: E402
from adaanchor.evaluation.detectron2_evaluator import instances_to_keypoint_results  # noqa: E402

logger = logging.getLogger("adaanchor.demo")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", required=True, help="image files")
    parser.add_argument("--output", required=True, help="folder for the drawings and predictions")
    parser.add_argument("--min-score", type=float, default=0.1, help="draw poses scoring at least this")
    parser.add_argument("--keypoint-threshold", type=float, default=0.05, help="draw joints scoring at least this")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="adaanchor")
    cfg = build_cfg(args.config_file, args.opts)
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: the model is randomly initialised")
    predictor = DefaultPredictor(cfg)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__unused")
    os.makedirs(args.output, exist_ok=True)
    failed = 0
    for path in args.input:
        image = cv2.imread(path)  # BGR, as DefaultPredictor expects
        if image is None:
            logger.error(f"Cannot read image {path}: skipped")
            failed += 1
            continue
        instances = predictor(image)["instances"].to("cpu")
        shown = instances[instances.scores >= args.min_score]
        visualizer = Visualizer(image[:, :, ::-1], metadata)
        visualizer.keypoint_threshold = args.keypoint_threshold
        drawing = visualizer.draw_instance_predictions(shown).get_image()[:, :, ::-1]
        name = os.path.splitext(os.path.basename(path))[0]
        cv2.imwrite(os.path.join(args.output, f"{name}.jpg"), drawing)
        with open(os.path.join(args.output, f"{name}.json"), "w") as f:
            json.dump(instances_to_keypoint_results(instances, name, metadata), f)
        logger.info(f"{path}: {len(instances)} poses, {len(shown)} drawn (score >= {args.min_score})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
