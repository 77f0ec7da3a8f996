"""KeypointEvaluator (Detectron2 DatasetEvaluator) on the real samples: the +0.5 convention, untouched
outputs, atomic results file, zero predictions, metadata errors."""

import json
import math
import os
import uuid

import numpy as np
import pytest

pytest.importorskip("detectron2")

import torch  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.data.datasets import load_coco_json  # noqa: E402
from detectron2.evaluation import print_csv_format  # noqa: E402
from detectron2.structures import Boxes, BoxMode, Instances  # noqa: E402

from adaanchor.data.keypoints import COCO_SPEC, CROWDPOSE_SPEC  # noqa: E402
from adaanchor.evaluation.detectron2_evaluator import KeypointEvaluator, instances_to_keypoint_results  # noqa: E402
from adaanchor.utils.files import write_json_atomically  # noqa: E402

CROWDPOSE_REFERENCE_AP = 0.787722  # /work/shared/data/README.md, xtcocotools on the xtcocoapi example


@pytest.fixture
def register(shared_data):
    """Registers metadata for a json under a fresh name; removes it afterwards."""
    names = []

    def _register(relative_json, evaluator_type, spec, load_dataset=True):
        name = f"adaanchor_eval_test_{uuid.uuid4().hex[:8]}"
        names.append(name)
        json_file = str(shared_data / relative_json)
        MetadataCatalog.get(name).set(
            json_file=json_file,
            evaluator_type=evaluator_type,
            keypoint_oks_sigmas=list(spec.oks_sigmas),
            keypoint_names=list(spec.keypoint_names),
        )
        # Detectron2's loader: keypoints + 0.5, and thing_dataset_id_to_contiguous_id on the metadata.
        dicts = (
            load_coco_json(json_file, str(shared_data / os.path.dirname(relative_json)), name) if load_dataset else None
        )
        return name, dicts

    yield _register
    for name in names:
        MetadataCatalog.remove(name)


def instances_from_annotations(record):
    """Outputs a model would give if it predicted the ground truth exactly, in Detectron2's coordinates."""
    anns = [
        a for a in record["annotations"] if not a.get("iscrowd", 0) and (np.asarray(a["keypoints"])[2::3] > 0).any()
    ]
    instances = Instances((record["height"], record["width"]))
    kpts = torch.tensor([a["keypoints"] for a in anns], dtype=torch.float32).reshape(len(anns), -1, 3)
    kpts[:, :, 2] = 1.0
    instances.pred_keypoints = kpts
    instances.scores = torch.ones(len(anns))
    instances.pred_classes = torch.zeros(len(anns), dtype=torch.int64)
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return instances


def run(evaluator, records, make_instances):
    evaluator.reset()
    originals = []
    for record in records:
        instances = make_instances(record)
        before = {k: v.clone() for k, v in instances.get_fields().items() if isinstance(v, torch.Tensor)}
        before["pred_boxes"] = instances.pred_boxes.tensor.clone() if instances.has("pred_boxes") else None
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": instances}])
        originals.append((instances, before))
    return evaluator.evaluate(), originals


@pytest.mark.parametrize(
    "relative_json, evaluator_type, spec",
    [
        ("coco/test_coco.json", "coco", COCO_SPEC),
        ("crowdpose/test_crowdpose.json", "crowdpose", CROWDPOSE_SPEC),
    ],
)
def test_ground_truth_loaded_the_detectron2_way_scores_100(register, tmp_path, relative_json, evaluator_type, spec):
    name, records = register(relative_json, evaluator_type, spec)
    evaluator = KeypointEvaluator(name, output_dir=str(tmp_path), distributed=True)
    results, originals = run(evaluator, records, instances_from_annotations)

    metrics = results["keypoints"]
    assert list(metrics)[0] == "AP"
    for key in ("AP", "AP50", "AP75", "AR", "recall"):
        assert metrics[key] == pytest.approx(100.0, abs=1e-9), key
    assert metrics["vis_error"] == pytest.approx(0.0, abs=1e-4)  # float32 tensors
    print_csv_format(results)  # Detectron2's copypaste printer accepts the dict

    for instances, before in originals:  # process() left the model's tensors untouched
        assert torch.equal(instances.pred_keypoints, before["pred_keypoints"])
        assert torch.equal(instances.scores, before["scores"])
        assert torch.equal(instances.pred_boxes.tensor, before["pred_boxes"])

    # The results file holds the annotation files' pixel-index coordinates: +0.5 undone exactly once.
    written = json.loads((tmp_path / "keypoint_results.json").read_text())
    gt = json.loads(open(MetadataCatalog.get(name).json_file).read())
    gt_by_image = {}
    for ann in gt["annotations"]:
        if not ann["iscrowd"] and (np.asarray(ann["keypoints"])[2::3] > 0).any():
            gt_by_image.setdefault(ann["image_id"], []).append(np.asarray(ann["keypoints"]).reshape(-1, 3))
    assert len(written) == sum(len(v) for v in gt_by_image.values())
    for result in written:
        kpts = np.asarray(result["keypoints"]).reshape(-1, 3)
        best = min(np.abs(g[g[:, 2] > 0, :2] - kpts[g[:, 2] > 0, :2]).max() for g in gt_by_image[result["image_id"]])
        assert best < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["keypoint_results.json"]  # no temporary left over


