"""``benchmark.py inference``: DEKR-AdaAnchor vs DEKR (heatmap-anchor) inference cost, in one run.

Figures (CPU, and CUDA when present), medians over ``--repeats`` after ``--warmup`` runs:

1. end to end: ``model([input])`` in eval mode on the same input, AdaAnchor vs heatmap-anchor model with the
   same backbone and heads (the config's, HRNet-W32 at 512 by default); ``ratio`` = AdaAnchor / heatmap.
   The network runs for real, but its maps are then replaced by maps holding ``--people`` people as a
   trained model would give them: untrained weights would make the decoders' work meaningless (an
   untrained AdaAnchor confidence sits at the 0.01 prior, at gamma, everywhere; an untrained centre heatmap
   has no peak at all);
2. network forward of HRNet-W32 at 512 with the deformable (adaptive) vs plain-conv regression blocks;
3. post-processing alone (centre decoding and merge, poses from offsets, scoring, pose NMS, mapping back)
   on maps that hold ``--people`` well-separated people (each with a trained-like cluster of confident
   anchors), for both centre criteria.
"""

import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]


def add_arguments(parser):
    parser.add_argument("--config-file", default=str(REPO / "configs" / "crowdpose_dekr_adaanchor.yaml"))
    parser.add_argument("--size", type=int, default=512, help="test short side = square input side, input px")
    parser.add_argument("--people", type=int, default=30, help="people in the post-processing maps")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _median_seconds(fns, repeats, warmup, sync=lambda: None):
    """Median seconds of each function in ``fns`` (a dict), run interleaved so that drift of the machine's
    speed during the measurement affects all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _build(config_file, device, *opts):
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    import adaanchor.modeling  # noqa: F401
    from adaanchor.config import add_adaanchor_config

    cfg = get_cfg()
    add_adaanchor_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(["MODEL.DEVICE", device, *opts])
    model = build_model(cfg)
    model.eval()
    return model


def _people_maps(model, people: int, size: int, generator):
    """Maps of one ``size`` x ``size`` input with ``people`` people on a grid, as a trained model would
    give them: a cluster of confident anchors (AdaAnchor: 3x3 cells around each centre, offsets to the
    centre; heatmap: a Gaussian peak), keypoint offsets to a pose around the centre, keypoint heatmaps."""
    stride = model.stride
    h = w = size // stride
    k = model.num_keypoints
    side = int(people**0.5 + 0.999)
    cells = (torch.arange(side) + 0.5) * (w / side)
    centres = torch.stack(torch.meshgrid(cells, cells, indexing="xy"), -1).reshape(-1, 2)[:people]
    centres = centres + torch.rand(centres.shape, generator=generator) - 0.5  # off cell borders: no tied peaks
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    grid = torch.stack([xs, ys], 0)  # (2, h, w)
    nearest = ((grid.view(2, -1, 1) - centres.t().view(2, 1, -1)) ** 2).sum(0).argmin(1).view(h, w)
    to_centre = centres.t()[:, nearest] - grid  # (2, h, w)
    distance = to_centre.norm(dim=0)
    pose = torch.randn(k, 2, generator=generator) * (w / side / 5)
    offsets = (to_centre[None] + pose[:, :, None, None]).reshape(1, 2 * k, h, w)
    heatmaps = torch.rand(1, k, h, w, generator=generator) * 0.1 + 0.5
    if model.center_criterion.num_channels == 1:
        centre_maps = torch.exp(-(distance**2) / 8)[None, None]
    else:
        confidence = torch.where(distance <= 1.5, 4.0, -8.0)  # logits: ~9 confident anchors per person
        coarse = to_centre + 0.1 * torch.randn(2, h, w, generator=generator)
        local = 0.05 * torch.randn(2, h, w, generator=generator)
        centre_maps = torch.cat([confidence[None], coarse, local])[None]
    device = model.device
    return {
        "keypoint_heatmaps": heatmaps.to(device),
        "center_maps": centre_maps.to(device),
        "offsets": offsets.to(device),
    }


def _figures(device, args, log):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    models = {
        "adaanchor": _build(args.config_file, device, "MODEL.ADAANCHOR.ENABLED", True),
        "heatmap": _build(args.config_file, device, "MODEL.ADAANCHOR.ENABLED", False),
    }
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, args.size, args.size), dtype=torch.uint8, generator=generator)
    inputs = [{"image": image.to(device), "height": 2 * args.size, "width": 2 * args.size}]
    out = {}
    with torch.no_grad():
        networks = {}
        for name, model in models.items():
            people_maps = _people_maps(model, args.people, args.size, generator)
            networks[name] = model.predict_maps

            def predict_people(images, network=networks[name], people_maps=people_maps):
                network(images)  # the real forward, then the maps of a trained model
                return {k: v.clone() for k, v in people_maps.items()}

            model.predict_maps = predict_people
            out[f"end_to_end_{name}_people"] = len(model(inputs)[0]["instances"])
        end_to_end = _median_seconds(
            {name: (lambda m=model: m(inputs)) for name, model in models.items()}, args.repeats, args.warmup, sync
        )
        for name, model in models.items():
            out[f"end_to_end_{name}_s"] = end_to_end[name]
            model.predict_maps = networks[name]
        log(
            f"[{device}] end to end ({args.people} people): AdaAnchor {out['end_to_end_adaanchor_s'] * 1e3:.1f} ms "
            f"({out['end_to_end_adaanchor_people']} poses), heatmap {out['end_to_end_heatmap_s'] * 1e3:.1f} ms "
            f"({out['end_to_end_heatmap_people']} poses)"
        )

        batch = models["adaanchor"].preprocess_image(inputs).tensor
        blocks = {
            block: _build(args.config_file, device, "MODEL.DEKR.OFFSET_BLOCK", block) for block in ("adaptive", "plain")
        }
        forward = _median_seconds(
            {block: (lambda m=model: m.predict_maps(batch)) for block, model in blocks.items()},
            args.repeats,
            args.warmup,
            sync,
        )
        for block in blocks:
            out[f"forward_{block}_s"] = forward[block]
        log(
            f"[{device}] network forward: adaptive {out['forward_adaptive_s'] * 1e3:.1f} ms, "
            f"plain {out['forward_plain_s'] * 1e3:.1f} ms"
        )

        for name, model in models.items():
            maps = _people_maps(model, args.people, args.size, generator)
            settings = model.inference_settings

            def postprocess(m=model, maps=maps, settings=settings):
                input_size = tuple(m.stride * n for n in maps["center_maps"].shape[-2:])  # the maps cover the input
                poses, scores = settings.postprocess(m.center_criterion, [(maps, (1.0, 1.0))], m.stride, input_size)
                poses[..., :2] *= 2.0  # back to the original image (its size is 2x the input here)
                return poses, scores

            poses, _ = postprocess()
            out[f"postprocess_{name}_s"] = _median_seconds({name: postprocess}, args.repeats * 3, args.warmup, sync)[
                name
            ]
            out[f"postprocess_{name}_people"] = int(poses.shape[0])
        log(
            f"[{device}] post-processing, {args.people} people: AdaAnchor "
            f"{out['postprocess_adaanchor_s'] * 1e3:.2f} ms ({out['postprocess_adaanchor_people']} poses), heatmap "
            f"{out['postprocess_heatmap_s'] * 1e3:.2f} ms ({out['postprocess_heatmap_people']} poses)"
        )
    return out


def run(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    figures = {
        "config": Path(args.config_file).name,
        "size": args.size,
        "people": args.people,
        "threads": torch.get_num_threads(),
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for key, value in _figures(device, args, print).items():
            figures[f"{device}_{key}"] = value
    figures["ratio"] = figures["cpu_end_to_end_adaanchor_s"] / figures["cpu_end_to_end_heatmap_s"]
    figures["forward_adaptive_over_plain"] = figures["cpu_forward_adaptive_s"] / figures["cpu_forward_plain_s"]
    print(
        f"ratio AdaAnchor / heatmap end to end (CPU): {figures['ratio']:.3f}; "
        f"adaptive / plain forward: {figures['forward_adaptive_over_plain']:.2f}"
    )
    return figures
