"""``benchmark.py inference``: inference cost of AdaAnchor vs the heatmap anchor in every host, split by stage,
against the number of people in the image, in one run (CPU, and CUDA when present).

Hosts (``--hosts``), each built twice from its config (``--<host>-config-file``, ``--<host>-opts``) with
MODEL.ADAANCHOR.ENABLED True / False and nothing else different:

- ``dekr``: DEKR, AdaAnchor person centres vs DEKR's centre heatmap (configs/crowdpose_dekr_adaanchor.yaml);
- ``ae``: Associative Embedding, AdaAnchor keypoints vs keypoint heatmaps (crowdpose_ae_adaanchor.yaml);
- ``roi``: Keypoint R-CNN, AdaAnchor's ROI keypoint head vs Detectron2's heatmap head (crowdpose_krcnn_adaanchor.yaml).

Every model runs its real inference (eval mode, no grad) on one random ``--size`` x ``--size`` input standing for
an original image twice that size, but what its untrained network predicts is replaced by what a trained model
gives for an image of P people (``--people``, each count measured on its own): untrained weights make decoding
meaningless (an untrained AdaAnchor confidence sits at its prior, DEKR's gamma, everywhere; an untrained heatmap
has no peak). DEKR: :func:`_people_maps`; AE: the maps of ``benchmark.py grouping`` (``bench_grouping._maps``);
both anchors of a host see the same people. ROI: the backbone's features are replaced by N(0, 1) features of the
same shapes, the real RPN and box head run on them, then P person boxes on a grid are the detections, so P is the
number of ROIs the keypoint head decodes (:func:`_roi_bench`). With a flip test on (``--dekr-opts
MODEL.DEKR.TEST.FLIP True``), the mirrored run gets the same maps: its cost is real, its poses are not.

Stages, median ms per image over ``--repeats`` runs after ``--warmup``, the two anchors alternating (ABBA) so
that drift of the machine's speed hits both; each stage is the exclusive wall time of the model methods it
names inside one inference call (the methods are wrapped; on CUDA each switch synchronises):

- bottom-up (DEKR, AE): ``preprocess`` (normalise, pad), ``backbone``, ``heads`` (the rest of
  ``predict_maps``), ``decoding`` (the criterion's ``decode``), ``grouping`` (the rest of ``poses``: DEKR's pose
  assembly from the offsets and pose NMS; AE's tag reading and ``group_by_tags``), ``mapping back`` (the rest of
  ``model([input])``: poses to original-image px, ``Instances``);
- roi: ``preprocess``, ``backbone``, ``detector`` (RPN, box head and the ROI heads' glue: the rest of the call),
  ``keypoint head`` (ROI pooling, conv trunk, deconvolution), ``decoding`` (AdaAnchor's ``keypoints_in_image``
  vs Detectron2's ``keypoint_rcnn_inference``), ``mapping back`` (``detector_postprocess``); the call is
  ``model.inference(inputs, do_postprocess=False)`` then ``model._postprocess``, which is what ``model(inputs)``
  runs.

``end_to_end_ms`` is the median of the per-run sums of the stages (so not exactly the sum of the stage
medians). ``peak_memory_mb``: the most tensor memory the call holds at once above what was allocated before it
(weights, input and the replaced outputs excluded), from one extra, untimed run: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the running sum of the allocations and frees that torch.profiler
records for torch's CPU allocator (``profile_memory``); memory outside that allocator (numpy arrays of AE's
grouping, the interpreter) is not counted.

Worst case (bottom-up hosts, AdaAnchor): the criterion's decoding of maps with every cell above gamma (logits
logit(gamma) + 0.01 + |N(0, 1)|) and random offsets (N(0, 4^2) feature px), for an input of
``--worst-case-input`` W H (768 x 512: 192 x 128 cells at stride 4), as an untrained or poorly trained model
gives them: the bounded ``decode`` (target <= 10 ms) and, for reference, the merge of every candidate above
gamma (``candidates_per_detection`` = all cells).

DEKR only, as before: the network forward with the deformable (adaptive) vs plain-conv regression blocks.

JSON (last line of benchmark.py): ``ratio`` = DEKR's AdaAnchor / heatmap end-to-end time on CPU, ``ae_ratio``,
``roi_ratio`` likewise, all at ``ratio_people`` people (30 if measured, else the largest count);
``forward_adaptive_over_plain``, ``cpu_forward_{adaptive,plain}_s``; ``dekr_worst_case_decode_ms``,
``ae_worst_case_decode_ms`` (CPU; ``*_unbounded_decode_ms`` for reference); and per device and host
``<device>.<host>.people.<P>.<anchor>.<stage>_ms`` / ``end_to_end_ms`` / ``peak_memory_mb`` / ``poses``,
``<device>.<host>.people.<P>.ratio`` and ``<device>.<host>.worst_case``.
"""

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, Sequence, Tuple

