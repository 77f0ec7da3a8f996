#!/usr/bin/env python
"""AdaAnchor benchmarks: ``python projects/AdaAnchor/tools/benchmark.py SUBCOMMAND [options]``.

Each subcommand lives in ``bench_<subcommand>.py`` beside this file and defines
``add_arguments(parser)`` and ``run(args) -> dict``. The subcommand prints its own human-readable
table; this script prints the returned figures as a JSON object on the last line, so that a caller
can parse it (``... | tail -n 1``).
"""

import argparse
import importlib
import json
import os
import sys

SUBCOMMANDS = {
    "assignment": "assignment + AdaAnchor losses vs heatmap targets + heatmap loss (training overhead)",
    "grouping": "bottom-up (Associative Embedding) decoding + grouping of one image, AdaAnchor vs heatmap anchor",
    "inference": "inference by stage (backbone ... mapping back) vs people per image, AdaAnchor vs heatmap anchor, "
    "DEKR / AE / ROI head, peak memory, worst-case decoding",
    "roi": "ROI keypoint head inference and training, AdaAnchor vs Detectron2's heatmap head, 100 ROIs",
    "synthetic": "synthetic dataset generation speed",
    "training": "DEKR and AE training steps, AdaAnchor vs heatmap anchor interleaved, and the criterion's share",
}


def main(argv=None):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    modules = {}
    for name, help_text in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            modules[name] = importlib.import_module(f"bench_{name}")
        except ImportError as e:  # a subcommand whose own dependency is missing stays listed, and says why
            modules[name] = e
            continue
        modules[name].add_arguments(sub_parser)
    args = parser.parse_args(argv)
    module = modules[args.subcommand]
    if isinstance(module, ImportError):
        parser.error(f"subcommand '{args.subcommand}' is unavailable: {module}")
    figures = module.run(args)
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
