"""Keypoint R-CNN with AdaAnchor's ROI head: the KeypointRCNN meta-architecture's ground-truth-box protocol
(training and testing on ground-truth person boxes), its test mapper, and DefaultPredictor on a real image."""

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.data import detection_utils  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import BoxMode, Boxes, Instances, Keypoints  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import adaanchor.modeling  # noqa: E402,F401
from adaanchor.engine import AdaAnchorTrainer, build_cfg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GT_BOXES = ("MODEL.KEYPOINT_RCNN.TRAIN_ON_GT_BOXES", True, "MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES", True)


def _cfg(config="configs/synthetic_krcnn_adaanchor.yaml", *opts):
    return build_cfg(str(REPO / config), ["MODEL.DEVICE", "cpu", *opts])


def _input(with_instances=True):
    """One 96 x 128 image with three people: two with labelled keypoints, one with none (v = 0 everywhere)."""
    torch.manual_seed(0)
    item = {"image": torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8), "height": 96, "width": 128,
            "file_name": "people.jpg"}  # fmt: skip
    if with_instances:
        people = Instances((96, 128))
        people.gt_boxes = Boxes(
            torch.tensor([[10.0, 8.0, 50.0, 90.0], [60.0, 4.0, 120.0, 80.0], [0.0, 0.0, 30.0, 30.0]])
        )
        people.gt_classes = torch.zeros(3, dtype=torch.long)
        keypoints = torch.zeros(3, 14, 3)
        keypoints[0, :, :2] = torch.tensor([30.0, 50.0])
        keypoints[0, :, 2] = 2
        keypoints[1, :7, :2] = torch.tensor([90.0, 40.0])
        keypoints[1, :7, 2] = 1
        people.gt_keypoints = Keypoints(keypoints)
        item["instances"] = people
    return item


def test_training_on_ground_truth_boxes_trains_only_the_backbone_and_keypoint_head():
    model = build_model(_cfg("configs/synthetic_krcnn_adaanchor.yaml", *GT_BOXES))
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("proposal_generator.", "roi_heads.box_")) for n in frozen)
    model.train()
    with EventStorage():
        losses = model([_input(), _input()])
    assert set(losses) == {"loss_keypoint_confidence", "loss_keypoint_offset", "loss_keypoint_local_offset"}
    sum(losses.values()).backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("backbone.") for n in trained) and any(
        n.startswith("roi_heads.keypoint_head") for n in trained
    )


@pytest.mark.parametrize("anchor", ["adaanchor", "heatmap"])
def test_testing_on_ground_truth_boxes_scores_people_by_their_keypoints(anchor):
    model = build_model(_cfg(f"configs/synthetic_krcnn_{anchor}.yaml", "MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES", True))
    model.eval()
    with torch.no_grad():
        (out,) = model([_input()])
    people = out["instances"]
    # the two people with labelled keypoints, on their own boxes (height / width = the input size: no rescale)
    torch.testing.assert_close(people.pred_boxes.tensor, _input()["instances"].gt_boxes.tensor[:2])
    assert people.pred_keypoints.shape == (2, 14, 3)
    torch.testing.assert_close(people.scores, people.pred_keypoints[..., 2].mean(dim=1))
    with pytest.raises(ValueError, match="TEST_ON_GT_BOXES: people.jpg has no ground-truth 'instances'"):
        model([_input(with_instances=False)])


def test_training_on_ground_truth_boxes_needs_testing_on_them():
    with pytest.raises(ValueError, match="TRAIN_ON_GT_BOXES.*TEST_ON_GT_BOXES True"):
        build_model(_cfg("configs/synthetic_krcnn_adaanchor.yaml", "MODEL.KEYPOINT_RCNN.TRAIN_ON_GT_BOXES", True))


def test_the_ground_truth_box_test_mapper_keeps_the_people_resized_with_the_image(shared_data):
    cfg = _cfg("configs/synthetic_krcnn_gtbox_adaanchor.yaml")
    mapper = AdaAnchorTrainer.build_mapper(cfg, is_train=False)
    data = json.loads((shared_data / "crowdpose" / "test_crowdpose.json").read_text())
    image = next(i for i in data["images"] if i["file_name"] == "103319.jpg")  # 640 x 480
    annotations = [dict(a, bbox_mode=BoxMode.XYWH_ABS) for a in data["annotations"] if a["image_id"] == image["id"]]
    item = mapper({"file_name": str(shared_data / "crowdpose" / image["file_name"]), "image_id": image["id"],
                   "height": image["height"], "width": image["width"], "annotations": annotations})  # fmt: skip
    assert tuple(item["image"].shape[1:]) == (256, 341)  # MIN_SIZE_TEST 256, no flip, no multi-scale
    people = item["instances"]
    crowd = [a for a in annotations if not a.get("iscrowd", 0)]
    assert len(people) == len(crowd) > 0
    expected = torch.tensor([BoxMode.convert(a["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) for a in crowd])
    torch.testing.assert_close(people.gt_boxes.tensor, expected * (256 / 480), atol=0.5, rtol=0)


def test_default_predictor_returns_keypoints_on_a_real_image(shared_data):
    """An untrained AdaAnchor Keypoint R-CNN (any box passes at threshold 0): keypoints in original-image px
    inside their boxes (up to the target margin), scores in [0, 1], one row per keypoint type."""
    cfg = _cfg("configs/synthetic_krcnn_adaanchor.yaml", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0)
    image = detection_utils.read_image(str(shared_data / "crowdpose" / "103319.jpg"), format="BGR")
    people = DefaultPredictor(cfg)(image)["instances"]
    assert len(people) > 0 and people.pred_keypoints.shape == (len(people), 14, 3)
    boxes = people.pred_boxes.tensor
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 480).all()
    margin = (boxes[:, 2:] - boxes[:, :2])[:, None] * cfg.MODEL.ADAANCHOR.TARGET_MARGIN / 28 + 1e-3
    xy = people.pred_keypoints[..., :2]
    assert ((xy >= boxes[:, None, :2] - margin) & (xy <= boxes[:, None, 2:] + margin)).all()
    assert ((people.pred_keypoints[..., 2] >= 0) & (people.pred_keypoints[..., 2] <= 1)).all()
