import math

import torch
from scipy.spatial.transform import Rotation

from eavatar.avatar.pose import apply_head_pose, matrix_to_quat, pose_code, quat_multiply


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    return torch.as_tensor(Rotation.random(n, random_state=seed).as_matrix(), dtype=torch.float32)


def test_matrix_to_quat_matches_scipy():
    R = random_rotations(64)
    q = matrix_to_quat(R)
    ref = torch.as_tensor(Rotation.from_matrix(R.numpy()).as_quat(scalar_first=True), dtype=torch.float32)
    ref = torch.where(ref[:, :1] < 0, -ref, ref)
    torch.testing.assert_close(q, ref, atol=1e-5, rtol=1e-5)


def test_quat_multiply_composes_rotations():
    R1, R2 = random_rotations(8, 1), random_rotations(8, 2)
    q = quat_multiply(matrix_to_quat(R1), matrix_to_quat(R2))
    q = torch.where(q[:, :1] < 0, -q, q)
    torch.testing.assert_close(q, matrix_to_quat(R1 @ R2), atol=1e-5, rtol=1e-5)


def test_pose_code_is_axis_angle_and_translation():
    pose = torch.eye(4)
    pose[:3, :3] = torch.as_tensor(Rotation.from_rotvec([0, 0.3, 0]).as_matrix(), dtype=torch.float32)
    pose[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    torch.testing.assert_close(pose_code(pose), torch.tensor([0, 0.3, 0, 0.1, -0.2, 0.3]), atol=1e-6, rtol=0)
    assert pose_code(torch.eye(4)).abs().max() < 1e-6


def test_apply_head_pose_moves_points_and_rotations():
    pose = torch.eye(4)
    pose[:3, :3] = torch.as_tensor(Rotation.from_euler("z", math.pi / 2).as_matrix(), dtype=torch.float32)
    pose[:3, 3] = torch.tensor([1.0, 0, 0])
    means, quats = apply_head_pose(torch.tensor([[1.0, 0, 0]]), torch.tensor([[1.0, 0, 0, 0]]), pose)
    torch.testing.assert_close(means, torch.tensor([[1.0, 1.0, 0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(quats, matrix_to_quat(pose[:3, :3])[None], atol=1e-6, rtol=0)
