"""Command line: ``python -m adaanchor.evaluation --gt GT.json --dt DT.json --dataset {coco,crowdpose,ochuman}``.

Prints a readable table, then the metrics as one json object on the last line (fractions in [0, 1],
-1 where undefined as the reference tools print it; NaN error / score values are written as null).
Exit status 1 with the reason on stderr for bad input.
"""

import argparse
import json
import logging
import math
import sys
from typing import List, Optional

from .evaluate import evaluate_keypoints, format_metrics_table
from .inputs import PROTOCOLS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adaanchor.evaluation",
        description="Keypoint AP/AR (pycocotools; official CrowdPose protocol), recall, per-keypoint AP, "
        "error and confidence by visibility.",
    )
    parser.add_argument("--gt", required=True, help="ground truth, COCO keypoint json")
    parser.add_argument("--dt", required=True, help="predictions, COCO keypoint results json")
    parser.add_argument("--dataset", required=True, choices=sorted(PROTOCOLS), help="evaluation protocol and sigmas")
    parser.add_argument(
        "--recall-oks",
        type=float,
        default=0.5,
        help="single-keypoint OKS a match needs for the recall",
    )
    parser.add_argument("--no-per-keypoint", action="store_true", help="skip the per-keypoint AP and recall")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        metrics = evaluate_keypoints(
            args.gt,
            args.dt,
            dataset=args.dataset,
            recall_oks_threshold=args.recall_oks,
            per_keypoint=not args.no_per_keypoint,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"python -m adaanchor.evaluation: error: {e}", file=sys.stderr)
        return 1
    print(format_metrics_table(metrics))
    print(json.dumps({k: (None if math.isnan(v) else v) for k, v in metrics.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
