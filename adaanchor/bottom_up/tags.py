"""The Associative Embedding tag loss (Newell et al., NeurIPS'17; HigherHRNet's ``exp`` form), vectorised over
the batch and the people (torch only).

For every person of an image with at least one tagged joint, its reference tag is the mean of its joints'
tags. ``pull`` = mean over people of the mean squared distance of the person's tags to its reference;
``push`` = over ordered pairs of distinct people of an image, mean of ``exp(-(ref_i - ref_j)^2)``, halved
(HigherHRNet: ``(sum exp(-d^2) - P) / (P (P - 1)) / 2``). Both are per image, then averaged over the batch
as HigherHRNet averages them: an image without people (resp. without two) contributes 0. Tags are 1-D.
"""

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["associative_embedding_loss"]


def associative_embedding_loss(tags: Tensor, tag_valid: Tensor) -> Tuple[Tensor, Tensor]:
    """Pull and push losses of a batch.

    Args:
        tags: (B, T, K) float, the tag read at each joint of each person (e.g. from the tag map of joint
            type k at the joint's cell).
        tag_valid: (B, T, K) bool, joints that carry a tag (labelled and inside the map).
    Returns:
        (pull, push): scalar tensors, differentiable w.r.t. ``tags``.
    """
    if tags.shape != tag_valid.shape or tags.dim() != 3:
        raise ValueError(
            f"tags and tag_valid must both be (B, T, K), got {tuple(tags.shape)}, {tuple(tag_valid.shape)}"
        )
    weight = tag_valid.to(tags.dtype)
    count = weight.sum(dim=2)  # (B, T)
    person = count > 0
    reference = (tags * weight).sum(dim=2) / count.clamp(min=1)  # (B, T)
    spread = ((tags - reference[..., None]) ** 2 * weight).sum(dim=2) / count.clamp(min=1)  # (B, T)
    people = person.sum(dim=1).to(tags.dtype)  # (B,)
    pull_per_image = (spread * person).sum(dim=1) / people.clamp(min=1)
    pair = person[:, :, None] & person[:, None, :]
    pair &= ~torch.eye(person.shape[1], dtype=torch.bool, device=tags.device)
    closeness = torch.exp(-((reference[:, :, None] - reference[:, None, :]) ** 2)) * pair
    pairs = people * (people - 1)
    push_per_image = closeness.sum(dim=(1, 2)) / pairs.clamp(min=1) * 0.5
    return pull_per_image.mean(), push_per_image.mean()