import torch

from adaanchor.anchor import AdaAnchor, CandidateEstimates, decode_multiple_targets
from bench_grouping import _maps as ae_people_maps

REPO = Path(__file__).resolve().parents[3]
HOSTS = ("dekr", "ae", "roi")
ANCHORS = ("adaanchor", "heatmap")
DEFAULT_CONFIGS = {
    "dekr": "crowdpose_dekr_adaanchor.yaml",
    "ae": "crowdpose_ae_adaanchor.yaml",
    "roi": "crowdpose_krcnn_adaanchor.yaml",
}
BOTTOM_UP_STAGES = ("preprocess", "backbone", "heads", "decoding", "grouping", "mapping back")
ROI_STAGES = ("preprocess", "backbone", "detector", "keypoint head", "decoding", "mapping back")
RATIO_PEOPLE = 30
WORST_CASE_TARGET_MS = 10.0
WORST_CASE_OFFSET_STD = 4.0  # feature px


def add_arguments(parser):
    parser.add_argument("--hosts", nargs="+", choices=HOSTS, default=list(HOSTS))
    parser.add_argument("--people", nargs="+", type=int, default=[1, 5, 10, 30, 60], help="people per image")
    parser.add_argument("--size", type=int, default=512, help="square input side (test short side), input px")
    parser.add_argument(
        "--worst-case-input", nargs=2, type=int, default=[768, 512], metavar=("W", "H"),
        help="input of the worst-case decoding, input px",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model and people count")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per model and people count first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    for host in HOSTS:
        flags = ("--config-file", "--dekr-config-file") if host == "dekr" else (f"--{host}-config-file",)
        parser.add_argument(*flags, dest=f"{host}_config_file", default=str(REPO / "configs" / DEFAULT_CONFIGS[host]))
        parser.add_argument(f"--{host}-opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides")


def _interleaved_medians(fns: Dict[str, Callable[[], Dict[str, float]]], repeats: int, warmup: int):
    """Median of every figure of each function in ``fns`` (name -> callable returning {figure: value}), the
    functions run alternately in ABBA order, so that drift of the machine's speed affects all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    runs = {name: [] for name in fns}
    names = list(fns)
    for i in range(repeats):
        for name in names if i % 2 == 0 else reversed(names):
            runs[name].append(fns[name]())
    return {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}


def _median_seconds(fns, repeats, warmup, sync=lambda: None):
    """Median seconds of each function in ``fns`` (a dict), interleaved as :func:`_interleaved_medians`."""

    def timed(fn):
        def seconds():
            start = time.perf_counter()
            fn()
            sync()
            return {"s": time.perf_counter() - start}

        return seconds

    medians = _interleaved_medians({name: timed(fn) for name, fn in fns.items()}, repeats, warmup)
    return {name: figures["s"] for name, figures in medians.items()}


class _StageClock:
    """Exclusive wall time of named stages inside one call.

    :meth:`wrap` replaces a method of an object by a timed call of it: the time spent in it, less that of the
    wrapped methods it calls, goes to its stage; time outside every wrapped method goes to ``root``. Outside
    :meth:`time`, wrapped methods run untimed.
    """

    def __init__(self, stages: Sequence[str], root: str, sync: Callable[[], None]):
        self.stages, self.root, self.sync = tuple(stages), root, sync
        self._stack, self._seconds, self._mark = [], {}, 0.0

    def wrap(self, owner, attribute: str, stage: str) -> None:
        inner = getattr(owner, attribute)

        def timed(*args, **kwargs):
            if not self._stack:
                return inner(*args, **kwargs)
            self._switch(stage)
            try:
                return inner(*args, **kwargs)
            finally:
                self._switch(None)

        setattr(owner, attribute, timed)

    def _switch(self, enter):
        """Charge the time since the last switch to the current stage, then enter ``enter`` (None: leave it)."""
        self.sync()
        now = time.perf_counter()
        current = self._stack[-1]
        self._seconds[current] += now - self._mark
        self._mark = now
        if enter is None:
            self._stack.pop()
        else:
            self._stack.append(enter)

    def time(self, fn):
        """One call of ``fn``: ({stage: seconds} for every stage, 0 if not entered, and ``end_to_end``), its result."""
        self._seconds = dict.fromkeys(self.stages, 0.0)
        self.sync()
        self._stack, self._mark = [self.root], time.perf_counter()
        result = fn()
        self._switch(None)
        self._seconds["end_to_end"] = sum(self._seconds.values())
        return self._seconds, result


@dataclass
class _Bench:
    """One model made ready for timing: ``load(people)`` makes its next runs see an image of that many people,
    ``run()`` is one inference on the benchmark input and returns the number of poses, ``clock`` times it."""

    clock: _StageClock
    run: Callable[[], int]
    load: Callable[[int], None]


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


def _image(size: int) -> torch.Tensor:
    """(3, size, size) uint8 random input image (the benchmark's input, input px)."""
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _grid_side(people: int) -> int:
    """Side of the smallest square grid with a cell for each of ``people``."""
    return math.isqrt(people - 1) + 1


def _grid_centres(people: int, extent: float, generator) -> torch.Tensor:
    """(P, 2) x, y of ``people`` centres on a square grid over an ``extent`` x ``extent`` square (in its unit),
    each moved by up to half a unit (off cell borders: no tied peaks)."""
    side = _grid_side(people)
    cells = (torch.arange(side) + 0.5) * (extent / side)
    centres = torch.stack(torch.meshgrid(cells, cells, indexing="xy"), -1).reshape(-1, 2)[:people]
    return centres + torch.rand(centres.shape, generator=generator) - 0.5


def _people_maps(model, people: int, size: int, generator):
    """DEKR's maps of one ``size`` x ``size`` input (input px) with ``people`` people on a grid, as a trained model
    would give them, at the model's stride: a cluster of confident anchors (AdaAnchor: 3x3 cells around each
    centre, offsets to the centre; heatmap: a Gaussian peak), keypoint offsets to a pose around the centre
    (feature px), keypoint heatmaps. Returns ``predict_maps``' dict for a batch of 1."""
    stride = model.stride
    h = w = size // stride
    k = model.num_keypoints
    centres = _grid_centres(people, w, generator)  # feature px
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    grid = torch.stack([xs, ys], 0)  # (2, h, w)
    nearest = ((grid.view(2, -1, 1) - centres.t().view(2, 1, -1)) ** 2).sum(0).argmin(1).view(h, w)
    to_centre = centres.t()[:, nearest] - grid  # (2, h, w)
    distance = to_centre.norm(dim=0)
    pose = torch.randn(k, 2, generator=generator) * (w / _grid_side(people) / 5)
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


def _ae_maps(model, people: int, size: int, generator):
    """AE's maps of one ``size`` x ``size`` input (input px) with ``people`` people: ``bench_grouping``'s
    trained-like maps at the model's stride, ``anchors`` (1, C, h, w) for the model's criterion and ``tags``
    (1, K, h, w)."""
    maps, tags = ae_people_maps(
        people, SimpleNamespace(num_keypoints=model.num_keypoints), size // model.stride, generator
    )
    anchors = maps["adaanchor" if isinstance(model.criterion, AdaAnchor) else "heatmap"]
    return {"anchors": anchors.to(model.device), "tags": tags[None].to(model.device)}


def _bottom_up_bench(model, inputs, make_maps: Callable[[int], Dict[str, torch.Tensor]], sync) -> _Bench:
    """A DEKR / AE model with its stages wrapped; its network runs for real, then ``predict_maps`` returns the maps
    that ``make_maps(people)`` gave at the last ``load``."""
    clock = _StageClock(BOTTOM_UP_STAGES, "mapping back", sync)
    criterion = model.center_criterion if hasattr(model, "center_criterion") else model.criterion
    clock.wrap(model, "preprocess_image", "preprocess")
    clock.wrap(model.backbone, "forward", "backbone")
    clock.wrap(model, "predict_maps", "heads")
    clock.wrap(criterion, "decode", "decoding")
    clock.wrap(model, "poses", "grouping")
    network, maps = model.predict_maps, {}

    def predict_people(images):
        network(images)
        return maps  # as they are: inference does not write into them

    model.predict_maps = predict_people
    return _Bench(clock, lambda: len(model(inputs)[0]["instances"]), lambda people: maps.update(make_maps(people)))


def _person_boxes(people: int, size: int, generator) -> torch.Tensor:
    """(P, 4) XYXY boxes, input px, of ``people`` people on the grid of :func:`_grid_centres` in a ``size`` x
    ``size`` input: 0.7 x 0.9 of a grid cell each."""
    centres = _grid_centres(people, size, generator)
    half = torch.tensor([0.35, 0.45]) * (size / _grid_side(people))
    return torch.cat([centres - half, centres + half], dim=1).clamp(0, size)


def _roi_bench(model, inputs, size: int, sync) -> _Bench:
    """A Keypoint R-CNN model with its stages wrapped. Its backbone runs for real, then passes on N(0, 1) features
    of the same shapes (an untrained ResNet with FrozenBN, without ImageNet weights, gives features of ~1e4, on
    which the RPN keeps a single proposal and Detectron2's heatmap decoding overflows); its RPN and box head run
    for real on them, then the detections are the person boxes of :func:`_person_boxes` given at the last
    ``load``, so the keypoint head runs on P ROIs."""
    from detectron2.structures import Boxes, Instances

    clock = _StageClock(ROI_STAGES, "detector", sync)
    heads = model.roi_heads
    backbone = model.backbone.forward
    with torch.no_grad():
        shapes = {name: f.shape for name, f in backbone(model.preprocess_image(inputs).tensor).items()}
    g = torch.Generator().manual_seed(0)
    unit = {name: torch.randn(shape, generator=g).to(model.device) for name, shape in shapes.items()}

    def unit_features(images):
        backbone(images)
        return unit

    model.backbone.forward = unit_features
    clock.wrap(model, "preprocess_image", "preprocess")
    clock.wrap(model.backbone, "forward", "backbone")
    clock.wrap(heads.keypoint_pooler, "forward", "keypoint head")
    clock.wrap(heads.keypoint_head, "layers", "keypoint head")
    clock.wrap(heads.keypoint_head, "forward", "decoding")
    clock.wrap(model, "_postprocess", "mapping back")
    detector, boxes = heads._forward_box, {}
    image_sizes = [tuple(x["image"].shape[-2:]) for x in inputs]

    def detect_people(features, proposals):
        detector(features, proposals)
        people = Instances(image_sizes[0])
        people.pred_boxes = Boxes(boxes["xyxy"].clone())  # a new tensor: detector_postprocess scales it in place
        people.scores = torch.linspace(0.99, 0.5, len(boxes["xyxy"]), device=model.device)
        people.pred_classes = torch.zeros(len(boxes["xyxy"]), dtype=torch.long, device=model.device)
        return [people]

    def run():
        results = model.inference(inputs, do_postprocess=False)
        return len(model._postprocess(results, inputs, image_sizes)[0]["instances"])

    def load(people):
        boxes["xyxy"] = _person_boxes(people, size, torch.Generator().manual_seed(people)).to(model.device)

    heads._forward_box = detect_people
    return _Bench(clock, run, load)


def _peak_memory_mb(fn, device: str) -> float:
    """Peak tensor memory one call of ``fn`` holds above what was allocated before it, MiB (module docstring)."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cpu = (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP)
    records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() in cpu]
    held = peak = 0
    for record in sorted(records, key=lambda e: e.start_ns()):
        held += record.nbytes()
        peak = max(peak, held)
    return peak / 2**20


def _worst_case_ms(criterion, map_size: Tuple[int, int], device: str, args, sync) -> Dict[str, float]:
    """Median ms of AdaAnchor decoding (bounded ``decode`` and the merge of every candidate) on (1, C, h, w) maps
    of ``map_size`` (h, w) cells with every cell above gamma and random offsets (module docstring)."""
    h, w = map_size
    k = criterion.num_types
    g = torch.Generator().manual_seed(0)
    gamma = criterion.confidence_threshold
    logits = math.log(gamma / (1 - gamma)) + 0.01 + torch.randn(1, k, h, w, generator=g).abs()
    offsets = WORST_CASE_OFFSET_STD * torch.randn(1, criterion.num_channels - k, h, w, generator=g)
    maps = torch.cat([logits, offsets], dim=1).to(device)
    _, coarse, local = criterion.split(maps)

    def unbounded():
        return decode_multiple_targets(
            criterion.confidence(maps), CandidateEstimates(coarse, local), threshold=gamma,
            merge_radius=criterion.merge_radius, max_detections=criterion.max_detections,
            candidates_per_detection=h * w,
        )  # fmt: skip

    seconds = _median_seconds(
        {"decode": lambda: criterion.decode(maps), "unbounded_decode": unbounded}, args.repeats, args.warmup, sync
    )
    return {f"{name}_ms": 1e3 * s for name, s in seconds.items()}


def _host_figures(host: str, device: str, args, log) -> dict:
    """Stage medians per people count for both anchors of one host, their ratio, and the worst-case decoding."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    config = getattr(args, f"{host}_config_file")
    opts = getattr(args, f"{host}_opts")
    models = {a: _build(config, device, *opts, "MODEL.ADAANCHOR.ENABLED", a == "adaanchor") for a in ANCHORS}
    inputs = [{"image": _image(args.size).to(device), "height": 2 * args.size, "width": 2 * args.size}]
    if host == "roi":
        benches = {a: _roi_bench(m, inputs, args.size, sync) for a, m in models.items()}
    else:
        people_maps = _people_maps if host == "dekr" else _ae_maps
        benches = {
            a: _bottom_up_bench(
                m, inputs, lambda p, m=m: people_maps(m, p, args.size, torch.Generator().manual_seed(p)), sync
            )
            for a, m in models.items()
        }
    stages = benches["adaanchor"].clock.stages
    out = {"config": Path(config).name, "stages": list(stages), "people": {}}

    def figures(bench):
        seconds, poses = bench.clock.time(bench.run)
        return {**{f"{stage.replace(' ', '_')}_ms": 1e3 * s for stage, s in seconds.items()}, "poses": poses}

    with torch.no_grad():
        for people in args.people:
            for bench in benches.values():
                bench.load(people)
            row = _interleaved_medians(
                {a: (lambda b=b: figures(b)) for a, b in benches.items()}, args.repeats, args.warmup
            )
            for anchor, bench in benches.items():
                row[anchor]["poses"] = int(row[anchor]["poses"])
                row[anchor]["peak_memory_mb"] = _peak_memory_mb(bench.run, device)
            row["ratio"] = row["adaanchor"]["end_to_end_ms"] / row["heatmap"]["end_to_end_ms"]
            out["people"][str(people)] = row
        if host != "roi":
            model = models["adaanchor"]
            criterion = model.center_criterion if host == "dekr" else model.criterion
            width, height = args.worst_case_input
            map_size = (height // model.stride, width // model.stride)
            out["worst_case"] = {"map": list(map_size), **_worst_case_ms(criterion, map_size, device, args, sync)}
    _log_table(host, device, args, out, log)
    return out


def _log_table(host: str, device: str, args, out: dict, log) -> None:
    """A table of one host's figures: a row per people count and anchor, a column per stage."""
    columns = [*out["stages"], "end to end"]
    widths = [max(len(c), 8) for c in columns]
    log(
        f"[{device}] {host} ({out['config']}, {args.size} x {args.size} input px): median ms per image over "
        f"{args.repeats} runs"
    )
    log(
        f"{'people':>6}  {'anchor':<9}  "
        + "  ".join(f"{c:>{n}}" for c, n in zip(columns, widths))
        + "  peak MiB  poses"
    )
    for people, row in out["people"].items():
        for anchor in ANCHORS:
            values = [row[anchor][f"{c.replace(' ', '_')}_ms"] for c in columns]
            log(
                f"{people:>6}  {anchor:<9}  " + "  ".join(f"{v:>{n}.2f}" for v, n in zip(values, widths))
                + f"  {row[anchor]['peak_memory_mb']:>8.1f}  {row[anchor]['poses']:>5}"
            )  # fmt: skip
        indent = sum(widths[:-1]) + 2 * (len(widths) - 1)  # to the end-to-end column
        log(f"{'':>6}  {'ratio':<9}  " + " " * indent + f"{row['ratio']:>{widths[-1]}.3f}")
    if "worst_case" in out:
        worst = out["worst_case"]
        log(
            f"[{device}] {host} worst-case AdaAnchor decoding ({worst['map'][0]} x {worst['map'][1]} cells, every cell "
            f"above gamma, random offsets): {worst['decode_ms']:.2f} ms (target <= {WORST_CASE_TARGET_MS:.0f} ms), "
            f"merging every candidate: {worst['unbounded_decode_ms']:.2f} ms"
        )


def _dekr_forward(device: str, args, log) -> Dict[str, float]:
    """Median seconds of DEKR's network forward with adaptive vs plain-conv regression blocks."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    blocks = {
        block: _build(args.dekr_config_file, device, *args.dekr_opts, "MODEL.DEKR.OFFSET_BLOCK", block)
        for block in ("adaptive", "plain")
    }
    batch = blocks["adaptive"].preprocess_image([{"image": _image(args.size).to(device)}]).tensor
    with torch.no_grad():
        forward = _median_seconds(
            {block: (lambda m=model: m.predict_maps(batch)) for block, model in blocks.items()},
            args.repeats, args.warmup, sync,
        )  # fmt: skip
    log(
        f"[{device}] DEKR network forward: adaptive {forward['adaptive'] * 1e3:.1f} ms, "
        f"plain {forward['plain'] * 1e3:.1f} ms"
    )
    return forward


def run(args):
    if min(args.people) < 1:
        raise ValueError(f"--people: counts must be >= 1, got {args.people}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.size % 32:
        raise ValueError(f"--size must be a multiple of 32 (the backbones' size divisibility), got {args.size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    ratio_people = RATIO_PEOPLE if RATIO_PEOPLE in args.people else max(args.people)
    figures = {
        "hosts": list(args.hosts),
        "size": args.size,
        "people": list(args.people),
        "ratio_people": ratio_people,
        "threads": torch.get_num_threads(),
        "worst_case_input": list(args.worst_case_input),
        "worst_case_target_ms": WORST_CASE_TARGET_MS,
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        figures[device] = {host: _host_figures(host, device, args, print) for host in args.hosts}
        if "dekr" in args.hosts:
            for block, seconds in _dekr_forward(device, args, print).items():
                figures[f"{device}_forward_{block}_s"] = seconds
    summary = []
    for host, key in (("dekr", "ratio"), ("ae", "ae_ratio"), ("roi", "roi_ratio")):
        if host in args.hosts:
            figures[key] = figures["cpu"][host]["people"][str(ratio_people)]["ratio"]
            summary.append(f"{host} {figures[key]:.3f}")
            if host != "roi":
                for name in ("decode_ms", "unbounded_decode_ms"):
                    figures[f"{host}_worst_case_{name}"] = figures["cpu"][host]["worst_case"][name]
    if "dekr" in args.hosts:
        figures["forward_adaptive_over_plain"] = figures["cpu_forward_adaptive_s"] / figures["cpu_forward_plain_s"]
        summary.append(f"DEKR adaptive / plain forward {figures['forward_adaptive_over_plain']:.2f}")
    print(f"AdaAnchor / heatmap end to end (CPU, {ratio_people} people): " + ", ".join(summary))
    return figures
