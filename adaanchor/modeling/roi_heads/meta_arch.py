"""Keypoint R-CNN with the paper's single-keypoint protocol: person boxes from the ground truth, not the detector.

``MODEL.META_ARCHITECTURE: "KeypointRCNN"`` is Detectron2's ``GeneralizedRCNN`` (same parameters, same
checkpoints) with two keys of ``MODEL.KEYPOINT_RCNN``, both False by default (then it is GeneralizedRCNN):

- ``TEST_ON_GT_BOXES``: inference runs the keypoint head on each image's ground-truth person boxes (the people
  with at least one labelled keypoint, as COCO's keypoint evaluation counts them) instead of detections, with box
  score 1 and the person score = the mean keypoint score (SimpleBaseline's rescoring: on given boxes the box score
  cannot rank people). The test loader keeps the annotations for it (:func:`ground_truth_box_test_mapper`).
- ``TRAIN_ON_GT_BOXES``: training bypasses the detector: the backbone and the keypoint head train on the same
  ground-truth boxes (one backbone pass, no RPN or box losses), which is what fits the paper's Table 1 into a CPU
  budget. The RPN and the box head are frozen (``requires_grad`` False: untrained, and unused, which DDP
  accepts), so such a model needs ``TEST_ON_GT_BOXES``.
"""

from typing import Dict, List

import torch

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.modeling.roi_heads")

from detectron2.config import configurable  # noqa: E402
from detectron2.data import DatasetMapper  # noqa: E402
from detectron2.data import detection_utils  # noqa: E402
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN  # noqa: E402
from detectron2.modeling.roi_heads import StandardROIHeads  # noqa: E402
from detectron2.structures import Instances  # noqa: E402

__all__ = ["KeypointRCNN", "ground_truth_box_test_mapper", "labelled_people"]


def labelled_people(instances: Instances) -> Instances:
    """The ground-truth people with at least one labelled keypoint (v > 0)."""
    return instances[(instances.gt_keypoints.tensor[..., 2] > 0).any(dim=1)]


def ground_truth_box_test_mapper(cfg) -> DatasetMapper:
    """Detectron2's DatasetMapper with the test-time resize that keeps each image's annotations as ``instances``
    (transformed like the image; crowd regions dropped), for ``MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES``."""
    return DatasetMapper(cfg, is_train=True, augmentations=detection_utils.build_augmentation(cfg, is_train=False))


@META_ARCH_REGISTRY.register()
class KeypointRCNN(GeneralizedRCNN):
    """GeneralizedRCNN with keypoints on ground-truth person boxes, for training and / or testing (module docstring).

    Training on ground-truth boxes returns the keypoint head's losses only (``loss_keypoint*``); inference returns
    what GeneralizedRCNN returns (``pred_boxes``, ``scores``, ``pred_classes``, ``pred_keypoints`` (N, K, 3) x, y
    original-image px and score), with the ground-truth boxes in place of detections when testing on them.
    """

    @configurable
    def __init__(self, *, train_on_gt_boxes: bool = False, test_on_gt_boxes: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.train_on_gt_boxes = train_on_gt_boxes
        self.test_on_gt_boxes = test_on_gt_boxes
        if train_on_gt_boxes:
            for module in (self.proposal_generator, self.roi_heads.box_head, self.roi_heads.box_predictor):
                module.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg):
        k = cfg.MODEL.KEYPOINT_RCNN
        if not cfg.MODEL.KEYPOINT_ON:
            raise ValueError("MODEL.META_ARCHITECTURE KeypointRCNN needs MODEL.KEYPOINT_ON True")
        if k.TRAIN_ON_GT_BOXES and not k.TEST_ON_GT_BOXES:
            raise ValueError(
                "MODEL.KEYPOINT_RCNN.TRAIN_ON_GT_BOXES leaves the detector untrained: set "
                "MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES True as well"
            )
        ret = super().from_config(cfg)
        if not isinstance(ret["roi_heads"], StandardROIHeads):
            raise ValueError(
                f"MODEL.ROI_HEADS.NAME {cfg.MODEL.ROI_HEADS.NAME}: KeypointRCNN needs StandardROIHeads or a subclass"
            )
        if k.TRAIN_ON_GT_BOXES and ret["proposal_generator"] is None:
            raise ValueError("MODEL.KEYPOINT_RCNN.TRAIN_ON_GT_BOXES needs an RPN (MODEL.PROPOSAL_GENERATOR.NAME)")
        ret.update(train_on_gt_boxes=k.TRAIN_ON_GT_BOXES, test_on_gt_boxes=k.TEST_ON_GT_BOXES)
        return ret

    def forward(self, batched_inputs: List[Dict]):
        if not self.training:
            return self.inference(batched_inputs)
        if not self.train_on_gt_boxes:
            return super().forward(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        proposals = []
        for item in batched_inputs:
            people = labelled_people(item["instances"].to(self.device))
            people.proposal_boxes = people.gt_boxes
            proposals.append(people)
        return self.roi_heads._forward_keypoint(features, proposals)

    def inference(self, batched_inputs: List[Dict], detected_instances=None, do_postprocess: bool = True):
        """GeneralizedRCNN's inference; with TEST_ON_GT_BOXES (and no ``detected_instances``) on each input's
        ground-truth person boxes, people scored by their mean keypoint score."""
        if not self.test_on_gt_boxes or detected_instances is not None:
            return super().inference(batched_inputs, detected_instances, do_postprocess)
        boxes = [self._ground_truth_detections(item) for item in batched_inputs]
        results = super().inference(batched_inputs, boxes, do_postprocess)
        for result in results:
            instances = result["instances"] if do_postprocess else result
            instances.scores = instances.pred_keypoints[..., 2].mean(dim=1)  # (N,), also for N = 0
        return results

    @staticmethod
    def _ground_truth_detections(item: Dict) -> Instances:
        if "instances" not in item:
            name = item.get("file_name", item.get("image_id", "an input"))
            raise ValueError(
                f"MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES: {name} has no ground-truth 'instances' (the test loader keeps "
                "them when the key is set; a predictor on bare images needs the key False)"
            )
        people = labelled_people(item["instances"])
        detections = Instances(people.image_size)
        detections.pred_boxes = people.gt_boxes
        detections.pred_classes = people.gt_classes
        detections.scores = torch.ones(len(people))
        return detections
