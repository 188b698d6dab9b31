import numpy as np
import torch
from plyfile import PlyData

from eavatar.avatar.ply import SH_C0, export_canonical_ply, export_frame_ply, gaussian_ply_fields


def test_canonical_ply_has_standard_3dgs_fields(tmp_path, avatar):
    path = export_canonical_ply(tmp_path / "canonical.ply", avatar)
    ply = PlyData.read(str(path))
    vertex = ply["vertex"]
    names = [p.name for p in vertex.properties]
    assert names == gaussian_ply_fields()
    for required in ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]:
        assert required in names
    assert len(vertex) == len(avatar.canonical)
    means = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    np.testing.assert_allclose(means, avatar.canonical.params["means"].detach().numpy(), rtol=0, atol=1e-7)
    rot = np.stack([vertex[f"rot_{i}"] for i in range(4)], axis=1)
    np.testing.assert_allclose(np.linalg.norm(rot, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vertex["scale_0"], avatar.canonical.params["scales"][:, 0].detach().numpy(), atol=1e-6)


def test_frame_ply_round_trips_colour_and_opacity(tmp_path, avatar):
    code = torch.rand(avatar.d_exp)
    path = export_frame_ply(tmp_path / "frame.ply", avatar, code, torch.eye(4))
    v = PlyData.read(str(path))["vertex"]
    g = avatar.frame(code, torch.eye(4))
    rgb = np.stack([v[f"f_dc_{i}"] for i in range(3)], axis=1) * SH_C0 + 0.5
    np.testing.assert_allclose(rgb, g.colors.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-v["opacity"])), g.opacities.detach().numpy(), atol=1e-5)
