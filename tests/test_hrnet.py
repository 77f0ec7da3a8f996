"""HRNet backbone: shapes, official parameter names, config, pretrained loading, Detectron2 checkpointer."""

import logging
import pickle
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("detectron2")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import FrozenBatchNorm2d  # noqa: E402
from detectron2.modeling import build_backbone  # noqa: E402

from adaanchor.config import add_adaanchor_config  # noqa: E402
from adaanchor.layers import HeatmapHead  # noqa: E402
from adaanchor.modeling.backbone import (  # noqa: E402
    HRNET_PRESETS,
    HRNet,
    HRNetSpec,
    hrnet_spec_from_config,
    load_hrnet_pretrained,
)
from adaanchor.modeling.dekr.offset_head import DisentangledOffsetHead  # noqa: E402

ALL_FEATURES = ["hr2", "hr3", "hr4", "hr5", "hrnet_cat"]


def _cfg(preset: str = "w32", **hrnet_keys):
    cfg = get_cfg()
    add_adaanchor_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "build_hrnet_backbone"
    spec = HRNET_PRESETS[preset]
    cfg.MODEL.HRNET.WIDTH = spec.width
    cfg.MODEL.HRNET.STAGE1_CHANNELS = spec.stage1_channels
    cfg.MODEL.HRNET.STAGE1_BLOCKS = spec.stage1_blocks
    cfg.MODEL.HRNET.NUM_MODULES = list(spec.num_modules)
    cfg.MODEL.HRNET.NUM_BLOCKS = list(spec.num_blocks)
    for key, value in hrnet_keys.items():
        cfg.MODEL.HRNET[key] = value
    return cfg


