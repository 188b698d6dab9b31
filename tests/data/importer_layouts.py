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
N_VHAP_VERTICES = 5023 + 120  # VHAP's FLAME with teeth (add_teeth=True): static_offset is [1, 5143, 3]
#: NeRSemble's camera serials in its camera_params.json key order, which VHAP's camera_index follows
#: (tobias-kirschstein/nersemble src/nersemble/constants.py:4-5; VHAP nersemble_dataset.py:90).
NERSEMBLE_SERIALS = ["222200042", "222200044", "222200046", "222200040", "222200036", "222200048", "220700191", "222200041",
                     "222200037", "222200038", "222200047", "222200043", "222200049", "222200039", "222200045", "221501007"]  # fmt: skip
CAM_AT_Z1_GL = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.0], [0, 0, 0, 1]])  # OpenGL c2w: at (0,0,1), looking at the origin
CAM_AT_Z1_CV = CAM_AT_Z1_GL @ np.diag([1.0, -1.0, -1.0, 1.0])  # the same camera, OpenCV axes


def yaw_c2w(yaw: float, axes: str = "gl") -> np.ndarray:
    """A camera on the unit circle around the origin, looking at it."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])
    return rot @ (CAM_AT_Z1_GL if axes == "gl" else CAM_AT_Z1_CV)


def png(path: Path, channels: int = 3, value: int = 200, size: int = 8) -> None:
    """A size x size image; its format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if channels == 1 else (size, size, channels)
    iio.imwrite(path, np.full(shape, value, np.uint8))


def flame_npz(path: Path, rng: np.random.Generator, n_expr: int = N_EXPR, **override) -> dict:
    """One timestep's parameters as VHAP's write_flame_param saves them ([1, k] arrays, shape [300], static_offset [1, 5143, 3])."""
    p = {
        "translation": rng.normal(0, 0.02, (1, 3)), "rotation": rng.normal(0, 0.2, (1, 3)),
        "neck_pose": rng.normal(0, 0.05, (1, 3)), "jaw_pose": np.abs(rng.normal(0, 0.1, (1, 3))),
        "eyes_pose": rng.normal(0, 0.05, (1, 6)), "shape": rng.normal(0, 1, 300),
        "expr": rng.normal(0, 1, (1, n_expr)), "static_offset": rng.normal(0, 0.003, (1, N_VHAP_VERTICES, 3)),
    }  # fmt: skip
    p.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **p)
    return p


def export_name(seq: str, subject: str = "074") -> str:
    return f"{subject}_{seq}_v16_DS4_whiteBg_staticOffset_maskBelowLine"


def vhap_sequence(parent: Path, seq: str, n_t: int, n_cam: int, t0: int, rng, subject: str = "074") -> tuple[list[dict], dict]:
    """One VHAP export folder (images, fg_masks, flame_param) and its frames as a union references them (../<folder>/...)."""
    folder = export_name(seq, subject)
    frames, params = [], {}
    for t in range(n_t):
        params[t0 + t] = flame_npz(parent / folder / f"flame_param/{t:05d}.npz", rng)
        for cam in range(n_cam):
            png(parent / folder / f"images/{t:05d}_{cam:02d}.png")
            png(parent / folder / f"fg_masks/{t:05d}_{cam:02d}.png", channels=1, value=255)
            frames.append({
                "timestep_index": t0 + t, "camera_index": cam, "camera_id": NERSEMBLE_SERIALS[cam],
                "cx": 4.0, "cy": 8 - 3.0, "fl_x": 10.0, "fl_y": 10.0, "h": 8, "w": 8,  # VHAP stores cy as h - cy
                "camera_angle_x": 0.7, "camera_angle_y": 0.7, "transform_matrix": yaw_c2w(0.4 * cam).tolist(),
                "file_path": f"../{folder}/images/{t:05d}_{cam:02d}.png",
                "fg_mask_path": f"../{folder}/fg_masks/{t:05d}_{cam:02d}.png",
                "flame_param_path": f"../{folder}/flame_param/{t:05d}.npz",
            })  # fmt: skip
    return frames, params


def _divisions(folder: Path, divisions: dict[str, list[dict]]) -> None:
    shared = {"cx": 4.0, "cy": 5.0, "fl_x": 10.0, "fl_y": 10.0, "h": 8, "w": 8}
    for name, frames in divisions.items():
        (folder / f"transforms_{name}.json").write_text(json.dumps({**shared, "frames": frames, "timestep_indices": sorted({f["timestep_index"] for f in frames})}))


def vhap_union(root: Path, seed: int = 0, n_cam: int = 3) -> tuple[Path, dict]:
    """combine_nerf_datasets.py output as VHAP's jobs write it: no FREE; EMO-1 and EXP-2 train/val
    (camera 8, else the last camera, is val), EXP-9 the randomly drawn test sequence."""
    rng = np.random.default_rng(seed)
    parent = root / "export"
    emo, p1 = vhap_sequence(parent, "EMO-1", 2, n_cam, 0, rng)
    exp, p2 = vhap_sequence(parent, "EXP-2", 2, n_cam, 2, rng)
    test, p3 = vhap_sequence(parent, "EXP-9", 2, n_cam, 4, rng)
    union = parent / "UNION10_074_EMO1234EXP234589_v16_DS4_whiteBg_staticOffset_maskBelowLine"
    union.mkdir(parents=True)
    val_cam = 8 if n_cam > 8 else n_cam - 1
    _divisions(union, {"train": [f for f in emo + exp if f["camera_index"] != val_cam], "val": [f for f in emo + exp if f["camera_index"] == val_cam], "test": test})
    np.savez(union / "canonical_flame_param.npz", shape=rng.normal(0, 1, 300), expr=np.zeros((1, N_EXPR)))
    return union, {**p1, **p2, **p3}


