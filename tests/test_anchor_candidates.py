"""Candidates, estimates and local refinement (paper eq. 2, 7, 12)."""

import torch
import torch.nn.functional as F

from adaanchor.anchor import (
    CandidateEstimates,
    candidate_grid,
    candidate_positions,
    refined_estimates,
    sample_bilinear,
    to_feature_px,
    to_input_px,
)


def test_candidate_grid_centers_in_feature_px():
    grid = candidate_grid(2, 3)
    assert grid.shape == (2, 3, 2)
    assert grid[0, 0].tolist() == [0.5, 0.5]
    assert grid[1, 2].tolist() == [2.5, 1.5]  # (j + 0.5, i + 0.5)
    assert candidate_positions(torch.tensor([5]), 3).tolist() == [[2.5, 1.5]]


def test_unit_conversion_maps_candidate_centers_to_input_px():
    stride = 4
    center = candidate_grid(3, 3)[2, 1]  # (1.5, 2.5) feature px
    assert to_input_px(center, stride).tolist() == [6.0, 10.0]  # ((j + 0.5) t, (i + 0.5) t)
    assert to_feature_px(torch.tensor([6.0, 10.0]), stride).tolist() == [1.5, 2.5]


def test_estimates_without_local_are_anchor_plus_offset():
    coarse = torch.zeros(1, 1, 2, 2, 3)
    coarse[0, 0, 0, 1, 2] = 3.0  # dx at candidate (i=1, j=2)
    coarse[0, 0, 1, 1, 2] = -1.0  # dy
    est = refined_estimates(coarse)
    assert est.shape == (1, 1, 2, 3, 2)
    assert est[0, 0, 1, 2].tolist() == [2.5 + 3.0, 1.5 - 1.0]
    assert est[0, 0, 0, 0].tolist() == [0.5, 0.5]


def _linear_local_map(height, width, a, b):
    """Local offsets L(q) = a . q + b at every pixel center q (x channel and y channel)."""
    grid = candidate_grid(height, width)  # (H, W, 2)
    lx = a[0][0] * grid[..., 0] + a[0][1] * grid[..., 1] + b[0]
    ly = a[1][0] * grid[..., 0] + a[1][1] * grid[..., 1] + b[1]
    return torch.stack((lx, ly))  # (2, H, W)


def test_local_refinement_is_exact_on_a_linear_offset_field():
    height, width = 6, 7
    a, b = ((0.5, -0.25), (0.125, 1.0)), (2.0, -3.0)
    local = _linear_local_map(height, width, a, b)[None, None]  # (1, 1, 2, H, W)
    coarse = torch.zeros(1, 1, 2, height, width)
    coarse[0, 0, 0] = 1.25  # every anchor looks 1.25 px right and 0.75 px down: stays inside the map centers
    coarse[0, 0, 1] = 0.75
    coarse[0, 0, :, -2:, :] = 0  # keep the coarse points within the pixel-center hull [0.5, W-0.5] x [0.5, H-0.5]
    coarse[0, 0, :, :, -2:] = 0
    est = refined_estimates(coarse, local)[0, 0]  # (H, W, 2)
    coarse_point = candidate_grid(height, width) + coarse[0, 0].permute(1, 2, 0)
    expected_x = coarse_point[..., 0] + a[0][0] * coarse_point[..., 0] + a[0][1] * coarse_point[..., 1] + b[0]
    expected_y = coarse_point[..., 1] + a[1][0] * coarse_point[..., 0] + a[1][1] * coarse_point[..., 1] + b[1]
    assert torch.equal(est[..., 0], expected_x)  # dyadic numbers: bilinear interpolation is exact
    assert torch.equal(est[..., 1], expected_y)


def test_bilinear_sampling_matches_grid_sample_border_inside_and_outside():
    torch.manual_seed(0)
    maps = torch.randn(3, 2, 5, 8)
    points = torch.rand(3, 40, 2) * torch.tensor([14.0, 11.0]) - torch.tensor([3.0, 3.0])  # some outside
    map_index = torch.arange(3)[:, None].expand(-1, 40)
    vx, vy = sample_bilinear(maps, map_index, points[..., 0], points[..., 1])
    normalised = points / torch.tensor([8.0, 5.0]) * 2 - 1
    expected = F.grid_sample(maps, normalised[:, :, None], align_corners=False, padding_mode="border")[..., 0]
    assert torch.allclose(vx, expected[:, 0], atol=1e-5)
    assert torch.allclose(vy, expected[:, 1], atol=1e-5)


def test_lazy_estimates_equal_dense_and_are_differentiable():
    torch.manual_seed(1)
    coarse = torch.randn(2, 3, 2, 9, 10, requires_grad=True)
    local = torch.randn(2, 3, 2, 9, 10, requires_grad=True)
    lazy = CandidateEstimates(coarse, local)
    dense = refined_estimates(coarse, local)
    map_index = torch.tensor([0, 4, 5])
    candidate = torch.tensor([0, 47, 89])
    x, y = lazy.at(map_index, candidate)
    b, k = map_index // 3, map_index % 3
    i, j = candidate // 10, candidate % 10
    assert torch.equal(x, dense[b, k, i, j, 0]) and torch.equal(y, dense[b, k, i, j, 1])


def test_estimates_gradient_flows_through_the_local_sample_position():
    torch.manual_seed(2)
    coarse = (torch.rand(1, 2, 2, 5, 6, dtype=torch.float64) * 3).requires_grad_()
    local = torch.randn(1, 2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    map_index = torch.tensor([0, 1, 1])
    candidate = torch.tensor([3, 14, 20])

    def evaluate(coarse, local):
        return torch.stack(CandidateEstimates(coarse, local).at(map_index, candidate))

    assert torch.autograd.gradcheck(evaluate, (coarse, local))