def test_real_crowdpose_predictions_through_detectron2_match_xtcocotools_reference(register, shared_data):
    name, _ = register(
        "xtcocoapi_examples/example_crowdpose_val.json",
        "crowdpose",
        CROWDPOSE_SPEC,
        load_dataset=False,
    )
    preds = json.loads((shared_data / "xtcocoapi_examples" / "example_crowdpose_preds.json").read_text())
    evaluator = KeypointEvaluator(name, distributed=False)
    by_image = {}
    for p in preds:
        by_image.setdefault(p["image_id"], []).append(p)
    for image_id, image_preds in by_image.items():
        instances = Instances((1000, 1000))
        kpts = torch.tensor([p["keypoints"] for p in image_preds], dtype=torch.float64).reshape(len(image_preds), -1, 3)
        kpts[:, :, :2] += 0.5  # what a Detectron2 model outputs
        instances.pred_keypoints = kpts
        instances.scores = torch.tensor([p["score"] for p in image_preds], dtype=torch.float64)
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    metrics = evaluator.evaluate()["keypoints"]
    assert metrics["AP"] == pytest.approx(100 * CROWDPOSE_REFERENCE_AP, abs=1e-4)
    assert metrics["AP_hard"] == pytest.approx(41.16, abs=1e-9)


def test_zero_predictions_give_ap_zero_and_an_empty_results_file(register, tmp_path):
    name, records = register("coco/test_coco.json", "coco", COCO_SPEC)
    evaluator = KeypointEvaluator(name, output_dir=str(tmp_path / "new_dir"))

    def empty(record):
        instances = Instances((record["height"], record["width"]))
        instances.pred_keypoints = torch.zeros(0, 17, 3)
        instances.scores = torch.zeros(0)
        return instances

    metrics = run(evaluator, records, empty)[0]["keypoints"]
    assert metrics["AP"] == 0.0 and metrics["AR"] == 0.0 and metrics["recall"] == 0.0
    assert metrics["APm"] == 0.0 and math.isnan(metrics["vis_error"])  # no matched keypoint: undefined
    assert json.loads((tmp_path / "new_dir" / "keypoint_results.json").read_text()) == []


def test_missing_metadata_is_named(register):
    name, _ = register("coco/test_coco.json", "coco", COCO_SPEC, load_dataset=False)
    bare = f"adaanchor_eval_test_bare_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(bare).set(evaluator_type="coco", keypoint_oks_sigmas=list(COCO_SPEC.oks_sigmas))
    try:
        with pytest.raises(ValueError, match=f"dataset '{bare}': MetadataCatalog has no 'json_file'"):
            KeypointEvaluator(bare)
    finally:
        MetadataCatalog.remove(bare)
    wrong = f"adaanchor_eval_test_wrong_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(wrong).set(
        json_file=MetadataCatalog.get(name).json_file,
        evaluator_type="coco",
        keypoint_oks_sigmas=[0.1] * 14,
    )
    try:
        with pytest.raises(ValueError, match="'keypoints' has 51 numbers, expected 3 x 14"):
            KeypointEvaluator(wrong)
    finally:
        MetadataCatalog.remove(wrong)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "keypoint_results.json"
    write_json_atomically(str(path), [{"a": 1}])
    with pytest.raises(TypeError):
        write_json_atomically(str(path), [{"a": 1}, {"b": object()}])  # fails half-way through json.dump
    assert json.loads(path.read_text()) == [{"a": 1}]  # the previous complete file
    assert [p.name for p in tmp_path.iterdir()] == ["keypoint_results.json"]


def test_results_conversion_category_ids_and_shift_on_a_copy(tmp_path):
    """The conversion the evaluator and the demo share: -0.5 on a copy; category ids through the metadata's
    mapping, else the json's only category, else an error naming the dataset."""
    instances = Instances((20, 30))
    instances.pred_keypoints = torch.tensor([[[10.5, 4.5, 0.9], [2.0, 3.0, 0.1]]])
    instances.scores = torch.tensor([0.8])
    instances.pred_classes = torch.tensor([0])
    before = instances.pred_keypoints.clone()
    json_file = tmp_path / "gt.json"
    json_file.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 7, "name": "person"}]}))
    names = [f"adaanchor_eval_test_convert_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    mapped, from_json, neither = (MetadataCatalog.get(n) for n in names)
    mapped.set(thing_dataset_id_to_contiguous_id={3: 0})
    from_json.set(json_file=str(json_file))
    try:
        (result,) = instances_to_keypoint_results(instances, "img", mapped)
        assert (result["image_id"], result["category_id"]) == ("img", 3)
        assert result["keypoints"] == pytest.approx([10, 4, 0.9, 1.5, 2.5, 0.1]) and result["score"] == pytest.approx(
            0.8
        )
        assert torch.equal(instances.pred_keypoints, before)
        assert instances_to_keypoint_results(instances, 1, from_json)[0]["category_id"] == 7
        assert instances_to_keypoint_results(instances, 1, from_json, [5])[0]["category_id"] == 5
        with pytest.raises(ValueError, match=f"dataset '{names[2]}': cannot tell the category"):
            instances_to_keypoint_results(instances, 1, neither)
        with pytest.raises(ValueError, match="has 2 categories"):
            instances_to_keypoint_results(instances, 1, from_json, [1, 2])
    finally:
        for n in names:
            MetadataCatalog.remove(n)
