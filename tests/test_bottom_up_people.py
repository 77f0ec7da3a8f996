"""People batches, target ownership and DEKR's offset targets (framework-free), with hand-computed expectations."""

import pytest
import torch

from adaanchor.bottom_up import MIN_OFFSET_SCALE, downsample_ignore_masks, gather_people, offset_targets, region_owner


def _kp(points):
    """points: list of (x, y, v) in input px -> (1, K, 3)."""
    return torch.tensor([points], dtype=torch.float32)


def test_gather_people_centres_weights_and_padding():
    a = _kp([(8, 8, 2), (40, 8, 1), (0, 0, 0)])  # labelled extent 32 x 0 -> diagonal 32
    b = torch.cat([_kp([(4, 4, 2), (4, 12, 2), (0, 0, 0)]), _kp([(0, 0, 0)] * 3)])  # tiny; second: nothing labelled
    people = gather_people([a, b], [torch.tensor([500.0]), torch.tensor([10.0, 0.0])], stride=4, min_area=100.0)
    assert people.keypoints.shape == (2, 2, 3, 2)  # T = 2 (padded)
    assert people.valid.tolist() == [[True, False], [True, False]]
    torch.testing.assert_close(people.centers[0, 0], torch.tensor([24.0, 8.0]) / 4)
    assert people.offset_weight[0, 0].item() == pytest.approx(1 / 32)
    assert people.offset_weight[1, 0].item() == pytest.approx(1 / MIN_OFFSET_SCALE)  # diagonal 8 floored
    assert people.center_allowed.tolist() == [[True, False], [False, False]]  # area 10 < min_area
    inside = people.inside(height=4, width=8)  # 8 x 4 feature map = 32 x 16 input px
    assert inside[0, 0].tolist() == [True, False, False]  # (40, 8) input px is x = 10 > 8 feature px
    assert people.inside(4, 8, margin=3.0)[0, 0].tolist() == [True, True, False]


def test_region_owner_square_radius_and_smallest_person_wins():
    big = _kp([(2, 2, 2), (30, 30, 2)])  # centre (16, 16) input px = (4, 4) feature px, diagonal ~39.6
    small = _kp([(18, 14, 2), (22, 18, 2)])  # centre (20, 16) = (5, 4), diagonal 5.7 -> floored 16
    people = gather_people([torch.cat([big, small])], [torch.tensor([900.0, 16.0])], stride=4)
    owner = region_owner(people, 10, 10, radius=1.0)
    # cells whose centre (j + .5, i + .5) is within 1 of (4, 4): j, i in {3, 4} -> 2 x 2 block
    expected = torch.full((10, 10), -1)
    expected[3:5, 3:5] = 0
    expected[3:5, 4:6] = 1  # overlap (column 4) goes to the smaller person
    assert torch.equal(owner[0], expected)


def test_offset_targets_point_from_cell_centre_to_keypoints():
    person = _kp([(10, 6, 2), (60, 6, 2)])  # second keypoint at x = 15 feature px: outside an 8-wide map
    people = gather_people([person], [torch.tensor([100.0])], stride=4)
    owner = torch.full((1, 4, 8), -1)
    owner[0, 1, 2] = 0  # cell centre (2.5, 1.5) feature px
    offsets, weights = offset_targets(people, owner, 4, 8, margin=0.0)
    assert offsets.shape == (1, 4, 4, 8)
    torch.testing.assert_close(offsets[0, :2, 1, 2], torch.tensor([10 / 4 - 2.5, 6 / 4 - 1.5]))
    w = people.offset_weight[0, 0]
    torch.testing.assert_close(weights[0, :, 1, 2], torch.stack([w, w, w * 0, w * 0]))  # outside: no target
    assert weights.sum() == pytest.approx(2 * w.item())
    offsets, weights = offset_targets(people, owner, 4, 8, margin=8.0)  # AdaAnchor keeps it within the margin
    torch.testing.assert_close(offsets[0, 2:, 1, 2], torch.tensor([15 - 2.5, 1.5 - 1.5]))
    assert weights[0, 2, 1, 2] == w


def test_ignore_masks_downsample_at_cell_centres():
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[0:4, 4:8] = True  # covers the centre pixel (2, 6) of cell (0, 1)
    out = downsample_ignore_masks([mask, None], 4, 4, 4, "cpu")
    assert out[0, 0, 1] == 0 and out[0].sum() == 15 and out[1].sum() == 16
