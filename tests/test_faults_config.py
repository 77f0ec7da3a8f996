"""Fault injection, config (issue 9, item 3): each bad value is rejected at start-up, naming the key
(and the dataset), before the first iteration; a broken evaluation json stops the run before training."""

import json
import shutil

import pytest

pytest.importorskip("detectron2")

from faults_support import CONFIG, make_crowdpose_root, make_tiny_source, run_train_net, tiny_opts  # noqa: E402

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def datasets_root(tmp_path_factory):
    source = make_tiny_source(tmp_path_factory.mktemp("faults_config_source"))
    return make_crowdpose_root(source, tmp_path_factory.mktemp("faults_config_datasets"))


@pytest.fixture(scope="module")
def registered(datasets_root):
    """crowdpose_train / crowdpose_val registered in this process on the tiny data."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from adaanchor.data.datasets import register_keypoint_dataset

    base = datasets_root / "crowdpose"
    for split in ("train", "val"):
        name = f"faults_cfg_{split}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_keypoint_dataset(
            name, str(base / "json" / f"crowdpose_{split}.json"), str(base / "images"), "crowdpose"
        )
    return ("faults_cfg_train", "faults_cfg_val")


def _cfg(registered, *opts):
    from adaanchor.engine import build_cfg

    train, val = registered
    return build_cfg(CONFIG, tiny_opts("DATASETS.TRAIN", f'("{train}",)', "DATASETS.TEST", f'("{val}",)', *opts))


def test_unknown_key_is_named():
    from adaanchor.engine import build_cfg

    with pytest.raises((KeyError, AssertionError), match=r"Non-existent key: MODEL\.ADAANCHOR\.TOPKK"):
        build_cfg(CONFIG, ["MODEL.ADAANCHOR.TOPKK", "3"])


def test_model_keypoint_count_must_match_the_dataset(registered):
    from adaanchor.engine import AdaAnchorTrainer
    from adaanchor.engine.validation import StartupValidationError

    cfg = _cfg(registered, "MODEL.DEKR.NUM_KEYPOINTS", "17")
    with pytest.raises(
        StartupValidationError,
        match=r"MODEL\.DEKR\.NUM_KEYPOINTS is 17 but DATASETS\.TRAIN dataset 'faults_cfg_train' has 14 keypoints",
    ):
        AdaAnchorTrainer.validate(cfg)
    # --eval-only checks the evaluation datasets alone
    with pytest.raises(
        StartupValidationError, match=r"NUM_KEYPOINTS is 17 but DATASETS\.TEST dataset 'faults_cfg_val'"
    ):
        AdaAnchorTrainer.validate(cfg, training=False)
    AdaAnchorTrainer.validate(_cfg(registered))  # the right count passes


def test_train_net_stops_before_training_on_a_keypoint_count_mismatch(datasets_root, tmp_path):
    rc, log = run_train_net(tmp_path, datasets_root, opts=["MODEL.DEKR.NUM_KEYPOINTS", "17"], check=False)
    assert rc != 0
    assert "MODEL.DEKR.NUM_KEYPOINTS is 17 but DATASETS.TRAIN dataset 'crowdpose_train' has 14 keypoints" in log
    assert "Starting training" not in log and "heatmap_loss" not in log


def test_flip_map_must_name_the_keypoints(registered):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from adaanchor.engine import AdaAnchorTrainer
    from adaanchor.engine.validation import StartupValidationError

    good = MetadataCatalog.get(registered[0])
    for name, flip_map, message in [
        ("faults_flip_unknown", [("left_shoulder", "right_shoulderr")], "names 'right_shoulderr', which is not one of"),
        (
            "faults_flip_twice",
            [("left_shoulder", "right_shoulder"), ("left_shoulder", "right_hip")],
            "names 'left_shoulder' more than once",
        ),
        ("faults_flip_self", [("head", "head")], "pairs 'head' with itself"),
    ]:
        if name not in DatasetCatalog.list():
            DatasetCatalog.register(name, lambda: DatasetCatalog.get(registered[0]))
            MetadataCatalog.get(name).set(keypoint_names=good.keypoint_names, keypoint_flip_map=flip_map)
        cfg = _cfg((name, registered[1]))
        with pytest.raises(
            StartupValidationError, match=rf"DATASETS\.TRAIN dataset '{name}': keypoint_flip_map {message}"
        ):
            AdaAnchorTrainer.validate(cfg)


@pytest.mark.parametrize(
    "key, value",
    [
        ("MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "2.0"),  # gamma outside [0, 1]
        ("MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD", "-0.1"),
        ("MODEL.ADAANCHOR.TOPK", "0"),  # top-k < 1
        ("MODEL.ADAANCHOR.KERNEL", "cosine"),  # no such kernel
        ("MODEL.ADAANCHOR.FUSION", "max"),  # no such fusion
    ],
)
def test_anchor_keys_are_rejected_when_the_model_is_built(registered, key, value):
    from adaanchor.engine import AdaAnchorTrainer

    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        AdaAnchorTrainer.build_model(_cfg(registered, key, value))


def test_broken_evaluation_json_stops_the_run_before_training(datasets_root, tmp_path):
    root = tmp_path / "datasets"
    shutil.copytree(datasets_root, root)
    val = root / "crowdpose" / "json" / "crowdpose_val.json"
    data = json.loads(val.read_text())
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]  # 13 keypoints, not 14
    val.write_text(json.dumps(data))
    rc, log = run_train_net(tmp_path / "out", root, opts=["SOLVER.MAX_ITER", "2"], check=False)
    assert rc != 0
    ann = data["annotations"][0]
    assert f"DATASETS.TEST dataset 'crowdpose_val' cannot be used: {val}: annotation id {ann['id']}" in log
    assert "'keypoints' has 39 numbers, expected 3 x 14" in log
    assert "Starting training" not in log
