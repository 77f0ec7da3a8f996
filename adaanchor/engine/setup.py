"""Build the frozen config for a run from command-line arguments (Detectron2's ``setup()`` pattern)."""

import logging

import torch

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.engine")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import default_setup  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from adaanchor.config import add_adaanchor_config  # noqa: E402
from adaanchor.data.datasets import register_synthetic_datasets  # noqa: E402

logger = logging.getLogger("detectron2")


def build_cfg(config_file: str, opts=()):
    """The frozen config of ``config_file`` with ``KEY VALUE`` overrides, without touching OUTPUT_DIR.

    get_cfg -> add_adaanchor_config -> merge the file and the opts -> freeze. On a machine without CUDA a
    ``cuda`` MODEL.DEVICE falls back to ``cpu`` (with a warning), so the same command runs everywhere. A
    non-default DATASETS.SYNTHETIC.CACHE_DIR re-registers the synthetic splits there.
    """
    cfg = get_cfg()
    add_adaanchor_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on CPU (MODEL.DEVICE cpu)")
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    if cfg.DATASETS.SYNTHETIC.CACHE_DIR:
        register_synthetic_datasets(cfg.DATASETS.SYNTHETIC.CACHE_DIR)
    return cfg


def setup_cfg(args):
    """Detectron2's ``setup()``: :func:`build_cfg` from the command line, then ``default_setup`` (logging,
    OUTPUT_DIR/config.yaml, seed), and the ``adaanchor`` logger (evaluation tables, dataset generation) set
    up like Detectron2's own: console on the main process, a log file per process in OUTPUT_DIR."""
    cfg = build_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="adaanchor", abbrev_name="adaanchor")
    return cfg
