"""Dataset mapper for bottom-up and single-stage pose models (DEKR, Associative Embedding).

Training: one random affine per image (scale, rotation, translation, horizontal flip with the keypoint
flip map) into a square ``INPUT.BOTTOM_UP.SIZE`` input, as HigherHRNet and DEKR do. Test: the short side
resized to ``INPUT.MIN_SIZE_TEST`` keeping the aspect ratio; the model maps predictions back to the
original ``height`` x ``width``.

Image size: the decoded image's, not the json's. The original CrowdPose json gives sizes that disagree with
some image files (MMPose ships corrected files); the annotations match the pixels, so the mapper uses the
decoded size and warns once per such file, with both sizes and a running count.

Keypoints pushed outside the input by the augmentation keep their labels: AdaAnchor may still target them
within its margin, and the heatmap baseline ignores them (the meta-architecture decides, not the mapper).
"""

import copy
import logging
from typing import List, Optional

import numpy as np

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.data.bottom_up_mapper")

import torch  # noqa: E402
from detectron2.config import configurable  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.data import detection_utils as utils  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402
from detectron2.structures import Boxes, BoxMode, Instances, Keypoints  # noqa: E402

from adaanchor.data.affine import area_scale, bottom_up_affine, transform_points, warp  # noqa: E402
from adaanchor.data.image_io import ImageReadError, read_image  # noqa: E402
from adaanchor.data.skips import counters, record_skip  # noqa: E402

logger = logging.getLogger(__name__)