def vhap_export(parent: Path, seq: str = "FREE", n_t: int = 3, n_cam: int = 3, seed: int = 1, subject: str = "074") -> tuple[Path, dict]:
    """A single sequence's export_as_nerf_dataset.py output (GaussianAvatars ships FREE so): transforms.json and
    split_json's transforms_{train,val,test}.json (first 70% of timesteps train/val, the rest test), own paths."""
    frames, params = vhap_sequence(parent, seq, n_t, n_cam, 0, np.random.default_rng(seed), subject)
    for f in frames:
        for key in ("file_path", "fg_mask_path", "flame_param_path"):
            f[key] = f[key].split("/", 2)[2]  # ../<folder>/images/... -> images/...
    folder = parent / export_name(seq, subject)
    n_train = int(np.ceil(0.7 * n_t))
    val_cam = 8 if n_cam > 8 else n_cam - 1
    early = [f for f in frames if f["timestep_index"] < n_train]
    _divisions(folder, {"train": [f for f in early if f["camera_index"] != val_cam], "val": [f for f in early if f["camera_index"] == val_cam], "test": [f for f in frames if f["timestep_index"] >= n_train]})
    (folder / "transforms.json").write_text(json.dumps({"frames": frames, "timestep_indices": list(range(n_t)), "camera_indices": list(range(n_cam))}))
    return folder, params


GHA_SIZE = 26  # px; GHA crops 2600 px and pads 200 px each side (2200 px wide source), so 2 px here
GHA_PAD = round(GHA_SIZE * 200 / 2600)
GHA_CAMS = ("220700191", "221501007", "222200036")


def gha_params(model: str, rng: np.random.Generator) -> dict:
    """One frame's params.npz as Multiview-3DMM-Fitting's BFMModule or FLAMEModule saves it (same keys, own sizes)."""
    pose = np.concatenate([rng.normal(0, 0.2, (1, 3)), rng.normal(0, 0.02, (1, 3))], 1)
    if model == "flame":  # id 100, exp 50 + jaw 3 + eyes 6, scale [1, 1]
        return {"id_coeff": rng.normal(0, 1, (1, 100)), "exp_coeff": rng.normal(0, 0.3, (1, 59)), "scale": np.array([[1.2]]), "pose": pose}
    return {"id_coeff": rng.normal(0, 1, (1, 80)), "exp_coeff": rng.normal(0, 1, (1, 64)), "scale": np.array([0.15]), "pose": pose}


def gha_subject(root: Path, n_frames: int = 5, cams=GHA_CAMS, seed: int = 0, model: str = "bfm", mattes: bool = True) -> tuple[Path, dict]:
    """preprocess_nersemble.py + Multiview-3DMM-Fitting output for one id: per frame images/, cameras/, params/.

    Frame folders are numbered continuously over all sequences (no names, no FREE); images have
    GHA's zero padding at both sides, recorded in visible_<camera>.jpg; the background matte is
    not exactly zero there (as a JPEG'd network output need not be).
    """
    rng = np.random.default_rng(seed)
    src = root / "NeRSemble" / "031"
    inside = np.zeros((GHA_SIZE, GHA_SIZE), np.uint8)
    inside[:, GHA_PAD : GHA_SIZE - GHA_PAD] = 255
    params = {}
    for k in range(n_frames):
        fid, here = f"{k:04d}", src / f"images/{k:04d}"
        here.mkdir(parents=True, exist_ok=True)
        for ci, cam in enumerate(cams):
            iio.imwrite(here / f"image_{cam}.jpg", np.repeat(np.minimum(inside, 200)[..., None], 3, 2))  # JPEG, as GHA writes
            iio.imwrite(here / f"visible_{cam}.jpg", np.repeat(inside[..., None], 3, 2))
            if mattes:  # GHA's masks are 3-channel JPEGs; 6 = matting noise in the padding
                iio.imwrite(here / f"mask_{cam}.jpg", np.repeat(np.maximum(inside, 6)[..., None], 3, 2))
            w2c = np.linalg.inv(yaw_c2w(0.4 * ci, "cv"))[:3]
            K = np.array([[2.5, 0, 1.0], [0, 2.5, 0.75], [0, 0, 1]]) * [[GHA_SIZE], [GHA_SIZE], [1]]  # at original_resolution 2 x GHA_SIZE
            (src / f"cameras/{fid}").mkdir(parents=True, exist_ok=True)
            np.savez(src / f"cameras/{fid}/camera_{cam}.npz", extrinsic=w2c, intrinsic=K)
        p = gha_params(model, rng)
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
