"""A 2D articulated human body: proportions, joint-angle limits and random poses.

A pose is built in *body units* (1 = the height of a person standing straight, head top to ankle
level), with x to the image right and y down, the pelvis centre at the origin. It is a kinematic tree:
pelvis -> torso (lean) -> neck -> head (tilt); shoulders and hips hang off the torso; each limb is two
segments (upper arm / forearm, thigh / shin) with an abduction angle at the root and a bend at the middle
joint, each limited to a plausible range.

Facing: a person faces the camera ("front") or turns away ("back"). A front-facing person's left limbs
are on the image right, a back-facing person's on the image left, so left/right follow from the facing,
which the renderer shows by the face (front) or the back of the head (back) — never by colour. A
horizontal flip of the image therefore yields a correctly labelled image once left/right labels are
swapped. ``yaw`` (+-35 deg) narrows the shoulders and hips by cos(yaw) and shifts the face sideways.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

# Every joint the body model places. CrowdPose uses 12 of the COCO names plus "head" (top of the head)
# and "neck"; COCO uses the 17 COCO names.
BODY_JOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head", "neck",
)  # fmt: skip
FACE_JOINT_NAMES = ("nose", "left_eye", "right_eye")

# Proportions in body units (lengths) — roughly those of an adult.
TORSO_LENGTH = 0.30  # pelvis centre to neck
SHOULDER_DROP = 0.025  # shoulders sit this far below the neck point, along the torso
SHOULDER_HALF_WIDTH = 0.115
HIP_HALF_WIDTH = 0.08
UPPER_ARM, FOREARM = 0.17, 0.145
THIGH, SHIN = 0.25, 0.245
NECK_TO_HEAD_CENTRE = 0.10
HEAD_RADIUS = 0.065
HAND_RADIUS, FOOT_LENGTH = 0.028, 0.06
# Limb half-thicknesses (capsule radii), body units.
RADII = {"upper_arm": 0.032, "forearm": 0.026, "thigh": 0.05, "shin": 0.037, "neck": 0.03, "foot": 0.024}

# Joint-angle limits in degrees. Abduction is measured from the torso's down direction, positive away from
# the body's midline; bends are signed (the elbow or knee can point either way in a 2D projection).
TORSO_LEAN_STD, TORSO_LEAN_MAX = 7.0, 30.0
HEAD_TILT_MAX = 25.0
YAW_MAX = 35.0
ARM_ABDUCTION = (-25.0, 170.0)
ELBOW_BEND_MAX = 145.0
LEG_ABDUCTION = (-12.0, 50.0)
KNEE_BEND_MAX = 110.0


@dataclass(frozen=True)
class Pose:
    """One person's pose in body units (pelvis centre at the origin, x right, y down).

    Attributes:
        joints: (len(BODY_JOINT_NAMES), 2) float64 joint positions, in the order of BODY_JOINT_NAMES.
        segments: name -> (2, 2) float64 end points of each drawn limb segment, e.g. "left_forearm"
            (elbow, wrist), "left_hand" (wrist, hand centre), "left_foot" (ankle, toe), "neck" (neck,
            head centre).
        head_centre: (2,) float64; head_radius: float.
        up: (2,) unit vector of the torso axis (pelvis -> neck); head_up: of the head axis.
        front: True when the person faces the camera.
        yaw: rotation about the vertical axis in radians (|yaw| <= 35 deg).
        build: width factor of the body (1 = average).
    """

    joints: np.ndarray
    segments: Dict[str, np.ndarray]
    head_centre: np.ndarray
    head_radius: float
    up: np.ndarray
    head_up: np.ndarray
    front: bool
    yaw: float
    build: float

    def joint(self, name: str) -> np.ndarray:
        return self.joints[BODY_JOINT_NAMES.index(name)]

    def transformed(self, origin: np.ndarray, scale: float) -> "Pose":
        """The pose in image px: ``origin + scale * p`` for every point (origin: (2,) px, scale: px per unit).

        Positions are rounded to 0.01 px, so that labels written with two decimals are exactly the drawn
        positions.
        """

        def place(p: np.ndarray) -> np.ndarray:
            return np.round(origin + scale * p, 2)

        return Pose(
            joints=place(self.joints),
            segments={k: place(v) for k, v in self.segments.items()},
            head_centre=place(self.head_centre),
            head_radius=scale * self.head_radius,
            up=self.up,
            head_up=self.head_up,
            front=self.front,
            yaw=self.yaw,
            build=self.build,
        )


def _direction(angle_deg: float) -> np.ndarray:
    """Unit vector at ``angle_deg`` from straight down (0, 1), positive towards +x."""
    a = np.deg2rad(angle_deg)
    return np.array([np.sin(a), np.cos(a)])


def _perpendicular(up: np.ndarray) -> np.ndarray:
    """The unit vector pointing to the image right (+x) when ``up`` points up."""
    return np.array([-up[1], up[0]])


def _foreshortening(rng: np.random.Generator) -> float:
    """Projected length factor of a segment that points partly towards or away from the camera."""
    return 1.0 if rng.random() < 0.7 else rng.uniform(0.55, 1.0)


def _limb(
    rng: np.random.Generator,
    root: np.ndarray,
    down_angle: float,
    side: float,
    abduction: float,
    bend: float,
    lengths: Tuple[float, float],
) -> Tuple[np.ndarray, np.ndarray, float]:
    """Middle and end joints of a two-segment limb; also the end segment's angle (deg from down)."""
    upper_angle = down_angle + side * abduction
    lower_angle = upper_angle + bend
    middle = root + lengths[0] * _foreshortening(rng) * _direction(upper_angle)
    end = middle + lengths[1] * _foreshortening(rng) * _direction(lower_angle)
    return middle, end, lower_angle


