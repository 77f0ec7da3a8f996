"""Training and evaluation entry points (need Detectron2). Importing this registers AdaAnchor's models and
datasets with Detectron2, as the training script and Detectron2's launcher workers require."""

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.engine")

import adaanchor.data.datasets  # noqa: E402,F401  (registers the datasets)
import adaanchor.modeling  # noqa: E402,F401  (registers backbones and meta-architectures)

from .setup import build_cfg, setup_cfg  # noqa: E402
from .trainer import AdaAnchorTrainer  # noqa: E402

__all__ = ["AdaAnchorTrainer", "build_cfg", "setup_cfg"]
