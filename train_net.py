#!/usr/bin/env python
"""Train or evaluate AdaAnchor models with Detectron2's launcher.

    python train_net.py --config-file configs/synthetic_dekr_adaanchor.yaml
    python train_net.py --config-file configs/crowdpose_dekr_adaanchor.yaml --num-gpus 2
    python train_net.py --config-file configs/crowdpose_dekr_adaanchor.yaml --eval-only MODEL.WEIGHTS model.pth
    python train_net.py --config-file ... --resume          # continue from OUTPUT_DIR/last_checkpoint

Without CUDA it runs on CPU, and ``--num-gpus N`` there starts N CPU processes (gloo).
"""

from detectron2.engine import default_argument_parser, launch

from adaanchor.engine import AdaAnchorTrainer, setup_cfg
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer


def main(args):
    cfg = setup_cfg(args)
    # Config and data checked before anything runs: both datasets load, keypoint counts and flip maps agree.
    AdaAnchorTrainer.validate(cfg, training=not args.eval_only)
    if args.eval_only:
        model = AdaAnchorTrainer.build_model(cfg)
        AdaAnchorCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return AdaAnchorTrainer.test(cfg, model)
    trainer = AdaAnchorTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
