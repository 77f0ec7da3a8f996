"""Detectron2 dataset registration: real samples, custom datasets, metadata validation, the synthetic cache."""

import json

import pytest

pytest.importorskip("detectron2")

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

from adaanchor.data import datasets  # noqa: E402
from adaanchor.data.keypoint_json import KeypointJsonError  # noqa: E402
from adaanchor.data.keypoints import KeypointSpec  # noqa: E402


@pytest.fixture
def registered():
    """Names registered by a test, removed afterwards (the catalogs are process-global)."""
    names = []
    yield names
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_builtin_names_and_metadata():
    names = DatasetCatalog.list()
    for split in ("train", "val", "trainval", "test"):
        assert f"crowdpose_{split}" in names
    assert {"ochuman_val", "ochuman_test", "synthetic_crowdpose_train", "synthetic_coco_val"} <= set(names)
    meta = MetadataCatalog.get("crowdpose_test")
    assert meta.evaluator_type == "crowdpose" and len(meta.keypoint_oks_sigmas) == 14
    assert len(meta.keypoint_connection_rules) == 15  # CrowdPose's own skeleton, not its json's
    assert MetadataCatalog.get("ochuman_val").evaluator_type == "coco"
    coco = MetadataCatalog.get("keypoints_coco_2017_val")
    assert len(coco.keypoint_oks_sigmas) == 17 and coco.evaluator_type == "coco"


def test_real_crowdpose_sample_through_the_catalog(shared_data, registered):
    root = shared_data / "crowdpose"
    datasets.register_keypoint_dataset("sample_crowdpose", str(root / "test_crowdpose.json"), str(root), "crowdpose")
    registered.append("sample_crowdpose")
    records = DatasetCatalog.get("sample_crowdpose")
    raw = json.loads((root / "test_crowdpose.json").read_text())
    assert len(records) == len(raw["images"]) and all("crowd_index" in r for r in records)
    meta = MetadataCatalog.get("sample_crowdpose")
    assert meta.evaluator_type == "crowdpose" and meta.keypoint_names[-2:] == ["head", "neck"]


def test_custom_spec_and_its_validation(tmp_path, registered):
    spec = KeypointSpec(
        "faces", ("nose", "left_eye", "right_eye"), (("left_eye", "right_eye"),), ((0, 1), (0, 2)), (0.03,) * 3
    )
    datasets.register_keypoint_dataset("faces_val", str(tmp_path / "none.json"), str(tmp_path), spec)
    registered.append("faces_val")
    meta = MetadataCatalog.get("faces_val")
    assert meta.evaluator_type == "coco" and meta.keypoint_flip_map == [("left_eye", "right_eye")]
    with pytest.raises(KeypointJsonError, match="none.json: annotation file not found"):
        DatasetCatalog.get("faces_val")  # lazily loaded: the error names the file
    with pytest.raises(ValueError, match="dataset 'faces_train': evaluator_type"):
        datasets.register_keypoint_dataset("faces_train", "x.json", ".", spec, evaluator_type="mpii")


def test_synthetic_split_generated_on_first_use_then_reused(tmp_path):
    # re-register the synthetic splits in a fresh cache (as DATASETS.SYNTHETIC.CACHE_DIR does)
    datasets.register_synthetic_datasets(str(tmp_path))
    try:
        meta = MetadataCatalog.get("synthetic_crowdpose_val")
        assert meta.json_file == str(tmp_path / "synthetic_crowdpose_val" / "annotations.json")
        assert not (tmp_path / "synthetic_crowdpose_val").exists()  # nothing generated at registration
        records = DatasetCatalog.get("synthetic_crowdpose_val")
        assert len(records) == datasets.SYNTHETIC_SPLITS["synthetic_crowdpose_val"][1]
        stamp = (tmp_path / "synthetic_crowdpose_val" / "annotations.json").stat().st_mtime_ns
        assert len(DatasetCatalog.get("synthetic_crowdpose_val")) == len(records)
        assert (tmp_path / "synthetic_crowdpose_val" / "annotations.json").stat().st_mtime_ns == stamp  # reused
        assert all(len(a["keypoints"]) == 42 for r in records for a in r["annotations"])
    finally:
        datasets.register_synthetic_datasets()  # back to the default cache for other tests
