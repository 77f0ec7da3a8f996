"""A person's appearance: clothing colours, shading and face, turned into drawing primitives.

Cues a small CNN can learn from, none of which colour-codes left vs right:
- limbs are shaded capsules (a darker rim, a lighter core offset towards the light), the torso a shirt
  over trousers; elbows, wrists, knees and ankles sit where the colour changes (sleeve/forearm, forearm/hand,
  thigh/shin, shin/shoe), so joints are visible even on a straight limb;
- the head shows a face (skin, eyes, nose, mouth, hair on top) when the person faces the camera, and only
  hair from behind; ears stick out on both sides either way. Left/right then follows from the facing.
Drawing order inside a person: legs, torso, neck, ears, head, arms (arms in front, so a back-facing
person's crossed arms read as arms behind the back).
"""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .body import HAND_RADIUS, RADII, Pose
from .shapes import Paint, capsule, disk, ellipse, polygon

Colour = Tuple[int, int, int]

SKIN_TONES = ((60, 80, 120), (90, 120, 170), (120, 160, 210), (150, 190, 235), (170, 205, 240))  # BGR
HAIR_COLOURS = ((20, 20, 25), (30, 45, 70), (40, 70, 110), (90, 140, 190), (150, 150, 150))


@dataclass(frozen=True)
class Appearance:
    skin: Colour
    hair: Colour
    shirt: Colour
    trousers: Colour
    shoes: Colour
    long_sleeves: bool
    light: np.ndarray  # (2,) unit vector towards the light, shared by the scene


def _jitter(rng: np.random.Generator, colour, amount: int) -> Colour:
    return tuple(int(c) for c in np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255))


def sample_appearance(rng: np.random.Generator, light: np.ndarray) -> Appearance:
    return Appearance(
        skin=_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 12),
        hair=_jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 10),
        shirt=tuple(int(c) for c in rng.integers(20, 236, 3)),
        trousers=tuple(int(c) for c in rng.integers(15, 180, 3)),
        shoes=tuple(int(c) for c in rng.integers(0, 90, 3)),
        long_sleeves=bool(rng.random() < 0.5),
        light=light,
    )


def _scaled(colour: Colour, factor: float) -> Colour:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in colour)


def _shaded_capsule(a: np.ndarray, b: np.ndarray, radius: float, colour: Colour, light: np.ndarray) -> List[Paint]:
    """A limb: a darker rim (the silhouette) and a lighter core shifted towards the light."""
    offset = 0.3 * radius * light
    return [
        Paint(capsule(a, b, radius), _scaled(colour, 0.62), silhouette=True),
        Paint(capsule(a + offset, b + offset, 0.55 * radius), _scaled(colour, 1.08)),
    ]


def _leg(pose: Pose, prefix: str, scale: float, look: Appearance) -> List[Paint]:
    seg = pose.segments
    paints = _shaded_capsule(*seg[f"{prefix}_thigh"], RADII["thigh"] * scale * pose.build, look.trousers, look.light)
    paints += _shaded_capsule(
        *seg[f"{prefix}_shin"], RADII["shin"] * scale * pose.build, _scaled(look.trousers, 0.82), look.light
    )
    paints += _shaded_capsule(*seg[f"{prefix}_foot"], RADII["foot"] * scale, look.shoes, look.light)
    return paints


def _arm(pose: Pose, prefix: str, scale: float, look: Appearance) -> List[Paint]:
    seg = pose.segments
    forearm_colour = _scaled(look.shirt, 0.8) if look.long_sleeves else look.skin
    paints = _shaded_capsule(
        *seg[f"{prefix}_upper_arm"], RADII["upper_arm"] * scale * pose.build, look.shirt, look.light
    )
    paints += _shaded_capsule(
        *seg[f"{prefix}_forearm"], RADII["forearm"] * scale * pose.build, forearm_colour, look.light
    )
    hand_centre = seg[f"{prefix}_hand"][1]
    paints.append(Paint(disk(hand_centre, HAND_RADIUS * scale), _scaled(look.skin, 0.9), silhouette=True))
    return paints


