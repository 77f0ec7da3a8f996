"""The AdaAnchor ROI keypoint head: targets in continuous ROI coordinates, losses, batched m = 1 decoding
mapped back to image px, and the one-key switch to Detectron2's heatmap head."""

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling.roi_heads import KRCNNConvDeconvUpsampleHead, build_keypoint_head  # noqa: E402
from detectron2.structures import Boxes, Instances, Keypoints  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import adaanchor.modeling  # noqa: E402,F401
from adaanchor.config import add_adaanchor_config  # noqa: E402
from adaanchor.modeling.roi_heads import AdaAnchorKeypointHead  # noqa: E402
from adaanchor.modeling.roi_heads.keypoint_head import roi_keypoint_targets  # noqa: E402

SHAPE = ShapeSpec(channels=8, height=14, width=14)


def _cfg(*opts):
    cfg = get_cfg()
    add_adaanchor_config(cfg)
    cfg.merge_from_list(
        ["MODEL.ROI_KEYPOINT_HEAD.NAME", "build_anchor_keypoint_head", "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", 3,
         "MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS", (16, 16), *opts]
    )  # fmt: skip
    return cfg


def test_one_key_switches_between_adaanchor_and_detectron2s_heatmap_head():
    assert isinstance(build_keypoint_head(_cfg(), SHAPE), AdaAnchorKeypointHead)
    assert isinstance(build_keypoint_head(_cfg("MODEL.ADAANCHOR.ENABLED", False), SHAPE), KRCNNConvDeconvUpsampleHead)


def test_targets_are_continuous_roi_coordinates():
    boxes = torch.tensor([[10.0, 20.0, 38.0, 48.0]])  # 28 x 28 px: one image px per ROI-map px at S = 28
    kpts = torch.tensor([[[10.0, 20.0, 2], [24.25, 34.5, 1], [50.0, 30.0, 2], [0.0, 0.0, 0]]])
    targets, valid = roi_keypoint_targets(kpts, boxes, 28)
    torch.testing.assert_close(
        targets[0, :, 0], torch.tensor([[0.0, 0.0], [14.25, 14.5], [40.0, 10.0], [-10.0, -20.0]])
    )
    assert valid[0, :, 0].tolist() == [True, True, True, False]  # v = 1 is a target; outside: the margin decides


def _instances(boxes, keypoints, training):
    inst = Instances((100, 100))
    if training:
        inst.proposal_boxes = Boxes(boxes)
        inst.gt_keypoints = Keypoints(keypoints)
    else:
        inst.pred_boxes = Boxes(boxes)
    return inst


def test_training_losses_and_batched_inference_in_image_px():
    torch.manual_seed(0)
    head = build_keypoint_head(_cfg(), SHAPE)
    boxes = torch.tensor([[0.0, 0.0, 28.0, 28.0], [10.0, 10.0, 66.0, 38.0]])
    kpts = torch.tensor(
        [[[5.0, 5.0, 2], [20.0, 9.0, 1], [14.0, 14.0, 2]], [[30.0, 20.0, 2], [0, 0, 0], [60.0, 30.0, 2]]]
    )
    head.train()
    with EventStorage():
        losses = head(
            torch.randn(2, 8, 14, 14), [_instances(boxes[:1], kpts[:1], True), _instances(boxes[1:], kpts[1:], True)]
        )
    assert set(losses) == {"loss_keypoint_confidence", "loss_keypoint_offset", "loss_keypoint_local_offset"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()

    head.eval()
    # a head whose maps point every cell of keypoint k at a known ROI position, most confident at one cell
    size = 28
    maps = torch.zeros(3, head.criterion.num_channels, size, size)
    maps[:, :3] = -5.0
    maps[0, 0, 3, 4] = 5.0  # ROI 0, type 0: cell (3, 4) at (4.5, 3.5) ROI px, coarse offset (+1, -1)
    maps[0, 3, 3, 4], maps[0, 4, 3, 4] = 1.0, -1.0
    head.layers = lambda x: maps[: x.shape[0]]
    images = [_instances(boxes[:1], None, False), _instances(torch.tensor([[10.0, 10.0, 66.0, 38.0]] * 2), None, False)]
    with torch.no_grad():
        out = head(torch.zeros(3, 8, 14, 14), images)
    assert out[0].pred_keypoints.shape == (1, 3, 3) and out[1].pred_keypoints.shape == (2, 3, 3)
    torch.testing.assert_close(out[0].pred_keypoints[0, 0, :2], torch.tensor([5.5, 2.5]))  # 28 px box: 1 px/cell
    assert out[0].pred_keypoints[0, 0, 2].item() == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())
    assert out[1].pred_keypoint_heatmaps.shape == (2, 3, size, size)
    assert (out[1].pred_keypoints[..., 2] <= 1).all()
    xy = out[1].pred_keypoints[..., :2]  # 56 x 28 box: 2 px per cell in x, 1 in y
    assert ((xy[..., 0] >= 10) & (xy[..., 0] <= 66) & (xy[..., 1] >= 10) & (xy[..., 1] <= 38)).all()
