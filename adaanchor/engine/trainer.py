"""``AdaAnchorTrainer``: Detectron2's DefaultTrainer with what keypoint models need changed, nothing else.

- the dataset mapper named by INPUT.DATASET_MAPPER_NAME ("bottom_up" for DEKR and Associative Embedding,
  "detectron2" for ROI heads);
- the keypoint evaluator chosen from the dataset's metadata (COCO-style or CrowdPose protocol);
- Adam as well as SGD (``SOLVER.OPTIMIZER``; Detectron2 builds SGD only, the papers train with Adam);
- DistributedDataParallel without ``device_ids`` when CUDA is unavailable, so ``--num-gpus 2`` on a CPU
  machine trains in two gloo processes (Detectron2's ``create_ddp_model`` always passes a GPU id);
- atomic checkpoints, weights-only loading and a fallback on ``--resume`` (:class:`AdaAnchorCheckpointer`);
- one line at the end of training counting the samples skipped for an unreadable image;
- evaluation in several processes with the main process's BatchNorm statistics: DDP here does not broadcast
  buffers (``broadcast_buffers=False``, as Detectron2), so each process's running statistics drift apart, and
  without this each process would evaluate its share of the images with its own, not with the saved model's;
- on CPU the model is kept channels-last (NHWC): oneDNN's convolutions run faster on it (measured on 2 shared
  cores, synthetic DEKR config, batch 4: training step -20 %, forward -30 %); outputs are the same up to
  float rounding, checkpoints are the same tensors.
"""

import logging
import os
import weakref

import torch

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.engine")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.data import MetadataCatalog, build_detection_test_loader, build_detection_train_loader  # noqa: E402
from detectron2.engine import AMPTrainer, DefaultTrainer, HookBase, SimpleTrainer, TrainerBase  # noqa: E402
from detectron2.engine.defaults import create_ddp_model  # noqa: E402
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from adaanchor.data.bottom_up_mapper import BottomUpDatasetMapper  # noqa: E402
from adaanchor.data.skips import format_skip_summary, reset_skip_counts, skip_counts  # noqa: E402
from adaanchor.engine.checkpoint import AdaAnchorCheckpointer  # noqa: E402
from adaanchor.evaluation.detectron2_evaluator import KeypointEvaluator  # noqa: E402
from adaanchor.modeling.roi_heads.meta_arch import ground_truth_box_test_mapper  # noqa: E402

DATASET_MAPPERS = ("bottom_up", "detectron2")

logger = logging.getLogger("adaanchor.engine")


class SkippedSamplesSummary(HookBase):
    """Logs at the end of training how many samples were skipped because their image could not be read
    (summed over the training processes when the run completed; each process's own count otherwise)."""

    def before_train(self):
        reset_skip_counts()

    def after_train(self):
        counts = skip_counts()
        completed = self.trainer.iter + 1 >= self.trainer.max_iter
        if completed and comm.get_world_size() > 1:
            gathered = comm.all_gather(counts)
            counts = {reason: sum(c[reason] for c in gathered) for reason in counts}
        if comm.is_main_process() or not completed:
            logger.info(format_skip_summary(counts))


def ddp_device_kwargs() -> dict:
    """DistributedDataParallel's device arguments: one GPU per process with CUDA, none on CPU."""
    if torch.cuda.is_available():
        return {"device_ids": [comm.get_local_rank()]}
    return {"device_ids": None}


def use_channels_last(model: torch.nn.Module, device) -> torch.nn.Module:
    """Keep a CPU model's 4-d parameters channels-last (convolutions then run NHWC); GPU models unchanged.

    In an R-CNN (a model with ``roi_heads``) only the backbone: Detectron2's ROI heads ``view`` their outputs as
    contiguous NCHW tensors, and their inputs (ROIAlign's) are NCHW anyway.
    """
    if torch.device(device).type == "cpu":
        (model.backbone if hasattr(model, "roi_heads") else model).to(memory_format=torch.channels_last)
    return model


