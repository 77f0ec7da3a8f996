"""Bottom-up post-processing (framework-free): map sampling, pose assembly, pose NMS, flip-back, the flip
alignment shift and the test-time loop."""

import pytest
import torch
import torch.nn.functional as F

from adaanchor.anchor import Detections, flip_maps_back, flip_vectors_back
from adaanchor.bottom_up import (
    FlipTest,
    TestTimeAugmentation,
    absorb_to_keypoint_peaks,
    keypoint_boxes,
    keypoint_peaks,
    pose_diagonals,
    pose_nms,
    poses_from_anchors,
    sample_keypoint_maps,
    shift_flipped_image,
)


def test_sample_keypoint_maps_is_bilinear_on_a_linear_map():
    h, w = 6, 8
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    maps = torch.stack([2 * xs + ys, xs - 3 * ys])  # values at cell centres
    points = torch.tensor([[[1.5, 2.5], [3.25, 4.75]], [[6.5, 0.75], [2.0, 1.0]]])
    expected = torch.stack([2 * points[:, 0, 0] + points[:, 0, 1], points[:, 1, 0] - 3 * points[:, 1, 1]], dim=1)
    torch.testing.assert_close(sample_keypoint_maps(maps, points), expected)
    assert sample_keypoint_maps(maps, torch.zeros(0, 2, 2)).shape == (0, 2)


def test_pose_nms_hand_example():
    base = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])  # diagonal 14.14
    poses = torch.stack([base, base + 0.5, base + 100, base + torch.tensor([0.5, 0.0])])
    poses[3, :2] += 5  # only 2 joints close to pose 0
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # ratio 0.1: joints closer than 1.414 count; >= 3 close joints = duplicate
    keep = pose_nms(poses, scores, distance_ratio=0.1, min_close_joints=3)
    assert keep.tolist() == [3, 0, 2]  # pose 1 duplicates pose 0 (all 4 joints within 0.71)
    assert pose_nms(poses[:0], scores[:0]).numel() == 0
    assert pose_diagonals(base[None]).item() == pytest.approx(200**0.5)
    assert keypoint_boxes(base[None]).tolist() == [[0.0, 0.0, 10.0, 10.0]]


def test_flip_back_of_maps_and_vectors():
    maps = torch.arange(2 * 1 * 3, dtype=torch.float32).view(1, 2, 1, 3)
    back = flip_maps_back(maps, [1, 0])
    assert back[0, 0, 0].tolist() == [5.0, 4.0, 3.0] and back[0, 1, 0].tolist() == [2.0, 1.0, 0.0]
    # keypoint 0 points right (+1, 2) in the mirror, keypoint 1 (0, 7): back in the original frame,
    # keypoint 0 takes the mirror's keypoint 1 and keypoint 1 gets (-1, 2)
    vectors = torch.tensor([1.0, 2.0, 0.0, 7.0]).view(1, 4, 1, 1).repeat(1, 1, 1, 2)
    vectors[..., 1] = 0  # a second column, to see the mirroring
    out = flip_vectors_back(vectors, [1, 0])
    assert out[0, :, 0, 1].tolist() == [-0.0, 7.0, -1.0, 2.0]
    assert out[0, :, 0, 0].abs().sum() == 0


def test_flip_shift_aligns_a_stride_4_network():
    """A mirror-symmetric stride-4 network (two stride-2 3x3 convs): with the shift of stride - 1, the
    flipped run mirrored back equals the plain run; without it, it is off by one cell."""
    torch.manual_seed(0)
    weight = torch.rand(1, 1, 3, 3)
    weight = (weight + weight.flip(-1)) / 2  # left-right symmetric kernel

    def net(x):
        return F.conv2d(F.conv2d(x, weight, stride=2, padding=1), weight, stride=2, padding=1)

    image = torch.zeros(1, 1, 32, 64)
    image[..., 10:14, 20:26] = torch.rand(4, 6)
    plain = net(image)
    aligned = net(shift_flipped_image(image.flip(-1), 3)).flip(-1)
    torch.testing.assert_close(aligned, plain)
    misaligned = net(image.flip(-1)).flip(-1)
    assert (misaligned - plain).abs().max() > 1e-3


