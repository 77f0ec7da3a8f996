"""AdaAnchor losses: focal loss equal to fvcore's, offsets by hand, empty images finite."""

import math

import pytest
import torch

from adaanchor.anchor import (
    AnchorAssignment,
    CandidateEstimates,
    adaanchor_losses,
    assign_adaptive_anchors,
    sparse_target_focal_loss,
)

fvcore_nn = pytest.importorskip("fvcore.nn")


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.25, 1.5)])
def test_sparse_target_focal_loss_equals_fvcore(alpha, gamma):
    torch.manual_seed(0)
    logits = (torch.randn(2, 3, 9, 7) * 4).requires_grad_()  # fvcore computes in float32
    positive = torch.randperm(logits.numel())[:25]
    target = torch.zeros_like(logits)
    target.view(-1)[positive] = 1
    expected = fvcore_nn.sigmoid_focal_loss(logits, target, alpha, gamma, reduction="sum")
    (expected_grad,) = torch.autograd.grad(expected, logits)
    loss = sparse_target_focal_loss(logits, positive, alpha=alpha, gamma=gamma)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_focal_loss_stays_finite_for_extreme_logits():
    logits = torch.tensor([-200.0, -30.0, 0.0, 30.0, 200.0], requires_grad=True)
    loss = sparse_target_focal_loss(logits, torch.tensor([0, 4]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def _one_positive_assignment(height=4, width=5, types=1, num_targets=1):
    """Positive: candidate (i1, j2) of map 0 serving target 0."""
    used = torch.zeros(1, types, num_targets, dtype=torch.bool)
    used[0, 0, 0] = True
    return AnchorAssignment(
        shape=(1, types, height, width),
        positive_index=torch.tensor([1 * width + 2]),
        positive_target=torch.tensor([0]),
        positive_score=torch.tensor([0.5]),
        target_used=used,
    )


def test_offset_loss_by_hand():
    assignment = _one_positive_assignment()
    logits = torch.zeros(1, 1, 4, 5, requires_grad=True)
    coarse = torch.zeros(1, 1, 2, 4, 5, requires_grad=True)
    with torch.no_grad():
        coarse[0, 0, :, 1, 2] = torch.tensor([1.0, 2.0])
    targets = torch.tensor([[[[2.5 + 1.5, 1.5 + 2.0]]]])  # anchor (2.5, 1.5) + (1.5, 2.0)
    losses = adaanchor_losses(logits, coarse, None, assignment, targets, assignment.target_used, offset_weight=2.0)
    assert set(losses) == {"confidence", "offset"}
    assert losses["offset"].item() == pytest.approx(2.0 * (0.5 + 0.0))  # |1 - 1.5| + |2 - 2|, 1 positive
    losses["offset"].backward()
    assert coarse.grad[0, 0, 0, 1, 2].item() == -2.0 and coarse.grad.abs().sum().item() == 2.0
    # confidence: 19 negatives and 1 positive at logit 0: p = 0.5
    expected = 19 * 0.75 * 0.25 * math.log(2) + 0.25 * 0.25 * math.log(2)
    assert losses["confidence"].item() == pytest.approx(expected, rel=1e-6)


def test_local_offset_loss_by_hand():
    # Target at (2.3, 1.6), radius 1: candidate centers within 1 px: (2.5, 1.5) d2 .05, (1.5, 1.5) d2 .65;
    # (2.5, 2.5) d2 .85; (1.5, 2.5) d2 1.45 > 1 no; (3.5, 1.5) d2 1.45 no; (2.5, 0.5) d2 1.25 no.
    assignment = _one_positive_assignment()
    logits = torch.zeros(1, 1, 4, 5)
    coarse = torch.zeros(1, 1, 2, 4, 5)
    local = torch.zeros(1, 1, 2, 4, 5, requires_grad=True)
    targets = torch.tensor([[[[2.3, 1.6]]]])
    losses = adaanchor_losses(logits, coarse, local, assignment, targets, assignment.target_used, local_radius=1.0)
    wanted = [(2.3 - 2.5, 1.6 - 1.5), (2.3 - 1.5, 1.6 - 1.5), (2.3 - 2.5, 1.6 - 2.5)]
    expected = sum(abs(dx) + abs(dy) for dx, dy in wanted) / 3
    assert losses["local_offset"].item() == pytest.approx(expected, rel=1e-5)
    losses["local_offset"].backward()
    supervised = (local.grad.abs().sum(dim=2) > 0)[0, 0]
    assert {tuple(p) for p in supervised.nonzero().tolist()} == {(1, 2), (1, 1), (2, 2)}  # (i, j)


def test_local_offset_location_near_two_targets_learns_the_nearest():
    height, width = 4, 8
    used = torch.ones(1, 1, 2, dtype=torch.bool)
    assignment = AnchorAssignment(
        (1, 1, height, width), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0), used
    )
    local = torch.zeros(1, 1, 2, height, width, requires_grad=True)
    targets = torch.tensor([[[[3.0, 1.5], [4.4, 1.5]]]])  # candidate (i1, j3) center 3.5: d .5 vs .9 -> first
    losses = adaanchor_losses(
        torch.zeros(1, 1, height, width),
        torch.zeros(1, 1, 2, height, width),
        local,
        assignment,
        targets,
        used,
        local_radius=1.0,
    )
    losses["local_offset"].backward()
    # within 1 px: target 0 -> centers 2.5, 3.5; target 1 -> 3.5, 4.5. Shared 3.5 learns 3.0 - 3.5 = -0.5.
    assert local.grad[0, 0, 0, 1, 3].item() == pytest.approx(1 / 3)  # d/dl |l - (-0.5)| / 3 at l = 0
    assert (local.grad[0, 0, 0, 1].ne(0)).sum().item() == 3


def test_losses_are_finite_and_connected_without_targets():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    coarse = torch.randn(2, 3, 2, 8, 8, requires_grad=True)
    local = torch.randn(2, 3, 2, 8, 8, requires_grad=True)
    targets = torch.zeros(2, 3, 0, 2)
    valid = torch.zeros(2, 3, 0, dtype=torch.bool)
    assignment = assign_adaptive_anchors(torch.sigmoid(logits), CandidateEstimates(coarse, local), targets, valid)
    losses = adaanchor_losses(logits, coarse, local, assignment, targets, valid)
    total = sum(losses.values())
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["offset"].item() == 0 and losses["local_offset"].item() == 0
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and (logits.grad > 0).all()
    assert coarse.grad is not None and local.grad is not None


def test_full_training_step_reduces_the_loss():
    """A few gradient steps on free parameters lower the total loss (losses point the right way)."""
    torch.manual_seed(0)
    logits = torch.full((1, 2, 10, 10), -4.6, requires_grad=True)
    coarse = torch.zeros(1, 2, 2, 10, 10, requires_grad=True)
    local = torch.zeros(1, 2, 2, 10, 10, requires_grad=True)
    targets = torch.tensor([[[[3.3, 4.1], [7.2, 2.2]], [[5.0, 5.0], [0.0, 0.0]]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    optimizer = torch.optim.SGD([logits, coarse, local], lr=0.5)
    history = []
    for _ in range(5):
        assignment = assign_adaptive_anchors(torch.sigmoid(logits), CandidateEstimates(coarse, local), targets, valid)
        total = sum(adaanchor_losses(logits, coarse, local, assignment, targets, valid).values())
        history.append(total.item())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert history[-1] < history[0]
