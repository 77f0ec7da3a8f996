"""projects/AdaAnchor/tools/visualize_anchors.py (the paper's Figure 4): the arrows it computes for DEKR (inference:
the model's own poses and anchor cells; training: positives of the assignment -> ground-truth centres), Associative
Embedding and the Keypoint R-CNN ROI head (inference: each joint's winning anchor -> the model's keypoint; training:
positives -> ground-truth keypoints), in original-image px, the heatmap-anchor paths, the PNGs and the errors.
Untrained, seeded models (no MODEL.WEIGHTS)."""

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("detectron2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "projects" / "AdaAnchor" / "tools"))

import visualize_anchors as va  # noqa: E402

ADAANCHOR = str(REPO / "configs" / "synthetic_dekr_adaanchor.yaml")
HEATMAP = str(REPO / "configs" / "synthetic_dekr_heatmap.yaml")
AE_ADAANCHOR = str(REPO / "configs" / "synthetic_ae_adaanchor.yaml")
AE_HEATMAP = str(REPO / "configs" / "synthetic_ae_heatmap.yaml")
KRCNN = str(REPO / "configs" / "synthetic_krcnn_adaanchor.yaml")  # detected boxes
KRCNN_GT = str(REPO / "configs" / "synthetic_krcnn_gtbox_adaanchor.yaml")  # ground-truth boxes
KRCNN_GT_HEATMAP = str(REPO / "configs" / "synthetic_krcnn_gtbox_heatmap.yaml")
# AE: every decoded candidate takes part in grouping (an untrained model's confidences sit at the 0.01 prior)
AE_OPTS = ("MODEL.AE.TEST.DETECTION_THRESHOLD", "0.0", "MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD", "0.0")
DATASET = "visualize_anchors_tiny_val"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A two-image synthetic CrowdPose-style dataset (generated in a temporary cache), registered as DATASET."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from adaanchor.data.datasets import register_keypoint_dataset
    from adaanchor.data.synthetic import ensure_synthetic_dataset

    root = ensure_synthetic_dataset(
        str(tmp_path_factory.mktemp("cache")), "synthetic_crowdpose_val", num_images=2, seed=0,
        keypoints="crowdpose", max_size=160, progress=False,
    )  # fmt: skip
    register_keypoint_dataset(DATASET, str(root / "annotations.json"), str(root / "images"), "crowdpose")
    yield root
    DatasetCatalog.remove(DATASET)
    MetadataCatalog.remove(DATASET)


def _opts(*extra):
    return ["MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "0.0", "DATASETS.TEST", f"('{DATASET}',)",
            "DATASETS.TRAIN", f"('{DATASET}',)", *extra]  # fmt: skip


def _model(config, *extra):
    from adaanchor.engine import build_cfg

    cfg = build_cfg(config, _opts(*extra))
    torch.manual_seed(0)
    return cfg, va.load_model(cfg)


def _shift_offsets(predictor, num_keypoints):
    """Coarse offsets of (1, 1) feature px at every cell (the predictor's channels K..3K), so that arrows show."""
    with torch.no_grad():
        predictor.bias[num_keypoints : 3 * num_keypoints] = 1.0


def _spy_losses(criterion):
    """Record the assignment ``criterion.losses`` returns (undo with ``del criterion.losses``)."""
    captured, losses = {}, criterion.losses

    def spy(*args, **kwargs):
        out = losses(*args, **kwargs)
        captured["assignment"] = out[1]
        return out

    criterion.losses = spy
    return captured


def _grey_image(path, size=(120, 160)):
    image = np.full((*size, 3), 128, np.uint8)
    cv2.rectangle(image, (40, 30), (90, 100), (60, 90, 200), -1)
    cv2.imwrite(str(path), image)
    return image


def test_figure_size_rule():
    assert va.figure_size_px(160, 120) == (800, 600 + va.TITLE_PX + va.LEGEND_PX, 600)  # small images enlarged
    width, height, panel = va.figure_size_px(4000, 3000)
    assert width == va.MAX_WIDTH_PX == 1600 and panel == 1200 and height == 1200 + va.TITLE_PX + va.LEGEND_PX
    width, _, panel = va.figure_size_px(500, 4000)  # tall: the panel's height is capped, the aspect kept
    assert panel == va.MAX_IMAGE_HEIGHT_PX and width == round(1200 * 500 / 4000)


def test_inference_png_is_drawn_and_reports_its_arrows(tmp_path, capsys, tiny):
    image = _grey_image(tmp_path / "grey.png")
    out = tmp_path / "figs" / "fig.png"
    torch.manual_seed(0)
    status = va.main(["--config-file", ADAANCHOR, "--input", str(tmp_path / "grey.png"), "--output", str(out),
                      "--max-people", "5", *_opts()])  # fmt: skip
    log = capsys.readouterr().out
    assert status == 0, log
    arrows = int(re.search(r"(\d+) arrows", log).group(1))
    assert 0 < arrows <= 5 and "inference, AdaAnchor" in log
    png = cv2.imread(str(out))
    width, height, panel = va.figure_size_px(image.shape[1], image.shape[0])
    assert png is not None and png.shape == (height, width, 3) and width <= 1600
    # the image panel: the input has 3 colours, the drawing (arrows, markers, antialiasing) adds many
    region = png[va.TITLE_PX : va.TITLE_PX + panel].reshape(-1, 3)
    assert len(np.unique(region, axis=0)) > 50
    assert sorted(p.name for p in out.parent.iterdir()) == ["fig.png"]  # no temporary left beside it


def test_inference_anchors_are_the_models_own_people():
    """The poses the tool decodes are the model's predictions (same order), each anchor is a cell centre of the
    model's input (original px back to input px / stride - 0.5 is an integer), and AdaAnchor's decoded centre
    is not the cell centre (the offsets move it)."""
    cfg, model = _model(ADAANCHOR)
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    inputs = va.predictor_input(image, cfg)
    anchors = va.inference_anchors(model, inputs)
    with torch.no_grad():
        predicted = model([inputs])[0]["instances"]
    assert len(anchors.scores) == len(predicted) > 0
    np.testing.assert_allclose(anchors.poses, predicted.pred_keypoints.numpy(), atol=1e-4)
    np.testing.assert_allclose(anchors.scores, predicted.scores.numpy(), atol=1e-6)
    input_h, input_w = inputs["image"].shape[1:]
    cells = anchors.anchor_cells * np.array([input_w / 160, input_h / 120]) / model.stride - 0.5
    np.testing.assert_allclose(cells, np.round(cells), atol=1e-4)
    assert anchors.adaptive and anchors.num_arrows == len(anchors.scores)
    assert (np.abs(anchors.centers - anchors.anchor_cells).sum(axis=1) > 1e-4).all()
    np.testing.assert_allclose(anchors.joint_means, anchors.poses[..., :2].mean(axis=1), atol=1e-4)
    assert len(va.top_people(anchors, 2).scores) == min(2, len(anchors.scores))


def _expected_centres(dataset_dict):
    """Mean of the labelled keypoints of every person the mapper keeps (not crowd, a labelled keypoint), in order,
    original-image px."""
    centres = []
    for a in dataset_dict["annotations"]:
        k = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        if a.get("iscrowd", 0) or not (k[:, 2] > 0).any():
            continue
        centres.append(k[k[:, 2] > 0, :2].mean(axis=0))
    return np.asarray(centres).reshape(-1, 2)


def test_training_arrows_go_from_positives_to_ground_truth_centres(tiny):
    from adaanchor.anchor import AnchorAssignment

    cfg, model = _model(ADAANCHOR)
    file_name = str(tiny / "images" / "000001.jpg")
    dataset_dict, name = va.find_dataset_dict(file_name, [DATASET])
    assert name == DATASET
    captured = {}
    losses = model.center_criterion.losses

    def spy(*args, **kwargs):
        out = losses(*args, **kwargs)
        captured["assignment"] = out[1]
        return out

    model.center_criterion.losses = spy
    try:
        anchors = va.training_anchors(model, va.training_mapper(cfg, name), dataset_dict)
    finally:
        del model.center_criterion.losses
    assignment = captured["assignment"]
    assert isinstance(assignment, AnchorAssignment)
    expected = _expected_centres(dataset_dict)
    assert anchors.adaptive and len(expected) >= 2 and assignment.num_positives > 0
    np.testing.assert_allclose(anchors.centers, expected, atol=1e-3)
    assert anchors.num_arrows == assignment.num_positives == len(anchors.starts)
    np.testing.assert_allclose(anchors.ends, expected[anchors.person], atol=1e-3)  # each to its person's centre
    # every start is the centre of a positive cell, in original px: input px = (cell + 0.5) * stride, and the
    # training input at zoom 1 is the image scaled by S / short side around the centres (bottom_up_affine)
    _, _, h, w = assignment.shape
    height, width = dataset_dict["height"], dataset_dict["width"]
    size, scale = cfg.INPUT.BOTTOM_UP.SIZE, cfg.INPUT.BOTTOM_UP.SIZE / min(height, width)
    i, j = np.divmod(assignment.positive_candidate.numpy(), w)
    cells = np.stack([j + 0.5, i + 0.5], axis=1) * model.stride
    starts = (cells - size / 2) / scale + np.array([width / 2, height / 2])
    np.testing.assert_allclose(anchors.starts, starts, atol=1e-3)
    np.testing.assert_array_equal(anchors.person, assignment.positive_target.numpy())
    kept = va.keep_people(anchors, 1)
    assert len(kept.centers) == 1 and (kept.person == 0).all() and len(kept.person) == (anchors.person == 0).sum()


def test_training_mode_cli_and_an_image_outside_the_dataset(tmp_path, capsys, tiny):
    out = tmp_path / "train.png"
    status = va.main(["--config-file", ADAANCHOR, "--input", str(tiny / "images" / "000002.jpg"), "--output",
                      str(out), "--mode", "training", *_opts()])  # fmt: skip
    log = capsys.readouterr()
    assert status == 0, log.err[-2000:]
    assert int(re.search(r"(\d+) arrows", log.out).group(1)) > 0 and cv2.imread(str(out)) is not None
    _grey_image(tmp_path / "stranger.jpg")
    status = va.main(["--config-file", ADAANCHOR, "--input", str(tmp_path / "stranger.jpg"), "--output",
                      str(tmp_path / "no.png"), "--mode", "training", *_opts()])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and f"{tmp_path / 'stranger.jpg'} is not an image of the dataset(s) {DATASET}" in err
    assert not (tmp_path / "no.png").exists()


def test_unreadable_image_is_named(tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    status = va.main(["--config-file", ADAANCHOR, "--input", str(tmp_path / "broken.jpg"), "--output",
                      str(tmp_path / "fig.png"), *_opts()])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and f"Cannot read image {tmp_path / 'broken.jpg'}: not an image" in err
    assert not (tmp_path / "fig.png").exists()


def test_heatmap_config_has_no_adaptive_anchors(tmp_path, capsys, tiny):
    """Inference: the anchors are centre-heatmap peaks, no arrows; training: DEKR's square offset region, every
    cell within OFFSET_RADIUS cells (Chebyshev) of its person's ground-truth centre, no arrows."""
    cfg, model = _model(HEATMAP)
    image = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    anchors = va.inference_anchors(model, va.predictor_input(image, cfg))
    assert not anchors.adaptive and anchors.num_arrows == 0 and len(anchors.scores) > 0
    dataset_dict, name = va.find_dataset_dict(str(tiny / "images" / "000001.jpg"), [DATASET])
    region = va.training_anchors(model, va.training_mapper(cfg, name), dataset_dict)
    assert not region.adaptive and region.num_arrows == 0 and len(region.starts) > 0
    expected = _expected_centres(dataset_dict)
    np.testing.assert_allclose(region.ends, expected[region.person], atol=1e-3)
    cell_px = model.stride * min(dataset_dict["height"], dataset_dict["width"]) / cfg.INPUT.BOTTOM_UP.SIZE
    assert (np.abs(region.starts - region.ends).max(axis=1) <= model.offset_radius * cell_px + 1e-3).all()
    status = va.main(["--config-file", HEATMAP, "--input", str(tiny / "images" / "000001.jpg"), "--output",
                      str(tmp_path / "hm.png"), *_opts()])  # fmt: skip
    log = capsys.readouterr().out
    assert status == 0 and "no adaptive anchors" in log and " 0 arrows" in log


def _expected_people(dataset_dict):
    """(N, K, 3) keypoints and (N, 4) XYXY boxes of the people the mappers keep (not crowd, a labelled keypoint), in
    annotation order, original-image px."""
    from detectron2.structures import BoxMode

    people = [a for a in dataset_dict["annotations"] if not a.get("iscrowd", 0) and any(a["keypoints"][2::3])]
    keypoints = np.asarray([a["keypoints"] for a in people], dtype=np.float64).reshape(len(people), -1, 3)
    boxes = np.asarray([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in people]).reshape(-1, 4)
    return keypoints, boxes


def _ae_maps(model, inputs):
    """The AE model's anchor maps of one input as its inference crops them, and the input's (w, h)."""
    images = model.preprocess_image([inputs])
    input_h, input_w = images.image_sizes[0]
    divisibility = model.backbone.size_divisibility
    ((maps, _),) = model.test_time.maps(
        model.predict_maps, images.tensor[:1], (input_h, input_w), stride=model.stride, size_divisibility=divisibility
    )
    return maps["anchors"], np.array([input_w, input_h])


def test_ae_inference_arrows_go_from_each_joints_anchor_cell_to_the_models_keypoint():
    """The keypoints are the model's poses; each drawn joint has an arrow that starts at a cell centre of the
    input and ends at that cell's estimate (anchor + coarse + local offsets), i.e. the joint was decoded there."""
    from adaanchor.anchor import refined_estimates

    cfg, model = _model(AE_ADAANCHOR, *AE_OPTS)
    _shift_offsets(model.head.predictor, model.num_keypoints)
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    inputs = va.predictor_input(image, cfg)
    anchors = va.ae_inference(model, inputs)
    with torch.no_grad():
        predicted = model([inputs])[0]["instances"]
        maps, input_size = _ae_maps(model, inputs)
    assert len(anchors.keypoints) == len(predicted) > 0
    np.testing.assert_allclose(anchors.keypoints, predicted.pred_keypoints[..., :2].numpy(), atol=1e-4)
    np.testing.assert_array_equal(anchors.drawn, (predicted.pred_keypoints[..., 2] > 0).numpy())
    assert anchors.adaptive and anchors.num_arrows == anchors.drawn.sum() > 0
    np.testing.assert_allclose(anchors.ends, anchors.keypoints[anchors.person, anchors.joint], atol=1e-6)
    to_input = input_size / np.array([160, 120])
    cells = anchors.starts * to_input / model.stride - 0.5
    np.testing.assert_allclose(cells, np.round(cells), atol=1e-4)
    j, i = np.round(cells).astype(int).T
    _, coarse, local = model.criterion.split(maps)
    estimates = refined_estimates(coarse, local)[0].numpy()  # (K, H, W, 2) feature px
    np.testing.assert_allclose(anchors.ends, estimates[anchors.joint, i, j] * model.stride / to_input, atol=1e-3)
    assert (np.linalg.norm(anchors.ends - anchors.starts, axis=1) > 0.5).all()  # the 1-cell offsets moved them
    kept = va.keep_keypoints(anchors, 2, [0, 5])
    assert len(kept.keypoints) == min(2, len(anchors.keypoints)) and set(kept.joint) <= {0, 5}
    assert kept.num_arrows == kept.drawn.sum() and not kept.drawn[:, [1, 2, 3, 4]].any()


def test_ae_training_arrows_go_from_positives_to_ground_truth_keypoints(tiny):
    cfg, model = _model(AE_ADAANCHOR)
    dataset_dict, name = va.find_dataset_dict(str(tiny / "images" / "000001.jpg"), [DATASET])
    captured = _spy_losses(model.criterion)
    try:
        anchors = va.ae_training(model, va.training_mapper(cfg, name), dataset_dict)
    finally:
        del model.criterion.losses
    assignment = captured["assignment"]
    keypoints, _ = _expected_people(dataset_dict)
    assert anchors.adaptive and len(keypoints) >= 2 and anchors.num_arrows == assignment.num_positives > 0
    np.testing.assert_allclose(anchors.keypoints, keypoints[..., :2] * (keypoints[..., 2:] > 0), atol=1e-3)
    np.testing.assert_array_equal(anchors.drawn, keypoints[..., 2] > 0)
    np.testing.assert_array_equal(anchors.joint, assignment.positive_map.numpy())  # one image: map = type
    np.testing.assert_array_equal(anchors.person, assignment.positive_target.numpy())
    np.testing.assert_allclose(anchors.ends, keypoints[anchors.person, anchors.joint, :2], atol=1e-3)
    _, _, h, w = assignment.shape
    height, width = dataset_dict["height"], dataset_dict["width"]
    size, scale = cfg.INPUT.BOTTOM_UP.SIZE, cfg.INPUT.BOTTOM_UP.SIZE / min(height, width)
    i, j = np.divmod(assignment.positive_candidate.numpy(), w)
    cells = np.stack([j + 0.5, i + 0.5], axis=1) * model.stride
    np.testing.assert_allclose(
        anchors.starts, (cells - size / 2) / scale + np.array([width / 2, height / 2]), atol=1e-3
    )
    assert anchors.crop is not None and anchors.boxes is None


def test_ae_heatmap_config_draws_peaks_and_ground_truth_without_arrows(tiny):
    cfg, model = _model(AE_HEATMAP, *AE_OPTS)
    image = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    inputs = va.predictor_input(image, cfg)
    anchors = va.ae_inference(model, inputs)
    with torch.no_grad():
        predicted = model([inputs])[0]["instances"]
    assert not anchors.adaptive and anchors.num_arrows == 0 and len(anchors.keypoints) == len(predicted) > 0
    np.testing.assert_allclose(anchors.keypoints, predicted.pred_keypoints[..., :2].numpy(), atol=1e-4)
    dataset_dict, name = va.find_dataset_dict(str(tiny / "images" / "000001.jpg"), [DATASET])
    truth = va.ae_training(model, va.training_mapper(cfg, name), dataset_dict)
    keypoints, _ = _expected_people(dataset_dict)
    assert not truth.adaptive and truth.num_arrows == 0
    np.testing.assert_array_equal(truth.drawn, keypoints[..., 2] > 0)


def _roi_input(cfg, tiny):
    from adaanchor.modeling.roi_heads.meta_arch import ground_truth_box_test_mapper

    dataset_dict, _ = va.find_dataset_dict(str(tiny / "images" / "000001.jpg"), [DATASET])
    return dataset_dict, ground_truth_box_test_mapper(cfg)(dataset_dict)


def test_roi_inference_arrows_go_from_the_most_confident_cell_of_each_roi_to_its_keypoint(tiny):
    """On ground-truth boxes: the people are the model's (by score), one arrow per keypoint, starting at the centre
    of the argmax cell of the ROI's confidence map (in the box's S x S grid) and ending at the model's keypoint."""
    cfg, model = _model(KRCNN_GT)
    head = model.roi_heads.keypoint_head
    _shift_offsets(head.predictor, head.criterion.num_types)
    dataset_dict, mapped = _roi_input(cfg, tiny)
    anchors = va.roi_inference(model, mapped)
    with torch.no_grad():
        predicted = model([mapped])[0]["instances"]
    predicted = predicted[torch.argsort(predicted.scores, descending=True, stable=True)]
    n, k = predicted.pred_keypoints.shape[:2]
    assert anchors.adaptive and len(anchors.keypoints) == n >= 2 and anchors.num_arrows == n * k
    np.testing.assert_allclose(anchors.keypoints, predicted.pred_keypoints[..., :2].numpy(), atol=1e-4)
    np.testing.assert_allclose(anchors.boxes, predicted.pred_boxes.tensor.numpy(), atol=1e-4)
    np.testing.assert_allclose(anchors.ends, anchors.keypoints[anchors.person, anchors.joint], atol=1e-6)
    size = predicted.pred_keypoint_heatmaps.shape[-1]
    boxes = anchors.boxes[anchors.person]
    cells = (anchors.starts - boxes[:, :2]) / (boxes[:, 2:] - boxes[:, :2]) * size - 0.5
    np.testing.assert_allclose(cells, np.round(cells), atol=1e-3)
    j, i = np.round(cells).astype(int).T
    best = predicted.pred_keypoint_heatmaps.flatten(2).argmax(dim=2).numpy()  # (N, K)
    np.testing.assert_array_equal(i * size + j, best[anchors.person, anchors.joint])
    assert (np.linalg.norm(anchors.ends - anchors.starts, axis=1) > 0.5).all()  # the 1-cell offsets moved them


def test_roi_training_arrows_go_from_positives_to_ground_truth_keypoints(tiny):
    cfg, model = _model(KRCNN_GT)
    criterion = model.roi_heads.keypoint_head.criterion
    dataset_dict, mapped = _roi_input(cfg, tiny)
    captured = _spy_losses(criterion)
    try:
        anchors = va.roi_training(model, mapped)
    finally:
        del criterion.losses
    assignment = captured["assignment"]
    keypoints, boxes = _expected_people(dataset_dict)
    assert anchors.adaptive and anchors.num_arrows == assignment.num_positives > 0
    np.testing.assert_allclose(anchors.boxes, boxes, atol=1e-3)
    np.testing.assert_array_equal(anchors.drawn, keypoints[..., 2] > 0)
    np.testing.assert_allclose(anchors.ends, keypoints[anchors.person, anchors.joint, :2], atol=1e-3)
    np.testing.assert_array_equal(anchors.person * criterion.num_types + anchors.joint, assignment.positive_map)
    size = assignment.shape[-1]
    box = boxes[anchors.person]
    cells = (anchors.starts - box[:, :2]) / (box[:, 2:] - box[:, :2]) * size - 0.5
    np.testing.assert_allclose(cells, np.round(cells), atol=1e-3)  # positive cell centres of the ROI's grid


def test_roi_regression_anchor_starts_at_the_roi_centre(tiny):
    """MODEL.ADAANCHOR.SELECTION regression: one fixed anchor per ROI, the map centre, and no assignment."""
    cfg, model = _model(KRCNN_GT, "MODEL.ADAANCHOR.SELECTION", "regression")
    _, mapped = _roi_input(cfg, tiny)
    anchors = va.roi_inference(model, mapped)
    centres = (anchors.boxes[:, :2] + anchors.boxes[:, 2:]) / 2
    assert anchors.num_arrows == anchors.drawn.size > 0
    np.testing.assert_allclose(anchors.starts, centres[anchors.person], atol=1e-3)
    assert va.roi_training(model, mapped).num_arrows == 0 and "regression anchor" in va.anchor_name("ROI", model)


def test_roi_heatmap_head_has_no_adaptive_anchors(tiny):
    cfg, model = _model(KRCNN_GT_HEATMAP)
    _, mapped = _roi_input(cfg, tiny)
    for anchors in (va.roi_inference(model, mapped), va.roi_training(model, mapped)):
        assert not anchors.adaptive and anchors.num_arrows == 0 and len(anchors.keypoints) >= 2
    assert "no adaptive anchors" in va.anchor_name("ROI", model)


@pytest.mark.parametrize(
    "config,mode,flags,options",
    [
        (AE_ADAANCHOR, "inference", (), AE_OPTS),
        (AE_ADAANCHOR, "training", ("--keypoints", "left_wrist", "head"), ()),
        (KRCNN, "inference", (), ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0")),
        (KRCNN_GT, "training", (), ()),
    ],
)
def test_keypoint_host_png_is_drawn_and_reports_its_arrows(tmp_path, capsys, tiny, config, mode, flags, options):
    """AE and ROI (detected boxes at inference, ground-truth boxes in training): a PNG of the expected size, not
    blank, and the arrows counted on the summary line (inference: one per joint of each person drawn)."""
    image_path = tiny / "images" / "000002.jpg"
    out = tmp_path / "fig.png"
    status = va.main(["--config-file", config, "--input", str(image_path), "--output", str(out), "--mode", mode,
                      "--max-people", "3", *flags, *_opts(*options)])  # fmt: skip
    log = capsys.readouterr()
    assert status == 0, log.err[-2000:]
    people, arrows, types = map(int, re.search(r"(\d+) people, (\d+) arrows, (\d+) keypoint types", log.out).groups())
    assert f"{mode}, AdaAnchor" in log.out and 0 < people <= 3 and arrows > 0
    if mode == "inference":
        assert types == 14 and arrows <= people * 14
    else:
        assert types == (2 if flags else 4)  # default: wrists and ankles
    png = cv2.imread(str(out))
    source = cv2.imread(str(image_path))
    width, height, panel = va.figure_size_px(source.shape[1], source.shape[0])
    assert png is not None and png.shape == (height, width, 3)
    region = png[va.TITLE_PX : va.TITLE_PX + panel].reshape(-1, 3)
    assert len(np.unique(region, axis=0)) > 50


def test_keypoint_options_are_checked(tmp_path, capsys, tiny):
    image = str(tiny / "images" / "000001.jpg")
    status = va.main(["--config-file", AE_ADAANCHOR, "--input", image, "--output", str(tmp_path / "a.png"),
                      "--keypoints", "left_wrist", "tail", *_opts()])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and "--keypoints: unknown keypoint name(s) tail; the dataset's are left_shoulder" in err
    status = va.main(["--config-file", ADAANCHOR, "--input", image, "--output", str(tmp_path / "d.png"),
                      "--keypoints", "left_wrist", *_opts()])  # fmt: skip
    assert status == 1 and "DEKR's anchors are person centres" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_only_the_three_hosts_are_drawn():
    from adaanchor.engine import build_cfg

    assert [va.host_of(build_cfg(c, _opts())) for c in (ADAANCHOR, AE_ADAANCHOR, KRCNN)] == ["DEKR", "AE", "ROI"]
    with pytest.raises(va.ToolError, match="without MODEL.KEYPOINT_ON has no keypoint head"):
        va.host_of(build_cfg(KRCNN, _opts("MODEL.KEYPOINT_ON", "False")))
