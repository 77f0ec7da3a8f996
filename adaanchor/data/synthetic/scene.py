"""One synthetic image: a random scene of people and occluders, rendered with an owner buffer.

The scene depends only on (seed, image index, max_size): the COCO and CrowdPose variants of a dataset
show the same images and differ only in their labels.

Coordinates: everything is placed and drawn in pixel-index coordinates (the centre of pixel column i is
x = i), which is COCO's keypoint convention, so a joint drawn at x is labelled x. In continuous
coordinates (pixel i covers [i, i + 1), Detectron2's frame after it adds 0.5) the joint sits at x + 0.5.
Boxes are continuous coordinates, as in COCO: a box covering pixel columns i0..i1 is x = i0, w = i1 - i0 + 1.

Visibility, from the owner buffer (per pixel, the painter-order index of the front-most entity drawn there):
- v = 0: the joint lies outside the image (the pixel containing it, floor(x + 0.5), is off the image);
- v = 1: inside, but the pixel containing it belongs to a person or occluder drawn in front of this person;
- v = 2: otherwise.
Self-occlusion does not count (an arm across one's own torso leaves the hip v = 2), with one exception:
the nose and eyes of a person seen from behind are hidden by their own head and are v = 1.
"""

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .background import add_sensor_noise, random_background
from .body import BODY_JOINT_NAMES, FACE_JOINT_NAMES, Pose, sample_pose
from .occluders import occluder_paints
from .person import person_paints, sample_appearance
from .shapes import Paint, draw_shape, paints_bounds

# The 12 limb joints, shared by COCO and CrowdPose: a placed person keeps at least MIN_JOINTS_INSIDE of
# them inside the image, so that every annotated person has labels to learn from.
LIMB_JOINT_NAMES = BODY_JOINT_NAMES[5:17]
MIN_JOINTS_INSIDE = 3
_LIMB_JOINTS = np.array([BODY_JOINT_NAMES.index(n) for n in LIMB_JOINT_NAMES])
_FACE_JOINTS = np.array([BODY_JOINT_NAMES.index(n) for n in FACE_JOINT_NAMES])

PERSON_HEIGHT_RANGE = (0.15, 0.9)  # person height / image height
MAX_PERSONS = 9


@dataclass
class Entity:
    """Something drawn: a person (``pose`` in image px and ``scale``, its height in px) or an occluder
    (``pose`` None)."""

    paints: List[Paint]
    pose: Optional[Pose] = None
    scale: float = 0.0


@dataclass(frozen=True)
class RenderedPerson:
    """One person of a rendered image.

    Attributes:
        joints: (len(BODY_JOINT_NAMES), 2) float64 px, pixel-index coordinates, rounded to 0.01 px.
        visibility: (len(BODY_JOINT_NAMES),) int64 in {0, 1, 2}.
        bbox: (x, y, w, h) continuous px of the person's whole silhouette (occluded parts included) inside
            the image; area: its pixel count.
        truncated: the silhouette crosses the image border.
        front: the person faces the camera.
    """

    joints: np.ndarray
    visibility: np.ndarray
    bbox: tuple
    area: int
    truncated: bool
    front: bool


@dataclass(frozen=True)
class RenderedImage:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    persons: List[RenderedPerson]  # back to front


def image_size(rng: np.random.Generator, max_size: int) -> tuple:
    """(height, width) px: the long side is ``max_size``, the short one 60-100% of it."""
    short = int(round(max_size * rng.uniform(0.6, 1.0)))
    return (short, max_size) if rng.random() < 0.6 else (max_size, short)


def _joints_inside(pose: Pose, h: int, w: int) -> int:
    px = np.floor(pose.joints[_LIMB_JOINTS] + 0.5)
    return int(np.sum((px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)))


def _place_person(rng: np.random.Generator, x: float, feet_y: float, height: float, h: int, w: int) -> Optional[Pose]:
    """A random pose with its pelvis at x and its lowest ankle at feet_y (px); None if too little is in view."""
    pose = sample_pose(rng)
    ankles = pose.joints[[BODY_JOINT_NAMES.index("left_ankle"), BODY_JOINT_NAMES.index("right_ankle")], 1]
    origin = np.array([x, feet_y - height * float(ankles.max())])
    placed = pose.transformed(origin, height)
    if _joints_inside(placed, h, w) < MIN_JOINTS_INSIDE:
        return None
    return placed


