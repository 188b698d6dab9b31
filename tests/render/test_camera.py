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
