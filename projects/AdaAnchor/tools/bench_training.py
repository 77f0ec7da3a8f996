"""``benchmark.py training``: the training step of AdaAnchor against the heatmap-anchor baseline, interleaved, in
one run, for DEKR (AdaAnchor centres) and Associative Embedding (AdaAnchor keypoints, K types); and the share of
the AdaAnchor step spent in the anchor criterion.

Real batches come from the config's training loader (the synthetic data is generated on first use); they
are drawn before any timing, so the loader's worker never competes with a timed step, and both models
train on the same batches. A step is forward + backward + optimizer step, split into forward (losses
included), backward and optimizer; the steps of the two models alternate (ABBA order), so drifts of the
machine (frequency, other load, allocator state) fall on both alike. ``step_ratio`` = median AdaAnchor step
/ median heatmap step; ``fraction`` = the AdaAnchor centre criterion's ``losses`` call (assignment + focal /
offset / local-offset losses) / the AdaAnchor step. Also reported: images per second of each model's step.
The AE pair (``--ae-config-file``; ``--hosts`` picks) is timed the same way after DEKR's, its figures prefixed
``ae_`` (``ae_step_ratio``, ``ae_fraction``: AE's criterion over K keypoint types).

``--before KEY VALUE ...`` adds a third model, AdaAnchor under the config with these overrides (e.g. the
values of an earlier recipe), on batches of its own loader, in the same interleaved loop:
``throughput_ratio`` = AdaAnchor images per second / those of the ``before`` model.
"""

import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]
PHASES = ("forward", "backward", "optimizer")


def add_arguments(parser):
    parser.add_argument("--config-file", default=str(REPO / "configs" / "synthetic_dekr_adaanchor.yaml"))
    parser.add_argument("--ae-config-file", default=str(REPO / "configs" / "synthetic_ae_adaanchor.yaml"))
    parser.add_argument("--hosts", nargs="+", choices=("dekr", "ae"), default=["dekr", "ae"])
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument(
        "--before", nargs="+", default=None, metavar="KEY VALUE",
        help="overrides giving an earlier recipe: its AdaAnchor model is timed too, and the throughput compared",
    )  # fmt: skip
    parser.add_argument("opts", nargs="*", default=[], help="config overrides: KEY VALUE ...")


class _TimedStep:
    """One model, its optimizer, and per-phase times of its steps (the anchor criterion's losses inside: DEKR's
    ``center_criterion``, AE's ``criterion``)."""

    def __init__(self, cfg):
        from adaanchor.engine import AdaAnchorTrainer

        torch.manual_seed(cfg.SEED)
        self.model = AdaAnchorTrainer.build_model(cfg)  # as trained: channels-last on CPU
        self.model.train()
        self.optimizer = AdaAnchorTrainer.build_optimizer(cfg, self.model)
        self.times = {phase: [] for phase in PHASES + ("step", "center")}
        criterion = getattr(self.model, "center_criterion", None) or self.model.criterion
        criterion_losses = criterion.losses
        self._inside = []

        def timed_losses(*args, **kwargs):
            start = time.perf_counter()
            result = criterion_losses(*args, **kwargs)
            self._inside.append(time.perf_counter() - start)
            return result

        criterion.losses = timed_losses

    def step(self, batch, record: bool) -> None:
        self._inside.clear()
        t0 = time.perf_counter()
        losses = self.model(batch)
        t1 = time.perf_counter()
        sum(losses.values()).backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad()
        t3 = time.perf_counter()
        if record:
            for phase, seconds in zip(
                PHASES + ("step", "center"), (t1 - t0, t2 - t1, t3 - t2, t3 - t0, self._inside[0])
            ):
                self.times[phase].append(seconds)

    def medians(self) -> dict:
        return {phase: statistics.median(values) for phase, values in self.times.items()}


def _draw_batches(cfg, count):
    """``count`` batches from the config's training loader, drawn before any timing (its worker then stops),
    and the seconds per batch that took."""
    from adaanchor.engine import AdaAnchorTrainer

    loader = iter(AdaAnchorTrainer.build_train_loader(cfg))
    start = time.perf_counter()
    batches = [next(loader) for _ in range(count)]
    return batches, (time.perf_counter() - start) / count


