"""Fault injection, numerics (issue 9, item 3): a loss that becomes NaN / inf stops training at once, with
the iteration and every loss named (Detectron2's non-finite check, which our losses reach), before the
optimizer applies the step and without writing a final checkpoint; the focal loss stays finite at +-1e4."""

import math

import pytest
import torch

pytest.importorskip("detectron2")

from faults_support import CONFIG, make_crowdpose_root, make_tiny_source, tiny_opts  # noqa: E402

from adaanchor.anchor import sparse_target_focal_loss  # noqa: E402

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("logit", [1e4, -1e4])
def test_focal_loss_stays_finite_for_huge_logits(logit):
    logits = torch.tensor([logit, -logit, logit, -logit, 0.0], requires_grad=True)
    for positives in ([0], [1], [0, 1, 2, 3], []):
        loss = sparse_target_focal_loss(logits, torch.tensor(positives, dtype=torch.long), alpha=0.25, gamma=2.0)
        (grad,) = torch.autograd.grad(loss, logits)
        assert math.isfinite(float(loss)), (logit, positives)
        assert torch.isfinite(grad).all(), (logit, positives, grad)
    # the gradient equals fvcore's reference (which builds the dense target); the loss *value* of a
    # confidently wrong logit saturates at about alpha * 87.3 (-log of float32's smallest normal) where
    # fvcore's is alpha * |logit|: finite, and the gradient is what training uses
    from fvcore.nn import sigmoid_focal_loss

    target = torch.zeros(5)
    target[[0, 1]] = 1
    reference_logits = logits.detach().clone().requires_grad_(True)
    reference = sigmoid_focal_loss(reference_logits, target, alpha=0.25, gamma=2.0, reduction="sum")
    (reference_grad,) = torch.autograd.grad(reference, reference_logits)
    ours = sparse_target_focal_loss(logits, torch.tensor([0, 1]), alpha=0.25, gamma=2.0)
    (grad,) = torch.autograd.grad(ours, logits)
    assert torch.allclose(grad, reference_grad, atol=1e-6), (grad, reference_grad)
    assert 0 < float(ours) <= float(reference) + 1e-3


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_training_naming_iteration_and_losses(tmp_path, bad):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from adaanchor.data.datasets import register_keypoint_dataset
    from adaanchor.engine import AdaAnchorTrainer, build_cfg

    root = make_crowdpose_root(make_tiny_source(tmp_path / "source"), tmp_path / "datasets")
    base = root / "crowdpose"
    if "faults_nan_train" in DatasetCatalog.list():
        DatasetCatalog.remove("faults_nan_train")
        MetadataCatalog.remove("faults_nan_train")
    register_keypoint_dataset(
        "faults_nan_train", str(base / "json/crowdpose_train.json"), str(base / "images"), "crowdpose"
    )
    cfg = build_cfg(CONFIG, tiny_opts(
        "DATASETS.TRAIN", '("faults_nan_train",)', "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "4",
        "OUTPUT_DIR", str(tmp_path / "out"),
    ))  # fmt: skip
    trainer = AdaAnchorTrainer(cfg)
    trainer.resume_or_load(resume=False)
    model = trainer._trainer.model
    forward, calls = model.forward, []

    def poisoned_forward(batched_inputs):
        losses = forward(batched_inputs)
        calls.append(1)
        if len(calls) == 2:  # iteration 1: the keypoint heatmap loss becomes NaN / inf
            losses["loss_keypoint_heatmap"] = losses["loss_keypoint_heatmap"] * bad
        return losses

    model.forward = poisoned_forward
    with pytest.raises(FloatingPointError) as error:
        trainer.train()
    message = str(error.value)
    assert "Loss became infinite or NaN at iteration=1" in message
    assert "loss_keypoint_heatmap" in message and "loss_center_confidence" in message
    assert len(calls) == 2  # stopped at once
    assert not (tmp_path / "out" / "model_final.pth").exists()
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the poisoned step was not applied
