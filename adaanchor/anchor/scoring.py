"""Anchor scoring (paper eq. 8-9): regression score kernels and their fusion with the confidence.

A candidate with confidence ``c`` whose estimate ``P`` lies at offset ``d = P - P*`` from a target ``P*``
(feature-map px) gets the regression score

- ``"gaussian"`` (paper eq. 8): ``r = exp(-|d|_2^2 / (2 w^2))``, ``w`` = sigma (paper: 4 feature-map px);
- ``"laplacian"`` (SAR variant): ``r = exp(-|d|_1 / w)``, ``w`` = b;

and the anchor score ``s = c * r`` (``"mul"``, paper eq. 9) or ``s = c + r`` (``"add"``, the ablation).
'mul' is high only when both the confidence and the regression are; 'add' is high when either one is.
"""

import math

import torch
from torch import Tensor

__all__ = ["KERNELS", "FUSIONS", "regression_score", "fuse_scores", "anchor_scores", "RankingScore"]

KERNELS = ("gaussian", "laplacian")
FUSIONS = ("mul", "add")


def _check_options(kernel: str, kernel_width: float, fusion: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"MODEL.ADAANCHOR.KERNEL must be one of {KERNELS}, got {kernel!r}")
    if fusion not in FUSIONS:
        raise ValueError(f"MODEL.ADAANCHOR.FUSION must be one of {FUSIONS}, got {fusion!r}")
    if not (kernel_width > 0 and math.isfinite(kernel_width)):
        raise ValueError(f"MODEL.ADAANCHOR.KERNEL_WIDTH must be a positive number (feature-map px), got {kernel_width}")


class RankingScore:
    """The anchor score in the form the assignment ranks by, built from a confidence term and a penalty.

    ``rank = combine(confidence_term(c), penalty(dx, dy))`` is a non-decreasing function of the anchor score
    ``s`` of eq. 9, so it orders candidates exactly as ``s`` does:

    - 'mul': ``rank = log(max(c, tiny)) - penalty = log s`` (no underflow of ``c * r`` for far or unconfident
      candidates, so they still rank by distance instead of tying at 0);
    - 'add': ``rank = c + exp(-penalty) = s``;

    with ``penalty = (dx^2 + dy^2) / (2 w^2)`` (gaussian) or ``(|dx| + |dy|) / w`` (laplacian), so that
    ``r = exp(-penalty)``. ``rank`` is non-decreasing in ``c`` and non-increasing in ``|dx|`` and ``|dy|``
    (also in floating point: every step is a correctly rounded monotone operation, up to ``log``/``exp``),
    which is what makes the assignment's pruning bounds valid.
    """

    def __init__(self, kernel: str = "gaussian", kernel_width: float = 4.0, fusion: str = "mul"):
        _check_options(kernel, kernel_width, fusion)
        self.kernel = kernel
        self.fusion = fusion
        self.kernel_width = float(kernel_width)
        self._scale = 0.5 / self.kernel_width**2 if kernel == "gaussian" else 1.0 / self.kernel_width

    def confidence_term(self, confidence: Tensor) -> Tensor:
        """(...) confidence in [0, 1] -> (...) float32 term of the rank."""
        confidence = confidence.float()
        if self.fusion == "mul":
            return confidence.clamp(min=torch.finfo(torch.float32).tiny).log()
        return confidence

    def penalty(self, dx: Tensor, dy: Tensor) -> Tensor:
        """(...) x and y offsets (feature-map px) from the target -> (...) ``-log r`` >= 0."""
        if self.kernel == "gaussian":
            return (dx * dx + dy * dy) * self._scale
        return (dx.abs() + dy.abs()) * self._scale

    def combine(self, confidence_term: Tensor, penalty: Tensor) -> Tensor:
        if self.fusion == "mul":
            return confidence_term - penalty
        return confidence_term + torch.exp(-penalty)

    def to_anchor_score(self, rank: Tensor) -> Tensor:
        """Rank -> the anchor score ``s`` of eq. 9 (``c * r`` or ``c + r``)."""
        return rank.exp() if self.fusion == "mul" else rank


def regression_score(
    estimates: Tensor, targets: Tensor, *, kernel: str = "gaussian", kernel_width: float = 4.0
) -> Tensor:
    """Regression score ``r`` of estimates w.r.t. targets (paper eq. 8, or the SAR Laplacian).

    Args:
        estimates: (..., 2) float, (x, y) in feature-map px.
        targets: (..., 2) float, broadcastable to ``estimates``, feature-map px.
        kernel: "gaussian" ``exp(-|d|^2 / (2 w^2))`` or "laplacian" ``exp(-|d|_1 / w)``.
        kernel_width: w (sigma or b), feature-map px.

    Returns:
        (...) float in (0, 1], 1 where the estimate hits the target.
    """
    ranking = RankingScore(kernel, kernel_width, "mul")
    offset = estimates - targets
    return torch.exp(-ranking.penalty(offset[..., 0], offset[..., 1]))


def fuse_scores(confidence: Tensor, regression: Tensor, *, fusion: str = "mul") -> Tensor:
    """Anchor score (paper eq. 9): ``c * r`` ("mul") or ``c + r`` ("add"); shapes broadcast."""
    _check_options("gaussian", 1.0, fusion)
    return confidence * regression if fusion == "mul" else confidence + regression


def anchor_scores(
    confidence: Tensor,
    estimates: Tensor,
    targets: Tensor,
    *,
    kernel: str = "gaussian",
    kernel_width: float = 4.0,
    fusion: str = "mul",
) -> Tensor:
    """Dense anchor scores of every candidate for every target (for inspection and visualisation).

    The assignment does not call this (it scores only the candidates that can matter); it is the plain
    definition, memory ``B*K*T*H*W``.

    Args:
        confidence: (B, K, H, W) float in [0, 1].
        estimates: (B, K, H, W, 2) float, feature-map px.
        targets: (B, K, T, 2) float, feature-map px.

    Returns:
        (B, K, T, H, W) float anchor scores ``s``.
    """
    r = regression_score(estimates[:, :, None], targets[:, :, :, None, None], kernel=kernel, kernel_width=kernel_width)
    return fuse_scores(confidence[:, :, None], r, fusion=fusion)