class BottomUpDatasetMapper:
    """Maps a dataset dict to the model's input dict.

    Output (training): ``image`` (3, S, S) uint8 tensor in ``INPUT.FORMAT``; ``instances`` with
    ``gt_keypoints`` (N, K, 3) Keypoints in input px (continuous convention, v in {0, 1, 2} unchanged by the
    augmentation), ``gt_boxes`` (N, 4) XYXY input px, ``gt_classes`` (N,) zeros and ``gt_areas`` (N,)
    input px^2 (the annotation's ``area`` or, without one, its box area, scaled by the transform);
    ``ignore_mask`` (S, S) bool, True where the loss must ignore pixels (crowd regions and people without
    labelled keypoints), present only when such regions exist. A person without any labelled keypoint is
    not an instance.

    Output (test): ``image`` resized, plus the original ``height``/``width`` for mapping predictions back.

    ``height`` / ``width`` are set to the decoded image's size (see the module docstring).
    An image that cannot be read (missing, empty, not an image, undecodable: see
    :mod:`adaanchor.data.image_io`) is reported with its file and image id and skipped in training (the
    mapper returns None, Detectron2's loader draws another image, and the trainer reports the count at the
    end of training); at test time it raises, because skipping an evaluation image would bias the results.
    16-bit images are scaled to 8 bit, grayscale and RGBA ones converted to 3 channels.
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        image_format: str,
        input_size: int,
        scale_range=(0.75, 1.5),
        max_rotation_deg: float = 30.0,
        max_translation: float = 40.0,
        flip_prob: float = 0.5,
        flip_indices: Optional[List[int]] = None,
        num_keypoints: int = 0,
        test_resize: Optional[T.Augmentation] = None,
        test_keypoints: bool = False,
    ):
        """
        Args:
            image_format: Detectron2 image format ("BGR", "RGB").
            input_size: side of the square training input, input px.
            scale_range: (min, max) of the random zoom; 1 fits the image's short side to ``input_size``.
            max_rotation_deg: rotations are uniform in [-max, max] degrees.
            max_translation: shifts are uniform in [-max, max] input px per axis.
            flip_prob: probability of a horizontal flip; needs ``flip_indices`` when > 0.
            flip_indices: K indices, the keypoint order after a flip (KeypointSpec.flip_indices).
            num_keypoints: K, for the empty ``gt_keypoints`` of images without people.
            test_resize: the test-time resize (ResizeShortestEdge).
            test_keypoints: at test time, keep the people's keypoints, resized with the image, as ``instances``
                (``gt_keypoints`` (T, K, 3) input px; for MODEL.AE.TEST.GROUND_TRUTH_TAGS).
        """
        if is_train and flip_prob > 0 and flip_indices is None:
            raise ValueError("BottomUpDatasetMapper: flip_prob > 0 needs the dataset's keypoint flip indices")
        self.is_train = is_train
        self.image_format = image_format
        self.input_size = int(input_size)
        self.scale_range = tuple(scale_range)
        self.max_rotation_deg = float(max_rotation_deg)
        self.max_translation = float(max_translation)
        self.flip_prob = float(flip_prob)
        self.flip_indices = None if flip_indices is None else np.asarray(flip_indices, dtype=np.int64)
        self.num_keypoints = int(num_keypoints)
        self.test_resize = test_resize
        self.test_keypoints = test_keypoints
        self._size_disagreements = set()  # file names whose json size differs from the decoded image's
        self._skips = counters()  # shared with the loader's workers (adaanchor.data.skips)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        flip_indices, num_keypoints = None, 0
        if is_train:
            if not cfg.DATASETS.TRAIN:
                raise ValueError("DATASETS.TRAIN is empty: the training mapper needs its keypoint metadata")
            num_keypoints = len(MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).keypoint_names)
            if cfg.INPUT.BOTTOM_UP.FLIP_PROB > 0:
                flip_indices = utils.create_keypoint_hflip_indices(cfg.DATASETS.TRAIN)
        elif cfg.MODEL.AE.TEST.GROUND_TRUTH_TAGS:
            num_keypoints = cfg.MODEL.AE.NUM_KEYPOINTS  # the AE model checks it against the dataset's
        return {
            "is_train": is_train,
            "image_format": cfg.INPUT.FORMAT,
            "input_size": cfg.INPUT.BOTTOM_UP.SIZE,
            "scale_range": cfg.INPUT.BOTTOM_UP.SCALE_RANGE,
            "max_rotation_deg": cfg.INPUT.BOTTOM_UP.MAX_ROTATION,
            "max_translation": cfg.INPUT.BOTTOM_UP.MAX_TRANSLATION,
            "flip_prob": cfg.INPUT.BOTTOM_UP.FLIP_PROB,
            "flip_indices": flip_indices,
            "num_keypoints": num_keypoints,
            "test_resize": T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST),
            "test_keypoints": not is_train and cfg.MODEL.AE.TEST.GROUND_TRUTH_TAGS,
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        try:
            image = read_image(dataset_dict["file_name"], format=self.image_format)
        except ImageReadError as e:
            message = f"image id {dataset_dict.get('image_id')} ({dataset_dict['file_name']}): {e.reason} ({e.detail})"
            if not self.is_train:
                raise RuntimeError(f"Cannot read evaluation image {message}") from e
            record_skip(e.reason, self._skips)
            logger.warning(f"Skipping unreadable training image {message}")
            return None
        self._use_decoded_size(dataset_dict, image)
        if not self.is_train:
            return self._map_test(dataset_dict, image)
        return self._map_train(dataset_dict, image)

    def _use_decoded_size(self, dataset_dict, image) -> None:
        """Set ``height``/``width`` (image px) to the decoded image's; warn once per file whose json differs."""
        height, width = image.shape[:2]
        json_size = (dataset_dict.get("width", width), dataset_dict.get("height", height))
        file_name = dataset_dict["file_name"]
        if json_size != (width, height) and file_name not in self._size_disagreements:
            self._size_disagreements.add(file_name)
            logger.warning(
                f"image id {dataset_dict.get('image_id')} ({file_name}): the json gives {json_size[0]} x "
                f"{json_size[1]} (width x height), the decoded image is {width} x {height}; using the decoded "
                f"size ({len(self._size_disagreements)} such image(s) so far in this process)"
            )
        dataset_dict["height"], dataset_dict["width"] = height, width

    def _map_test(self, dataset_dict, image):
        transform = self.test_resize.get_transform(image)
        resized = transform.apply_image(image)
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        annotations = dataset_dict.pop("annotations", [])
        if self.test_keypoints:
            people = [a for a in annotations if _is_person(a)]
            keypoints = np.asarray([a["keypoints"] for a in people], dtype=np.float64).reshape(
                len(people), self.num_keypoints, 3
            )
            keypoints[:, :, :2] = transform.apply_coords(keypoints[:, :, :2].reshape(-1, 2)).reshape(
                len(people), self.num_keypoints, 2
            )
            keypoints[keypoints[:, :, 2] <= 0] = 0.0
            instances = Instances(resized.shape[:2])
            instances.gt_keypoints = Keypoints(torch.as_tensor(keypoints, dtype=torch.float32))
            dataset_dict["instances"] = instances
        return dataset_dict

    def _map_train(self, dataset_dict, image):
        height, width = image.shape[:2]
        flip = np.random.rand() < self.flip_prob
        matrix = bottom_up_affine(
            (height, width),
            self.input_size,
            scale=np.random.uniform(*self.scale_range),
            rotation_deg=np.random.uniform(-self.max_rotation_deg, self.max_rotation_deg),
            translation=np.random.uniform(-self.max_translation, self.max_translation, size=2),
            flip=flip,
        )
        size = (self.input_size, self.input_size)
        image = warp(image, matrix, size)
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))

        annotations = dataset_dict.pop("annotations", [])
        people = [a for a in annotations if _is_person(a)]
        ignored = [a for a in annotations if not _is_person(a)]
        dataset_dict["instances"] = self._instances(people, matrix, flip)
        ignore = _ignore_mask(ignored, (height, width))
        if ignore is not None:
            warped = warp(ignore.astype(np.uint8), matrix, size, interpolation=0)  # cv2.INTER_NEAREST
            dataset_dict["ignore_mask"] = torch.from_numpy(warped > 0)
        return dataset_dict

    def _instances(self, people, matrix, flip) -> Instances:
        size = (self.input_size, self.input_size)
        if not people:
            inst = Instances(size)
            inst.gt_keypoints = Keypoints(torch.zeros((0, self.num_keypoints, 3)))
            inst.gt_boxes = Boxes(torch.zeros((0, 4)))
            inst.gt_classes = torch.zeros((0,), dtype=torch.int64)
            inst.gt_areas = torch.zeros((0,))
            return inst
        keypoints = np.asarray([a["keypoints"] for a in people], dtype=np.float64).reshape(len(people), -1, 3)
        labelled = keypoints[:, :, 2] > 0
        keypoints[:, :, :2] = transform_points(keypoints[:, :, :2], matrix)
        keypoints[~labelled] = 0.0
        if flip:
            keypoints = keypoints[:, self.flip_indices]
        boxes_xyxy = BoxMode.convert(
            np.asarray([a["bbox"] for a in people], dtype=np.float64), people[0]["bbox_mode"], BoxMode.XYXY_ABS
        )
        corners = np.stack(
            [boxes_xyxy[:, [0, 1]], boxes_xyxy[:, [2, 1]], boxes_xyxy[:, [0, 3]], boxes_xyxy[:, [2, 3]]], axis=1
        )
        corners = transform_points(corners, matrix)
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        box_areas = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0]) * (boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
        areas = np.asarray([a.get("area", b) for a, b in zip(people, box_areas)], dtype=np.float64)
        inst = Instances(size)
        inst.gt_keypoints = Keypoints(torch.as_tensor(keypoints, dtype=torch.float32))
        inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
        inst.gt_classes = torch.zeros((len(people),), dtype=torch.int64)
        inst.gt_areas = torch.as_tensor(areas * area_scale(matrix), dtype=torch.float32)
        return inst


def _is_person(annotation) -> bool:
    """A person to train on and to tag: not a crowd region, with a labelled keypoint (the rest is ignored, as
    the keypoint evaluation ignores it)."""
    return not annotation.get("iscrowd", 0) and _num_labelled(annotation) > 0


def _num_labelled(annotation) -> int:
    kpts = annotation.get("keypoints")
    return 0 if kpts is None else int(sum(1 for v in kpts[2::3] if v > 0))


def _ignore_mask(annotations, image_size) -> Optional[np.ndarray]:
    """Union of the segmentation masks of ``annotations`` (H, W) bool, or None if none has one.

    People without a segmentation (CrowdPose has none) add nothing: masking their box would hide
    their visible neighbours in crowded images.
    """
    from pycocotools import mask as mask_util

    height, width = image_size
    mask = None
    for ann in annotations:
        seg = ann.get("segmentation")
        if not seg:
            continue
        if isinstance(seg, list):
            rles = mask_util.frPyObjects(seg, height, width)
            rle = mask_util.merge(rles)
        elif isinstance(seg.get("counts"), list):
            rle = mask_util.frPyObjects(seg, height, width)
        else:
            rle = seg
        m = mask_util.decode(rle).astype(bool)
        mask = m if mask is None else (mask | m)
    return mask
