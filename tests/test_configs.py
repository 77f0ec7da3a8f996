"""Every config builds its model, and each AdaAnchor leaf differs from its heatmap-anchor twin by one key."""

from pathlib import Path

import pytest

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

from adaanchor.engine import build_cfg  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LEAVES = sorted(p.name for p in CONFIGS.glob("*_adaanchor.yaml"))


def _flatten(node, prefix=""):
    out = {}
    for key, value in node.items():
        if hasattr(value, "items"):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("leaf", LEAVES)
def test_twins_differ_by_the_switch_and_the_output_folder(leaf):
    ada = _flatten(build_cfg(str(CONFIGS / leaf), ["MODEL.DEVICE", "cpu"]))
    heat = _flatten(build_cfg(str(CONFIGS / leaf.replace("_adaanchor", "_heatmap")), ["MODEL.DEVICE", "cpu"]))
    assert {k for k in ada if ada[k] != heat[k]} == {"MODEL.ADAANCHOR.ENABLED", "OUTPUT_DIR"}
    assert ada["MODEL.ADAANCHOR.ENABLED"] is True and heat["MODEL.ADAANCHOR.ENABLED"] is False


@pytest.mark.parametrize("leaf", LEAVES + [name.replace("_adaanchor", "_heatmap") for name in LEAVES])
def test_every_config_builds_its_model(leaf):
    model = build_model(build_cfg(str(CONFIGS / leaf), ["MODEL.DEVICE", "cpu"]))
    assert sum(p.numel() for p in model.parameters()) > 0
