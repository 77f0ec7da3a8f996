"""The bottom-up affine: continuous-coordinate convention, so a keypoint stays on its pixel."""

import numpy as np
import pytest

from adaanchor.data.affine import area_scale, bottom_up_affine, transform_points, warp


def test_identity_like_transform_keeps_pixels():
    # A 32x32 image into a 32-px output at scale 1: the identity.
    m = bottom_up_affine((32, 32), 32)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("rotation", [0.0, 90.0, 17.0])
def test_marked_pixel_lands_on_its_transformed_keypoint(flip, rotation):
    h, w, size = 40, 60, 96
    image = np.zeros((h, w), np.float32)
    row, col = 13, 41
    image[row, col] = 1.0
    keypoint = np.array([col + 0.5, row + 0.5])  # the pixel's centre, continuous coordinates
    m = bottom_up_affine((h, w), size, scale=1.3, rotation_deg=rotation, translation=(5, -3), flip=flip)
    out = warp(image, m, (size, size))
    x, y = transform_points(keypoint, m)
    # the warped blob's centre of mass, in continuous coordinates, is the transformed keypoint
    ys, xs = np.nonzero(out > 0)
    wts = out[ys, xs]
    cx, cy = (xs * wts).sum() / wts.sum() + 0.5, (ys * wts).sum() / wts.sum() + 0.5
    assert cx == pytest.approx(x, abs=0.05) and cy == pytest.approx(y, abs=0.05)


def test_scale_fits_short_side_and_rotation_direction():
    m = bottom_up_affine((100, 200), 200)  # short side 100 -> 200: zoom 2 (the long side is cropped)
    assert area_scale(m) == pytest.approx(4.0)
    np.testing.assert_allclose(transform_points([100.0, 50.0], m), [100.0, 100.0])  # centre to centre
    # 90 degrees counter-clockwise on screen: a point right of the centre moves above it
    m = bottom_up_affine((100, 100), 100, rotation_deg=90)
    np.testing.assert_allclose(transform_points([60.0, 50.0], m), [50.0, 40.0], atol=1e-9)
    # a flip mirrors around the output's vertical centre line
    m = bottom_up_affine((100, 100), 100, flip=True)
    np.testing.assert_allclose(transform_points([60.0, 30.0], m), [40.0, 30.0], atol=1e-9)