class AdaAnchorTrainer(DefaultTrainer):
    def __init__(self, cfg):
        # DefaultTrainer.__init__, with the DDP wrapper built for CPU as well as GPU.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False, **ddp_device_kwargs())
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_model(cls, cfg):
        return use_channels_last(super().build_model(cfg), cfg.MODEL.DEVICE)

    @classmethod
    def build_optimizer(cls, cfg, model):
        name = cfg.SOLVER.OPTIMIZER.upper()
        if name == "SGD":
            return DefaultTrainer.build_optimizer(cfg, model)
        if name != "ADAM":
            raise ValueError(f"SOLVER.OPTIMIZER must be 'SGD' or 'ADAM', got {cfg.SOLVER.OPTIMIZER!r}")
        params = get_default_optimizer_params(
            model,
            base_lr=cfg.SOLVER.BASE_LR,
            weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
            bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
            weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
        )
        adam = maybe_add_gradient_clipping(cfg, torch.optim.Adam)
        return adam(
            params, lr=cfg.SOLVER.BASE_LR, betas=tuple(cfg.SOLVER.ADAM_BETAS), weight_decay=cfg.SOLVER.WEIGHT_DECAY
        )

    @staticmethod
    def build_mapper(cfg, is_train: bool):
        """The mapper INPUT.DATASET_MAPPER_NAME names; None for Detectron2's default DatasetMapper (at test time
        with MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES, one that keeps the annotations)."""
        name = cfg.INPUT.DATASET_MAPPER_NAME
        if name not in DATASET_MAPPERS:
            raise ValueError(f"INPUT.DATASET_MAPPER_NAME must be one of {DATASET_MAPPERS}, got {name!r}")
        if name == "bottom_up":
            return BottomUpDatasetMapper(cfg, is_train=is_train)
        gt_boxes = cfg.MODEL.KEYPOINT_RCNN
        if (gt_boxes.TEST_ON_GT_BOXES or gt_boxes.TRAIN_ON_GT_BOXES) and cfg.MODEL.META_ARCHITECTURE != "KeypointRCNN":
            raise ValueError(
                "MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES / TRAIN_ON_GT_BOXES need MODEL.META_ARCHITECTURE 'KeypointRCNN', "
                f"got {cfg.MODEL.META_ARCHITECTURE!r}"
            )
        return None if is_train or not gt_boxes.TEST_ON_GT_BOXES else ground_truth_box_test_mapper(cfg)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=cls.build_mapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=cls.build_mapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        meta = MetadataCatalog.get(dataset_name)
        if not hasattr(meta, "keypoint_names"):
            raise ValueError(
                f"dataset '{dataset_name}' has no keypoint metadata: register it with "
                "adaanchor.data.datasets.register_keypoint_dataset"
            )
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return KeypointEvaluator(dataset_name, output_dir=output_folder)

    def build_hooks(self):
        # Detectron2's hooks, with the crash-safe checkpointer (the periodic checkpointer hook saves through
        # self.checkpointer, so it is replaced before they are built) and the skipped-samples summary.
        self.checkpointer = AdaAnchorCheckpointer(
            self.checkpointer.model, self.cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        return [SkippedSamplesSummary()] + super().build_hooks()

    @classmethod
    def validate(cls, cfg, *, training: bool = True):
        """Start-up checks of config and data (adaanchor.engine.validation), before training or --eval-only."""
        from adaanchor.engine.validation import validate_startup

        validate_startup(cfg, training=training)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        sync_buffers_from_main_process(model)
        return super().test(cfg, model, evaluators=evaluators)


def sync_buffers_from_main_process(model) -> None:
    """Copy the main process's buffers (BatchNorm running statistics) to every process (a no-op in one)."""
    if comm.get_world_size() == 1:
        return
    module = model.module if hasattr(model, "module") else model
    for buffer in module.buffers():
        torch.distributed.broadcast(buffer.data, src=0)
