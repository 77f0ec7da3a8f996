"""adaanchor.evaluation against the reference tools: the README's reference numbers on the real samples
(/work/shared/data, via the ``shared_data`` fixture), ground truth submitted as predictions, and randomized
predictions compared with xtcocotools' CrowdPose evaluation and pycocotools on the same inputs.
"""

import contextlib
import io
import json

import numpy as np
import pytest

from adaanchor.data.keypoints import COCO_OKS_SIGMAS, CROWDPOSE_OKS_SIGMAS
from adaanchor.evaluation import evaluate_keypoints
from adaanchor.evaluation.__main__ import main

COCO_NAMES = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
CROWDPOSE_NAMES = ["AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"]

# /work/shared/data/README.md, "Reference numbers".
COCO_REFERENCE = [
    0.86089,
    0.993145,
    0.910891,
    0.775578,
    0.937252,
    0.875,
    1.0,
    0.916667,
    0.78,
    0.942857,
]
CROWDPOSE_REFERENCE = [0.787722, 0.988119, 0.731436, 0.822222, 1.0, 0.777778, 1.0, 0.9802, 0.4116]

SAMPLE_SETS = [
    ("coco/test_coco.json", "coco"),
    ("crowdpose/test_crowdpose.json", "crowdpose"),
    ("ochuman/test_ochuman.json", "ochuman"),
    ("xtcocoapi_examples/example_crowdpose_val.json", "crowdpose"),
]


def run_cli(capsys, gt, dt, dataset):
    assert main(["--gt", str(gt), "--dt", str(dt), "--dataset", dataset]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def ground_truth_as_predictions(gt):
    """The README's recipe: each non-crowd person with num_keypoints > 0, score 1.0, unlabelled joints
    (v = 0) at the box centre, every joint's confidence 1.0."""
    preds = []
    for ann in gt["annotations"]:
        if ann["iscrowd"] or ann["num_keypoints"] == 0:
            continue
        x, y, w, h = ann["bbox"]
        kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kpts[kpts[:, 2] == 0, :2] = (x + w / 2, y + h / 2)
        kpts[:, 2] = 1.0
        preds.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "keypoints": kpts.ravel().tolist(),
                "score": 1.0,
            }
        )
    return preds


def xtcocotools_crowdpose_stats(gt_path, predictions, tmp_path):
    """xtcocotools' 'keypoints_crowd' stats (CrowdPose sigmas, use_area=False), its quirks contained here:
    fresh objects per call, ground truth and results from file paths, summarize() called once."""
    xt_coco = pytest.importorskip("xtcocotools.coco")
    xt_eval = pytest.importorskip("xtcocotools.cocoeval")
    pred_path = tmp_path / f"xtcocotools_preds_{len(list(tmp_path.iterdir()))}.json"
    pred_path.write_text(json.dumps(predictions))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = xt_coco.COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(pred_path))
        coco_eval = xt_eval.COCOeval(
            coco_gt, coco_dt, "keypoints_crowd", np.array(CROWDPOSE_OKS_SIGMAS), use_area=False
        )
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [float(s) for s in coco_eval.stats]


def pycocotools_keypoint_stats(gt_path, predictions, sigmas):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(predictions)))
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        coco_eval.params.kpt_oks_sigmas = np.array(sigmas)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [float(s) for s in coco_eval.stats]


def test_cli_reproduces_coco_reference_stats(shared_data, capsys):
    gt = shared_data / "coco" / "test_coco.json"
    dt = shared_data / "xtcocoapi_examples" / "example_coco_preds.json"
    metrics = run_cli(capsys, gt, dt, "coco")
    assert [metrics[n] for n in COCO_NAMES] == pytest.approx(COCO_REFERENCE, abs=1e-6)
    expected = pycocotools_keypoint_stats(gt, json.loads(dt.read_text()), COCO_OKS_SIGMAS)
    assert [metrics[n] for n in COCO_NAMES] == pytest.approx(expected, abs=1e-12)


def test_cli_reproduces_crowdpose_reference_stats(shared_data, capsys, tmp_path):
    gt = shared_data / "xtcocoapi_examples" / "example_crowdpose_val.json"
    dt = shared_data / "xtcocoapi_examples" / "example_crowdpose_preds.json"
    metrics = run_cli(capsys, gt, dt, "crowdpose")
    assert [metrics[n] for n in CROWDPOSE_NAMES] == pytest.approx(CROWDPOSE_REFERENCE, abs=1e-6)
    expected = xtcocotools_crowdpose_stats(gt, json.loads(dt.read_text()), tmp_path)
    assert [metrics[n] for n in CROWDPOSE_NAMES] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("relative_path, dataset", SAMPLE_SETS)
