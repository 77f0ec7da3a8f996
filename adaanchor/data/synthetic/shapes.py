"""Drawing primitives for the synthetic renderer, and their rasterisation with OpenCV.

All positions are in pixel-index coordinates (OpenCV's and COCO's: the centre of pixel (col i, row j)
is (i, j)), as float64, drawn with 4 fractional bits (1/16 px). A :class:`Paint` is a shape with a
colour; ``silhouette=True`` marks the shapes whose union is the entity's outline (they go into the
owner buffer), ``False`` the details painted inside it (shading, eyes, stripes).
"""

from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np

CAPSULE, DISK, POLYGON, ELLIPSE = "capsule", "disk", "polygon", "ellipse"

_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Shape:
    """A filled shape.

    Attributes:
        kind: CAPSULE (a thick segment with round caps), DISK, POLYGON or ELLIPSE.
        points: (N, 2) float64 px: the 2 ends of a capsule, the centre of a disk or ellipse, a polygon's vertices.
        radius: capsule half-thickness or disk radius, px.
        axes: ellipse semi-axes (a, b), px; angle: ellipse rotation, degrees.
    """

    kind: str
    points: np.ndarray
    radius: float = 0.0
    axes: Tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0

    def bounds(self) -> np.ndarray:
        """(2, 2) float64 [[x_min, y_min], [x_max, y_max]] px enclosing the shape."""
        if self.kind == ELLIPSE:
            pad = max(self.axes)
        else:
            pad = self.radius
        return np.stack([self.points.min(axis=0) - pad, self.points.max(axis=0) + pad])


@dataclass(frozen=True)
class Paint:
    shape: Shape
    colour: Tuple[int, int, int]  # BGR
    silhouette: bool = False


def capsule(a: np.ndarray, b: np.ndarray, radius: float) -> Shape:
    return Shape(CAPSULE, np.stack([a, b]).astype(np.float64), radius=float(radius))


def disk(centre: np.ndarray, radius: float) -> Shape:
    return Shape(DISK, np.asarray(centre, dtype=np.float64)[None], radius=float(radius))


def polygon(points: Sequence) -> Shape:
    return Shape(POLYGON, np.asarray(points, dtype=np.float64))


def ellipse(centre: np.ndarray, axes: Tuple[float, float], angle: float) -> Shape:
    return Shape(
        ELLIPSE, np.asarray(centre, dtype=np.float64)[None], axes=(float(axes[0]), float(axes[1])), angle=float(angle)
    )


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _ONE).astype(np.int32)


def draw_shape(
    canvas: np.ndarray, shape: Shape, colour, antialias: bool, origin: Tuple[float, float] = (0.0, 0.0)
) -> None:
    """Fill ``shape`` into ``canvas`` (H, W) or (H, W, 3) uint8, in place.

    ``origin`` (px) is subtracted from the shape's positions (to draw into a crop). Anti-aliased drawing is
    for the colour image; the owner buffer and masks use plain 8-connected rasterisation.
    """
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    pts = _fixed(shape.points - np.asarray(origin, dtype=np.float64))
    if shape.kind == CAPSULE:
        thickness = max(1, int(round(2.0 * shape.radius)))
        cv2.line(canvas, tuple(map(int, pts[0])), tuple(map(int, pts[1])), colour, thickness, line_type, _SHIFT)
    elif shape.kind == DISK:
        radius = max(1, int(round(shape.radius * _ONE)))
        cv2.circle(canvas, tuple(map(int, pts[0])), radius, colour, -1, line_type, _SHIFT)
    elif shape.kind == POLYGON:
        cv2.fillPoly(canvas, [pts], colour, line_type, _SHIFT)
    elif shape.kind == ELLIPSE:
        axes = (max(1, int(round(shape.axes[0] * _ONE))), max(1, int(round(shape.axes[1] * _ONE))))
        cv2.ellipse(canvas, tuple(map(int, pts[0])), axes, shape.angle, 0.0, 360.0, colour, -1, line_type, _SHIFT)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")


def paints_bounds(paints: Sequence[Paint]) -> np.ndarray:
    """(2, 2) float64 px bounds of the silhouette shapes of ``paints``."""
    boxes = np.stack([p.shape.bounds() for p in paints if p.silhouette])
    return np.stack([boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)])