def run(args):
    figures = {"threads": torch.get_num_threads()}
    if "dekr" in args.hosts:
        figures.update(_time_host(args, args.config_file, args.before, prefix=""))
    if "ae" in args.hosts:
        figures.update(_time_host(args, args.ae_config_file, None, prefix="ae_"))
    return figures


def _time_host(args, config_file, before, prefix: str) -> dict:
    """AdaAnchor vs heatmap (and ``before``) of one host's config, interleaved; figures keyed ``prefix + name``."""
    from detectron2.utils.events import EventStorage

    from adaanchor.engine import build_cfg

    figures = {f"{prefix}config": Path(config_file).name}
    variants = {"adaanchor": [*args.opts, "MODEL.ADAANCHOR.ENABLED", True],
                "heatmap": [*args.opts, "MODEL.ADAANCHOR.ENABLED", False]}  # fmt: skip
    if before:
        variants["before"] = [*args.opts, *before, "MODEL.ADAANCHOR.ENABLED", True]
    cfgs = {name: build_cfg(config_file, opts) for name, opts in variants.items()}
    batches = {}
    batches["adaanchor"], figures[f"{prefix}data_s_per_batch"] = _draw_batches(
        cfgs["adaanchor"], args.warmup + args.repeats
    )
    batches["heatmap"] = batches["adaanchor"]  # the two variants train on the same batches
    if before:
        batches["before"], _ = _draw_batches(cfgs["before"], args.warmup + args.repeats)
    models = {name: _TimedStep(cfg) for name, cfg in cfgs.items()}
    with EventStorage():
        for i in range(args.warmup + args.repeats):
            order = list(models) if i % 2 == 0 else list(reversed(models))  # ABBA
            for name in order:
                models[name].step(batches[name][i], record=i >= args.warmup)
    host = cfgs["adaanchor"].MODEL.META_ARCHITECTURE
    for name, timed in models.items():
        med = timed.medians()
        images = cfgs[name].SOLVER.IMS_PER_BATCH
        key = f"{prefix}{name}"
        figures[f"{key}_step_s"] = med["step"]
        figures[f"{key}_center_losses_s"] = med["center"]
        figures[f"{key}_images_per_s"] = images / med["step"]
        for phase in PHASES:
            figures[f"{key}_{phase}_s"] = med[phase]
        print(
            f"{host} {name}: step {med['step'] * 1e3:.0f} ms = forward {med['forward'] * 1e3:.0f} + backward "
            f"{med['backward'] * 1e3:.0f} + optimizer {med['optimizer'] * 1e3:.0f} (batch {images}, "
            f"{cfgs[name].INPUT.BOTTOM_UP.SIZE} px, {images / med['step']:.1f} img/s), anchor criterion losses "
            f"{med['center'] * 1e3:.1f} ms"
        )
    if before:
        figures[f"{prefix}throughput_ratio"] = (
            figures[f"{prefix}adaanchor_images_per_s"] / figures[f"{prefix}before_images_per_s"]
        )
        print(f"{host} throughput AdaAnchor / before: {figures[f'{prefix}throughput_ratio']:.2f}x")
    print(f"{host} data loading (one worker, before timing): {figures[f'{prefix}data_s_per_batch'] * 1e3:.0f} ms/batch")
    figures[f"{prefix}fraction"] = figures[f"{prefix}adaanchor_center_losses_s"] / figures[f"{prefix}adaanchor_step_s"]
    figures[f"{prefix}step_ratio"] = figures[f"{prefix}adaanchor_step_s"] / figures[f"{prefix}heatmap_step_s"]
    print(
        f"{host} AdaAnchor assignment + losses: {100 * figures[f'{prefix}fraction']:.1f}% of a training step; "
        f"step time AdaAnchor / heatmap: {figures[f'{prefix}step_ratio']:.3f}"
    )
    return figures