def test_sample_keypoint_maps_matches_grid_sample_with_border_padding():
    torch.manual_seed(0)
    maps = torch.rand(3, 5, 7)
    points = torch.rand(4, 3, 2) * torch.tensor([9.0, 7.0]) - 1.0  # some outside the map
    grid = (points * torch.tensor([2.0 / 7, 2.0 / 5]) - 1.0).transpose(0, 1).unsqueeze(2)
    expected = F.grid_sample(maps[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(sample_keypoint_maps(maps, points), expected[:, 0, :, 0].T)


def test_poses_from_anchors_adds_the_anchor_cells_offsets_and_scores_by_the_heatmaps():
    k, h, w = 2, 4, 5
    heatmaps = torch.full((k, h, w), 0.5)
    offsets = torch.zeros(2 * k, h, w)
    offsets[:, 2, 3] = torch.tensor([1.0, -1.0, 0.0, 0.5])  # cell (2, 3) at (3.5, 2.5)
    detections = Detections(
        positions=torch.zeros(1, 1, 2, 2),
        scores=torch.tensor([[[0.8, 0.0]]]),
        anchor_index=torch.tensor([[[2 * w + 3, -1]]]),
        valid=torch.tensor([[[True, False]]]),
    )
    poses, scores = poses_from_anchors(detections, heatmaps, offsets)
    torch.testing.assert_close(poses[0, :, :2], torch.tensor([[4.5, 1.5], [3.5, 3.0]]))
    torch.testing.assert_close(poses[0, :, 2], torch.tensor([0.4, 0.4]))
    torch.testing.assert_close(scores, torch.tensor([0.4]))


def test_test_time_loop_flips_each_output_with_its_own_function_and_crops_the_padding():
    """A mirror-symmetric 'network' (identity on a symmetric image): the flip test averages a map with its
    mirrored-back twin, concatenates a tag-like output, and crops to the cells covering the image."""
    image = torch.zeros(1, 3, 8, 12)
    image[..., 2:6, 3:9] = 1.0  # symmetric in x

    def predict(x):
        pooled = F.avg_pool2d(x[:, :1], 2)  # stride 2
        return {"heat": pooled, "tag": pooled * 2}

    flip = FlipTest(back={"heat": lambda m: m.flip(-1), "tag": lambda m: m.flip(-1)}, concatenate=("tag",))
    tta = TestTimeAugmentation(scales=(1.0,), flip=flip)
    ((maps, ratio),) = tta.maps(predict, F.pad(image, (0, 4, 0, 8)), (8, 12), stride=2, size_divisibility=4)
    assert ratio == (1.0, 1.0)
    assert maps["heat"].shape == (1, 1, 4, 6) and maps["tag"].shape == (1, 2, 4, 6)
    torch.testing.assert_close(maps["heat"], predict(image)["heat"])
    torch.testing.assert_close(maps["tag"][:, 1:], maps["tag"][:, :1])
    with pytest.raises(KeyError, match="no flip function for the output 'tag'"):
        TestTimeAugmentation(flip=FlipTest(back={"heat": lambda m: m})).maps(
            predict, image, (8, 12), stride=2, size_divisibility=1
        )


def _gaussians(h, w, centres, sigma=1.5):
    """(H, W) sum of Gaussians at continuous feature-px centres (cell centres at +0.5)."""
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return sum(v * torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y, v in centres)


def test_keypoint_peaks_finds_local_maxima_strongest_first_within_a_quarter_cell():
    maps = torch.stack(
        [_gaussians(20, 30, [(7.6, 5.4, 1.0), (20.5, 12.5, 0.6)]), _gaussians(20, 30, [(3.4, 15.7, 0.8)])]
    )
    xy, values = keypoint_peaks(maps, max_peaks=2)
    assert xy.shape == (2, 2, 2) and values.shape == (2, 2)
    assert torch.allclose(xy[0, 0], torch.tensor([7.75, 5.25])) and values[0, 0] > values[0, 1]
    assert torch.allclose(xy[0, 1], torch.tensor([20.5, 12.5]), atol=0.26)
    assert (xy[1, 0] - torch.tensor([3.4, 15.7])).abs().max() <= 0.25 + 1e-6
    assert values[1, 1] < 1e-3  # the second "peak" of a one-person map is background


def test_absorb_moves_joints_to_the_nearest_peak_of_their_own_type_within_the_distance():
    maps = torch.stack(
        [_gaussians(24, 24, [(5.5, 5.5, 1.0), (15.5, 5.5, 1.0)]), _gaussians(24, 24, [(10.5, 18.5, 1.0)])]
    )
    poses = torch.tensor(
        [
            [[7.0, 6.0, 0.9], [11.0, 17.0, 0.8]],  # near person A's joint 0 and the only joint 1
            [[13.0, 5.0, 0.7], [20.0, 10.0, 0.6]],  # near person B's joint 0; joint 1 too far
        ]
    )
    out = absorb_to_keypoint_peaks(poses, maps, max_distance=4.0, max_peaks=5)
    assert torch.allclose(out[0, 0, :2], torch.tensor([5.5, 5.5]))
    assert torch.allclose(out[1, 0, :2], torch.tensor([15.5, 5.5]))  # the nearest of the two type-0 peaks
    assert torch.allclose(out[0, 1, :2], torch.tensor([10.5, 18.5]))
    assert torch.equal(out[1, 1], poses[1, 1])  # beyond max_distance: kept
    assert torch.equal(out[..., 2], poses[..., 2])  # scores kept
    assert torch.equal(poses[0, 0], torch.tensor([7.0, 6.0, 0.9]))  # input untouched
    assert absorb_to_keypoint_peaks(poses[:0], maps, max_distance=4.0, max_peaks=5).shape == (0, 2, 3)
    # a peak in the last cell of a map wider than its image stays inside the image
    edge = torch.stack([_gaussians(8, 10, [(9.9, 4.5, 1.0)]), _gaussians(8, 10, [(9.9, 4.5, 1.0)])])
    near_edge = torch.tensor([[[9.0, 4.5, 1.0], [9.0, 4.5, 1.0]]])
    assert absorb_to_keypoint_peaks(near_edge, edge, max_distance=2.0, max_peaks=1)[0, 0, 0] == 9.75
    assert absorb_to_keypoint_peaks(near_edge, edge, max_distance=2.0, max_peaks=1, extent=(9.6, 8.0))[0, 0, 0] == 9.6
