"""Fault injection, distributed (issue 9, item 3): ``--num-gpus 2`` on CPU (two gloo processes) trains with
the losses of one process given the same total batch and seed, and its evaluation gathers every prediction
exactly once (the same results as a one-process evaluation of the same weights)."""

import json

import numpy as np
import pytest

pytest.importorskip("detectron2")

from faults_support import (
    NO_AUGMENTATION,
    logged_losses,
    make_crowdpose_root,
    make_tiny_source,
    run_train_net,
)  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# Relative tolerance on each loss of iterations 0 and 1 (observed: <= 0.3%). Not exact, because
#  - BatchNorm normalises with the statistics of each process's own 2 images, not of all 4 (BN, not SyncBN:
#    SyncBN needs CUDA), so the forward pass differs already at iteration 0;
#  - each process normalises its losses by its own count of targets / positives and DDP averages the two
#    gradients, which is not the gradient of the loss normalised over the whole batch.
# Augmentation is off so that both runs see the same pixels: each process seeds its own augmentation RNG
# (seed + rank), while Detectron2's sampler gives the 2 processes the 4 images one process gets.
# Iteration 1 follows one Adam step, which moves every weight by about the learning rate whatever its gradient,
# so the iteration-0 differences reach iteration 1 in proportion to the learning rate: the test pins DEKR's
# 1e-3 (the tolerance was measured there; at the synthetic recipe's 2e-3 the heatmap loss differs by 2 %).
LOSS_RTOL = 1e-2
LEARNING_RATE = ["SOLVER.BASE_LR", "0.001"]


def _results(path):
    """{image id: (scores, keypoints)} sorted by score, as numpy arrays."""
    import numpy as np

    by_image = {}
    for r in json.loads(path.read_text()):
        by_image.setdefault(r["image_id"], []).append((r["score"], r["keypoints"]))
    return {
        image_id: (np.array([s for s, _ in sorted(rows)]), np.array([k for _, k in sorted(rows)]))
        for image_id, rows in by_image.items()
    }


def test_two_cpu_processes_match_one_and_gather_each_prediction_once(tmp_path):
    root = make_crowdpose_root(make_tiny_source(tmp_path / "source"), tmp_path / "datasets")
    opts = [*NO_AUGMENTATION, *LEARNING_RATE, "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "2"]
    _, one = run_train_net(tmp_path / "one", root, opts=opts)
    _, two = run_train_net(tmp_path / "two", root, "--num-gpus", "2", opts=opts)
    assert "World size: 2" in two
    losses_one, losses_two = logged_losses(one), logged_losses(two)
    assert sorted(losses_one) == sorted(losses_two) == [0, 1]
    for iteration in (0, 1):
        a, b = losses_one[iteration], losses_two[iteration]
        assert a.keys() == b.keys() and "total_loss" in a
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=LOSS_RTOL), (iteration, name, a[name], b[name])

    # every prediction exactly once: the 2-process evaluation equals a 1-process one of the same weights
    _, single = run_train_net(
        tmp_path / "eval", root, "--eval-only", opts=["MODEL.WEIGHTS", str(tmp_path / "two" / "model_final.pth")]
    )
    name = "inference/crowdpose_val/keypoint_results.json"
    gathered, reference = _results(tmp_path / "two" / name), _results(tmp_path / "eval" / name)
    # the same number of results for every image (none lost, none counted twice), with the same values up to
    # float32 rounding (the two processes run the same network on the same inputs: scores 1e-4, 0.05 px)
    assert {i: len(s) for i, (s, _) in gathered.items()} == {i: len(s) for i, (s, _) in reference.items()}
    assert sum(len(s) for s, _ in reference.values()) > 0
    for image_id, (scores, keypoints) in reference.items():
        other_scores, other_keypoints = gathered[image_id]
        unmatched = list(range(len(other_scores)))
        for score, kp in zip(scores, keypoints):  # each reference pose matches one gathered pose, once
            distance = [np.abs(other_keypoints[j] - kp).max() + 1e3 * abs(other_scores[j] - score) for j in unmatched]
            best = unmatched.pop(int(np.argmin(distance)))
            assert abs(other_scores[best] - score) <= 1e-4 and np.abs(other_keypoints[best] - kp).max() <= 0.05
    val = json.loads((root / "crowdpose" / "json" / "crowdpose_val.json").read_text())
    assert set(gathered) == {img["id"] for img in val["images"]}
