"""HRNet backbone (Sun et al., CVPR'19) as used by DEKR and HigherHRNet, for Detectron2.

Layout (all strides relative to the input image, in input px):

- stem: two 3x3 stride-2 convs (64 channels) -> stride 4;
- stage 1 (``layer1``): bottleneck blocks at stride 4;
- stages 2, 3, 4: 2, 3, 4 parallel branches at strides 4, 8, 16, 32 with ``width * 2**b`` channels, each
  a sequence of "high-resolution modules" (basic blocks per branch, then a multi-resolution fusion);
  ``transition1/2/3`` create each new branch from the lowest-resolution branch of the stage before;
- outputs: every branch ("hr2" .. "hr5", named by log2 of the stride like Detectron2's res2 .. res5) and
  their concatenation at stride 4 ("hrnet_cat", branches bilinearly upsampled; 15 * width channels,
  480 for W32), the feature DEKR's heads read.

Module names follow the official HRNet code (HRNet-Image-Classification, DEKR, HigherHRNet), so the
official ImageNet checkpoints load 1:1: ``conv1 bn1 conv2 bn2 layer1.<i>.{conv1..3,bn1..3,downsample}``,
``transition<s>.<b>...``, ``stage<s>.<m>.branches.<b>.<i>...``, ``stage<s>.<m>.fuse_layers.<i>.<j>...``.
The classification head of those checkpoints (``incre_modules``, ``downsamp_modules``, ``final_layer``,
``classifier``) is reported as unexpected and ignored.
"""

import logging
import os
import pickle
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.modeling.backbone.hrnet")

from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling.backbone import BACKBONE_REGISTRY, Backbone  # noqa: E402
from fvcore.common.checkpoint import (  # noqa: E402
    get_missing_parameters_message,
    get_unexpected_parameters_message,
)

from adaanchor.layers import conv3x3, make_norm  # noqa: E402

__all__ = [
    "HRNetSpec",
    "HRNET_PRESETS",
    "HRNet",
    "HRNetLoadReport",
    "load_hrnet_pretrained",
    "hrnet_spec_from_config",
    "build_hrnet_backbone",
]

logger = logging.getLogger(__name__)

STEM_CHANNELS = 64
CONCAT_FEATURE = "hrnet_cat"
FEATURE_NAMES = ("hr2", "hr3", "hr4", "hr5", CONCAT_FEATURE)


def _branch_feature_name(branch: int) -> str:
    """Output name of branch ``branch``: "hr2" (stride 4) for branch 0, ..., "hr5" (stride 32) for branch 3."""
    return f"hr{branch + 2}"


@dataclass(frozen=True)
class HRNetSpec:
    """The architecture numbers of one HRNet variant.

    Attributes:
        width: channels of the stride-4 branch; branch b has ``width * 2**b`` channels (W32: 32, 64, 128, 256).
        stage1_channels: bottleneck width of stage 1 (its output has 4x as many channels).
        stage1_blocks: bottleneck blocks in stage 1.
        num_modules: high-resolution modules in stages 2, 3, 4.
        num_blocks: basic blocks per branch in each module of stages 2, 3, 4.
    """

    width: int = 32
    stage1_channels: int = 64
    stage1_blocks: int = 4
    num_modules: Tuple[int, int, int] = (1, 4, 3)
    num_blocks: Tuple[int, int, int] = (4, 4, 4)

    @property
    def branch_channels(self) -> List[int]:
        """Channels of the 4 branches, highest resolution first."""
        return [self.width * 2**b for b in range(4)]

    def validate(self, key_prefix: str = "HRNetSpec") -> None:
        """Raise ValueError naming the offending field (``key_prefix.FIELD``) for an impossible spec."""
        checks = {
            "WIDTH": [self.width],
            "STAGE1_CHANNELS": [self.stage1_channels],
            "STAGE1_BLOCKS": [self.stage1_blocks],
            "NUM_MODULES": list(self.num_modules),
            "NUM_BLOCKS": list(self.num_blocks),
        }
        for name, values in checks.items():
            if name in ("NUM_MODULES", "NUM_BLOCKS") and len(values) != 3:
                raise ValueError(f"{key_prefix}.{name} must list 3 values (stages 2, 3, 4), got {values}")
            if not all(isinstance(v, int) and v >= 1 for v in values):
                raise ValueError(f"{key_prefix}.{name} must be positive integers, got {values}")


