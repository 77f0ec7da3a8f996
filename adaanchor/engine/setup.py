"""Build the frozen config for a run from command-line arguments (Detectron2's ``setup()`` pattern)."""

import logging

import torch

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.engine")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import default_setup  # noqa: E402

from adaanchor.config import add_adaanchor_config  # noqa: E402
from adaanchor.data.datasets import register_synthetic_datasets  # noqa: E402

logger = logging.getLogger(__name__)


def setup_cfg(args):
    """get_cfg -> add_adaanchor_config -> merge the file and KEY VALUE opts -> freeze -> default_setup.

    On a machine without CUDA a ``cuda`` MODEL.DEVICE falls back to ``cpu`` (with a warning), so the same
    command runs everywhere. A non-default DATASETS.SYNTHETIC.CACHE_DIR re-registers the synthetic splits
    there before any dataset is loaded.
    """
    cfg = get_cfg()
    add_adaanchor_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    fell_back = cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available()
    if fell_back:
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    default_setup(cfg, args)
    if fell_back:
        logging.getLogger("detectron2").warning("CUDA is not available: running on CPU (MODEL.DEVICE cpu)")
    if cfg.DATASETS.SYNTHETIC.CACHE_DIR:
        register_synthetic_datasets(cfg.DATASETS.SYNTHETIC.CACHE_DIR)
    return cfg
