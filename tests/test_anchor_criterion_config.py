"""Building the shared anchor criterion from a Detectron2 config: one builder, each key read and checked once."""

import pytest

pytest.importorskip("detectron2")

from detectron2.config import get_cfg  # noqa: E402

from adaanchor.anchor import AdaAnchor, HeatmapAnchor, RegressionAnchor, build_anchor_criterion  # noqa: E402
from adaanchor.config import add_adaanchor_config  # noqa: E402
from adaanchor.engine import AdaAnchorTrainer  # noqa: E402

SIGMA_KEY = "MODEL.DEKR.CENTER_SIGMA"


def _cfg(*opts):
    cfg = get_cfg()
    add_adaanchor_config(cfg)
    cfg.merge_from_list(list(opts))
    return cfg


def test_one_key_switches_the_criterion_and_every_key_reaches_it():
    ada = build_anchor_criterion(
        _cfg("MODEL.ADAANCHOR.TOPK", 7, "MODEL.ADAANCHOR.KERNEL", "laplacian", "MODEL.ADAANCHOR.FUSION", "add",
             "MODEL.ADAANCHOR.LOCAL_REFINEMENT", False, "MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", 0.2,
             "MODEL.ADAANCHOR.TEST.MAX_DETECTIONS", 5, "MODEL.ADAANCHOR.TARGET_MARGIN", 3.0),
        14, loss_prefix="loss_keypoint", heatmap_sigma_key=SIGMA_KEY,
    )  # fmt: skip
    assert isinstance(ada, AdaAnchor) and ada.num_types == 14 and ada.loss_prefix == "loss_keypoint"
    assert (ada.topk, ada.kernel, ada.fusion, ada.local_refinement) == (7, "laplacian", "add", False)
    assert (ada.confidence_threshold, ada.max_detections, ada.target_margin) == (0.2, 5, 3.0)
    assert ada.num_channels == 14 * 3
    heat = build_anchor_criterion(
        _cfg("MODEL.ADAANCHOR.ENABLED", False, SIGMA_KEY, 3.0, "MODEL.HEATMAP_ANCHOR.TEST_MAX_DETECTIONS", 9),
        1, loss_prefix="loss_center", heatmap_sigma_key=SIGMA_KEY,
    )  # fmt: skip
    assert isinstance(heat, HeatmapAnchor) and (heat.sigma, heat.max_detections, heat.target_margin) == (3.0, 9, 0.0)


def test_the_heatmap_sigma_is_the_hosts_key():
    cfg = _cfg()
    assert "SIGMA" not in cfg.MODEL.HEATMAP_ANCHOR  # a centre sigma and a keypoint sigma are the hosts' own keys
    assert cfg.MODEL.DEKR.CENTER_SIGMA == 4.0 and cfg.MODEL.DEKR.KEYPOINT_SIGMA == 2.0


@pytest.mark.parametrize(
    "key,value",
    [
        ("MODEL.ADAANCHOR.TOPK", 0),
        ("MODEL.ADAANCHOR.KERNEL", "cosine"),
        ("MODEL.ADAANCHOR.FUSION", "max"),
        ("MODEL.ADAANCHOR.KERNEL_WIDTH", 0.0),
        ("MODEL.ADAANCHOR.PRIOR_PROB", 1.0),
        ("MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", 2.0),
        ("MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", -0.1),
        ("MODEL.ADAANCHOR.TEST.MAX_DETECTIONS", 0),
        ("MODEL.ADAANCHOR.SELECTION", "random"),
        ("MODEL.ADAANCHOR.SELECTION", "regression"),  # DEKR's centres: many targets per type
    ],
)
def test_bad_adaanchor_values_are_rejected_naming_the_key(key, value):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        build_anchor_criterion(_cfg(key, value), 1, loss_prefix="loss_center", heatmap_sigma_key=SIGMA_KEY)


def test_the_table_1_baselines_are_one_key_away():
    def build(*opts, **kwargs):
        return build_anchor_criterion(_cfg(*opts), 14, loss_prefix="loss_keypoint", heatmap_sigma_key=None, **kwargs)

    assert build().selection == "adaptive"
    assert build("MODEL.ADAANCHOR.SELECTION", "nearest").selection == "nearest"
    regression = build("MODEL.ADAANCHOR.SELECTION", "regression", "MODEL.ADAANCHOR.TARGET_MARGIN", 3.0,
                       "MODEL.ADAANCHOR.OFFSET_LOSS_WEIGHT", 0.5, one_target_per_type=True)  # fmt: skip
    assert isinstance(regression, RegressionAnchor) and regression.num_channels == 28
    assert (regression.target_margin, regression.offset_loss_weight) == (3.0, 0.5)


@pytest.mark.parametrize(
    "key,value",
    [(SIGMA_KEY, 0.0), ("MODEL.HEATMAP_ANCHOR.NMS_KERNEL", 4), ("MODEL.HEATMAP_ANCHOR.TEST_MAX_DETECTIONS", 0)],
)
def test_bad_heatmap_anchor_values_are_rejected_naming_the_key(key, value):
    cfg = _cfg("MODEL.ADAANCHOR.ENABLED", False, key, value)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        build_anchor_criterion(cfg, 1, loss_prefix="loss_center", heatmap_sigma_key=SIGMA_KEY)


def test_the_mapper_comes_from_the_config():
    assert AdaAnchorTrainer.build_mapper(_cfg(), is_train=True) is None  # Detectron2's DatasetMapper
    with pytest.raises(ValueError, match="MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES.*KeypointRCNN"):
        AdaAnchorTrainer.build_mapper(_cfg("MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES", True), is_train=False)
    with pytest.raises(ValueError, match="INPUT.DATASET_MAPPER_NAME"):
        AdaAnchorTrainer.build_mapper(_cfg("INPUT.DATASET_MAPPER_NAME", "top_down"), is_train=True)
