"""Synthetic dataset generation speed: ``python projects/AdaAnchor/tools/benchmark.py synthetic``.

Generates N images (default 1000, long side 512 px, 2 worker processes) into a temporary directory, which
is removed afterwards, and reports the wall time of the whole call (process start-up, rendering, JPEG
encoding, json writing). Needs the ``adaanchor`` package importable (``pip install -e .``, or run from the
repository root with ``PYTHONPATH=.``). The 1-minute load average before and after is printed, since
other processes sharing the CPUs slow the run down.
"""

import os
import tempfile

from adaanchor.data.synthetic import KEYPOINT_CHOICES, format_summary, generate_synthetic_dataset


def add_arguments(parser):
    parser.add_argument("--num-images", type=int, default=1000, help="images to generate (default 1000)")
    parser.add_argument("--max-size", type=int, default=512, help="long side of the images, px (default 512)")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keypoints", choices=KEYPOINT_CHOICES, default="crowdpose")


def run(args) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="adaanchor-bench-synthetic-") as tmp:
        summary = generate_synthetic_dataset(
            os.path.join(tmp, "synthetic"),
            num_images=args.num_images,
            seed=args.seed,
            keypoints=args.keypoints,
            max_size=args.max_size,
            workers=args.workers,
            progress=True,
        )
    load_after = os.getloadavg()[0]
    seconds = summary["seconds"]
    rate = args.num_images / seconds
    print(format_summary(summary))
    print(
        f"synthetic: {args.num_images} images, max {args.max_size} px, {args.workers} workers: "
        f"{seconds:.1f} s wall, {rate:.1f} images/s "
        f"(1-min load average {load_before:.2f} before, {load_after:.2f} after, {os.cpu_count()} CPUs)"
    )
    return {
        "images": args.num_images,
        "seconds": seconds,
        "images_per_s": round(rate, 2),
        "workers": args.workers,
        "max_size": args.max_size,
    }
