"""``benchmark.py training``: share of a DEKR-AdaAnchor training step spent in the adaptive assignment and
the AdaAnchor centre losses, and the step time of both centre proposals, in one run.

Real batches come from the config's training loader (the synthetic data is generated on first use). A
step is forward + backward + optimizer step; the AdaAnchor part is the centre proposal's ``losses`` call
(assignment + focal / offset / local-offset losses), timed inside the step. ``fraction`` = that part /
the step, for the AdaAnchor model.
"""

import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]


def add_arguments(parser):
    parser.add_argument("--config-file", default=str(REPO / "configs" / "synthetic_dekr_adaanchor.yaml"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("opts", nargs="*", default=[], help="config overrides: KEY VALUE ...")


def _steps(cfg, repeats, warmup):
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from adaanchor.engine import AdaAnchorTrainer

    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    optimizer = AdaAnchorTrainer.build_optimizer(cfg, model)
    loader = iter(AdaAnchorTrainer.build_train_loader(cfg))
    proposal_losses = model.center_proposal.losses
    inside = []

    def timed_losses(*args, **kwargs):
        start = time.perf_counter()
        result = proposal_losses(*args, **kwargs)
        inside.append(time.perf_counter() - start)
        return result

    model.center_proposal.losses = timed_losses
    steps = []
    with EventStorage():
        for i in range(warmup + repeats):
            batch = next(loader)
            inside.clear()
            start = time.perf_counter()
            losses = model(batch)
            sum(losses.values()).backward()
            optimizer.step()
            optimizer.zero_grad()
            if i >= warmup:
                steps.append((time.perf_counter() - start, inside[0]))
    return statistics.median(s for s, _ in steps), statistics.median(p for _, p in steps)


def run(args):
    from adaanchor.engine import build_cfg

    figures = {"config": Path(args.config_file).name, "threads": torch.get_num_threads()}
    for name, enabled in (("adaanchor", True), ("heatmap", False)):
        cfg = build_cfg(args.config_file, [*args.opts, "MODEL.ADAANCHOR.ENABLED", enabled])
        step, centre = _steps(cfg, args.repeats, args.warmup)
        figures[f"{name}_step_s"] = step
        figures[f"{name}_center_losses_s"] = centre
        print(
            f"{name}: step {step * 1e3:.0f} ms (batch {cfg.SOLVER.IMS_PER_BATCH}, "
            f"{cfg.INPUT.BOTTOM_UP.SIZE} px), centre proposal losses {centre * 1e3:.1f} ms"
        )
    figures["fraction"] = figures["adaanchor_center_losses_s"] / figures["adaanchor_step_s"]
    figures["step_ratio"] = figures["adaanchor_step_s"] / figures["heatmap_step_s"]
    print(
        f"AdaAnchor assignment + losses: {100 * figures['fraction']:.1f}% of a training step; "
        f"step time AdaAnchor / heatmap: {figures['step_ratio']:.3f}"
    )
    return figures
