"""Command line: ``python -m adaanchor.data.synthetic --out DIR --num-images N --seed S --keypoints K``."""

import argparse
import sys

from .dataset import KEYPOINT_CHOICES, format_summary, generate_synthetic_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adaanchor.data.synthetic",
        description="Generate the synthetic crowded-people keypoint dataset (COCO json + JPEG images).",
    )
    parser.add_argument("--out", required=True, help="dataset directory to create (must not exist, see --overwrite)")
    parser.add_argument("--num-images", type=int, required=True, help="number of images (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (>= 0); same arguments, same bytes")
    parser.add_argument("--keypoints", choices=KEYPOINT_CHOICES, default="crowdpose", help="keypoint skeleton")
    parser.add_argument("--max-size", type=int, default=512, help="long side of every image, px (default 512)")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: from the CPUs)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace DIR if it exists (once the new one is complete)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = generate_synthetic_dataset(
            args.out,
            num_images=args.num_images,
            seed=args.seed,
            keypoints=args.keypoints,
            max_size=args.max_size,
            workers=args.workers,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
