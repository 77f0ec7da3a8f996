"""``benchmark.py assignment``: the training overhead of AdaAnchor against the heatmap-anchor baseline.

Times, in one run and interleaved, the per-batch work that differs between the two:

- AdaAnchor: ``sigmoid`` of the confidence logits, assignment (with lazily evaluated, locally refined
  estimates), the AdaAnchor losses, and their backward;
- heatmap anchor: heatmap targets (Gaussian, sigma 2, background weight 0.1), the weighted MSE loss, and its
  backward.

Inputs are random, with every prediction requiring grad: persons at random places with K keypoints scattered
around them (about 15% unlabelled, some outside the map), predicted heatmaps ~ U(0, 1), and two regimes for
the AdaAnchor head outputs:

- ``noise``: i.i.d. confidence logits ~ N(-4.6, 1.5) (the focal prior), coarse offsets ~ N(0, 3 px), local
  offsets ~ N(0, 0.5 px): no spatial structure at all, the worst case for the assignment's pruning;
- ``trained``: what a head that has started to learn outputs: logits ~ N(1, 1) within 2 px of a labelled
  target and ~ N(-4.6, 0.5) elsewhere, coarse offsets pointing to the nearest labelled target of the type
  (+ N(0, 0.5 px)) within 8 px of one and ~ N(0, 1 px) elsewhere, local offsets ~ N(0, 0.3 px).

Timings are medians over repeats, the two methods interleaved.

Peak memory on CPU is the growth of the process's resident set (VmHWM after the step, reset through
/proc/self/clear_refs, minus VmRSS before it, after malloc_trim), measured in a fresh subprocess per
configuration so that nothing is cached from earlier steps; on CUDA it is torch.cuda.max_memory_allocated
above the memory held before the step.
"""

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from adaanchor.anchor import (  # noqa: E402
    CandidateEstimates,
    adaanchor_losses,
    assign_adaptive_anchors,
    heatmap_loss,
    heatmap_targets,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=8, help="images per batch (B)")
    parser.add_argument("--types", type=int, default=14, help="keypoint types (K)")
    parser.add_argument("--size", type=int, default=128, help="map height = width, feature-map px")
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 10, 30], help="persons per image")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per configuration (median)")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (default 1: steadier figures on a shared machine)"
    )
    parser.add_argument("--no-local-refinement", action="store_true", help="AdaAnchor without local offsets")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument(
        "--crowded",
        type=int,
        nargs=4,
        default=[8, 17, 160, 40],
        metavar=("B", "K", "SIZE", "PERSONS"),
        help="also measure this crowded configuration (time and memory)",
    )
    parser.add_argument(
        "--inputs",
        nargs="+",
        choices=("noise", "trained"),
        default=["noise", "trained"],
        help="input regimes (see the module docstring); 'ratio' is taken from the first",
    )
    parser.add_argument("--seed", type=int, default=0)


