#!/usr/bin/env python
"""How strongly each loss term pulls on the shared features: the measurement behind the loss-weight calibration.

    python projects/AdaAnchor/tools/loss_scales.py --config-file configs/synthetic_ae_adaanchor.yaml \\
        [--batches 8] [KEY VALUE ...]      # e.g. MODEL.WEIGHTS output/.../model_0000400.pth

For ``--batches`` training batches of the config's loader (the same batches for every term), each loss term
of the model's loss dict (as weighted by the config) is back-propagated alone, and the L2 norm of its
gradient with respect to the backbone outputs (the features every head shares) is taken. Printed per term:
the mean loss value and the mean gradient norm; then the gradient norm of each *group* (the terms sharing a
prefix up to the second underscore: ``loss_keypoint_*``, ``loss_tag_*``, ``loss_center_*``, ...). The last line
is a JSON object: ``value/<term>``, ``grad/<term>``, ``group_grad/<group>``.

Calibration rule used for the AE configs (projects/AdaAnchor/README.md): two anchors that share the other
heads should weigh their anchor losses so that the ratio anchor-group gradient / tag-group gradient is the
same for both; a ratio far from the baseline's hands the backbone to one task. The model runs in training
mode (BatchNorm batch statistics), from MODEL.WEIGHTS when given, else from its initialisation; SEED fixes
the initialisation and the batches.
"""

import argparse
import json
import logging
import os
import sys
from collections import defaultdict

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from detectron2.utils.env import seed_all_rng  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from adaanchor.engine import AdaAnchorTrainer, build_cfg  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--batches", type=int, default=8, help="training batches averaged over")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error("--batches must be >= 1")
    return args


def loss_group(term: str) -> str:
    """``loss_keypoint_offset`` -> ``loss_keypoint``; a term without a second underscore is its own group."""
    parts = term.split("_")
    return "_".join(parts[:2])


def forward_with_features(model, batch):
    """The model's loss dict on ``batch`` and the backbone outputs that took part in it."""
    features = {}
    backbone_forward = model.backbone.forward

    def keep_features(*args, **kwargs):
        out = backbone_forward(*args, **kwargs)
        features.update(out)
        return out

    model.backbone.forward = keep_features
    try:
        with EventStorage():
            losses = model(batch)
    finally:
        model.backbone.forward = backbone_forward
    return losses, [f for f in features.values() if f.requires_grad]


def gradient_norm(loss, features) -> float:
    """L2 norm of d loss / d features over all feature maps (the graph is kept for the next term)."""
    grads = torch.autograd.grad(loss, features, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None) + 0.0))


def measure(cfg, batches: int):
    """Mean loss value and feature-gradient norm per term, and per group (the sum of its terms: a group's
    terms pull together, so its norm is not the sum of theirs)."""
    seed_all_rng(cfg.SEED)  # the same model and batches in every run of one config
    model = AdaAnchorTrainer.build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        AdaAnchorCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    model.train()
    values, grads, group_grads = defaultdict(list), defaultdict(list), defaultdict(list)
    loader = iter(AdaAnchorTrainer.build_train_loader(cfg))
    for _ in range(batches):
        losses, features = forward_with_features(model, next(loader))
        for term, value in losses.items():
            values[term].append(float(value.detach()))
            grads[term].append(gradient_norm(value, features))
        for group in sorted({loss_group(t) for t in losses}):
            members = [v for t, v in losses.items() if loss_group(t) == group]
            group_grads[group].append(gradient_norm(sum(members), features))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return tuple({k: mean(v) for k, v in d.items()} for d in (values, grads, group_grads))


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args.config_file, args.opts)
    values, grads, group_grads = measure(cfg, args.batches)
    print(f"{'term':<32} {'value':>12} {'feature grad':>14}")
    for term in sorted(values):
        print(f"{term:<32} {values[term]:>12.5g} {grads[term]:>14.5g}")
    for group in sorted(group_grads):
        print(f"{group:<32} {'':>12} {group_grads[group]:>14.5g}")
    figures = {f"value/{t}": v for t, v in values.items()}
    figures.update({f"grad/{t}": v for t, v in grads.items()})
    figures.update({f"group_grad/{g}": v for g, v in group_grads.items()})
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    setup_logger(name="adaanchor")  # here, not in main(): it stops the logger's records propagating to the root
    logging.getLogger("detectron2").setLevel(logging.WARNING)
    sys.exit(main())
