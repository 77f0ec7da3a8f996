"""Cheap varied backgrounds: gradients, smooth colour noise, stripes, checks and blobs, often two textures
split at a horizon (a wall over a floor). Each is built at low resolution where it can be, then resized.
"""

from typing import Callable, Dict

import cv2
import numpy as np


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float32)


def _mix(t: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1] -> (H, W, 3) float32 colours between c0 and c1."""
    return c0 + t[..., None] * (c1 - c0)


def _coords(h: int, w: int, rng: np.random.Generator):
    """Pixel coordinates projected on a random direction, (H, W) float32 px."""
    a = rng.uniform(0.0, np.pi)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    return xs * np.float32(np.cos(a)) + ys * np.float32(np.sin(a))


def gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    proj = _coords(h, w, rng)
    t = (proj - proj.min()) / max(1e-6, float(proj.max() - proj.min()))
    return _mix(t, _colour(rng), _colour(rng))


def smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    cells = int(rng.integers(2, 24))
    small = rng.random((cells, max(2, cells * w // max(h, 1)), 3)).astype(np.float32)
    t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    palette = np.stack([_colour(rng), _colour(rng)])
    return palette[0] + np.clip(t, 0.0, 1.0) * (palette[1] - palette[0])


def stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    period = rng.uniform(6.0, 0.25 * max(h, w))
    phase = np.sin(2.0 * np.pi * _coords(h, w, rng) / np.float32(period))
    t = (phase > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * phase
    return _mix(t, _colour(rng), _colour(rng))


def checks(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    size = rng.uniform(8.0, 0.2 * max(h, w))
    t = ((np.arange(h)[:, None] // size + np.arange(w)[None, :] // size) % 2).astype(np.float32)
    return _mix(t, _colour(rng), _colour(rng))


def blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3).astype(np.uint8)
    for _ in range(int(rng.integers(4, 30))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(3, max(4, w // 5))), int(rng.integers(3, max(4, h // 5))))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0.0, 360.0, colour, -1, cv2.LINE_AA)
    k = 2 * int(rng.integers(0, 4)) + 1
    if k > 1:
        img = cv2.GaussianBlur(img, (k, k), 0)
    return img.astype(np.float32)


TEXTURES: Dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "gradient": gradient,
    "noise": smooth_noise,
    "stripes": stripes,
    "checks": checks,
    "blobs": blobs,
}
_NAMES = tuple(TEXTURES)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One texture, optionally blended with a second: (H, W, 3) float32 in [0, 255]."""
    img = TEXTURES[_NAMES[rng.integers(len(_NAMES))]](rng, h, w)
    if rng.random() < 0.5:
        alpha = np.float32(rng.uniform(0.2, 0.6))
        img = (1 - alpha) * img + alpha * TEXTURES[_NAMES[rng.integers(len(_NAMES))]](rng, h, w)
    return img


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A background image, (H, W, 3) uint8 BGR."""
    img = _texture(rng, h, w)
    if rng.random() < 0.5:  # a wall over a floor
        horizon = int(rng.uniform(0.3, 0.8) * h)
        img[horizon:] = _texture(rng, h - horizon, w)
    return np.clip(img, 0, 255).astype(np.uint8)


def add_sensor_noise(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Grain on the finished image, (H, W, 3) uint8 -> same."""
    amount = int(rng.integers(0, 9))
    if amount == 0:
        return img
    noise = rng.integers(-amount, amount + 1, size=img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