def test_ground_truth_as_predictions_scores_one(shared_data, tmp_path, capsys, relative_path, dataset):
    gt_path = shared_data / relative_path
    preds = ground_truth_as_predictions(json.loads(gt_path.read_text()))
    dt_path = tmp_path / "preds.json"
    dt_path.write_text(json.dumps(preds))
    metrics = run_cli(capsys, gt_path, dt_path, dataset)
    for name in ("AP", "AP50", "AP75", "AR", "recall"):
        assert metrics[name] == pytest.approx(1.0, abs=1e-12), name
    for name, value in metrics.items():
        if name.startswith(("AP", "AR", "recall")):  # every defined fraction (incl. per keypoint, splits) is 1
            assert value == -1 or value == pytest.approx(1.0, abs=1e-12), name
    assert metrics["vis_error"] == 0.0 and metrics["vis_score"] == 1.0


# --- randomized predictions against xtcocotools / pycocotools on the same inputs ---------------------


def perturbed_predictions(gt, seed, num_keypoints):
    """Predictions derived from ground truth: missed persons, jittered joints (several noise levels),
    missing joints (0, 0, 0), random extra poses (some images get more than maxDets = 20), low and tied
    pose scores, near-duplicate poses. Every pose keeps at least one joint with confidence > 0 (xtcocotools
    drops the others, the official tools do not; see test_all_zero_confidence_pose_is_kept)."""
    rng = np.random.default_rng(seed)
    images = {im["id"]: im for im in gt["images"]}
    preds = []

    def pose_score():
        if rng.random() < 0.3:
            return float(rng.choice([0.5, 0.25]))  # ties
        return float(rng.uniform(0.001, 0.05) if rng.random() < 0.3 else rng.uniform(0.05, 1.0))

    def finish(kpts):
        conf = rng.uniform(0.01, 1.0, num_keypoints)
        missing = rng.random(num_keypoints) < 0.15
        missing[rng.integers(num_keypoints)] = False
        kpts[:, 2] = conf
        kpts[missing] = 0.0
        return kpts.ravel().tolist()

    for ann in gt["annotations"]:
        if ann["iscrowd"] or rng.random() < 0.15:
            continue
        x, y, w, h = ann["bbox"]
        kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(num_keypoints, 3).copy()
        kpts[kpts[:, 2] == 0, :2] = (x + w / 2, y + h / 2)
        noise = float(rng.choice([0.005, 0.03, 0.1, 0.3])) * max(w, h, 1.0)
        kpts[:, :2] += rng.normal(0.0, noise, (num_keypoints, 2))
        preds.append(
            {
                "image_id": ann["image_id"],
                "category_id": 1,
                "keypoints": finish(kpts),
                "score": pose_score(),
            }
        )
        if rng.random() < 0.2:  # near-duplicate
            dup = kpts.copy()
            dup[:, :2] += rng.normal(0.0, 2.0, (num_keypoints, 2))
            preds.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": 1,
                    "keypoints": finish(dup),
                    "score": pose_score(),
                }
            )
    for image_id, image in images.items():
        for _ in range(int(rng.integers(0, 24))):
            kpts = np.zeros((num_keypoints, 3))
            kpts[:, 0] = rng.uniform(-5, image["width"] + 5, num_keypoints)
            kpts[:, 1] = rng.uniform(-5, image["height"] + 5, num_keypoints)
            preds.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": finish(kpts),
                    "score": pose_score(),
                }
            )
    rng.shuffle(preds)
    return preds


def synthetic_crowdpose_gt(seed):
    """A CrowdPose-format ground truth with crowd indices on and around the split boundaries, persons
    with num_keypoints 0 (head / neck only, or nothing), and a crowd region."""
    rng = np.random.default_rng(seed)
    crowd_indices = [0.0, 0.1, 0.19999, 0.2, 0.5, 0.79999, 0.8, 0.95, 1.3]
    images, annotations = [], []
    for image_id, crowd_index in enumerate(crowd_indices, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_id}.jpg",
                "width": 640,
                "height": 480,
                "crowdIndex": crowd_index,
            }
        )
        for _ in range(int(rng.integers(1, 7))):
            w, h = rng.uniform(20, 200), rng.uniform(40, 300)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            kpts = np.zeros((14, 3))
            kpts[:, 0] = rng.uniform(x, x + w, 14)
            kpts[:, 1] = rng.uniform(y, y + h, 14)
            kpts[:, 2] = rng.choice([0, 1, 2], 14, p=[0.25, 0.35, 0.4])
            if rng.random() < 0.1:
                kpts[:12, 2] = 0  # only head / neck labelled: num_keypoints 0, ignored
            kpts[kpts[:, 2] == 0, :2] = 0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x, y, w, h],
                    "keypoints": kpts.ravel().tolist(),
                    "num_keypoints": int((kpts[:12, 2] > 0).sum()),
                }
            )
    annotations.append(
        {
            "id": len(annotations) + 1,
            "image_id": 5,
            "category_id": 1,
            "iscrowd": 1,
            "bbox": [10, 10, 100, 100],
            "keypoints": [0.0] * 42,
            "num_keypoints": 0,
        }
    )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(14)]}],
    }


