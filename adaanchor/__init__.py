"""AdaAnchor: adaptive anchor selection for multi-person keypoint estimation, as a Detectron2 extension.

Importing ``adaanchor`` needs neither Detectron2 nor torchvision. The framework-free parts are
``adaanchor.anchor`` (the method, torch only), ``adaanchor.layers`` (generic conv blocks, torch + torchvision),
``adaanchor.data.keypoints`` (keypoint metadata), ``adaanchor.data.synthetic`` (the embedded synthetic dataset)
and ``adaanchor.evaluation`` (OKS metrics).
The Detectron2 parts (``adaanchor.config``, ``adaanchor.modeling``, ``adaanchor.data.datasets``,
``adaanchor.engine``) raise a clear ImportError at the point of use when Detectron2 is missing.
"""

__version__ = "0.1.0"