def _check_outputs(backbone, outputs, batch, height, width):
    shapes = backbone.output_shape()
    assert sorted(outputs) == sorted(shapes)
    for name, feature in outputs.items():
        stride, channels = shapes[name].stride, shapes[name].channels
        assert feature.shape == (batch, channels, height // stride, width // stride), name


def test_default_config_is_w32_and_presets_match_official_configs():
    assert hrnet_spec_from_config(_cfg()) == HRNetSpec() == HRNET_PRESETS["w32"]
    # HRNet-Image-Classification experiments/cls_hrnet_w18_small_v1_*.yaml
    assert asdict(HRNET_PRESETS["w18_small_v1"]) == dict(
        width=16, stage1_channels=32, stage1_blocks=1, num_modules=(1, 1, 1), num_blocks=(2, 2, 2)
    )


def test_w32_512_forward_backward_with_dekr_heads():
    """The DEKR configuration: W32 at 512 x 512, heatmap (K + 1 maps) and adaptive offset heads (K = 14).
    2-3 s on 2 idle cores (up to ~17 s seen with the cores shared), so not marked slow."""
    backbone = build_backbone(_cfg(OUT_FEATURES=ALL_FEATURES))
    assert backbone.size_divisibility == 32
    assert backbone.output_shape()["hrnet_cat"].channels == 480
    heatmap, offsets = HeatmapHead(480, 15), DisentangledOffsetHead(480, 14)
    outputs = backbone(torch.randn(1, 3, 512, 512))
    _check_outputs(backbone, outputs, 1, 512, 512)
    maps, offs = heatmap(outputs["hrnet_cat"]), offsets(outputs["hrnet_cat"])
    assert maps.shape == (1, 15, 128, 128) and offs.shape == (1, 28, 128, 128)
    (maps.mean() + offs.mean() + outputs["hr5"].mean()).backward()
    assert backbone.conv1.weight.grad.abs().sum() > 0
    assert offsets.blocks[0].transform_matrix_conv.weight.grad.abs().sum() > 0


def test_small_preset_256_forward_backward():
    backbone = build_backbone(_cfg("w18_small_v1", OUT_FEATURES=ALL_FEATURES))
    assert backbone.output_shape()["hrnet_cat"].channels == 15 * 16
    outputs = backbone(torch.randn(2, 3, 256, 256))
    _check_outputs(backbone, outputs, 2, 256, 256)
    offsets = DisentangledOffsetHead(240, 14, block="plain")(outputs["hrnet_cat"])
    assert offsets.shape == (2, 28, 64, 64)
    offsets.sum().backward()
    assert all(p.grad is not None for p in backbone.parameters())


def test_odd_input_size_still_fuses():
    """Sizes that are not multiples of 32 (no padding) still run: fusion resamples to the target size."""
    backbone = HRNet(HRNET_PRESETS["w18_small_v1"], out_features=ALL_FEATURES).eval()
    with torch.no_grad():
        outputs = backbone(torch.randn(1, 3, 100, 76))
    assert outputs["hrnet_cat"].shape[-2:] == (25, 19)


# (name, shape) in HRNet-W32, read off the official code (HRNet-Image-Classification cls_hrnet.py, DEKR
# hrnet_dekr.py): transitions keep a None slot for unchanged branches, new branches are nested Sequentials,
# fuse_layers.<target>.<source>: 1x1 conv for lower-resolution sources, chains of stride-2 3x3 convs else.
OFFICIAL_W32_KEYS = {
    "conv1.weight": (64, 3, 3, 3),
    "bn1.running_var": (64,),
    "conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.weight": (256,),
    "layer1.3.bn3.bias": (256,),
    "transition1.0.0.weight": (32, 256, 3, 3),
    "transition1.1.0.0.weight": (64, 256, 3, 3),
    "transition2.2.0.0.weight": (128, 64, 3, 3),
    "transition3.3.0.1.running_mean": (256,),
    "stage2.0.branches.0.0.conv1.weight": (32, 32, 3, 3),
    "stage2.0.branches.1.3.bn2.weight": (64,),
    "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),
    "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),
    "stage3.3.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),
    "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
    "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),
    "stage4.2.fuse_layers.3.0.2.0.weight": (256, 32, 3, 3),
    "stage4.2.fuse_layers.3.0.1.1.weight": (32,),
    "stage4.2.branches.3.3.conv2.weight": (256, 256, 3, 3),
}


@pytest.mark.parametrize("features", [["hr2"], ["hr3", "hr5"], ["hrnet_cat"]])
def test_every_parameter_feeds_the_requested_features(features):
    """No parameter without gradient (DDP rejects those): the last module fuses only into the requested
    branches (the stride-4 branch alone = the official pose HRNet's multi_scale_output=False)."""
    backbone = HRNet(HRNET_PRESETS["w18_small_v1"], out_features=features)
    outputs = backbone(torch.randn(1, 3, 64, 64))
    assert sorted(outputs) == sorted(features)
    sum(o.sum() for o in outputs.values()).backward()
    unused = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert unused == []


def test_parameter_names_and_count_match_official_w32():
    state = HRNet(HRNET_PRESETS["w32"]).state_dict()
    for key, shape in OFFICIAL_W32_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    absent = [
        "transition2.0.0.weight",
        "transition2.1.0.weight",
        "stage4.3.branches.0.0.conv1.weight",
        "stage2.0.fuse_layers.0.0.0.weight",
        "stage2.0.branches.0.0.downsample.0.weight",
    ]
    assert not [k for k in absent if k in state]
    # The official DEKR W32 model has 29,561,182 parameters (README: 29.6M), 255,646 of them in its heads.
    assert sum(p.numel() for p in HRNet(HRNET_PRESETS["w32"]).parameters()) == 29_561_182 - 255_646


@pytest.mark.parametrize(
    "norm,layer",
    [
        ("BN", nn.BatchNorm2d),
        ("SyncBN", nn.SyncBatchNorm),
        ("GN", nn.GroupNorm),
        ("FrozenBN", FrozenBatchNorm2d),
        ("", nn.Identity),
    ],
)
def test_norm_options_build(norm, layer):
    backbone = build_backbone(_cfg("w18_small_v1", NORM=norm))
    assert isinstance(backbone.bn1, layer)
    stage2_norm = backbone.stage2[0].branches[0][0].bn1  # 16 channels
    assert isinstance(stage2_norm, layer)
    if norm == "GN":
        assert stage2_norm.num_groups == 16  # gcd(32, 16)
    backbone.eval()
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 64, 64))["hrnet_cat"].shape == (1, 240, 16, 16)


@pytest.mark.parametrize(
    "key,value",
    [
        ("NORM", "LayerNorm2d"),
        ("OUT_FEATURES", ["res5"]),
        ("NUM_MODULES", [1, 4]),
        ("NUM_BLOCKS", [4, 0, 4]),
        ("WIDTH", 0),
    ],
)
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"MODEL.HRNET.{key}"):
        build_backbone(_cfg("w18_small_v1", **{key: value}))


def _official_checkpoint(tmp_path, preset="w18_small_v1", seed=0):
    """A fabricated checkpoint in the official naming: a random model's state_dict, minus one parameter,
    plus one classification-head key; returns (path, the state_dict saved)."""
    torch.manual_seed(seed)
    source = HRNet(HRNET_PRESETS[preset])
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
        for name, b in source.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    state = source.state_dict()
    del state["layer1.0.conv1.weight"]
    state["classifier.weight"] = torch.randn(1000, 2048)
    path = tmp_path / "hrnet_imagenet.pth"
    torch.save(state, path)
    return path, state