def make_inputs(batch, types, size, persons, device, seed=0, local=True, regime="noise"):
    """Random training-like inputs (see the module docstring); lengths in feature-map px."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    centers = torch.rand(batch, 1, persons, 2, generator=g) * size
    targets = centers + torch.randn(batch, types, persons, 2, generator=g) * (size / 16)
    valid = torch.rand(batch, types, persons, generator=g) > 0.15
    shape = (batch, types, size, size)
    if regime == "noise":
        logits = torch.randn(shape, generator=g) * 1.5 - 4.6
        coarse = torch.randn(batch, types, 2, size, size, generator=g) * 3
        local_offsets = torch.randn(batch, types, 2, size, size, generator=g) * 0.5
    elif regime == "trained":
        logits, coarse = _trained_like(targets, valid, size, g)
        local_offsets = torch.randn(batch, types, 2, size, size, generator=g) * 0.3
    else:
        raise ValueError(f"unknown input regime {regime!r}")

    def leaf(tensor):
        return tensor.to(device).contiguous().requires_grad_()  # as a conv head outputs them

    return {
        "targets": targets.to(device),
        "valid": valid.to(device),
        "logits": leaf(logits),
        "coarse": leaf(coarse),
        "local": leaf(local_offsets) if local else None,
        "pred": leaf(torch.rand(shape, generator=g)),
    }


def _trained_like(targets, valid, size, g):
    """Confidence high (logit ~ N(1, 1)) within 2 px of a labelled target, ~ N(-4.6, 0.5) elsewhere; coarse
    offsets to the nearest labelled target of the type (+ N(0, 0.5) px) within 8 px of one, N(0, 1) elsewhere."""
    batch, types = valid.shape[:2]
    grid = torch.stack(torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="xy"), -1)
    grid = grid.reshape(-1, 2)
    logits, coarse = [], []
    for image in range(batch):  # input generation only, outside the timed steps
        distance2 = ((grid[None, None] - targets[image][:, :, None]) ** 2).sum(-1)  # (K, T, N)
        distance2 = distance2.masked_fill(~valid[image][:, :, None], float("inf"))
        nearest2, nearest = distance2.min(dim=1)  # (K, N)
        nearest_point = torch.gather(targets[image], 1, nearest[..., None].expand(-1, -1, 2))  # (K, N, 2)
        noise = torch.randn(types, grid.shape[0], 2, generator=g)
        offset = torch.where((nearest2 <= 64)[..., None], nearest_point - grid + 0.5 * noise, noise)
        logit = torch.where(
            nearest2 <= 4,
            torch.randn(types, grid.shape[0], generator=g) + 1,
            torch.randn(types, grid.shape[0], generator=g) * 0.5 - 4.6,
        )
        logits.append(logit.reshape(types, size, size))
        coarse.append(offset.permute(0, 2, 1).reshape(types, 2, size, size))
    return torch.stack(logits), torch.stack(coarse)


def adaanchor_step(inputs, parts=None):
    logits, coarse, local = inputs["logits"], inputs["coarse"], inputs["local"]
    clock = _Clock(parts)
    assignment = assign_adaptive_anchors(
        torch.sigmoid(logits.detach()),
        CandidateEstimates(coarse.detach(), None if local is None else local.detach()),
        inputs["targets"],
        inputs["valid"],
    )
    clock.lap("assignment")
    losses = adaanchor_losses(logits, coarse, local, assignment, inputs["targets"], inputs["valid"])
    total = sum(losses.values())
    clock.lap("losses")
    total.backward()
    clock.lap("backward")
    return assignment.num_positives


def heatmap_step(inputs, parts=None):
    pred = inputs["pred"]
    clock = _Clock(parts)
    heatmap, weight = heatmap_targets(
        inputs["targets"], inputs["valid"], pred.shape[2], pred.shape[3], sigma=2.0, background_weight=0.1
    )
    clock.lap("targets")
    loss = heatmap_loss(pred, heatmap, weight)
    clock.lap("loss")
    loss.backward()
    clock.lap("backward")


class _Clock:
    def __init__(self, parts):
        self.parts = parts
        self.last = _now()

    def lap(self, name):
        if self.parts is not None:
            now = _now()
            self.parts.setdefault(name, []).append(now - self.last)
            self.last = now


def _now():
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def _zero_grads(inputs):
    for value in inputs.values():
        if isinstance(value, torch.Tensor) and value.grad is not None:
            value.grad = None


def time_both(inputs, repeats):
    """Interleaved medians (seconds) of both steps, and of their parts."""
    times = {"adaanchor": [], "heatmap": []}
    parts = {"adaanchor": {}, "heatmap": {}}
    for step, name in ((adaanchor_step, "adaanchor"), (heatmap_step, "heatmap")):  # warm-up
        step(inputs)
        _zero_grads(inputs)
    for _ in range(repeats):
        for step, name in ((adaanchor_step, "adaanchor"), (heatmap_step, "heatmap")):
            start = _now()
            step(inputs, parts[name])
            times[name].append(_now() - start)
            _zero_grads(inputs)
    medians = {name: statistics.median(values) for name, values in times.items()}
    part_medians = {name: {p: statistics.median(v) for p, v in d.items()} for name, d in parts.items()}
    return medians, part_medians


# ---- peak memory ---------------------------------------------------------------------------------------------


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _probe(spec):
    """Run in a fresh process: one step of one method, print its peak memory growth in MiB as JSON."""
    config = json.loads(spec)
    torch.set_num_threads(config["threads"])
    device = torch.device(config["device"])
    inputs = make_inputs(*config["shape"], device, seed=config["seed"], local=config["local"], regime=config["regime"])
    step = adaanchor_step if config["method"] == "adaanchor" else heatmap_step
    if device.type == "cuda":
        step(inputs)  # warm-up (kernels, workspace)
        _zero_grads(inputs)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(inputs)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        print(json.dumps({"peak_mib": peak / 2**20}))
        return
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    step(inputs)
    peak = _rss_kib("VmHWM") - before
    print(json.dumps({"peak_mib": peak / 1024}))


def peak_memory_mib(method, shape, device, threads, seed, local, regime):
    spec = json.dumps(
        {
            "method": method,
            "shape": list(shape),
            "device": str(device),
            "threads": threads,
            "seed": seed,
            "local": local,
            "regime": regime,
        }
    )
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_probe", spec], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


# ---- run -----------------------------------------------------------------------------------------------------


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    local = not args.no_local_refinement
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    figures = {
        "threads": args.threads,
        "local_refinement": local,
        "backward_included": True,
        "memory_method": "CPU: VmHWM growth of a fresh process over one step; CUDA: max_memory_allocated",
        "batch": args.batch,
        "types": args.types,
        "size": args.size,
        "results": [],
    }
    shapes = [(args.batch, args.types, args.size, persons) for persons in args.persons]
    if args.crowded:
        shapes.append(tuple(args.crowded))
    print(
        f"AdaAnchor (sigmoid + assignment + losses + backward) vs heatmap anchor (targets + loss + backward); "
        f"{args.threads} CPU thread(s), local refinement {'on' if local else 'off'}, median of {args.repeats}"
    )
    header = (
        f"{'inputs':7} {'device':6} {'B':>2} {'K':>3} {'size':>4} {'pers':>4} {'pos':>6} | {'ada ms':>7} "
        f"{'heat ms':>7} {'ratio':>6} | {'ada MiB':>7} {'heat MiB':>8} | parts ms: assign/losses/backward, "
        f"targets/loss/backward"
    )
    print(header)
    print("-" * len(header))
    for regime in args.inputs:
        for device in devices:
            for shape in shapes:
                figures["results"].append(_measure(args, regime, device, shape, local))
    for row in figures["results"]:
        if row["device"] == "cpu" and (row["batch"], row["types"], row["size"], row["persons"]) == (
            args.batch,
            args.types,
            args.size,
            10,
        ):
            figures[f"ratio_{row['inputs']}"] = row["ratio"]
    figures["ratio"] = figures.get(f"ratio_{args.inputs[0]}")
    for key in sorted(k for k in figures if k.startswith("ratio_")):
        print(f"{key}: (AdaAnchor / heatmap) at 10 persons per image on CPU, {key[6:]} inputs: {figures[key]:.2f}")
    return figures


def _measure(args, regime, device, shape, local) -> dict:
    inputs = make_inputs(*shape, device, seed=args.seed, local=local, regime=regime)
    positives = adaanchor_step(inputs)
    _zero_grads(inputs)
    medians, parts = time_both(inputs, args.repeats)
    del inputs
    memory = {}
    if not args.no_memory:
        for method in ("adaanchor", "heatmap"):
            memory[method] = peak_memory_mib(method, shape, device, args.threads, args.seed, local, regime)
    row = {
        "inputs": regime,
        "device": device.type,
        "batch": shape[0],
        "types": shape[1],
        "size": shape[2],
        "persons": shape[3],
        "positives": positives,
        "adaanchor_ms": 1e3 * medians["adaanchor"],
        "heatmap_ms": 1e3 * medians["heatmap"],
        "ratio": medians["adaanchor"] / medians["heatmap"],
        "adaanchor_parts_ms": {k: 1e3 * v for k, v in parts["adaanchor"].items()},
        "heatmap_parts_ms": {k: 1e3 * v for k, v in parts["heatmap"].items()},
        "adaanchor_peak_mib": memory.get("adaanchor"),
        "heatmap_peak_mib": memory.get("heatmap"),
    }
    ada_parts = "/".join(f"{v:.1f}" for v in row["adaanchor_parts_ms"].values())
    heat_parts = "/".join(f"{v:.1f}" for v in row["heatmap_parts_ms"].values())
    mem = f"{row['adaanchor_peak_mib']:7.1f} {row['heatmap_peak_mib']:8.1f}" if memory else f"{'-':>7} {'-':>8}"
    print(
        f"{regime:7} {device.type:6} {shape[0]:>2} {shape[1]:>3} {shape[2]:>4} {shape[3]:>4} {positives:>6} | "
        f"{row['adaanchor_ms']:7.2f} {row['heatmap_ms']:7.2f} {row['ratio']:6.2f} | {mem} | "
        f"{ada_parts}, {heat_parts}",
        flush=True,
    )
    return row


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_probe":
        _probe(sys.argv[2])
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        add_arguments(parser)
        print(json.dumps(run(parser.parse_args()), sort_keys=True))
