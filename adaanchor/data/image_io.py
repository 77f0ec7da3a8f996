"""Read an image file into a uint8 (H, W, 3) array, or say precisely why not (framework-light).

Rules (the training mapper, the demo and the tests share them):

- a missing file, an empty (0-byte) file, a file that is not an image Pillow recognises and an image whose
  data cannot be decoded (truncated or corrupt) raise :class:`ImageReadError`, whose ``reason`` is one of
  :data:`REASONS` and whose message names the file;
- grayscale images are replicated to 3 channels and RGBA images lose their alpha channel (as Detectron2's
  ``read_image`` does);
- 16-bit images are read at their full depth and scaled to 8 bit (``round(v * 255 / 65535)``), with one
  warning per process: Pillow's plain conversion clips every value above 255, which turns a 16-bit grayscale
  PNG into an all-white image. (16-bit RGB PNGs Pillow already reduces to 8 bit itself.)
- the EXIF orientation is applied, as Detectron2 does.
"""

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

MISSING, EMPTY, NOT_AN_IMAGE, UNDECODABLE = "missing", "empty", "not an image", "undecodable"
REASONS = (MISSING, EMPTY, NOT_AN_IMAGE, UNDECODABLE)

# Pillow modes holding more than 8 bits per pixel (single channel).
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_warned_high_depth = False


class ImageReadError(OSError):
    """An image file that cannot be used; ``reason`` is one of REASONS, ``file_name`` the file."""

    def __init__(self, file_name: str, reason: str, detail: str):
        super().__init__(f"{file_name}: {reason} ({detail})")
        self.file_name, self.reason, self.detail = file_name, reason, detail


def read_image(file_name: str, format: str = "BGR") -> np.ndarray:
    """The image at ``file_name`` as a uint8 (H, W, 3) array in ``format`` ("BGR" or "RGB"; others as
    Detectron2's ``convert_PIL_to_numpy`` takes them). Raises ImageReadError (see the module docstring)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(file_name):
        raise ImageReadError(file_name, MISSING, "no such file" if not os.path.exists(file_name) else "not a file")
    if os.path.getsize(file_name) == 0:
        raise ImageReadError(file_name, EMPTY, "the file is empty, 0 bytes")
    try:
        image = Image.open(file_name)
    except UnidentifiedImageError:
        raise ImageReadError(file_name, NOT_AN_IMAGE, "not in an image format Pillow recognises") from None
    except OSError as e:
        raise ImageReadError(file_name, UNDECODABLE, str(e)) from None
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(file_name, UNDECODABLE, f"{image.format} data cannot be decoded: {e}") from None
    if image.width == 0 or image.height == 0:
        raise ImageReadError(file_name, EMPTY, f"the image is {image.width} x {image.height} px")
    return _to_array(image, format, file_name)


def _to_array(image, format: str, file_name: str) -> np.ndarray:
    from PIL import Image

    try:
        from detectron2.data.detection_utils import _apply_exif_orientation, convert_PIL_to_numpy
    except ImportError:  # Detectron2 absent: plain conversion
        _apply_exif_orientation = None
        convert_PIL_to_numpy = None
    if _apply_exif_orientation is not None:
        image = _apply_exif_orientation(image)
    if image.mode in _HIGH_DEPTH_MODES:
        image = Image.fromarray(to_8bit(np.asarray(image), file_name), mode="L")
    if convert_PIL_to_numpy is not None:
        array = convert_PIL_to_numpy(image, format)
    else:
        array = np.asarray(image.convert("RGB"))
        if format == "BGR":
            array = array[:, :, ::-1]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def to_8bit(array: np.ndarray, file_name: str = "") -> np.ndarray:
    """A 16-bit (or 32-bit integer holding 16-bit values) array scaled to uint8, round(v * 255 / 65535)."""
    global _warned_high_depth
    if not _warned_high_depth:
        _warned_high_depth = True
        logger.warning(
            f"{file_name}: a 16-bit image; scaling it to 8 bit (v * 255 / 65535) "
            "(the first such file; others are scaled the same way without a warning)"
        )
    scaled = np.clip(array.astype(np.float64), 0, 65535) * (255.0 / 65535.0)
    return np.rint(scaled).astype(np.uint8)