def _torso(pose: Pose, scale: float, look: Appearance) -> List[Paint]:
    j = pose.joint
    right = np.array([-pose.up[1], pose.up[0]])
    arm_r, leg_r = RADII["upper_arm"] * scale * pose.build, RADII["thigh"] * scale * pose.build
    # Shoulder and hip points of the image-left and image-right sides.
    sl, sr = sorted((j("left_shoulder"), j("right_shoulder")), key=lambda p: float(p @ right))
    hl, hr = sorted((j("left_hip"), j("right_hip")), key=lambda p: float(p @ right))
    top_l, top_r = sl - 0.6 * arm_r * right + 0.4 * arm_r * pose.up, sr + 0.6 * arm_r * right + 0.4 * arm_r * pose.up
    bottom_l, bottom_r = hl - 0.8 * leg_r * right, hr + 0.8 * leg_r * right
    waist_l, waist_r = top_l + 0.72 * (bottom_l - top_l), top_r + 0.72 * (bottom_r - top_r)
    crotch = 0.5 * (hl + hr) - 0.9 * leg_r * pose.up
    shirt = [top_l, top_r, waist_r, waist_l]
    trousers = [waist_l, waist_r, bottom_r, crotch, bottom_l]
    centre = np.mean(shirt, axis=0) + 0.012 * scale * look.light
    core = [centre + 0.7 * (p - centre) for p in shirt]
    return [
        Paint(polygon(trousers), _scaled(look.trousers, 0.75), silhouette=True),
        Paint(polygon(shirt), _scaled(look.shirt, 0.7), silhouette=True),
        Paint(polygon(core), _scaled(look.shirt, 1.05)),
        Paint(capsule(waist_l, waist_r, max(0.6, 0.012 * scale)), _scaled(look.trousers, 0.45)),  # belt
    ]


def _head(pose: Pose, scale: float, look: Appearance) -> List[Paint]:
    j = pose.joint
    r = pose.head_radius
    up = pose.head_up
    angle = float(np.degrees(np.arctan2(up[1], up[0])))  # OpenCV ellipse angle of the head axis
    paints = _shaded_capsule(*pose.segments["neck"], RADII["neck"] * scale * pose.build, look.skin, look.light)
    for ear in ("left_ear", "right_ear"):
        paints.append(Paint(ellipse(j(ear), (0.3 * r, 0.2 * r), angle), _scaled(look.skin, 0.85), silhouette=True))
    if pose.front:
        paints.append(Paint(disk(pose.head_centre, r), look.skin, silhouette=True))
        # Hair: the top of the head, a flattened ellipse centred above the head centre.
        paints.append(Paint(ellipse(pose.head_centre + 0.7 * r * up, (0.45 * r, 0.98 * r), angle), look.hair))
        eye_r = max(0.6, 0.13 * r)
        for eye in ("left_eye", "right_eye"):
            paints.append(Paint(disk(j(eye), eye_r * 1.6), (235, 235, 235)))
            paints.append(Paint(disk(j(eye), eye_r), (25, 20, 20)))
        paints.append(Paint(disk(j("nose"), max(0.6, 0.14 * r)), _scaled(look.skin, 0.7)))
        mouth = j("nose") - 0.3 * r * up
        side = np.array([-up[1], up[0]]) * 0.22 * r
        paints.append(Paint(capsule(mouth - side, mouth + side, max(0.5, 0.05 * r)), (40, 40, 150)))
    else:
        paints.append(Paint(disk(pose.head_centre, r), look.hair, silhouette=True))
        paints.append(Paint(disk(pose.head_centre + 0.25 * r * (up + look.light), 0.45 * r), _scaled(look.hair, 1.3)))
    return paints


def person_paints(pose: Pose, scale: float, look: Appearance, rng: np.random.Generator) -> List[Paint]:
    """Everything to draw for one person, back to front.

    Args:
        pose: the pose in image px (``Pose.transformed``).
        scale: px per body unit (the person's standing height in px).
    """
    legs = ["left", "right"]
    arms = ["left", "right"]
    rng.shuffle(legs)
    rng.shuffle(arms)
    paints: List[Paint] = []
    for prefix in legs:
        paints += _leg(pose, prefix, scale, look)
    paints += _torso(pose, scale, look)
    paints += _head(pose, scale, look)
    for prefix in arms:
        paints += _arm(pose, prefix, scale, look)
    return paints
