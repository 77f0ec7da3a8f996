"""projects/AdaAnchor/tools/visualize_anchors.py (the paper's Figure 4 for DEKR): the arrows it computes (inference:
the model's own poses and anchor cells; training: positives of the assignment -> ground-truth centres, in
original-image px), the heatmap-anchor path, the PNG and the errors. Untrained, seeded models (no MODEL.WEIGHTS)."""

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


def _model(config):
    from adaanchor.engine import build_cfg

    cfg = build_cfg(config, _opts())
    torch.manual_seed(0)
    return cfg, va.build_dekr(cfg)


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