def test_pretrained_loading_reports_missing_and_unexpected_and_loads(tmp_path, caplog):
    path, state = _official_checkpoint(tmp_path)
    torch.manual_seed(1)
    target = HRNet(HRNET_PRESETS["w18_small_v1"])
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="adaanchor.modeling.backbone.hrnet"):
        report = load_hrnet_pretrained(target, str(path))
    assert report.missing == ["layer1.0.conv1.weight"]
    assert report.unexpected == ["classifier.weight"]
    assert report.shape_mismatched == []
    assert "layer1.0.conv1" in caplog.text and "classifier.weight" in caplog.text
    after = target.state_dict()
    assert torch.equal(after["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])  # missing: untouched
    for key in ("conv1.weight", "stage4.0.fuse_layers.3.0.2.0.weight", "layer1.0.bn1.running_var"):
        assert not torch.equal(before[key], state[key])
        assert torch.equal(after[key], state[key]), key
    assert len(report.loaded) == len(state) - 1


def test_pretrained_through_config_key(tmp_path):
    path, state = _official_checkpoint(tmp_path)
    backbone = build_backbone(_cfg("w18_small_v1", PRETRAINED=str(path)))
    assert torch.equal(backbone.stage2[0].branches[1][1].conv2.weight, state["stage2.0.branches.1.1.conv2.weight"])


def test_pretrained_unwraps_containers_and_pkl(tmp_path):
    _, state = _official_checkpoint(tmp_path)
    wrapped = tmp_path / "wrapped.pth.tar"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 3}, wrapped)
    report = load_hrnet_pretrained(HRNet(HRNET_PRESETS["w18_small_v1"]), str(wrapped))
    assert report.unexpected == ["classifier.weight"] and report.missing == ["layer1.0.conv1.weight"]
    pkl = tmp_path / "numpy.pkl"  # Detectron2-style pickle holding numpy arrays
    with open(pkl, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}}, f)
    target = HRNet(HRNET_PRESETS["w18_small_v1"])
    load_hrnet_pretrained(target, str(pkl))
    assert torch.equal(target.conv1.weight, state["conv1.weight"])


def test_pretrained_shape_mismatch_is_reported_not_loaded(tmp_path):
    path, _ = _official_checkpoint(tmp_path, preset="w18_small_v1")
    target = HRNet(
        HRNetSpec(width=18, stage1_channels=32, stage1_blocks=1, num_modules=(1, 1, 1), num_blocks=(2, 2, 2))
    )
    report = load_hrnet_pretrained(target, str(path))
    assert "transition1.0.0.weight: file (16, 128, 3, 3) vs model (18, 128, 3, 3)" in report.shape_mismatched
    assert "conv1.weight" in report.loaded  # the stem does not depend on the width


def test_pretrained_bad_files_name_the_key_and_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"MODEL\.HRNET\.PRETRAINED=.*nope\.pth.*no such file"):
        build_backbone(_cfg("w18_small_v1", PRETRAINED=str(missing)))
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"MODEL\.HRNET\.PRETRAINED=.*notes\.pth.*not a readable checkpoint"):
        build_backbone(_cfg("w18_small_v1", PRETRAINED=str(text)))
    numpy_pth = tmp_path / "numpy.pth"
    torch.save({"conv1.weight": np.zeros((64, 3, 3, 3), dtype=np.float32)}, numpy_pth)
    with pytest.raises(ValueError, match=r"numpy\.pth.*weights_only=True.*numpy arrays"):
        load_hrnet_pretrained(HRNet(HRNET_PRESETS["w18_small_v1"]), str(numpy_pth))
    a_list = tmp_path / "list.pth"
    torch.save([1, 2, 3], a_list)
    with pytest.raises(ValueError, match=r"list\.pth.*not a checkpoint"):
        load_hrnet_pretrained(HRNet(HRNET_PRESETS["w18_small_v1"]), str(a_list))


class _Detector(nn.Module):
    """Stands in for a meta-architecture: a backbone under ``backbone.`` plus DEKR heads."""

    def __init__(self):
        super().__init__()
        self.backbone = HRNet(HRNET_PRESETS["w18_small_v1"])
        self.heatmap_head = HeatmapHead(240, 15)
        self.offset_head = DisentangledOffsetHead(240, 14)


def test_model_weights_through_detectron2_checkpointer(tmp_path):
    """MODEL.WEIGHTS route: Detectron2's checkpointer matches official (prefix-free) names by suffix with
    ``?matching_heuristics=True``; head parameters do not collide with HRNet names."""
    path, state = _official_checkpoint(tmp_path)
    model = _Detector()
    heads_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    DetectionCheckpointer(model).load(f"{path}?matching_heuristics=True")
    loaded = model.state_dict()
    for key in ("conv1.weight", "layer1.0.conv2.weight", "stage4.0.fuse_layers.0.3.0.weight"):
        assert torch.equal(loaded["backbone." + key], state[key]), key
    assert all(torch.equal(loaded[k], v) for k, v in heads_before.items())