def crowdpose_sources(shared_data, tmp_path):
    yield shared_data / "xtcocoapi_examples" / "example_crowdpose_val.json"
    yield shared_data / "crowdpose" / "test_crowdpose.json"
    for seed in (0, 1):
        path = tmp_path / f"synthetic_crowdpose_{seed}.json"
        path.write_text(json.dumps(synthetic_crowdpose_gt(seed)))
        yield path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crowdpose_matches_xtcocotools_on_randomized_predictions(shared_data, tmp_path, seed):
    pytest.importorskip("xtcocotools")
    for gt_path in crowdpose_sources(shared_data, tmp_path):
        preds = perturbed_predictions(json.loads(gt_path.read_text()), seed, 14)
        ours = evaluate_keypoints(str(gt_path), preds, dataset="crowdpose", per_keypoint=False)
        reference = xtcocotools_crowdpose_stats(gt_path, preds, tmp_path)
        assert [ours[n] for n in CROWDPOSE_NAMES] == pytest.approx(reference, abs=1e-9), gt_path.name
        assert 0 < ours["AP"] < 1, "perturbations too weak or too strong to test anything"


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_matches_pycocotools_on_randomized_predictions(shared_data, seed):
    for relative_path in ("coco/test_coco.json", "ochuman/test_ochuman.json"):
        gt_path = shared_data / relative_path
        preds = perturbed_predictions(json.loads(gt_path.read_text()), seed, 17)
        ours = evaluate_keypoints(str(gt_path), preds, dataset="coco", per_keypoint=False)
        reference = pycocotools_keypoint_stats(gt_path, preds, COCO_OKS_SIGMAS)
        assert [ours[n] for n in COCO_NAMES] == pytest.approx(reference, abs=1e-12)
        assert 0 < ours["AP"] < 1


def test_all_zero_confidence_pose_is_kept(shared_data, tmp_path):
    """The one documented divergence from xtcocotools: a pose whose joint confidences are all 0 is a
    prediction for the official CrowdPose tools and pycocotools (kept), xtcocotools drops it."""
    gt_path = shared_data / "xtcocoapi_examples" / "example_crowdpose_val.json"
    preds = ground_truth_as_predictions(json.loads(gt_path.read_text()))
    for pred in preds:
        pred["keypoints"][2::3] = [0.0] * 14
    assert evaluate_keypoints(str(gt_path), preds, dataset="crowdpose")["AP"] == pytest.approx(1.0)
    if pytest.importorskip("xtcocotools"):
        assert xtcocotools_crowdpose_stats(gt_path, preds, tmp_path)[0] == 0.0


def test_vectorized_oks_equals_pycocotools_compute_oks(shared_data, tmp_path):
    """oks_matrix (used for the per-keypoint AP) against pycocotools' own computeOks, image by image,
    for full poses (K = 17 and 14) and single keypoints, persons with and without labelled joints.
    """
    from pycocotools.cocoeval import COCOeval

    from adaanchor.evaluation.inputs import load_ground_truth, load_predictions, load_results_index
    from adaanchor.evaluation.oks_ap import _with_one_keypoint, oks_matrix

    cases = [(shared_data / "coco" / "test_coco.json", COCO_OKS_SIGMAS, "coco")]
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(synthetic_crowdpose_gt(3)))
    cases.append((path, CROWDPOSE_OKS_SIGMAS, "crowdpose"))
    for gt_path, sigmas, protocol in cases:
        gt = load_ground_truth(str(gt_path), len(sigmas), protocol)
        if protocol == "crowdpose":  # give the annotations an area to compare plain pycocotools
            for ann in gt.coco.dataset["annotations"]:
                ann["area"] = 0.53 * ann["bbox"][2] * ann["bbox"][3]
        preds = perturbed_predictions(json.loads(gt_path.read_text()), 5, len(sigmas))
        coco_dt = load_results_index(load_predictions(preds, gt), gt)
        single = (
            _with_one_keypoint(gt.coco.dataset, gt.coco.dataset["annotations"], 3, True),
            _with_one_keypoint(coco_dt.dataset, coco_dt.dataset["annotations"], 3, False),
            [sigmas[3]],
        )
        for coco_gt, coco_dt_k, sig in ((gt.coco, coco_dt, sigmas), single):
            with contextlib.redirect_stdout(io.StringIO()):
                reference = COCOeval(coco_gt, coco_dt_k, "keypoints")
            reference.params.kpt_oks_sigmas = np.asarray(sig)
            reference._prepare()
            compared = 0
            for image_id in reference.params.imgIds:
                expected = reference.computeOks(image_id, 1)
                if len(expected) == 0:
                    continue
                dts = reference._dts[image_id, 1]
                order = np.argsort([-d["score"] for d in dts], kind="mergesort")[:20]
                ours = oks_matrix(reference._gts[image_id, 1], [dts[i] for i in order], sig)
                np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)
                compared += expected.size
            assert compared > 20