def _sample_people(rng: np.random.Generator, h: int, w: int) -> List[Entity]:
    """People standing in a group, back to front (painter order).

    The crowd level is driven by ``spacing`` (the distance between neighbours in person heights): small
    spacings pack people into each other's boxes. Some images have a second row, smaller and higher up.
    """
    lo, hi = PERSON_HEIGHT_RANGE
    base = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # typical height / image height
    spacing = rng.uniform(0.1, 0.9)
    fit = int(w / max(1.0, spacing * base * h)) + 1
    count = int(rng.integers(1, min(MAX_PERSONS, max(1, fit)) + 1))
    rows = [count]
    if count >= 3 and rng.random() < 0.35:
        back = int(rng.integers(1, count))
        rows = [back, count - back]
    centre_x = rng.uniform(0.1, 0.9) * w
    people: List[Entity] = []
    for row, row_count in enumerate(rows):
        back_row = row == 0 and len(rows) == 2
        shrink = rng.uniform(0.7, 0.9) if back_row else 1.0
        feet_base = rng.uniform(max(base * 0.95, 0.3), 1.0) * h - (rng.uniform(0.1, 0.3) * base * h if back_row else 0)
        row_x = centre_x + (rng.uniform(-0.3, 0.3) * spacing * base * h if back_row else 0.0)
        order = rng.permutation(row_count)  # depth order inside the row
        for slot in order:
            height = float(np.clip(base * shrink * rng.uniform(0.85, 1.15), lo, hi)) * h
            x = row_x + (slot - (row_count - 1) / 2) * spacing * base * h + rng.normal(0.0, 0.08) * height
            feet_y = feet_base + rng.normal(0.0, 0.04) * height
            for _ in range(4):
                pose = _place_person(rng, x, feet_y, height, h, w)
                if pose is not None:
                    break
                x = rng.uniform(0.05, 0.95) * w  # out of view: try elsewhere
            if pose is None:
                continue
            people.append(Entity(paints=[], pose=pose, scale=height))
    while not people:  # every placement fell out of view: one person in the middle instead
        height = base * h
        pose = _place_person(rng, 0.5 * w, 0.5 * h + 0.45 * height, height, h, w)
        if pose is not None:
            people.append(Entity(paints=[], pose=pose, scale=height))
    return people


def _add_occluders(rng: np.random.Generator, entities: List[Entity], h: int) -> List[Entity]:
    """Insert 0-3 occluders, each in front of a random person (and possibly behind people nearer the camera)."""
    count = int(rng.choice(4, p=(0.3, 0.35, 0.22, 0.13)))
    for _ in range(count):
        people = [i for i, e in enumerate(entities) if e.pose is not None]
        target = people[int(rng.integers(len(people)))]
        person = entities[target]
        point = person.pose.joints[_LIMB_JOINTS[int(rng.integers(len(_LIMB_JOINTS)))]]
        paints = occluder_paints(rng, point, person.scale, h)
        position = int(rng.integers(target + 1, len(entities) + 1))
        entities.insert(position, Entity(paints=paints))
    return entities


def render_entities(image: np.ndarray, entities: List[Entity]) -> List[RenderedPerson]:
    """Draw ``entities`` back to front into ``image`` ((H, W, 3) uint8, in place) and label the persons.

    Returns the persons, back to front, with visibility from the owner buffer (module docstring); a person
    with no pixel inside the image is left out.
    """
    h, w = image.shape[:2]
    owner = np.zeros((h, w), np.int16)  # 0 = background, i = entities[i - 1]
    silhouettes = {}
    for index, entity in enumerate(entities, start=1):
        (bx0, by0), (bx1, by1) = paints_bounds(entity.paints)
        x0, y0 = max(0, int(np.floor(bx0)) - 1), max(0, int(np.floor(by0)) - 1)
        x1, y1 = min(w, int(np.ceil(bx1)) + 2), min(h, int(np.ceil(by1)) + 2)
        mask = None
        if x1 > x0 and y1 > y0:
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            for paint in entity.paints:
                if paint.silhouette:
                    draw_shape(mask, paint.shape, 255, antialias=False, origin=(x0, y0))
            owner[y0:y1, x0:x1][mask > 0] = index
        truncated = bool(bx0 < -0.5 or by0 < -0.5 or bx1 > w - 0.5 or by1 > h - 0.5)
        silhouettes[index] = (mask, x0, y0, truncated)
        for paint in entity.paints:
            draw_shape(image, paint.shape, paint.colour, antialias=True)

    persons = []
    for index, entity in enumerate(entities, start=1):
        if entity.pose is None:
            continue
        mask, x0, y0, truncated = silhouettes[index]
        ys, xs = np.nonzero(mask) if mask is not None else (np.zeros(0, int), np.zeros(0, int))
        if xs.size == 0:
            continue
        bbox = (
            float(x0 + xs.min()),
            float(y0 + ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        )
        joints = entity.pose.joints
        px = np.floor(joints + 0.5).astype(np.int64)
        inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
        front_owner = np.zeros(len(joints), np.int64)
        front_owner[inside] = owner[px[inside, 1], px[inside, 0]]
        visibility = np.where(inside, np.where(front_owner > index, 1, 2), 0)
        if not entity.pose.front:
            visibility[_FACE_JOINTS] = np.minimum(visibility[_FACE_JOINTS], 1)
        persons.append(
            RenderedPerson(
                joints=joints, visibility=visibility, bbox=bbox, area=int(xs.size),
                truncated=truncated, front=entity.pose.front,
            )
        )  # fmt: skip
    return persons


def render_image(seed: int, index: int, max_size: int) -> RenderedImage:
    """Image ``index`` of the dataset with ``seed``: deterministic in (seed, index, max_size)."""
    rng = np.random.default_rng([seed, index])
    h, w = image_size(rng, max_size)
    image = random_background(rng, h, w)
    light = rng.normal(size=2)
    light /= max(1e-9, float(np.linalg.norm(light)))
    entities = _sample_people(rng, h, w)
    for entity in entities:
        entity.paints = person_paints(entity.pose, entity.scale, sample_appearance(rng, light), rng)
    if entities:
        entities = _add_occluders(rng, entities, h)
    persons = render_entities(image, entities)
    return RenderedImage(image=add_sensor_noise(rng, image), persons=persons)
