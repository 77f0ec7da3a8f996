"""Affine geometry for the bottom-up augmentation (framework-free: numpy + OpenCV).

All matrices here map *continuous* image coordinates (pixel i covers [i, i+1), its centre is i + 0.5,
Detectron2's convention for keypoints) to continuous output coordinates. OpenCV's ``warpAffine`` works on
pixel indices instead; :func:`warp` converts once, so a keypoint and the pixel under it stay together.
"""

import math
from typing import Tuple

import cv2
import numpy as np


def bottom_up_affine(
    image_size: Tuple[int, int],
    output_size: int,
    *,
    scale: float = 1.0,
    rotation_deg: float = 0.0,
    translation: Tuple[float, float] = (0.0, 0.0),
    flip: bool = False,
) -> np.ndarray:
    """The 2x3 matrix of the bottom-up training transform (HigherHRNet / DEKR style).

    The image's centre goes to the output's centre; at ``scale`` 1 the image's *short* side spans the
    ``output_size`` square (the longer side is cropped), as DEKR's ``SCALE_TYPE: short`` does, so training
    sees people at the size the test-time short-side resize gives them; then the image is zoomed by
    ``scale``, rotated by ``rotation_deg`` (counter-clockwise on screen), mirrored if ``flip`` and shifted
    by ``translation`` (output px).

    Args:
        image_size: (height, width) of the source image, image px.
        output_size: side of the square output, input px.
    Returns:
        (2, 3) float64 matrix M with [x_out, y_out] = M @ [x, y, 1] in continuous coordinates.
    """
    h, w = image_size
    s = scale * output_size / min(h, w)
    a = math.radians(rotation_deg)
    cos, sin = math.cos(a) * s, math.sin(a) * s
    # Rotation by +a counter-clockwise on screen (y points down): x' = cos*x + sin*y, y' = -sin*x + cos*y.
    linear = np.array([[cos, sin], [-sin, cos]])
    if flip:
        linear = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ linear
    centre_in = np.array([w / 2.0, h / 2.0])
    centre_out = np.array([output_size / 2.0, output_size / 2.0]) + np.asarray(translation, dtype=np.float64)
    offset = centre_out - linear @ centre_in
    return np.hstack([linear, offset[:, None]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) matrix to points (..., 2) in continuous coordinates; returns float64 (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def area_scale(matrix: np.ndarray) -> float:
    """Factor by which the transform multiplies areas (|det| of its linear part)."""
    return abs(float(np.linalg.det(matrix[:, :2])))


def warp(
    image: np.ndarray,
    matrix: np.ndarray,
    output_size: Tuple[int, int],
    *,
    interpolation: int = cv2.INTER_LINEAR,
    border_value=0,
) -> np.ndarray:
    """Warp ``image`` (H, W[, C]) by a continuous-coordinate matrix into ``output_size`` (height, width).

    OpenCV maps pixel indices: x_idx' = A x_idx + b'. From x' + 0.5 = A (x + 0.5) + b we get
    b' = b + A @ (0.5, 0.5) - (0.5, 0.5).
    """
    linear, offset = matrix[:, :2], matrix[:, 2]
    index_matrix = np.hstack([linear, (offset + linear @ np.array([0.5, 0.5]) - 0.5)[:, None]])
    out_h, out_w = output_size
    return cv2.warpAffine(
        image,
        index_matrix,
        (int(out_w), int(out_h)),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )
