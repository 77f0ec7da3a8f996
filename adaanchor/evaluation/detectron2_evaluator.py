"""Detectron2 ``DatasetEvaluator`` for keypoints: every metric of ``evaluate_keypoints`` in Detectron2's format.

Reads from ``MetadataCatalog.get(dataset_name)``:

- ``json_file``: the COCO-format ground truth (pixel-index keypoints, as in the annotation files);
- ``evaluator_type``: "coco" (COCO, OCHuman, COCO-style synthetic data) or "crowdpose";
- ``keypoint_oks_sigmas``: K sigmas; ``keypoint_names`` (optional): K names for the per-keypoint metrics;
- ``thing_dataset_id_to_contiguous_id`` (optional): maps ``pred_classes`` back to the json's category ids
  (without it the json must have a single category).

Coordinates: Detectron2 loads keypoints with +0.5 (pixel index -> continuous coordinate) and models
predict continuous coordinates; :func:`instances_to_keypoint_results` (used by the evaluator and by
``projects/AdaAnchor/demo.py``) subtracts 0.5 exactly once when writing results, on a copy (the model's
output tensors are never modified).
"""

import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..utils.dependencies import require_detectron2

require_detectron2("adaanchor.evaluation.detectron2_evaluator (KeypointEvaluator)")

from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.evaluation import DatasetEvaluator  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.file_io import PathManager  # noqa: E402
from detectron2.utils.logger import create_small_table  # noqa: E402
from tabulate import tabulate  # noqa: E402  (a Detectron2 dependency)

from ..utils.files import write_json_atomically  # noqa: E402
from .evaluate import evaluate_keypoints, to_detectron2_metrics  # noqa: E402
from .inputs import load_ground_truth, protocol_of  # noqa: E402

RESULTS_FILE_NAME = "keypoint_results.json"


def instances_to_keypoint_results(
    instances, image_id, metadata, json_category_ids: Optional[Sequence[int]] = None
) -> List[Dict]:
    """COCO keypoint results for one image's predictions, without modifying them.

    Args:
        instances: Detectron2 ``Instances`` with ``pred_keypoints`` (N, K, 3) float: x, y in original-image
            px, Detectron2's continuous convention, then the keypoint's confidence; ``scores`` (N,);
            optionally ``pred_boxes`` (N, 4) XYXY original-image px and ``pred_classes`` (N,) contiguous ids.
        image_id: the image's id in the ground-truth json (any json value, e.g. a file name for the demo).
        metadata: the dataset's ``MetadataCatalog`` entry. Category ids: ``pred_classes`` mapped back through
            its ``thing_dataset_id_to_contiguous_id`` when both exist, else the json's only category.
        json_category_ids: the category ids of the dataset's json; None: read from ``metadata.json_file``
            when needed.

    Returns:
        N dicts (``image_id``, ``category_id``, ``keypoints`` = K x (x - 0.5, y - 0.5, confidence) in the
        annotation files' pixel-index convention, ``score``, and ``bbox`` [x, y, w, h] with boxes).
    """
    if len(instances) == 0:
        return []
    category_ids = _dataset_category_ids(instances, metadata, json_category_ids)
    keypoints = instances.pred_keypoints.detach().cpu().numpy().astype(np.float64)  # a copy
    keypoints[:, :, :2] -= 0.5  # on the copy: the model's tensor is untouched
    scores = instances.scores.detach().cpu().numpy().astype(np.float64).tolist()
    boxes = None
    if instances.has("pred_boxes"):
        xyxy = instances.pred_boxes.tensor.detach().cpu().numpy().astype(np.float64)
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).tolist()
    results = []
    for i in range(len(instances)):
        result = {
            "image_id": image_id,
            "category_id": int(category_ids[i]),
            "keypoints": keypoints[i].ravel().tolist(),
            "score": scores[i],
        }
        if boxes is not None:
            result["bbox"] = boxes[i]
        results.append(result)
    return results


def _dataset_category_ids(instances, metadata, json_category_ids: Optional[Sequence[int]]) -> List[int]:
    """The json category id of each of the N predictions (see :func:`instances_to_keypoint_results`)."""
    mapping = metadata.get("thing_dataset_id_to_contiguous_id", None)
    if mapping and instances.has("pred_classes"):
        to_dataset_id = {contiguous: dataset_id for dataset_id, contiguous in mapping.items()}
        return [to_dataset_id[int(c)] for c in instances.pred_classes.tolist()]
    json_file = metadata.get("json_file", None)
    if json_category_ids is None and json_file and PathManager.isfile(json_file):
        with PathManager.open(json_file) as f:
            json_category_ids = [c["id"] for c in json.load(f).get("categories", [])]
    if json_category_ids is None or len(json_category_ids) != 1:
        json_state = (
            f"json_file {json_file!r} cannot be read"
            if json_category_ids is None
            else f"{json_file or 'its json'} has {len(json_category_ids)} categories"
        )
        raise ValueError(
            f"dataset '{metadata.name}': cannot tell the category of predictions: the metadata has no "
            f"thing_dataset_id_to_contiguous_id (or the outputs no pred_classes) and {json_state}"
        )
    return list(json_category_ids) * len(instances)


