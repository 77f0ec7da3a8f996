"""DEKR post-processing: map sampling, pose NMS, flip-back and the flip alignment shift."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("detectron2")

from adaanchor.modeling.dekr.postprocess import (  # noqa: E402
    flip_maps_back,
    flip_vectors_back,
    keypoint_boxes,
    pose_diagonals,
    pose_nms,
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
