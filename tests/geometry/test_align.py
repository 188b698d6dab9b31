import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from eavatar.data.synthetic import ProceduralHead
from eavatar.geometry.align import AlignConfig, align_similarity


@pytest.mark.parametrize("rotvec", [(0.3, -0.5, 0.2), (2.0, 1.0, -0.5)])
def test_alignment_recovers_a_known_similarity(rotvec):
    head = ProceduralHead(0, 3)
    target = trimesh.Trimesh(head.neutral, head.faces, process=False)  # asymmetric front/back: one right answer
    T = np.eye(4)
    T[:3, :3] = 2.5 * Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = [0.4, -1.0, 2.0]
    source = target.copy()
    source.apply_transform(T)
    result = align_similarity(source, target, AlignConfig(samples=3000))
    residual = result.matrix @ T  # identity when the inverse is recovered
    scale = np.cbrt(np.linalg.det(residual[:3, :3]))
    angle = np.degrees(Rotation.from_matrix(residual[:3, :3] / scale).magnitude())
    assert scale == pytest.approx(1.0, abs=0.01)
    assert angle < 3.0
    assert np.linalg.norm(residual[:3, 3]) < 0.03 * result.metrics["target_mean_radius"]
    assert result.metrics["chamfer_after"] < 0.05
