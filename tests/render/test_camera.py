"""Cameras: the look-at matrix and the OpenGL/OpenCV flip agree with the rasteriser's projection."""

import numpy as np
import torch

from eavatar.render import Camera
from eavatar.render.camera import OPENGL_TO_OPENCV, look_at_c2w


def test_look_at_puts_the_target_on_the_principal_point():
    eye, target = torch.tensor([0.4, 0.3, 1.2]), torch.tensor([0.05, -0.02, 0.1])
    c2w = look_at_c2w(eye, target)
    R = c2w[:3, :3]
    torch.testing.assert_close(R.T @ R, torch.eye(3))
    assert torch.det(R) > 0 and torch.equal(c2w[:3, 3], eye)
    assert float(R[:, 1] @ torch.tensor([0.0, 1.0, 0.0])) > 0  # y up
    cam = Camera.from_c2w_opengl(c2w, 100.0, 100.0, 32.0, 24.0, 64, 48)
    x = cam.K @ (cam.viewmat[:3, :3] @ target + cam.viewmat[:3, 3])
    torch.testing.assert_close(x[:2] / x[2], torch.tensor([32.0, 24.0]))


def test_look_at_keeps_numpy_float64():
    c2w = look_at_c2w(np.array([0.0, 0.0, 1.0]), np.zeros(3))
    expected = torch.eye(4, dtype=torch.float64)
    expected[2, 3] = 1.0  # at +z, looking down -z: the identity rotation
    assert c2w.dtype == torch.float64
    torch.testing.assert_close(c2w, expected)


def test_the_flip_is_its_own_inverse():
    torch.testing.assert_close(OPENGL_TO_OPENCV @ OPENGL_TO_OPENCV, torch.eye(4, dtype=torch.float64))


def test_pixels_lands_each_point_in_the_pixel_it_projects_into():
    eye = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    cam = Camera.from_c2w_opengl(look_at_c2w(eye, torch.zeros(3, dtype=torch.float64)), 100.0, 100.0, 32.0, 24.0, 64, 48)
    points = torch.tensor(
        [
            [0.0, 0.0, 0.0],  # on the axis: the principal point (32, 24)
            [0.01, 0.0, 0.0],  # 0.5 px right of it at depth 2
            [0.0, 0.05, 0.0],  # world up is image up: 2.5 px above, row 21
            [0.0, 0.0, 3.0],  # behind the camera
            [1.0, 0.0, 0.0],  # 50 px right: outside a 64 px wide image
        ],
        dtype=torch.float64,
    )
    col, row, seen = cam.pixels(points)
    assert col[:3].tolist() == [32, 32, 32] and row[:3].tolist() == [24, 24, 21]
    assert seen.tolist() == [True, True, True, False, False]
    assert cam.pixels(points.float())[0][:3].tolist() == [32, 32, 32]  # the points' dtype, the camera's float32 follows
