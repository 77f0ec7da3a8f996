"""Clear errors for optional dependencies, raised at the point of use."""

import importlib.util

DETECTRON2_INSTALL_HINT = (
    "Detectron2 is not on PyPI: install it from source as its install guide says "
    "(https://detectron2.readthedocs.io/en/latest/tutorials/install.html), e.g. "
    "`git clone https://github.com/facebookresearch/detectron2 && "
    "pip install --no-build-isolation ./detectron2`. See README.md, 'Prerequisites'."
)


def detectron2_available() -> bool:
    """True when ``import detectron2`` would find the package (without importing it)."""
    try:
        return importlib.util.find_spec("detectron2") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["detectron2"] is None: imports of it fail
        return False


def require_detectron2(feature: str) -> None:
    """Raise ImportError naming ``feature`` when Detectron2 is not installed.

    Call it at the top of every module that imports Detectron2, before that import, so that a user
    without Detectron2 learns which feature needs it instead of seeing a bare ModuleNotFoundError.
    """
    if not detectron2_available():
        raise ImportError(f"{feature} needs Detectron2, which is not installed. {DETECTRON2_INSTALL_HINT}")