def _arm_abduction(rng: np.random.Generator) -> float:
    lo, hi = ARM_ABDUCTION
    if rng.random() < 0.65:  # arms down or slightly out
        return rng.uniform(lo, 45.0)
    return rng.uniform(45.0, hi)


def _knee_bend(rng: np.random.Generator) -> float:
    if rng.random() < 0.75:  # standing or walking
        return rng.uniform(-20.0, 20.0)
    return rng.choice([-1.0, 1.0]) * rng.uniform(20.0, KNEE_BEND_MAX)


def sample_pose(rng: np.random.Generator) -> Pose:
    """A random pose within the joint-angle limits above, in body units."""
    front = bool(rng.random() < 0.5)
    yaw = np.deg2rad(rng.uniform(-YAW_MAX, YAW_MAX))
    width = np.cos(yaw)
    build = rng.uniform(0.85, 1.2)
    size = rng.uniform(0.94, 1.06, size=8)  # per-person proportion jitter

    lean = float(np.clip(rng.normal(0.0, TORSO_LEAN_STD), -TORSO_LEAN_MAX, TORSO_LEAN_MAX))
    if rng.random() < 0.1:  # bending over
        lean = rng.uniform(-TORSO_LEAN_MAX, TORSO_LEAN_MAX)
    up = -_direction(-lean)  # lean > 0 tilts the top to +x
    right = _perpendicular(up)
    down_angle = -lean  # angle of the torso's down direction, deg from straight down

    pelvis = np.zeros(2)
    neck = pelvis + TORSO_LENGTH * size[0] * up
    # Image side (+1 = image right) of the person's left limbs.
    left_side = 1.0 if front else -1.0
    shoulder_half = SHOULDER_HALF_WIDTH * build * width
    hip_half = HIP_HALF_WIDTH * build * width

    joints: Dict[str, np.ndarray] = {"neck": neck}
    segments: Dict[str, np.ndarray] = {}
    for prefix, side in (("left", left_side), ("right", -left_side)):
        shoulder = neck - SHOULDER_DROP * up + side * shoulder_half * right
        hip = pelvis + side * hip_half * right
        elbow, wrist, forearm_angle = _limb(
            rng, shoulder, down_angle, side, _arm_abduction(rng),
            rng.choice([-1.0, 1.0]) * rng.uniform(0.0, ELBOW_BEND_MAX),
            (UPPER_ARM * size[1], FOREARM * size[2]),
        )  # fmt: skip
        knee, ankle, shin_angle = _limb(
            rng, hip, down_angle, side, rng.uniform(*LEG_ABDUCTION), _knee_bend(rng),
            (THIGH * size[3], SHIN * size[4]),
        )  # fmt: skip
        hand_centre = wrist + 0.9 * HAND_RADIUS * _direction(forearm_angle)
        # The foot points down from the ankle (towards the camera) and a little outwards.
        toe = ankle + FOOT_LENGTH * _direction(0.7 * shin_angle + side * rng.uniform(10.0, 60.0))
        joints.update(
            {f"{prefix}_shoulder": shoulder, f"{prefix}_elbow": elbow, f"{prefix}_wrist": wrist,
             f"{prefix}_hip": hip, f"{prefix}_knee": knee, f"{prefix}_ankle": ankle}
        )  # fmt: skip
        segments.update(
            {f"{prefix}_upper_arm": np.stack([shoulder, elbow]), f"{prefix}_forearm": np.stack([elbow, wrist]),
             f"{prefix}_hand": np.stack([wrist, hand_centre]),
             f"{prefix}_thigh": np.stack([hip, knee]), f"{prefix}_shin": np.stack([knee, ankle]),
             f"{prefix}_foot": np.stack([ankle, toe])}
        )  # fmt: skip

    tilt = rng.uniform(-HEAD_TILT_MAX, HEAD_TILT_MAX)
    head_up = -_direction(-(lean + tilt))
    head_right = _perpendicular(head_up)
    radius = HEAD_RADIUS * size[5]
    head_centre = neck + NECK_TO_HEAD_CENTRE * size[6] * head_up
    segments["neck"] = np.stack([neck, head_centre])
    # The top of the head, kept just inside the head disk so that its pixel belongs to the head.
    joints["head"] = head_centre + 0.85 * radius * head_up
    face_shift = np.sin(yaw) * 0.45 * radius * (1.0 if front else -1.0)
    face_centre = head_centre + face_shift * head_right
    for prefix, side in (("left", left_side), ("right", -left_side)):
        joints[f"{prefix}_eye"] = face_centre + 0.1 * radius * head_up + side * 0.36 * radius * width * head_right
        joints[f"{prefix}_ear"] = head_centre - 0.05 * radius * head_up + side * 0.86 * radius * head_right
    joints["nose"] = face_centre + 0.3 * face_shift * head_right - 0.22 * radius * head_up

    return Pose(
        joints=np.stack([joints[n] for n in BODY_JOINT_NAMES]),
        segments=segments,
        head_centre=head_centre,
        head_radius=radius,
        up=up,
        head_up=head_up,
        front=front,
        yaw=float(yaw),
        build=float(build),
    )
