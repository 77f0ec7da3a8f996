"""``benchmark.py grouping``: bottom-up (Associative Embedding) decoding plus grouping of one image, CPU.

Trained-like maps of P people (default 30) and K keypoint types (default 17, COCO): for AdaAnchor, confident
logits (4) in the 3 x 3 cells around each joint and -8 elsewhere, coarse offsets pointing to the joint
(+ N(0, 0.1) px), local offsets ~ N(0, 0.05) px; for the heatmap anchor, a Gaussian (sigma 2) per joint. The
tag map of each type holds the person's id (+ N(0, 0.05)) around its joints. Timed, per image: the
criterion's decoding (gamma 0.1, merge, top 30 per type; heatmap: max-pool peaks, top 30, quarter-pixel
shift), reading the tags at the detections, and :func:`adaanchor.bottom_up.group_by_tags` in the order
derived from the dataset's skeleton. ``ms_per_image`` = AdaAnchor's decoding + grouping (target <= 10 ms).
"""

import statistics
import time

import numpy as np
import torch

from adaanchor.anchor import AdaAnchor, HeatmapAnchor
from adaanchor.bottom_up import group_by_tags, joint_order_from_skeleton
from adaanchor.data.keypoints import COCO_SPEC, CROWDPOSE_SPEC


def add_arguments(parser):
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--keypoints", choices=("coco", "crowdpose"), default="coco")
    parser.add_argument("--size", type=int, default=128, help="map height = width, feature-map px (stride 4: 512 px)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)


def _maps(num_people: int, spec, size: int, generator):
    k = spec.num_keypoints
    joints = torch.rand(num_people, k, 2, generator=generator) * (size - 8) + 4  # feature px
    cell = torch.arange(size) + 0.5
    ys, xs = torch.meshgrid(cell, cell, indexing="ij")
    logits = torch.full((k, size, size), -8.0)
    coarse = torch.zeros(k, 2, size, size)
    heat = torch.zeros(k, size, size)
    tag = torch.zeros(k, size, size)
    for p in range(num_people):
        for t in range(k):
            x, y = joints[p, t]
            near = ((xs - x).abs() <= 1.5) & ((ys - y).abs() <= 1.5)
            logits[t][near] = 4.0
            coarse[t, 0][near] = (x - xs)[near]
            coarse[t, 1][near] = (y - ys)[near]
            heat[t] = torch.maximum(heat[t], torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8))
            tag[t][((xs - x).abs() <= 2.5) & ((ys - y).abs() <= 2.5)] = float(p)
    coarse += 0.1 * torch.randn(coarse.shape, generator=generator)
    local = 0.05 * torch.randn(k, 2, size, size, generator=generator)
    tag += 0.05 * torch.randn(tag.shape, generator=generator)
    ada = torch.cat([logits, coarse.reshape(2 * k, size, size), local.reshape(2 * k, size, size)])[None]
    return {"adaanchor": ada, "heatmap": heat[None]}, tag


def _decode_and_group(criterion, maps, tag_maps, order):
    detections = criterion.decode(maps)  # (1, K, D)
    k, size = tag_maps.shape[0], tag_maps.shape[-1]
    cells = detections.anchor_index[0].clamp(min=0)  # tags read at the detection's cell
    tags = torch.gather(tag_maps.reshape(k, size * size), 1, cells)
    scores = torch.where(detections.valid[0], detections.scores[0], torch.zeros_like(detections.scores[0]))
    return group_by_tags(
        detections.positions[0].numpy(), scores.numpy(), tags[..., None].numpy(), order, detection_threshold=0.1
    )


def run(args):
    torch.set_num_threads(args.threads)
    spec = COCO_SPEC if args.keypoints == "coco" else CROWDPOSE_SPEC
    k = spec.num_keypoints
    order = joint_order_from_skeleton(k, spec.skeleton_indices)
    criteria = {
        "adaanchor": AdaAnchor(num_types=k, confidence_threshold=0.1, detections=30),
        "heatmap": HeatmapAnchor(num_types=k, nms_kernel=5, threshold=0.1, detections=30),
    }
    maps, tag_maps = _maps(args.people, spec, args.size, torch.Generator().manual_seed(0))
    times = {name: [] for name in criteria}
    people = {}
    with torch.no_grad():
        for i in range(args.repeats + 3):
            for name, criterion in criteria.items():  # interleaved
                start = time.perf_counter()
                poses, _ = _decode_and_group(criterion, maps[name], tag_maps, order)
                if i >= 3:
                    times[name].append(time.perf_counter() - start)
                people[name] = len(poses)
    figures = {f"{name}_ms": 1e3 * statistics.median(t) for name, t in times.items()}
    figures.update({f"{name}_people": n for name, n in people.items()})
    figures.update(people_in_image=args.people, keypoint_types=k, threads=args.threads)
    figures["ms_per_image"] = figures["adaanchor_ms"]
    for name in criteria:
        print(f"{name}: decoding + grouping {figures[f'{name}_ms']:.2f} ms per image, {people[name]} people found")
    return figures