class KeypointEvaluator(DatasetEvaluator):
    """OKS AP / AR (COCO or official CrowdPose protocol), keypoint recall, per-keypoint AP and recall,
    localisation error and confidence by visibility, for models that output ``pred_keypoints``.

    ``evaluate()`` returns ``{"keypoints": {...}}`` with AP first, fractions x100 (Detectron2's
    convention; NaN where undefined), errors in original-image px, scores as predicted; see
    :func:`adaanchor.evaluation.evaluate_keypoints` for every name and definition.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        distributed: bool = True,
        per_keypoint: bool = True,
    ):
        """
        Args:
            dataset_name: a registered dataset whose metadata has json_file, evaluator_type and
                keypoint_oks_sigmas (see the module docstring).
            output_dir: where to write ``keypoint_results.json`` (the COCO results, written atomically);
                None: write nothing.
            distributed: gather predictions from all processes and evaluate on the main one.
            per_keypoint: also compute AP and recall per keypoint type.
        """
        self._logger = logging.getLogger(__name__)
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._per_keypoint = per_keypoint
        self._metadata = MetadataCatalog.get(dataset_name)
        json_file = self._metadata_field("json_file", "the ground-truth COCO json")
        self._evaluator_type = self._metadata_field("evaluator_type", '"coco" or "crowdpose"')
        if self._evaluator_type not in ("coco", "crowdpose"):
            raise ValueError(
                f"dataset '{dataset_name}': evaluator_type '{self._evaluator_type}' is not supported by "
                'KeypointEvaluator (use "coco" or "crowdpose")'
            )
        self._sigmas = [float(s) for s in self._metadata_field("keypoint_oks_sigmas", "K OKS sigmas")]
        self._keypoint_names = self._metadata.get("keypoint_names", None)
        self._ground_truth = load_ground_truth(
            PathManager.get_local_path(json_file),
            len(self._sigmas),
            protocol_of(self._evaluator_type),
        )
        self.reset()

    def _metadata_field(self, key: str, meaning: str):
        value = self._metadata.get(key, None)
        if value is None:
            raise ValueError(
                f"dataset '{self._dataset_name}': MetadataCatalog has no '{key}' ({meaning}), "
                "which KeypointEvaluator needs"
            )
        return value

    def reset(self):
        self._predictions: List[Dict] = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            if "instances" not in out:
                raise ValueError(
                    f"KeypointEvaluator on '{self._dataset_name}': outputs for image id "
                    f"{inp['image_id']} have no 'instances'"
                )
            instances = out["instances"]
            if len(instances) and not instances.has("pred_keypoints"):
                raise ValueError(
                    f"KeypointEvaluator on '{self._dataset_name}': outputs for image id {inp['image_id']} "
                    "have no pred_keypoints"
                )
            self._predictions.extend(
                instances_to_keypoint_results(
                    instances, inp["image_id"], self._metadata, self._ground_truth.coco.getCatIds()
                )
            )

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather(self._predictions, dst=0)
            if not comm.is_main_process():
                return {}
            predictions = list(itertools.chain(*gathered))
        else:
            predictions = self._predictions
        if not predictions:  # evaluate_keypoints warns as well, naming the ground-truth file
            self._logger.warning(f"KeypointEvaluator on '{self._dataset_name}': no predictions at all")
        if self._output_dir:
            path = os.path.join(self._output_dir, RESULTS_FILE_NAME)
            write_json_atomically(path, predictions)
            self._logger.info(f"Wrote {len(predictions)} keypoint results to {path}")
        metrics = evaluate_keypoints(
            self._ground_truth,
            predictions,
            dataset=self._evaluator_type,
            sigmas=self._sigmas,
            keypoint_names=self._keypoint_names,
            per_keypoint=self._per_keypoint,
        )
        results = to_detectron2_metrics(metrics)
        headline = OrderedDict((k, v) for k, v in results.items() if "-" not in k)
        self._logger.info(
            f"Evaluation results for keypoints ({self._evaluator_type} protocol): \n" + create_small_table(headline)
        )
        if self._per_keypoint:
            names = [k[len("AP-") :] for k in results if k.startswith("AP-")]
            rows = [(name, results[f"AP-{name}"], results[f"recall-{name}"]) for name in names]
            table = tabulate(rows, headers=["keypoint", "AP", "recall"], tablefmt="pipe", floatfmt=".3f")
            self._logger.info("Per-keypoint results: \n" + table)
        return OrderedDict(keypoints=results)
