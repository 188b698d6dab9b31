"""Tiny sources in the published layouts (VHAP, GHA, INSTA, IMavatar), generated per test.

Each builder writes 8x8 images and random but valid parameters, and returns what a test
needs to check the import: the source folder plus the known values it planted.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np

N_EXPR = 10  # FLAME expr coefficients in the fixtures (VHAP exports 100; any count must work)
CAM_AT_Z1_GL = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.0], [0, 0, 0, 1]])  # OpenGL c2w: at (0,0,1), looking at the origin
CAM_AT_Z1_CV = CAM_AT_Z1_GL @ np.diag([1.0, -1.0, -1.0, 1.0])  # the same camera, OpenCV axes


def yaw_c2w(yaw: float, axes: str = "gl") -> np.ndarray:
    """A camera on the unit circle around the origin, looking at it."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])
    return rot @ (CAM_AT_Z1_GL if axes == "gl" else CAM_AT_Z1_CV)


def png(path: Path, channels: int = 3, value: int = 200) -> None:
    """An 8x8 image; its format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (8, 8) if channels == 1 else (8, 8, channels)
    iio.imwrite(path, np.full(shape, value, np.uint8))


def flame_npz(path: Path, rng: np.random.Generator, n_expr: int = N_EXPR, **override) -> dict:
    """One timestep's parameters as VHAP's write_flame_param saves them ([1, k] arrays, shape [300])."""
    p = {
        "translation": rng.normal(0, 0.02, (1, 3)), "rotation": rng.normal(0, 0.2, (1, 3)),
        "neck_pose": rng.normal(0, 0.05, (1, 3)), "jaw_pose": np.abs(rng.normal(0, 0.1, (1, 3))),
        "eyes_pose": rng.normal(0, 0.05, (1, 6)), "shape": rng.normal(0, 1, 300),
        "expr": rng.normal(0, 1, (1, n_expr)), "static_offset": np.zeros((1, 6, 3)),
    }  # fmt: skip
    p.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **p)
    return p


def vhap_sequence(parent: Path, seq: str, n_t: int, n_cam: int, t0: int, rng) -> tuple[list[dict], dict]:
    """One VHAP export folder (images, fg_masks, flame_param) and its frames as a union references them."""
    folder = f"074_{seq}_v16_DS4_whiteBg_staticOffset_maskBelowLine"
    frames, params = [], {}
    for t in range(n_t):
        params[t0 + t] = flame_npz(parent / folder / f"flame_param/{t:05d}.npz", rng)
        for cam in range(n_cam):
            png(parent / folder / f"images/{t:05d}_{cam:02d}.png")
            png(parent / folder / f"fg_masks/{t:05d}_{cam:02d}.png", channels=1, value=255)
            frames.append({
                "timestep_index": t0 + t, "camera_index": cam, "camera_id": f"22{cam:07d}",
                "cx": 4.0, "cy": 8 - 3.0, "fl_x": 10.0, "fl_y": 10.0, "h": 8, "w": 8,  # VHAP stores cy as h - cy
                "camera_angle_x": 0.7, "camera_angle_y": 0.7, "transform_matrix": yaw_c2w(0.4 * cam).tolist(),
                "file_path": f"../{folder}/images/{t:05d}_{cam:02d}.png",
                "fg_mask_path": f"../{folder}/fg_masks/{t:05d}_{cam:02d}.png",
                "flame_param_path": f"../{folder}/flame_param/{t:05d}.npz",
            })  # fmt: skip
    return frames, params


def vhap_union(root: Path, seed: int = 0) -> tuple[Path, dict]:
    """combine_nerf_datasets.py output: EMO-1 and EXP-2 train/val (last camera is val), FREE test."""
    rng = np.random.default_rng(seed)
    parent = root / "export"
    emo, p1 = vhap_sequence(parent, "EMO-1", 2, 3, 0, rng)
    exp, p2 = vhap_sequence(parent, "EXP-2", 2, 3, 2, rng)
    free, p3 = vhap_sequence(parent, "FREE", 2, 3, 4, rng)
    union = parent / "UNION_074_EMO1EXP2_v16_DS4_whiteBg_staticOffset_maskBelowLine"
    union.mkdir(parents=True)
    shared = {"cx": 4.0, "cy": 5.0, "fl_x": 10.0, "fl_y": 10.0, "h": 8, "w": 8}
    divisions = {"train": [f for f in emo + exp if f["camera_index"] < 2], "val": [f for f in emo + exp if f["camera_index"] == 2], "test": free}
    for name, frames in divisions.items():
        (union / f"transforms_{name}.json").write_text(json.dumps({**shared, "frames": frames, "timestep_indices": sorted({f["timestep_index"] for f in frames})}))
    np.savez(union / "canonical_flame_param.npz", shape=rng.normal(0, 1, 300), expr=np.zeros((1, N_EXPR)))
    return union, {**p1, **p2, **p3}


def gha_subject(root: Path, n_frames: int = 5, cams=("220700191", "221501007", "222200036"), seed: int = 0) -> tuple[Path, dict]:
    """preprocess_nersemble.py + Multiview-3DMM-Fitting output for one id: per frame images/, cameras/, params/."""
    rng = np.random.default_rng(seed)
    src = root / "NeRSemble" / "031"
    params = {}
    for k in range(n_frames):
        fid = f"{k:04d}"
        for ci, cam in enumerate(cams):
            png(src / f"images/{fid}/image_{cam}.jpg")  # the format follows the extension: JPEG, as GHA writes
            png(src / f"images/{fid}/mask_{cam}.jpg", channels=3, value=255)  # GHA's masks are 3-channel JPEGs
            w2c = np.linalg.inv(yaw_c2w(0.4 * ci, "cv"))[:3]
            K = np.array([[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]])  # at original_resolution 16
            (src / f"cameras/{fid}").mkdir(parents=True, exist_ok=True)
            np.savez(src / f"cameras/{fid}/camera_{cam}.npz", extrinsic=w2c, intrinsic=K)
        p = {"id_coeff": rng.normal(0, 1, (1, 80)), "exp_coeff": rng.normal(0, 1, (1, 64)), "scale": np.array([0.15]), "pose": np.concatenate([rng.normal(0, 0.2, (1, 3)), rng.normal(0, 0.02, (1, 3))], 1)}
        (src / f"params/{fid}").mkdir(parents=True, exist_ok=True)
        np.savez(src / f"params/{fid}/params.npz", **p)
        np.save(src / f"params/{fid}/lmk_3d.npy", rng.normal(0, 0.1, (66, 3)))
        params[fid] = p
    return src, params


def insta_actor(root: Path, n_frames: int = 10, seed: int = 0) -> tuple[Path, np.ndarray]:
    """INSTA's scripts/transforms.py + postprocess.py output: RGBA images, flame/exp txt, OpenCV c2w."""
    rng = np.random.default_rng(seed)
    src = root / "insta" / "obama"
    exps = rng.normal(0, 1, (n_frames, N_EXPR))
    frames = []
    for k in range(n_frames):
        png(src / f"images/{k}.png", channels=4)
        (src / "flame/exp").mkdir(parents=True, exist_ok=True)
        np.savetxt(src / f"flame/exp/{k}.txt", exps[k], fmt="%.8f")
        frames.append({"transform_matrix": yaw_c2w(0.05 * k, "cv").tolist(), "file_path": f"images/{k}.png", "mesh_path": f"meshes/{k}.obj",
                       "exp_path": f"flame/exp/{k}.txt", "depth_path": f"depth/{k}.png", "seg_mask_path": f"seg_mask/{k}.png"})  # fmt: skip
    doc = {"w": 8.0, "h": 8.0, "cx": 4.0, "cy": 3.0, "fl_x": 10.0, "fl_y": 10.0, "camera_angle_x": 0.76, "integer_depth_scale": 0.001, "frames": frames}
    (src / "transforms.json").write_text(json.dumps(doc))
    return src, exps


