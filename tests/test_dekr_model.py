"""The DEKR meta-architecture: shapes, losses, inference outputs, and the AdaAnchor / heatmap switch."""

from pathlib import Path

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Instances, Keypoints  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import adaanchor.modeling  # noqa: E402,F401
from adaanchor.engine import build_cfg  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cfg(name, *opts):
    """The frozen config of ``configs/<name>`` on CPU, with overrides."""
    return build_cfg(str(CONFIGS / name), ["MODEL.DEVICE", "cpu", *opts])


def _training_input(size, people):
    """One bottom-up training input: ``people`` is a list of (K, 3) keypoint lists in input px."""
    k = 14
    inst = Instances((size, size))
    kpts = torch.tensor(people, dtype=torch.float32).reshape(len(people), k, 3) if people else torch.zeros(0, k, 3)
    inst.gt_keypoints = Keypoints(kpts)
    inst.gt_areas = torch.full((len(people),), 2000.0)
    return {"image": torch.randint(0, 255, (3, size, size), dtype=torch.uint8), "instances": inst}


def _person(x0, y0, step=6.0):
    return [[x0 + step * (k % 4), y0 + step * (k // 4), 2] for k in range(14)]


def test_crowdpose_w32_512_forward_backward_batch_1():
    model = build_model(_cfg("crowdpose_dekr_adaanchor.yaml"))
    model.train()
    with EventStorage():
        losses = model([_training_input(512, [_person(100, 120), _person(300, 200)])])
    assert set(losses) == {
        "loss_keypoint_heatmap", "loss_center_confidence", "loss_center_offset", "loss_center_local_offset", "loss_offset",
    }  # fmt: skip
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    maps = model.predict_maps(torch.zeros(1, 3, 512, 512))
    assert maps["keypoint_heatmaps"].shape == (1, 14, 128, 128)
    assert maps["center_maps"].shape == (1, 5, 128, 128)
    assert maps["offsets"].shape == (1, 28, 128, 128)
    assert model.backbone.output_shape()["hrnet_cat"].channels == 480


@pytest.mark.parametrize("adaanchor", [True, False])
def test_small_model_losses_finite_with_and_without_people(adaanchor):
    model = build_model(_cfg("synthetic_dekr_adaanchor.yaml", "MODEL.ADAANCHOR.ENABLED", adaanchor))
    model.train()
    batch = [_training_input(128, [_person(20, 30), _person(60, 50)]), _training_input(128, [])]
    with EventStorage():
        losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    center_keys = {k for k in losses if k.startswith("loss_center")}
    assert center_keys == (
        {"loss_center_confidence", "loss_center_offset", "loss_center_local_offset"}
        if adaanchor
        else {"loss_center_heatmap"}
    )
    sum(losses.values()).backward()


@pytest.mark.parametrize("flip", [False, True])
def test_inference_outputs_in_the_original_frame(flip):
    cfg = _cfg(
        "synthetic_dekr_adaanchor.yaml",
        "MODEL.DEKR.TEST.FLIP",
        flip,
        "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD",
        0.0,
        "MODEL.DEKR.TEST.SCALES",
        (1.0, 0.5),
    )
    model = build_model(cfg)
    model.eval()
    image = torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8)  # the resized input
    with torch.no_grad():
        (out,) = model([{"image": image, "height": 192, "width": 256}])
    inst = out["instances"]
    assert inst.image_size == (192, 256)
    n = len(inst)
    assert 0 < n <= cfg.MODEL.ADAANCHOR.TEST.MAX_DETECTIONS
    assert inst.pred_keypoints.shape == (n, 14, 3) and inst.scores.shape == (n,)
    assert inst.pred_boxes.tensor.shape == (n, 4) and (inst.pred_classes == 0).all()
    assert torch.all(inst.scores[:-1] >= inst.scores[1:])
    # poses of an untrained model sit near their anchors: inside the original frame, give or take
    xy = inst.pred_keypoints[..., :2]
    assert xy[..., 0].min() > -50 and xy[..., 0].max() < 256 + 50 and xy[..., 1].max() < 192 + 50


def test_one_key_switches_only_the_centre_channels():
    ada = build_model(_cfg("synthetic_dekr_adaanchor.yaml"))
    heat = build_model(_cfg("synthetic_dekr_heatmap.yaml"))
    ada_params = {k: v.shape for k, v in ada.named_parameters()}
    heat_params = {k: v.shape for k, v in heat.named_parameters()}
    assert ada_params.keys() == heat_params.keys()
    differ = {k for k in ada_params if ada_params[k] != heat_params[k]}
    assert differ == {"heatmap_head.predictor.weight", "heatmap_head.predictor.bias"}
    assert ada_params["heatmap_head.predictor.bias"] == (14 + 5,) and heat_params["heatmap_head.predictor.bias"] == (
        14 + 1,
    )
    bias = ada.heatmap_head.predictor.bias.detach()
    assert torch.sigmoid(bias[14]).item() == pytest.approx(0.01)  # focal-loss prior on the confidence


def test_detectron2_resnet_backbone_with_the_same_heads():
    cfg = _cfg(
        "synthetic_dekr_adaanchor.yaml",
        "MODEL.BACKBONE.NAME",
        "build_resnet_backbone",
        "MODEL.RESNETS.DEPTH",
        18,
        "MODEL.RESNETS.RES2_OUT_CHANNELS",
        64,
        "MODEL.RESNETS.NORM",
        "BN",
        "MODEL.RESNETS.OUT_FEATURES",
        ["res2"],
        "MODEL.BACKBONE.FREEZE_AT",
        0,
        "MODEL.DEKR.IN_FEATURE",
        "res2",
    )
    model = build_model(cfg)
    model.train()
    with EventStorage():
        losses = model([_training_input(128, [_person(20, 30)])])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.predict_maps(torch.zeros(1, 3, 128, 128))["offsets"].shape == (1, 28, 32, 32)
    with pytest.raises(ValueError, match="MODEL.DEKR.IN_FEATURE 'res4' is not a backbone output"):
        build_model(
            _cfg(
                "synthetic_dekr_adaanchor.yaml",
                "MODEL.BACKBONE.NAME",
                "build_resnet_backbone",
                "MODEL.RESNETS.OUT_FEATURES",
                ["res2"],
                "MODEL.DEKR.IN_FEATURE",
                "res4",
            )
        )
