"""projects/AdaAnchor/tools/loss_scales.py: each loss term's gradient on the backbone features, per term and per
group; a weight scales its term's gradient by exactly that factor."""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("detectron2")

from faults_support import make_tiny_source  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "projects" / "AdaAnchor" / "tools"))

import loss_scales  # noqa: E402


def test_loss_groups_are_the_prefix_up_to_the_second_underscore():
    assert loss_scales.loss_group("loss_keypoint_local_offset") == "loss_keypoint"
    assert loss_scales.loss_group("loss_tag_pull") == "loss_tag"
    assert loss_scales.loss_group("loss_offset") == "loss_offset"


def _run(capsys, dataset, *opts):
    config = str(REPO / "configs" / "synthetic_ae_adaanchor.yaml")
    assert loss_scales.main(["--config-file", config, "--batches", "1", "DATASETS.TRAIN", f'("{dataset}",)',
                             "DATASETS.TEST", f'("{dataset}",)', "SOLVER.IMS_PER_BATCH", "2",
                             "DATALOADER.NUM_WORKERS", "0", *opts]) == 0  # fmt: skip
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _tiny_dataset(tmp_path, name):
    """A 2-image CrowdPose-style dataset registered (again) as ``name``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from adaanchor.data.datasets import register_keypoint_dataset

    source = make_tiny_source(tmp_path, num_images=2)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_keypoint_dataset(name, str(source / "annotations.json"), str(source / "images"), "crowdpose")
    return name


def test_feature_gradients_per_term_and_group_scale_with_the_weights(tmp_path, capsys):
    name = _tiny_dataset(tmp_path, "loss_scales_tiny")
    plain = _run(capsys, name)
    terms = {"loss_keypoint_confidence", "loss_keypoint_offset", "loss_keypoint_local_offset", "loss_tag_pull"}
    assert all(plain[f"grad/{t}"] > 0 for t in terms) and {"group_grad/loss_keypoint", "group_grad/loss_tag"} <= set(
        plain
    )
    assert plain["group_grad/loss_keypoint"] <= sum(plain[f"grad/{t}"] for t in terms if "keypoint" in t) * (1 + 1e-6)
    doubled = _run(capsys, name, "MODEL.ADAANCHOR.OFFSET_LOSS_WEIGHT", "0.02")  # Base-AE: 0.01
    assert doubled["grad/loss_keypoint_offset"] == pytest.approx(2 * plain["grad/loss_keypoint_offset"], rel=1e-4)
    assert doubled["grad/loss_tag_pull"] == pytest.approx(plain["grad/loss_tag_pull"], rel=1e-4)


def test_main_leaves_the_callers_logging_as_it_was(tmp_path, capsys):
    # setup_logger stops the "adaanchor" records reaching the root logger (and pytest's caplog): only the script
    # entry point may call it, never main()
    import logging

    name = _tiny_dataset(tmp_path, "loss_scales_logging")
    loggers = [logging.getLogger(n) for n in ("adaanchor", "detectron2")]
    before = [(lg.propagate, lg.level, list(lg.handlers)) for lg in loggers]
    _run(capsys, name)
    assert [(lg.propagate, lg.level, list(lg.handlers)) for lg in loggers] == before