def imavatar_subject(root: Path, videos=("MVI_1810", "MVI_1811"), n_frames: int = 5, seed: int = 0) -> tuple[Path, dict]:
    """IMavatar's preprocess output: <subject>/<subject>/<video>/{flame_params.json, image/, mask/}."""
    rng = np.random.default_rng(seed)
    src = root / "yufeng" / "yufeng"
    planted = {}
    for v in videos:
        frames = []
        for n in range(1, n_frames + 1):  # ffmpeg numbers frames from 1
            png(src / v / f"image/{n}.png")
            png(src / v / f"mask/{n}.png", channels=3, value=255)
            exp, pose = rng.normal(0, 1, 50), rng.normal(0, 0.1, 15)
            planted[(v, n)] = (exp, pose)
            frames.append({"file_path": f"./image/{n}", "world_mat": np.linalg.inv(CAM_AT_Z1_GL)[:3].tolist(), "expression": exp.tolist(),
                           "pose": pose.tolist(), "bbox": [-0.5, -0.5, 0.5, 0.5], "flame_keypoints": [[0.0, 0.0]]})  # fmt: skip
        doc = {"frames": frames, "intrinsics": [-2.0, 2.0, 0.5, 0.375], "shape_params": rng.normal(0, 1, 100).tolist()}
        (src / v / "flame_params.json").write_text(json.dumps(doc))
    return src, planted
