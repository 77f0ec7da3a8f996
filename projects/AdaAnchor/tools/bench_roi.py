"""``benchmark.py roi``: AdaAnchor's ROI keypoint head against Detectron2's heatmap head
(``KRCNNConvDeconvUpsampleHead``) on the same pooled ROI features, in one run.

Both heads are built from one config (default: the COCO Keypoint R-CNN, Detectron2's 8 x 512 conv trunk on
14 x 14 pooled FPN features) differing only in MODEL.ADAANCHOR.ENABLED, and timed alternately (ABBA):

- inference: the head's forward on R ROIs including decoding to ``pred_keypoints`` in image px (Detectron2's
  ``keypoint_rcnn_inference``, whose ``heatmaps_to_keypoints`` loops over ROIs in Python; AdaAnchor's batched
  m = 1 decoding), and the decoding alone from the maps;
- training: forward with the loss (targets from random ground-truth keypoints in the boxes) + backward.

JSON: ``ratio`` = AdaAnchor / heatmap inference time (target <= 1.0), ``decode_ratio``, ``training_ratio``
(target <= 1.10), the medians in ms, the ROI count and the thread count.
"""

import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]


def add_arguments(parser):
    parser.add_argument("--config-file", default=str(REPO / "configs" / "coco_krcnn_adaanchor.yaml"))
    parser.add_argument("--rois", type=int, default=100, help="ROIs per forward (one image)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per head and measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per head first")
    parser.add_argument("opts", nargs="*", default=[], help="config overrides: KEY VALUE ...")


def _inputs(cfg, rois: int, seed: int = 0):
    """Pooled features (R, C, S0, S0), and instances for training (proposals with keypoints) and inference."""
    from detectron2.structures import Boxes, Instances, Keypoints

    g = torch.Generator().manual_seed(seed)
    h = cfg.MODEL.ROI_KEYPOINT_HEAD
    size = (800, 1216)
    xy0 = torch.rand(rois, 2, generator=g) * torch.tensor([size[1] - 200.0, size[0] - 300.0])
    wh = torch.rand(rois, 2, generator=g) * torch.tensor([150.0, 250.0]) + torch.tensor([30.0, 50.0])
    boxes = torch.cat([xy0, xy0 + wh], dim=1)
    keypoints = torch.cat(
        [xy0[:, None] + torch.rand(rois, h.NUM_KEYPOINTS, 2, generator=g) * wh[:, None],
         torch.full((rois, h.NUM_KEYPOINTS, 1), 2.0)], dim=2,
    )  # fmt: skip
    features = torch.randn(rois, cfg.MODEL.FPN.OUT_CHANNELS, h.POOLER_RESOLUTION, h.POOLER_RESOLUTION, generator=g)
    train, test = Instances(size), Instances(size)
    train.proposal_boxes, train.gt_keypoints = Boxes(boxes), Keypoints(keypoints)
    test.pred_boxes = Boxes(boxes)
    return features, train, test


def _median_ms(values):
    return 1e3 * statistics.median(values)


def run(args):
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads import build_keypoint_head
    from detectron2.utils.events import EventStorage

    import adaanchor.modeling  # noqa: F401  (registers the head)
    from adaanchor.engine import build_cfg

    cfgs = {name: build_cfg(args.config_file, [*args.opts, "MODEL.ADAANCHOR.ENABLED", enabled])
            for name, enabled in (("adaanchor", True), ("heatmap", False))}  # fmt: skip
    features, train, test = _inputs(cfgs["adaanchor"], args.rois)
    shape = ShapeSpec(channels=features.shape[1], height=features.shape[2], width=features.shape[3])
    heads = {}
    for name, cfg in cfgs.items():
        torch.manual_seed(0)
        heads[name] = build_keypoint_head(cfg, shape)
    times = {f"{name}_{m}": [] for name in heads for m in ("inference", "decode", "training")}

    with torch.no_grad():
        maps = {name: head.eval().layers(features) for name, head in heads.items()}  # for decoding alone
    for i in range(args.warmup + args.repeats):
        order = list(heads) if i % 2 == 0 else list(reversed(heads))
        for name in order:
            head = heads[name]
            head.eval()
            with torch.no_grad():
                t0 = time.perf_counter()
                head(features, [test])
                t1 = time.perf_counter()
                _decode_only(name, head, maps[name], test)
                t2 = time.perf_counter()
            head.train()
            with EventStorage():
                t3 = time.perf_counter()
                losses = head(features, [train])
                sum(losses.values()).backward()
                t4 = time.perf_counter()
            head.zero_grad(set_to_none=True)
            if i >= args.warmup:
                times[f"{name}_inference"].append(t1 - t0)
                times[f"{name}_decode"].append(t2 - t1)
                times[f"{name}_training"].append(t4 - t3)
    figures = {"rois": args.rois, "threads": torch.get_num_threads(), "config": Path(args.config_file).name}
    figures.update({f"{key}_ms": _median_ms(values) for key, values in times.items()})
    for name in heads:
        print(
            f"{name}: inference {figures[f'{name}_inference_ms']:.1f} ms for {args.rois} ROIs (decoding "
            f"{figures[f'{name}_decode_ms']:.2f} ms), training forward + backward {figures[f'{name}_training_ms']:.1f} ms"
        )
    figures["ratio"] = figures["adaanchor_inference_ms"] / figures["heatmap_inference_ms"]
    figures["decode_ratio"] = figures["adaanchor_decode_ms"] / figures["heatmap_decode_ms"]
    figures["training_ratio"] = figures["adaanchor_training_ms"] / figures["heatmap_training_ms"]
    print(
        f"AdaAnchor / heatmap: inference {figures['ratio']:.3f}, decoding {figures['decode_ratio']:.3f}, "
        f"training step {figures['training_ratio']:.3f}"
    )
    return figures


def _decode_only(name, head, maps, instances) -> None:
    """Decoding of computed maps into ``pred_keypoints`` (image px), as each head's inference does it."""
    from detectron2.modeling.roi_heads.keypoint_head import keypoint_rcnn_inference

    if name == "heatmap":
        keypoint_rcnn_inference(maps, [instances])
    else:
        head.keypoints_in_image(maps, [instances])
