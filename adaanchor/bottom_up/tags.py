"""The Associative Embedding tag loss (Newell et al., NeurIPS'17; HigherHRNet's ``exp`` form), vectorised over
the batch and the people (torch only).

For every person of an image with at least one tag sample (a joint; with AdaAnchor's tags at the anchors,
each selected anchor of a joint), its reference tag is the mean of its samples. ``pull`` = mean over people of the mean squared distance of the person's samples to its reference;
``push`` = over ordered pairs of distinct people of an image, mean of ``exp(-(ref_i - ref_j)^2)``, halved
(HigherHRNet: ``(sum exp(-d^2) - P) / (P (P - 1)) / 2``). Both are per image, then averaged over the batch
as HigherHRNet averages them: an image without people (resp. without two) contributes 0. Tags are 1-D.

``push_type`` (MODEL.AE.PUSH_LOSS_TYPE) is HigherHRNet's AE_LOSS_TYPE: ``"exp"`` as above (its default), or
``"max"``, ``max(0, 1 - |ref_i - ref_j|)`` per pair (CornerNet's form). ``exp`` has no gradient where people
share a tag (``d exp(-d^2) / dd = 0`` at d = 0), so tags that start or fall together stay together; ``max``
pushes them apart with a force that does not vanish there.
"""

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["PUSH_LOSS_TYPES", "associative_embedding_loss", "associative_embedding_sample_loss"]

PUSH_LOSS_TYPES = ("exp", "max")


def associative_embedding_loss(tags: Tensor, tag_valid: Tensor, push_type: str = "exp") -> Tuple[Tensor, Tensor]:
    """Pull and push losses of a batch, one tag per joint.

    Args:
        tags: (B, T, K) float, the tag read at each joint of each person (e.g. from the tag map of joint
            type k at the joint's cell).
        tag_valid: (B, T, K) bool, joints that carry a tag (labelled and inside the map).
        push_type: ``"exp"`` or ``"max"`` (module docstring).
    Returns:
        (pull, push): scalar tensors, differentiable w.r.t. ``tags``.
    """
    if tags.shape != tag_valid.shape or tags.dim() != 3:
        raise ValueError(
            f"tags and tag_valid must both be (B, T, K), got {tuple(tags.shape)}, {tuple(tag_valid.shape)}"
        )
    batch, people, _ = tags.shape
    image, person, _ = tag_valid.nonzero().unbind(1)
    return associative_embedding_sample_loss(tags[tag_valid], image * people + person, batch, people, push_type)


def associative_embedding_sample_loss(
    tags: Tensor, person: Tensor, batch: int, people: int, push_type: str = "exp"
) -> Tuple[Tensor, Tensor]:
    """Pull and push losses from tag samples (any number per person).

    Args:
        tags: (S,) float, one tag per sample.
        person: (S,) long, ``b * T + t``: the image b and person t of each sample.
        batch, people: B and T.
        push_type: ``"exp"`` or ``"max"`` (module docstring).
    Returns:
        (pull, push): scalar tensors, differentiable w.r.t. ``tags``.
    """
    if push_type not in PUSH_LOSS_TYPES:
        raise ValueError(f"MODEL.AE.PUSH_LOSS_TYPE must be one of {PUSH_LOSS_TYPES}, got {push_type!r}")
    zeros = tags.new_zeros(batch * people)
    count = zeros.index_add(0, person, torch.ones_like(tags)).view(batch, people)
    reference = zeros.index_add(0, person, tags).view(batch, people) / count.clamp(min=1)  # (B, T)
    deviation = (tags - reference.view(-1)[person]) ** 2
    spread = zeros.index_add(0, person, deviation).view(batch, people) / count.clamp(min=1)
    present = count > 0
    num_people = present.sum(dim=1).to(tags.dtype)  # (B,)
    pull_per_image = (spread * present).sum(dim=1) / num_people.clamp(min=1)
    pair = present[:, :, None] & present[:, None, :]
    pair &= ~torch.eye(people, dtype=torch.bool, device=tags.device)
    distance = reference[:, :, None] - reference[:, None, :]
    if push_type == "exp":
        closeness = torch.exp(-(distance**2)) * pair
    else:
        closeness = (1 - distance.abs()).clamp(min=0) * pair
    push_per_image = closeness.sum(dim=(1, 2)) / (num_people * (num_people - 1)).clamp(min=1) * 0.5
    return pull_per_image.mean(), push_per_image.mean()
