"""Cheap varied backgrounds: gradients, smooth noise, stripes, checks and blobs, often two textures split at
a horizon (a wall over a floor). Textures are (H, W) fields in [0, 1] coloured through a random palette with
OpenCV's colour maps, or built directly in uint8; everything stays uint8 where it can (this is the costliest
part of an image).
"""

from typing import Callable, Dict

import cv2
import numpy as np


def _palette(rng: np.random.Generator) -> np.ndarray:
    """A (256, 1, 3) uint8 colour map: a ramp through 2 or 3 random colours."""
    stops = rng.integers(0, 256, (int(rng.integers(2, 4)), 3)).astype(np.float32)
    positions = np.linspace(0.0, 1.0, len(stops))
    ramp = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(ramp, positions, stops[:, c]) for c in range(3)], axis=1)
    return np.round(lut).astype(np.uint8)[:, None, :]


def _colourise(rng: np.random.Generator, field: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1] -> (H, W, 3) uint8 through a random palette."""
    return cv2.applyColorMap(cv2.convertScaleAbs(field, alpha=255.0), _palette(rng))


def _projection(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Pixel coordinates projected on a random direction, (H, W) float32 px."""
    a = rng.uniform(0.0, np.pi)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    return xs * np.float32(np.cos(a)) + ys * np.float32(np.sin(a))


def gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    proj = _projection(rng, h, w)
    lo, hi = float(proj.min()), float(proj.max())
    return _colourise(rng, (proj - lo) / max(1e-6, hi - lo))


def smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    cells = int(rng.integers(2, 24))
    cells_x = max(2, cells * w // max(h, 1))
    if rng.random() < 0.5:  # colour noise
        small = rng.integers(0, 256, (cells, cells_x, 3), dtype=np.uint8)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    small = rng.random((cells, cells_x), dtype=np.float32)
    return _colourise(rng, np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0))


def stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    period = rng.uniform(6.0, 0.25 * max(h, w))
    phase = np.sin(_projection(rng, h, w) * np.float32(2.0 * np.pi / period))
    field = (phase > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * phase
    return _colourise(rng, field)


def checks(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    size = rng.uniform(8.0, 0.2 * max(h, w))
    rows = (np.arange(h) // size).astype(np.int32)[:, None]
    cols = (np.arange(w) // size).astype(np.int32)[None, :]
    return _colourise(rng, ((rows + cols) % 2).astype(np.float32))


def blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3).astype(np.uint8)
    for _ in range(int(rng.integers(4, 30))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(3, max(4, w // 5))), int(rng.integers(3, max(4, h // 5))))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0.0, 360.0, colour, -1, cv2.LINE_AA)
    k = 2 * int(rng.integers(0, 4)) + 1
    return cv2.GaussianBlur(img, (k, k), 0) if k > 1 else img


TEXTURES: Dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "gradient": gradient,
    "noise": smooth_noise,
    "stripes": stripes,
    "checks": checks,
    "blobs": blobs,
}
_NAMES = tuple(TEXTURES)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One texture, half the time blended with a second: (H, W, 3) uint8."""
    img = TEXTURES[_NAMES[rng.integers(len(_NAMES))]](rng, h, w)
    if rng.random() < 0.5:
        alpha = float(rng.uniform(0.2, 0.6))
        other = TEXTURES[_NAMES[rng.integers(len(_NAMES))]](rng, h, w)
        img = cv2.addWeighted(img, 1.0 - alpha, other, alpha, 0.0)
    return img


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A background image, (H, W, 3) uint8 BGR."""
    img = _texture(rng, h, w)
    if rng.random() < 0.5:  # a wall over a floor
        horizon = int(rng.uniform(0.3, 0.8) * h)
        img[horizon:] = _texture(rng, h - horizon, w)
    return np.ascontiguousarray(img)


def add_sensor_noise(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Grain of +-amount grey levels (0..8) on the finished image, (H, W, 3) uint8 -> same (saturating)."""
    amount = int(rng.integers(0, 9))
    if amount == 0:
        return img
    noise = rng.integers(0, 2 * amount + 1, size=img.shape, dtype=np.uint8)
    return cv2.subtract(cv2.add(img, noise), np.full_like(img, amount))
