"""Exact integer sort keys, so that ranking and tie-breaking are deterministic on every device."""

import torch
from torch import Tensor

_LOW31 = (1 << 31) - 1


def float_order_key(values: Tensor) -> Tensor:
    """Monotone int64 image of float32 values: ``a < b`` iff ``key(a) < key(b)``; -0.0 and +0.0 map alike.

    Keys lie in [-2^31, 2^31). NaN maps above +inf (callers keep NaN out of rankings).
    """
    bits = (values.float() + 0.0).view(torch.int32).long()
    return torch.where(bits < 0, bits ^ _LOW31, bits)


def descending_key(values: Tensor, index: Tensor) -> Tensor:
    """int64 keys that sort, descending, by ``values`` (float32) descending, then by ``index`` ascending.

    ``index`` must lie in [0, 2^31).
    """
    return float_order_key(values) * (1 << 31) + (_LOW31 - index)


def first_k_per_group(group: Tensor, key: Tensor, k: int) -> Tensor:
    """Positions of the ``k`` largest keys of every group, ordered by group, then by key descending.

    Args:
        group: (S,) long, group of each element (any order).
        key: (S,) int64, distinct within a group.
        k: how many to keep per group.

    Returns:
        (S',) long positions into the inputs.
    """
    if group.numel() == 0:
        return group.new_zeros(0)
    order = torch.sort(key, descending=True, stable=True).indices
    order = order[torch.sort(group[order], stable=True).indices]
    return order[rank_within_sorted_groups(group[order]) < k]


def rank_within_sorted_groups(sorted_group: Tensor) -> Tensor:
    """(S,) position of every element within its run of equal values of a sorted (S,) tensor."""
    position = torch.arange(sorted_group.numel(), device=sorted_group.device)
    is_first = torch.ones_like(sorted_group, dtype=torch.bool)
    is_first[1:] = sorted_group[1:] != sorted_group[:-1]
    start = torch.where(is_first, position, 0).cummax(0).values
    return position - start