# The official HRNet variants (HRNet-Image-Classification configs; ImageNet weights exist for each).
HRNET_PRESETS: Dict[str, HRNetSpec] = {
    "w18_small_v1": HRNetSpec(
        width=16, stage1_channels=32, stage1_blocks=1, num_modules=(1, 1, 1), num_blocks=(2, 2, 2)
    ),
    "w18_small_v2": HRNetSpec(
        width=18, stage1_channels=64, stage1_blocks=2, num_modules=(1, 3, 2), num_blocks=(2, 2, 2)
    ),
    "w18": HRNetSpec(width=18),
    "w32": HRNetSpec(width=32),
    "w48": HRNetSpec(width=48),
}


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


def _shortcut_projection(in_channels: int, out_channels: int, norm: str) -> Optional[nn.Module]:
    """1x1 conv + norm for a residual shortcut whose channels change (named ``downsample`` officially)."""
    if in_channels == out_channels:
        return None
    return nn.Sequential(_conv1x1(in_channels, out_channels), make_norm(norm, out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (1x1 projection when the channels change)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, *, norm: str):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv3x3(in_channels, channels)
        self.bn1 = make_norm(norm, channels)
        self.conv2 = conv3x3(channels, out_channels)
        self.bn2 = make_norm(norm, out_channels)
        self.downsample = _shortcut_projection(in_channels, out_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (4x channels) with a residual connection."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, *, norm: str):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = _conv1x1(in_channels, channels)
        self.bn1 = make_norm(norm, channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = make_norm(norm, channels)
        self.conv3 = _conv1x1(channels, out_channels)
        self.bn3 = make_norm(norm, out_channels)
        self.downsample = _shortcut_projection(in_channels, out_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def _make_blocks(block, in_channels: int, channels: int, num_blocks: int, norm: str) -> nn.Sequential:
    layers = [block(in_channels, channels, norm=norm)]
    layers += [block(channels * block.expansion, channels, norm=norm) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Basic blocks on every branch, then each branch output = ReLU(sum over all branches resampled to it).

    Fusion from branch j to branch i: j > i (lower resolution): 1x1 conv + norm, then nearest upsampling
    to branch i's size; j < i: (i - j) stride-2 3x3 conv + norm (ReLU between them, not after the last).
    ``outputs``: the branches to fuse into (default all); the others come out as None and have no fusion layers
    (the last module of a backbone asked for the stride-4 branch alone: the official pose HRNet's
    ``multi_scale_output=False``, and no parameter that feeds no output, which DDP would reject).
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, *, norm: str, outputs: Optional[Sequence[int]] = None):
        super().__init__()
        self.branches = nn.ModuleList([_make_blocks(BasicBlock, c, c, num_blocks, norm) for c in channels])
        outputs = set(range(len(channels)) if outputs is None else outputs)
        self.fuse_layers = nn.ModuleList(
            [
                (
                    nn.ModuleList([self._fuse_layer(channels, j, i, norm) for j in range(len(channels))])
                    if i in outputs
                    else None
                )
                for i in range(len(channels))
            ]
        )

    @staticmethod
    def _fuse_layer(channels: Sequence[int], source: int, target: int, norm: str) -> Optional[nn.Module]:
        if source == target:
            return None
        if source > target:
            return nn.Sequential(_conv1x1(channels[source], channels[target]), make_norm(norm, channels[target]))
        steps = []
        for step in range(target - source):
            last = step == target - source - 1
            out_channels = channels[target] if last else channels[source]
            layers = [conv3x3(channels[source], out_channels, stride=2), make_norm(norm, out_channels)]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            steps.append(nn.Sequential(*layers))
        return nn.Sequential(*steps)

    def forward(self, xs: List[torch.Tensor]) -> List[Optional[torch.Tensor]]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for target, layers in enumerate(self.fuse_layers):
            if layers is None:
                fused.append(None)
                continue
            total = xs[target]
            for source, layer in enumerate(layers):
                if source == target:
                    continue
                y = layer(xs[source])
                if source > target:
                    y = F.interpolate(y, size=xs[target].shape[-2:], mode="nearest")
                total = total + y
            fused.append(F.relu(total))
        return fused


def _make_transition(previous: Sequence[int], current: Sequence[int], norm: str) -> nn.ModuleList:
    """Branch b of the next stage: the same branch (3x3 conv if its channels change, else None) or, for a
    new branch, stride-2 3x3 convs from the lowest-resolution branch before (official layout)."""
    layers = []
    for b, out_channels in enumerate(current):
        if b < len(previous):
            layers.append(
                None
                if previous[b] == out_channels
                else nn.Sequential(
                    conv3x3(previous[b], out_channels), make_norm(norm, out_channels), nn.ReLU(inplace=True)
                )
            )
            continue
        steps = []
        for step in range(b + 1 - len(previous)):
            in_channels = previous[-1]
            step_out = out_channels if step == b - len(previous) else in_channels
            steps.append(
                nn.Sequential(
                    conv3x3(in_channels, step_out, stride=2), make_norm(norm, step_out), nn.ReLU(inplace=True)
                )
            )
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def _check_out_features(names: Sequence[str], key: str) -> None:
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown or not names:
        raise ValueError(f"{key} = {list(names)}: unknown or empty; choose from {list(FEATURE_NAMES)}")


class HRNet(Backbone):
    """HRNet backbone returning the branch maps and/or their stride-4 concatenation.

    Input: (B, C_in, H, W) float image tensor (normalised), H and W multiples of 32 (``size_divisibility``).
    Output: dict with the requested features among
      "hr2", "hr3", "hr4", "hr5": (B, width * 2**b, H / 2**(b+2), W / 2**(b+2)), b = 0..3;
      "hrnet_cat": (B, 15 * width, H / 4, W / 4), the four branches upsampled bilinearly to stride 4.
    """

    def __init__(
        self,
        spec: HRNetSpec = HRNetSpec(),
        *,
        in_channels: int = 3,
        norm: str = "BN",
        out_features: Sequence[str] = (CONCAT_FEATURE,),
    ):
        super().__init__()
        spec.validate()
        self.spec = spec
        branch_channels = spec.branch_channels

        self.conv1 = nn.Conv2d(in_channels, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn1 = make_norm(norm, STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn2 = make_norm(norm, STEM_CHANNELS)
        self.layer1 = _make_blocks(Bottleneck, STEM_CHANNELS, spec.stage1_channels, spec.stage1_blocks, norm)

        _check_out_features(out_features, "out_features")
        # the branches the last module must output: all for the concatenation, else the requested ones
        final = range(4) if CONCAT_FEATURE in out_features else [FEATURE_NAMES.index(n) for n in out_features]
        previous = [spec.stage1_channels * Bottleneck.expansion]
        for s in range(3):  # stages 2, 3, 4 with s + 2 branches
            current = branch_channels[: s + 2]
            setattr(self, f"transition{s + 1}", _make_transition(previous, current, norm))
            modules = [
                HighResolutionModule(
                    current, spec.num_blocks[s], norm=norm,
                    outputs=final if s == 2 and m == spec.num_modules[s] - 1 else None,
                )
                for m in range(spec.num_modules[s])
            ]  # fmt: skip
            setattr(self, f"stage{s + 2}", nn.Sequential(*modules))
            previous = current

        self._out_feature_channels = {_branch_feature_name(b): c for b, c in enumerate(branch_channels)}
        self._out_feature_strides = {_branch_feature_name(b): 2 ** (b + 2) for b in range(4)}
        self._out_feature_channels[CONCAT_FEATURE] = sum(branch_channels)
        self._out_feature_strides[CONCAT_FEATURE] = 4
        self._out_features = list(out_features)
        self._init_weights()

    def _init_weights(self) -> None:
        """He init (fan_out) for convs as the official ImageNet training; norms keep weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for s in range(3):
            transition = getattr(self, f"transition{s + 1}")
            inputs = []
            for b, layer in enumerate(transition):
                source = branches[b] if b < len(branches) else branches[-1]
                inputs.append(source if layer is None else layer(source))
            branches = getattr(self, f"stage{s + 2}")(inputs)

        outputs = {}
        for b, feature in enumerate(branches):
            name = _branch_feature_name(b)
            if name in self._out_features:
                outputs[name] = feature
        if CONCAT_FEATURE in self._out_features:
            size = branches[0].shape[-2:]
            upsampled = [branches[0]] + [
                F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in branches[1:]
            ]
            outputs[CONCAT_FEATURE] = torch.cat(upsampled, dim=1)
        return outputs


@dataclass
class HRNetLoadReport:
    """What :func:`load_hrnet_pretrained` did. Keys are module-relative names (``conv1.weight``)."""

    path: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # in the model, not in the file: left as initialised
    unexpected: List[str] = field(default_factory=list)  # in the file, not in the model: ignored
    shape_mismatched: List[str] = field(default_factory=list)  # "key: file (..) vs model (..)": not loaded


def _read_checkpoint(path: str, config_key: str) -> Mapping[str, torch.Tensor]:
    """Read a state_dict from ``path`` (``.pkl`` via pickle as Detectron2 does, else ``torch.load`` with
    ``weights_only=True``); unwrap ``{"state_dict": ...}`` / ``{"model": ...}`` and a ``module.`` prefix."""
    where = f"{config_key}={path!r}"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: no such file")
    try:
        if path.endswith(".pkl"):
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "Weights only load failed" in str(e) and "Unsupported global" in str(e):
            raise ValueError(
                f"{where}: torch.load(weights_only=True) refused this file: it holds objects other than "
                "tensors (e.g. numpy arrays). If you trust it, re-save it as a plain state_dict of tensors "
                "(torch.save({k: torch.as_tensor(v) for k, v in sd.items()}, ...)) or as a .pkl, which is "
                "read with pickle as Detectron2 reads its own checkpoints."
            ) from e
        raise ValueError(f"{where}: not a readable checkpoint ({type(e).__name__}: {e})") from e

    for wrapper in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
    if not isinstance(data, Mapping) or not data:
        raise ValueError(
            f"{where}: not a checkpoint: expected a non-empty state_dict (name -> tensor), got {type(data).__name__}"
        )
    state_dict = {}
    for key, value in data.items():
        if not isinstance(key, str) or not hasattr(value, "shape"):
            raise ValueError(f"{where}: not a checkpoint: entry {key!r} is a {type(value).__name__}, not a tensor")
        state_dict[key] = torch.as_tensor(value)
    if all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def load_hrnet_pretrained(
    model: nn.Module, path: str, *, config_key: str = "MODEL.HRNET.PRETRAINED"
) -> HRNetLoadReport:
    """Load the parameters of ``model`` found (same name, same shape) in the checkpoint at ``path``.

    Works for the official HRNet ImageNet checkpoints (their classification head is reported as
    unexpected) and for any state_dict in the official naming. BN ``num_batches_tracked`` counters are
    neither loaded into models without them nor reported. The report is logged (missing / unexpected keys
    grouped as Detectron2 does) and returned. Errors name ``config_key`` and the file.
    """
    checkpoint = _read_checkpoint(path, config_key)
    own = model.state_dict()
    report = HRNetLoadReport(path=path)
    to_load = {}
    for key, value in checkpoint.items():
        if key not in own:
            if not key.endswith("num_batches_tracked"):
                report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            report.shape_mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            to_load[key] = value
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in own if k not in checkpoint and not k.endswith("num_batches_tracked"))
    model.load_state_dict(to_load, strict=False)

    logger.info(f"{config_key}: loaded {len(report.loaded)} of {len(own)} tensors from {path}")
    if report.missing:
        logger.warning(get_missing_parameters_message(report.missing))
    if report.unexpected:
        logger.info(get_unexpected_parameters_message(report.unexpected))
    for line in report.shape_mismatched:
        logger.warning(f"{config_key}: shape mismatch, not loaded: {line}")
    return report


def hrnet_spec_from_config(cfg) -> HRNetSpec:
    """The HRNetSpec of ``cfg.MODEL.HRNET``; ValueError names the offending key."""
    c = cfg.MODEL.HRNET
    spec = HRNetSpec(
        width=c.WIDTH,
        stage1_channels=c.STAGE1_CHANNELS,
        stage1_blocks=c.STAGE1_BLOCKS,
        num_modules=tuple(c.NUM_MODULES),
        num_blocks=tuple(c.NUM_BLOCKS),
    )
    spec.validate(key_prefix="MODEL.HRNET")
    return spec


@BACKBONE_REGISTRY.register()
def build_hrnet_backbone(cfg, input_shape: ShapeSpec) -> HRNet:
    """Build :class:`HRNet` from ``cfg.MODEL.HRNET`` and load ``MODEL.HRNET.PRETRAINED`` if set.

    ``MODEL.BACKBONE.FREEZE_AT`` is not used (DEKR trains the whole backbone).
    """
    c = cfg.MODEL.HRNET
    _check_out_features(c.OUT_FEATURES, "MODEL.HRNET.OUT_FEATURES")
    try:
        make_norm(c.NORM, 32)
    except ValueError as e:
        raise ValueError(f"MODEL.HRNET.NORM: {e}") from None
    backbone = HRNet(
        hrnet_spec_from_config(cfg),
        in_channels=input_shape.channels,
        norm=c.NORM,
        out_features=tuple(c.OUT_FEATURES),
    )
    if c.PRETRAINED:
        load_hrnet_pretrained(backbone, c.PRETRAINED, config_key="MODEL.HRNET.PRETRAINED")
    return backbone
