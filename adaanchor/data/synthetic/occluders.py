"""Occluder objects placed in front of people: boxes/signs, round things, poles and horizontal bars."""

from typing import List

import numpy as np

from .shapes import Paint, capsule, ellipse, polygon

OCCLUDER_KINDS = ("box", "round", "pole", "bar")


def _colour(rng: np.random.Generator):
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _darker(colour, factor: float = 0.6):
    return tuple(int(c * factor) for c in colour)


def _rectangle(centre: np.ndarray, half_w: float, half_h: float, angle_deg: float) -> np.ndarray:
    """(4, 2) corners of a rotated rectangle, px."""
    a = np.deg2rad(angle_deg)
    ux, uy = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    return np.stack([centre + sx * half_w * ux + sy * half_h * uy for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])


def occluder_paints(rng: np.random.Generator, target: np.ndarray, person_height: float, image_h: int) -> List[Paint]:
    """One occluder overlapping the point ``target`` (px), sized relative to ``person_height`` (px).

    The first paint is the silhouette; the rest are details inside it (border, stripes, highlight).
    """
    kind = OCCLUDER_KINDS[rng.choice(len(OCCLUDER_KINDS), p=(0.4, 0.25, 0.2, 0.15))]
    colour = _colour(rng)
    ph = person_height
    if kind == "box":
        half_w, half_h = rng.uniform(0.08, 0.3) * ph, rng.uniform(0.07, 0.25) * ph
        centre = target + rng.uniform(-0.5, 0.5, 2) * np.array([half_w, half_h])
        angle = rng.uniform(-12.0, 12.0)
        outer = _rectangle(centre, half_w, half_h, angle)
        inner = _rectangle(centre, 0.85 * half_w, 0.85 * half_h, angle)
        paints = [Paint(polygon(outer), _darker(colour), silhouette=True), Paint(polygon(inner), colour)]
        if rng.random() < 0.5:  # a stripe across, like a label
            stripe = _rectangle(centre, 0.85 * half_w, 0.15 * half_h, angle)
            paints.append(Paint(polygon(stripe), _colour(rng)))
        return paints
    if kind == "round":
        axes = (rng.uniform(0.06, 0.22) * ph, rng.uniform(0.06, 0.22) * ph)
        centre = target + rng.uniform(-0.4, 0.4, 2) * np.array(axes)
        angle = rng.uniform(0.0, 180.0)
        highlight = centre - 0.25 * np.array(axes)
        return [
            Paint(ellipse(centre, axes, angle), _darker(colour, 0.7), silhouette=True),
            Paint(ellipse(highlight, (0.45 * axes[0], 0.45 * axes[1]), angle), colour),
        ]
    if kind == "pole":
        radius = rng.uniform(0.015, 0.045) * ph
        tilt = np.deg2rad(rng.uniform(-8.0, 8.0))
        direction = np.array([np.sin(tilt), np.cos(tilt)])
        if rng.random() < 0.6:  # floor to ceiling
            half_len = image_h
        else:
            half_len = rng.uniform(0.3, 0.8) * ph
        a, b = target - half_len * direction, target + half_len * direction
        shine = np.array([0.35 * radius, 0.0])
        return [
            Paint(capsule(a, b, radius), _darker(colour), silhouette=True),
            Paint(capsule(a + shine, b + shine, 0.35 * radius), colour),
        ]
    # bar: a horizontal rail or table edge across the body
    half_w, half_h = rng.uniform(0.3, 0.9) * ph, rng.uniform(0.02, 0.08) * ph
    angle = rng.uniform(-5.0, 5.0)
    centre = target + np.array([rng.uniform(-0.3, 0.3) * half_w, 0.0])
    return [
        Paint(polygon(_rectangle(centre, half_w, half_h, angle)), _darker(colour), silhouette=True),
        Paint(polygon(_rectangle(centre, 0.98 * half_w, 0.5 * half_h, angle)), colour),
    ]
