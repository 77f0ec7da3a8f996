"""The written synthetic dataset: determinism, COCO/CrowdPose validity, evaluators, statistics targets."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from adaanchor.data.crowd_index import crowd_index_of_annotations, crowd_level
from adaanchor.data.keypoints import get_keypoint_spec
from adaanchor.data.synthetic import generate_synthetic_dataset, render_image
from adaanchor.data.synthetic.dataset import person_annotation


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _generate(path, **kw):
    params = dict(num_images=6, seed=0, keypoints="crowdpose", max_size=160, workers=1, progress=False)
    params.update(kw)
    return generate_synthetic_dataset(path, **params)


@pytest.fixture(scope="module")
def crowdpose_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cp") / "ds"
    _generate(out, num_images=24, seed=3, max_size=192)
    return out


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("coco") / "ds"
    _generate(out, num_images=24, seed=3, max_size=192, keypoints="coco")
    return out


def test_byte_identical_for_same_arguments_and_any_worker_count(tmp_path):
    _generate(tmp_path / "a", workers=1)
    _generate(tmp_path / "b", workers=2)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.startswith("images/")]) == 6
    assert a == b


def test_different_seeds_differ(tmp_path):
    _generate(tmp_path / "a", seed=0, num_images=2)
    _generate(tmp_path / "b", seed=1, num_images=2)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a["annotations.json"] != b["annotations.json"]
    assert a["images/000001.jpg"] != b["images/000001.jpg"]


def test_coco_and_crowdpose_variants_show_the_same_images(crowdpose_dir, coco_dir):
    a, b = _files(crowdpose_dir), _files(coco_dir)
    assert {k: v for k, v in a.items() if k.startswith("images/")} == {
        k: v for k, v in b.items() if k.startswith("images/")
    }


@pytest.mark.parametrize("keypoints", ["crowdpose", "coco"])
def test_json_structure(keypoints, crowdpose_dir, coco_dir):
    root = crowdpose_dir if keypoints == "crowdpose" else coco_dir
    spec = get_keypoint_spec(keypoints)
    data = json.loads((root / "annotations.json").read_text())
    (cat,) = data["categories"]
    assert cat["id"] == 1 and cat["name"] == "person"
    assert cat["keypoints"] == list(spec.keypoint_names)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in spec.skeleton_indices]
    assert all(1 <= i <= spec.num_keypoints for link in cat["skeleton"] for i in link)
    assert [im["id"] for im in data["images"]] == list(range(1, 25))
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
    images = {im["id"]: im for im in data["images"]}
    for im in data["images"]:
        assert list(im) == ["id", "file_name", "width", "height", "crowdIndex"]
        assert (root / "images" / im["file_name"]).is_file()
        assert max(im["width"], im["height"]) == 192
    by_image = {}
    for ann in data["annotations"]:
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        kpts = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
        assert kpts.shape == (spec.num_keypoints, 3)
        v = kpts[:, 2]
        assert set(v) <= {0, 1, 2}
        assert np.all(kpts[v == 0] == 0)
        assert ann["num_keypoints"] == int(np.sum((v > 0) & spec.counted_mask)) >= 1
        im = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= im["width"] and y + h <= im["height"] and w > 0 and h > 0
        assert 0 < ann["area"] <= w * h
        labelled = kpts[v > 0]
        assert np.all((labelled[:, 0] >= -0.5) & (labelled[:, 0] < im["width"] - 0.5))
        assert np.all((labelled[:, 1] >= -0.5) & (labelled[:, 1] < im["height"] - 0.5))
        by_image.setdefault(ann["image_id"], []).append(ann)
    # the stored crowd index is CrowdPose's, recomputed from the stored labels
    for im in data["images"]:
        assert im["crowdIndex"] == pytest.approx(crowd_index_of_annotations(by_image.get(im["id"], [])), abs=5e-5)


def _gt_as_predictions(data):
    preds = []
    for ann in data["annotations"]:
        if ann["num_keypoints"] == 0:
            continue
        kpts = np.array(ann["keypoints"], dtype=float).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        kpts[kpts[:, 2] == 0, :2] = (x + w / 2, y + h / 2)
        kpts[:, 2] = 1
        preds.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kpts.ravel().tolist(), "score": 1.0})
    return preds


@pytest.mark.parametrize("keypoints", ["crowdpose", "coco"])
def test_pycocotools_gives_ap_1_for_ground_truth_predictions(keypoints, crowdpose_dir, coco_dir):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root = crowdpose_dir if keypoints == "crowdpose" else coco_dir
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "annotations.json"))
        dt = gt.loadRes(_gt_as_predictions(gt.dataset))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.array(get_keypoint_spec(keypoints).oks_sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    assert ev.stats[5] == pytest.approx(1.0)  # AR


def test_xtcocotools_crowdpose_evaluation_gives_ap_1(crowdpose_dir, tmp_path):
    xt_coco = pytest.importorskip("xtcocotools.coco")
    xt_eval = pytest.importorskip("xtcocotools.cocoeval")
    gt_path = str(crowdpose_dir / "annotations.json")
    preds = _gt_as_predictions(json.loads(Path(gt_path).read_text()))
    pred_path = tmp_path / "preds.json"
    pred_path.write_text(json.dumps(preds))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = xt_coco.COCO(gt_path)
        dt = gt.loadRes(str(pred_path))
        sigmas = np.array(get_keypoint_spec("crowdpose").oks_sigmas)
        ev = xt_eval.COCOeval(gt, dt, "keypoints_crowd", sigmas, use_area=False)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap, ap50, ap75, ar, ar50, ar75, easy, medium, hard = ev.stats
    assert ap == pytest.approx(1.0) and ar == pytest.approx(1.0)
    levels = [crowd_level(im["crowdIndex"]) for im in gt.dataset["images"]]
    for level, value in zip(("easy", "medium", "hard"), (easy, medium, hard)):
        if level in levels:
            assert value == pytest.approx(1.0), level


def test_statistics_targets_on_the_default_distribution():
    """>= 15% of labelled keypoints are v = 1, >= 3% of persons truncated, all crowd levels present
    (200 images at the default max_size 512, seed 0; rendering only, no JPEG/json)."""
    spec = get_keypoint_spec("crowdpose")
    v_counts = np.zeros(3, int)
    persons = truncated = 0
    levels = set()
    for index in range(200):
        rendered = render_image(0, index, 512)
        anns = [person_annotation(p, spec) for p in rendered.persons]
        for ann in anns:
            v_counts += np.bincount(np.array(ann["keypoints"][2::3]), minlength=3)
        persons += len(anns)
        truncated += sum(p.truncated for p in rendered.persons)
        levels.add(crowd_level(crowd_index_of_annotations(anns)))
    labelled = v_counts[1] + v_counts[2]
    assert v_counts[1] / labelled >= 0.15, v_counts
    assert truncated / persons >= 0.03, (truncated, persons)
    assert levels == {"easy", "medium", "hard"}


def test_truncated_persons_show_in_the_json(crowdpose_dir):
    """Truncation is visible from the labels alone: a v = 0 joint or a box touching the border."""
    data = json.loads((crowdpose_dir / "annotations.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    touching = 0
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        v = np.array(ann["keypoints"][2::3])
        touching += bool((v == 0).any() or x == 0 or y == 0 or x + w == im["width"] or y + h == im["height"])
    assert touching / len(data["annotations"]) >= 0.03


def test_summary(tmp_path):
    summary = _generate(tmp_path / "ds", num_images=5)
    data = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    v = np.array([x for a in data["annotations"] for x in a["keypoints"][2::3]])
    assert summary["images"] == 5
    assert summary["persons"] == len(data["annotations"])
    assert summary["keypoints"] == {"v0": int((v == 0).sum()), "v1": int((v == 1).sum()), "v2": int((v == 2).sum())}
    assert sum(summary["crowd_levels"].values()) == 5
    record = json.loads((tmp_path / "ds" / "synthetic_dataset.json").read_text())
    assert record["summary"] == {k: summary[k] for k in record["summary"]}
    assert record["params"] == {"num_images": 5, "seed": 0, "keypoints": "crowdpose", "max_size": 160}


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"num_images": 0}, "num_images"),
        ({"num_images": 2.5}, "num_images"),
        ({"keypoints": "mpii"}, "keypoints"),
        ({"seed": -1}, "seed"),
        ({"max_size": 10}, "max_size"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _generate(tmp_path / "ds", **kw)
    assert not (tmp_path / "ds").exists()


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="cannot write into"):
        _generate(blocker / "ds", num_images=1)


def test_existing_out_dir_is_not_replaced_unless_asked(tmp_path):
    _generate(tmp_path / "ds", num_images=1)
    with pytest.raises(FileExistsError, match="already exists"):
        _generate(tmp_path / "ds", num_images=2)
    _generate(tmp_path / "ds", num_images=2, overwrite=True)
    assert len(list((tmp_path / "ds" / "images").iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary leftovers


def test_failure_leaves_no_directory(tmp_path, monkeypatch):
    from adaanchor.data.synthetic import dataset

    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return render_image(*args, **kwargs)

    monkeypatch.setattr(dataset, "render_image", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _generate(tmp_path / "ds", num_images=5)
    assert list(tmp_path.iterdir()) == []
